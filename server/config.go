package server

import (
	"bytes"
	_ "embed"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/actorkv/actorkv/actors/replica"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// Mode names a deployment mode.
const (
	ModeStandalone = "standalone"
	ModeReplicated = "replicated"
)

// Config is the deployment configuration, read from TOML (DESIGN.md,
// "Configuration"). Every field has a default (DefaultConfig); Validate
// names the first bad field by its TOML path.
type Config struct {
	Deployment Deployment         `toml:"deployment"`
	Database   Database           `toml:"database"`
	Server     Listen             `toml:"server"`
	Raft       replica.RaftConfig `toml:"raft"`
	Limits     kv.Limits          `toml:"limits"`
	Log        Log                `toml:"log"`
	TLS        TLS                `toml:"tls"`
}

// Deployment says how the database is deployed.
type Deployment struct {
	// Mode is "standalone" (one RocksDB, no replication) or "replicated".
	Mode string `toml:"mode"`
	// ReplicaEndpoints are the Raft addresses (host:port) of the replicas;
	// with InProcess they only give the number of replicas.
	ReplicaEndpoints []string `toml:"replica_endpoints"`
	// InstanceID is which endpoint is this process (one replica per process).
	InstanceID uint32 `toml:"instance_id"`
	// InProcess runs every replica in this process (the embedded default).
	InProcess bool `toml:"in_process"`
	// ClusterID is the Raft cluster id.
	ClusterID uint64 `toml:"cluster_id"`
	// RaftAddress is this process's Raft address (one replica per process)
	// when replica_endpoints does not list it: a replica joining a running
	// cluster (with Join, it wins over replica_endpoints, which a joining
	// replica does not need).
	RaftAddress string `toml:"raft_address"`
	// RaftListen is the host:port this process's Raft transport binds,
	// when not its Raft address (one replica per process): "0.0.0.0:6001"
	// in a container whose Raft address is a name the others resolve, so
	// that it keeps listening when its network address changes. "" binds
	// the Raft address.
	RaftListen string `toml:"raft_listen"`
	// Join lists gRPC endpoints of a running cluster's processes. This
	// process's replica (instance_id), which was added to the cluster's
	// membership first (kvctl member add or replace), joins it on its first
	// start and catches up from the leader; replica_endpoints may then be
	// empty. Once the replica has started, it restarts from its data and
	// Join is not consulted.
	Join []string `toml:"join"`
}

// OwnRaftAddress is the Raft address of this process's replica in a
// cluster: raft_address, or replica_endpoints[instance_id].
func (d Deployment) OwnRaftAddress() string {
	if d.RaftAddress != "" {
		return d.RaftAddress
	}
	if int(d.InstanceID) < len(d.ReplicaEndpoints) {
		return d.ReplicaEndpoints[d.InstanceID]
	}
	return ""
}

// Database configures storage.
type Database struct {
	// BasePath holds the data: replica N in BasePath/replica-N, the
	// standalone engine in BasePath/standalone.
	BasePath string `toml:"base_path"`
	// ColumnFamilies are created on open ("default" always exists).
	ColumnFamilies []string `toml:"column_families"`
	// RetentionWindow keeps old versions readable for snapshot reads and
	// atomic commits.
	RetentionWindow Duration `toml:"retention_window"`
	// SyncWrites fsyncs every standalone commit (replicated mode relies on
	// the Raft log instead).
	SyncWrites bool `toml:"sync_writes"`
	// BlockCacheMiB, WriteBufferMiB (one memtable) and MemtableMiB (all
	// memtables of all column families) size each RocksDB instance.
	BlockCacheMiB  int `toml:"block_cache_mib"`
	WriteBufferMiB int `toml:"write_buffer_mib"`
	MemtableMiB    int `toml:"memtable_mib"`
}

// Listen configures the network front ends.
type Listen struct {
	// Listen is the gRPC address.
	Listen string `toml:"listen"`
	// ThriftListen is the address of the Thrift front end
	// (messages/kv.thrift); "" (the default) turns it off. It serves the
	// same operations through the same core, with TLS when [tls] is set.
	ThriftListen string `toml:"thrift_listen"`
	// Metrics is the HTTP address of /metrics, /healthz and /readyz.
	Metrics string `toml:"metrics"`
	// Pprof also serves Go's profiler under /debug/pprof/ on the metrics
	// address (off by default: it reveals the process's internals to whoever
	// reaches that address).
	Pprof bool `toml:"pprof"`
	// RequestTimeout bounds a request whose client set no deadline.
	RequestTimeout Duration `toml:"request_timeout"`
	// ShutdownTimeout bounds the wait for in-flight requests on shutdown.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// MemoryLimitMiB is the soft limit of the Go heap (as GOMEMLIMIT, which
	// takes precedence when set); 0 leaves Go's default. RocksDB's and the
	// Raft log's memory comes on top (see database.*_mib).
	MemoryLimitMiB int `toml:"memory_limit_mib"`
	// Admin allows admin operations over the network: fault injection,
	// membership changes, leader moves and status with a digest range
	// (kvctl fault, member add/remove/replace, move-leader, verify's
	// narrowing down). Off by default: anyone who reaches the gRPC port could stop
	// replicas. Everyone else gets PERMISSION_DENIED.
	Admin bool `toml:"admin"`
	// Admins, when set, are the only identities allowed admin operations
	// (the subjects of their client certificates, as in
	// "CN=alice,O=ops"): it needs TLS with client certificates.
	Admins []string `toml:"admins"`
	// The bounds of what the server holds for its callers (see
	// server.Limits): a caller over one is slowed first (a Batch stream
	// stops reading, a unary call waits) and refused RESOURCE_EXHAUSTED
	// when its deadline comes first. MaxInflightMiB bounds the request
	// bytes of the calls in flight in the process; MaxRangeReads the range
	// reads in flight (each may build a reply of up to
	// limits.max_range_bytes); MaxStreamMiB and MaxStreamCalls one Batch
	// stream's calls in flight; MaxStreams the Batch streams open at once
	// (one more is refused); MaxConnectionStreams the streams of one
	// connection (HTTP/2: more wait).
	MaxInflightMiB       int `toml:"max_inflight_mib"`
	MaxRangeReads        int `toml:"max_range_reads"`
	MaxStreamMiB         int `toml:"max_stream_mib"`
	MaxStreamCalls       int `toml:"max_stream_calls"`
	MaxStreams           int `toml:"max_streams"`
	MaxConnectionStreams int `toml:"max_connection_streams"`
}

// Limits are the server's bounds on what it holds for its callers.
func (l Listen) Limits() Limits {
	return Limits{InflightBytes: int64(l.MaxInflightMiB) << 20, RangeReads: int64(l.MaxRangeReads),
		StreamBytes: int64(l.MaxStreamMiB) << 20, StreamCalls: l.MaxStreamCalls, Streams: l.MaxStreams}
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `toml:"level"`
	// Format is text or json.
	Format string `toml:"format"`
	// RaftLevel is the level of dragonboat's own lines (debug, info, warn
	// or error; default error: its Raft layer logs every election and
	// every vote as a warning).
	RaftLevel string `toml:"raft_level"`
	// Levels sets the level of each component's lines (server,
	// supervisor, router, replica, executor, raftnet, actor: the
	// "component" attribute of its lines), above or below Level:
	// levels = { replica = "debug", actor = "error" }. dragonboat's lines
	// have RaftLevel.
	Levels map[string]string `toml:"levels"`
}

// ComponentLevels are Levels as slog levels.
func (l Log) ComponentLevels() map[string]slog.Level {
	m := make(map[string]slog.Level, len(l.Levels))
	for c, s := range l.Levels {
		var lv slog.Level
		_ = lv.UnmarshalText([]byte(s))
		m[c] = lv
	}
	return m
}

// Duration is a time.Duration written in TOML as a string ("5s").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// DefaultTOML is DefaultConfig as a TOML file with every field commented
// (kvserver --print-config; docs/CONFIG.md holds it too, and a test holds
// the three to each other).
//
//go:embed default.toml
var DefaultTOML string

// DefaultConfig is the embedded default: three replicas in one process with
// their data under ./data, serving gRPC on 127.0.0.1:7070.
func DefaultConfig() Config {
	return Config{
		Deployment: Deployment{
			Mode:             ModeReplicated,
			ReplicaEndpoints: []string{"127.0.0.1:6001", "127.0.0.1:6002", "127.0.0.1:6003"},
			InstanceID:       0,
			InProcess:        true,
			ClusterID:        1,
		},
		Database: Database{
			BasePath:        "./data",
			ColumnFamilies:  []string{kv.DefaultColumnFamily},
			RetentionWindow: Duration{5 * time.Second},
			SyncWrites:      true,
			BlockCacheMiB:   32,
			WriteBufferMiB:  8,
			MemtableMiB:     32,
		},
		Server: Listen{
			Listen:          "127.0.0.1:7070",
			Metrics:         "127.0.0.1:9100",
			RequestTimeout:  Duration{10 * time.Second},
			ShutdownTimeout: Duration{15 * time.Second},
			MemoryLimitMiB:  224,

			MaxInflightMiB:       16,
			MaxRangeReads:        2,
			MaxStreamMiB:         8,
			MaxStreamCalls:       4096,
			MaxStreams:           1024,
			MaxConnectionStreams: 256,
		},
		Raft:   replica.DefaultRaftConfig(),
		Limits: kv.DefaultLimits(),
		Log:    Log{Level: "info", Format: "text", RaftLevel: "error"},
	}
}

// LoadConfig reads a TOML file over the defaults. A key the file has but
// Config does not is an error naming it.
func LoadConfig(path string) (Config, error) {
	cfg, err := ReadConfig(path)
	if err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// ReadConfig reads a TOML file over the defaults without validating the
// result (kvserver applies its flags first, then validates).
func ReadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return decodeConfig(data)
}

// ParseConfig parses TOML over the defaults and validates the result.
func ParseConfig(data []byte) (Config, error) {
	cfg, err := decodeConfig(data)
	if err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

func decodeConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&cfg)
	if err != nil {
		return Config{}, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "config: %v", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return Config{}, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "config: unknown field %s", strings.Join(keys, ", "))
	}
	return cfg, nil
}

// Validate names the first bad field by its TOML path.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "config: %s: %s", field, fmt.Sprintf(format, args...))
	}
	d := c.Deployment
	switch d.Mode {
	case ModeStandalone, ModeReplicated:
	default:
		return bad("deployment.mode", "%q is not \"standalone\" or \"replicated\"", d.Mode)
	}
	if d.Mode == ModeReplicated {
		joining := len(d.Join) > 0
		if len(d.ReplicaEndpoints) == 0 && !joining {
			return bad("deployment.replica_endpoints", "is empty")
		}
		for i, e := range d.ReplicaEndpoints {
			if _, _, err := net.SplitHostPort(e); err != nil {
				return bad(fmt.Sprintf("deployment.replica_endpoints[%d]", i), "%q is not host:port", e)
			}
			if slices.Index(d.ReplicaEndpoints, e) != i {
				return bad(fmt.Sprintf("deployment.replica_endpoints[%d]", i), "%q is listed twice", e)
			}
		}
		if joining && d.InProcess {
			return bad("deployment.join", "a replica joins a cluster of one replica per process (in_process = false)")
		}
		for i, e := range d.Join {
			if _, _, err := net.SplitHostPort(e); err != nil {
				return bad(fmt.Sprintf("deployment.join[%d]", i), "%q is not host:port", e)
			}
		}
		if d.RaftAddress != "" {
			if d.InProcess {
				return bad("deployment.raft_address", "is the address of this process's replica in a cluster (in_process = false)")
			}
			if _, _, err := net.SplitHostPort(d.RaftAddress); err != nil {
				return bad("deployment.raft_address", "%q is not host:port", d.RaftAddress)
			}
			if !joining && int(d.InstanceID) < len(d.ReplicaEndpoints) && d.ReplicaEndpoints[d.InstanceID] != d.RaftAddress {
				return bad("deployment.raft_address", "%q is not replica_endpoints[%d] (%q)", d.RaftAddress, d.InstanceID, d.ReplicaEndpoints[d.InstanceID])
			}
		}
		if d.RaftListen != "" {
			if d.InProcess {
				return bad("deployment.raft_listen", "is where this process's replica listens in a cluster (in_process = false)")
			}
			if _, _, err := net.SplitHostPort(d.RaftListen); err != nil {
				return bad("deployment.raft_listen", "%q is not host:port", d.RaftListen)
			}
		}
		switch {
		case d.InstanceID >= replica.MaxReplicas:
			return bad("deployment.instance_id", "%d is not below %d", d.InstanceID, replica.MaxReplicas)
		case !d.InProcess && d.OwnRaftAddress() == "":
			return bad("deployment.instance_id", "%d is not an index of replica_endpoints (0..%d), and raft_address is not set", d.InstanceID, len(d.ReplicaEndpoints)-1)
		case d.InProcess && int(d.InstanceID) >= len(d.ReplicaEndpoints):
			return bad("deployment.instance_id", "%d is not an index of replica_endpoints (0..%d)", d.InstanceID, len(d.ReplicaEndpoints)-1)
		}
		if d.ClusterID == 0 {
			return bad("deployment.cluster_id", "must be positive")
		}
	}
	db := c.Database
	if db.BasePath == "" {
		return bad("database.base_path", "is empty")
	}
	seen := map[string]bool{}
	for i, cf := range db.ColumnFamilies {
		field := fmt.Sprintf("database.column_families[%d]", i)
		switch {
		case cf == "":
			return bad(field, "is empty")
		case strings.HasPrefix(cf, "__"):
			return bad(field, "%q: names starting with __ are reserved", cf)
		case seen[cf]:
			return bad(field, "%q is listed twice", cf)
		}
		seen[cf] = true
	}
	if db.RetentionWindow.Duration <= 0 {
		return bad("database.retention_window", "must be positive, got %v", db.RetentionWindow)
	}
	if db.BlockCacheMiB <= 0 {
		return bad("database.block_cache_mib", "must be positive")
	}
	if db.WriteBufferMiB <= 0 {
		return bad("database.write_buffer_mib", "must be positive")
	}
	if db.MemtableMiB < db.WriteBufferMiB {
		return bad("database.memtable_mib", "%d must be at least write_buffer_mib (%d)", db.MemtableMiB, db.WriteBufferMiB)
	}
	for _, f := range []struct{ name, addr string }{{"server.listen", c.Server.Listen}, {"server.metrics", c.Server.Metrics}, {"server.thrift_listen", c.Server.ThriftListen}} {
		if f.addr == "" && f.name != "server.listen" {
			continue // metrics or Thrift off
		}
		if _, _, err := net.SplitHostPort(f.addr); err != nil {
			return bad(f.name, "%q is not host:port", f.addr)
		}
	}
	if c.Server.RequestTimeout.Duration <= 0 {
		return bad("server.request_timeout", "must be positive")
	}
	if c.Server.ShutdownTimeout.Duration <= 0 {
		return bad("server.shutdown_timeout", "must be positive")
	}
	if c.Server.MemoryLimitMiB < 0 {
		return bad("server.memory_limit_mib", "must not be negative")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"server.max_inflight_mib", c.Server.MaxInflightMiB}, {"server.max_range_reads", c.Server.MaxRangeReads},
		{"server.max_stream_mib", c.Server.MaxStreamMiB}, {"server.max_stream_calls", c.Server.MaxStreamCalls},
		{"server.max_streams", c.Server.MaxStreams}, {"server.max_connection_streams", c.Server.MaxConnectionStreams}} {
		if f.v <= 0 {
			return bad(f.name, "must be positive")
		}
	}
	if c.Server.MaxInflightMiB<<20 < messages.MaxRequestMessageBytes {
		return bad("server.max_inflight_mib", "%d MiB cannot hold one request of the largest size (%d bytes)", c.Server.MaxInflightMiB, messages.MaxRequestMessageBytes)
	}
	if field, problem := c.TLS.check(); field != "" {
		return bad(field, "%s", problem)
	}
	if len(c.Server.Admins) > 0 && !c.TLS.Enabled() {
		return bad("server.admins", "identities are client certificates' subjects: they need [tls]")
	}
	if len(c.Server.Admins) > 0 && !c.Server.Admin {
		return bad("server.admins", "lists admins, and server.admin is false: set it to true")
	}
	if err := c.Raft.Validate(); err != nil {
		return err
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.RaftLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.raft_level", "%q is not debug, info, warn or error", c.Log.RaftLevel)
	}
	for comp, lv := range c.Log.Levels {
		switch {
		case comp == "dragonboat":
			return bad("log.levels", "dragonboat's level is log.raft_level")
		case !slices.Contains(Components, comp):
			return bad("log.levels", "%q is no component (%s)", comp, strings.Join(Components, ", "))
		}
		switch lv {
		case "debug", "info", "warn", "error":
		default:
			return bad("log.levels", "%s: %q is not debug, info, warn or error", comp, lv)
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "%q is not text or json", c.Log.Format)
	}
	return nil
}

// StorageConfig is the engine configuration the deployment implies (its Dir
// is set per replica by the group).
func (c Config) StorageConfig(dir string) storage.Config {
	s := storage.DefaultConfig(dir)
	s.ColumnFamilies = c.Database.ColumnFamilies
	s.Limits = c.Limits
	s.RetentionWindow = c.Database.RetentionWindow.Duration
	s.SyncWrites = c.Database.SyncWrites
	s.BlockCacheBytes = uint64(c.Database.BlockCacheMiB) << 20
	s.WriteBufferBytes = uint64(c.Database.WriteBufferMiB) << 20
	s.MemtableBytes = uint64(c.Database.MemtableMiB) << 20
	return s
}
