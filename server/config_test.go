package server

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actors/replica"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

func TestDefaultConfigValidates(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	if cfg.Deployment.Mode != ModeReplicated || !cfg.Deployment.InProcess || len(cfg.Deployment.ReplicaEndpoints) != 3 {
		t.Errorf("the default is not three in-process replicas: %+v", cfg.Deployment)
	}
	if cfg.Limits != kv.DefaultLimits() {
		t.Errorf("default limits %+v, want kv.DefaultLimits()", cfg.Limits)
	}
	// An empty file is the default.
	parsed, err := ParseConfig(nil)
	if err != nil {
		t.Fatalf("ParseConfig(empty): %v", err)
	}
	if !configsEqual(parsed, cfg) {
		t.Errorf("ParseConfig(empty) = %+v, want the default %+v", parsed, cfg)
	}
}

func configsEqual(a, b Config) bool {
	return a.Deployment.Mode == b.Deployment.Mode &&
		slices.Equal(a.Deployment.ReplicaEndpoints, b.Deployment.ReplicaEndpoints) &&
		a.Deployment.InstanceID == b.Deployment.InstanceID && a.Deployment.InProcess == b.Deployment.InProcess &&
		a.Deployment.ClusterID == b.Deployment.ClusterID && a.Deployment.RaftAddress == b.Deployment.RaftAddress && a.Deployment.RaftListen == b.Deployment.RaftListen &&
		slices.Equal(a.Deployment.Join, b.Deployment.Join) &&
		a.Database.BasePath == b.Database.BasePath && slices.Equal(a.Database.ColumnFamilies, b.Database.ColumnFamilies) &&
		a.Database.RetentionWindow == b.Database.RetentionWindow && a.Database.SyncWrites == b.Database.SyncWrites &&
		a.Database.BlockCacheMiB == b.Database.BlockCacheMiB && a.Database.WriteBufferMiB == b.Database.WriteBufferMiB && a.Database.MemtableMiB == b.Database.MemtableMiB &&
		serverEqual(a.Server, b.Server) && a.Raft == b.Raft && a.Limits == b.Limits && logEqual(a.Log, b.Log) && a.TLS == b.TLS
}

func logEqual(a, b Log) bool {
	return maps.Equal(a.Levels, b.Levels) && a.Level == b.Level && a.Format == b.Format && a.RaftLevel == b.RaftLevel
}

func serverEqual(a, b Listen) bool {
	admins := slices.Equal(a.Admins, b.Admins)
	a.Admins, b.Admins = nil, nil
	return reflect.DeepEqual(a, b) && admins
}

// designExample is the configuration of DESIGN.md, "Configuration (TOML)".
const designExample = `
[deployment]
mode = "replicated"          # or "standalone"
replica_endpoints = ["127.0.0.1:6001", "127.0.0.1:6002", "127.0.0.1:6003"]
instance_id = 0              # which endpoint is this process (one replica per process)
in_process = true            # all replicas in this process: the embedded default

[database]
base_path = "./data"         # replica N lives in base_path/replica-N
column_families = ["default"]

[server]
listen = "127.0.0.1:7070"
metrics = "127.0.0.1:9100"
`

func TestParseConfigDesignExample(t *testing.T) {
	cfg, err := ParseConfig([]byte(designExample))
	if err != nil {
		t.Fatalf("ParseConfig(DESIGN.md example): %v", err)
	}
	d := cfg.Deployment
	if d.Mode != ModeReplicated || !d.InProcess || d.InstanceID != 0 ||
		!slices.Equal(d.ReplicaEndpoints, []string{"127.0.0.1:6001", "127.0.0.1:6002", "127.0.0.1:6003"}) {
		t.Errorf("deployment = %+v", d)
	}
	if cfg.Database.BasePath != "./data" || !slices.Equal(cfg.Database.ColumnFamilies, []string{"default"}) {
		t.Errorf("database = %+v", cfg.Database)
	}
	if cfg.Server.Listen != "127.0.0.1:7070" || cfg.Server.Metrics != "127.0.0.1:9100" {
		t.Errorf("server = %+v", cfg.Server)
	}
	// What the example leaves out keeps its default.
	def := DefaultConfig()
	if cfg.Raft != def.Raft || cfg.Limits != def.Limits || cfg.Server.RequestTimeout != def.Server.RequestTimeout || !logEqual(cfg.Log, def.Log) {
		t.Errorf("fields the example leaves out lost their defaults: %+v", cfg)
	}
}

func TestParseConfigEveryField(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
[deployment]
mode = "replicated"
replica_endpoints = ["10.0.0.1:6001", "10.0.0.2:6001", "10.0.0.3:6001", "10.0.0.4:6001", "10.0.0.5:6001"]
instance_id = 4
in_process = false
cluster_id = 9
raft_address = "10.0.0.5:6001"
join = ["10.0.0.1:7070", "10.0.0.2:7070"]

[database]
base_path = "/var/lib/actorkv"
column_families = ["default", "meta", "index"]
retention_window = "1m30s"
sync_writes = false
block_cache_mib = 64
write_buffer_mib = 8
memtable_mib = 24

[server]
listen = "0.0.0.0:7070"
thrift_listen = "0.0.0.0:9090"
metrics = ""
request_timeout = "250ms"
shutdown_timeout = "1m"
memory_limit_mib = 512
admin = true
admins = ["CN=admin", "CN=ops,O=example"]
max_inflight_mib = 32
max_range_reads = 2
max_stream_mib = 8
max_stream_calls = 100
max_streams = 50
max_connection_streams = 10

[raft]
rtt = "5ms"
election_rtt = 50
heartbeat_rtt = 5
snapshot_entries = 1000
compaction_overhead = 100
proposal_timeout = "2s"
max_proposals_in_flight = 2
max_entry_writes = 64
max_entry_bytes = 65536

[limits]
max_key_size = 100
max_value_size = 4096
max_commit_ops = 10
max_commit_bytes = 65536
max_range_limit = 50
max_range_bytes = 1048576
max_sessions = 5000
session_ttl = "90s"

[log]
level = "debug"
format = "json"
raft_level = "warn"
levels = { replica = "debug", actor = "error" }

[tls]
ca = "/etc/actorkv/ca.pem"
cert = "/etc/actorkv/node-4.pem"
key = "/etc/actorkv/node-4-key.pem"
require_client_cert = true
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Deployment: Deployment{Mode: ModeReplicated, InstanceID: 4, InProcess: false, ClusterID: 9, RaftAddress: "10.0.0.5:6001",
			Join:             []string{"10.0.0.1:7070", "10.0.0.2:7070"},
			ReplicaEndpoints: []string{"10.0.0.1:6001", "10.0.0.2:6001", "10.0.0.3:6001", "10.0.0.4:6001", "10.0.0.5:6001"}},
		Database: Database{BasePath: "/var/lib/actorkv", ColumnFamilies: []string{"default", "meta", "index"},
			RetentionWindow: Duration{90 * time.Second}, SyncWrites: false, BlockCacheMiB: 64, WriteBufferMiB: 8, MemtableMiB: 24},
		Server: Listen{Listen: "0.0.0.0:7070", ThriftListen: "0.0.0.0:9090", Metrics: "", RequestTimeout: Duration{250 * time.Millisecond}, ShutdownTimeout: Duration{time.Minute}, MemoryLimitMiB: 512,
			Admin: true, Admins: []string{"CN=admin", "CN=ops,O=example"},
			MaxInflightMiB: 32, MaxRangeReads: 2, MaxStreamMiB: 8, MaxStreamCalls: 100, MaxStreams: 50, MaxConnectionStreams: 10},
		Raft: replica.RaftConfig{RTT: 5 * time.Millisecond, ElectionRTT: 50, HeartbeatRTT: 5, SnapshotEntries: 1000,
			CompactionOverhead: 100, ProposalTimeout: 2 * time.Second, MaxProposalsInFlight: 2, MaxEntryWrites: 64, MaxEntryBytes: 65536},
		Limits: kv.Limits{MaxKeySize: 100, MaxValueSize: 4096, MaxCommitOps: 10, MaxCommitBytes: 65536, MaxRangeLimit: 50, MaxRangeBytes: 1 << 20,
			MaxSessions: 5000, SessionTTL: 90 * time.Second},
		Log: Log{Level: "debug", Format: "json", RaftLevel: "warn", Levels: map[string]string{"replica": "debug", "actor": "error"}},
		TLS: TLS{CA: "/etc/actorkv/ca.pem", Cert: "/etc/actorkv/node-4.pem", Key: "/etc/actorkv/node-4-key.pem", RequireClientCert: true},
	}
	if !configsEqual(cfg, want) {
		t.Errorf("ParseConfig =\n%+v\nwant\n%+v", cfg, want)
	}
	s := cfg.StorageConfig("/tmp/x")
	if s.Dir != "/tmp/x" || !slices.Equal(s.ColumnFamilies, want.Database.ColumnFamilies) || s.Limits != want.Limits ||
		s.RetentionWindow != 90*time.Second || s.SyncWrites || s.BlockCacheBytes != 64<<20 || s.WriteBufferBytes != 8<<20 {
		t.Errorf("StorageConfig = %+v", s)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		field  string // the TOML path the error must name
		mutate func(*Config)
	}{
		{"deployment.mode", func(c *Config) { c.Deployment.Mode = "bogus" }},
		{"deployment.mode", func(c *Config) { c.Deployment.Mode = "" }},
		{"deployment.replica_endpoints", func(c *Config) { c.Deployment.ReplicaEndpoints = nil }},
		{"deployment.replica_endpoints[1]", func(c *Config) { c.Deployment.ReplicaEndpoints[1] = "no-port" }},
		{"deployment.replica_endpoints[2]", func(c *Config) { c.Deployment.ReplicaEndpoints[2] = c.Deployment.ReplicaEndpoints[0] }},
		{"deployment.instance_id", func(c *Config) { c.Deployment.InstanceID = 3 }},
		{"deployment.cluster_id", func(c *Config) { c.Deployment.ClusterID = 0 }},
		{"deployment.join", func(c *Config) { c.Deployment.Join = []string{"127.0.0.1:7070"} }}, // in_process
		{"deployment.join[1]", func(c *Config) {
			c.Deployment.InProcess, c.Deployment.RaftAddress = false, "127.0.0.1:6004"
			c.Deployment.ReplicaEndpoints, c.Deployment.InstanceID, c.Deployment.Join = nil, 3, []string{"127.0.0.1:7070", "nowhere"}
		}},
		{"deployment.raft_address", func(c *Config) { c.Deployment.RaftAddress = "127.0.0.1:6004" }}, // in_process
		{"deployment.raft_address", func(c *Config) { c.Deployment.InProcess, c.Deployment.RaftAddress = false, "127.0.0.1" }},
		{"deployment.raft_address", func(c *Config) { c.Deployment.InProcess, c.Deployment.RaftAddress = false, "127.0.0.9:6001" }}, // not endpoints[0]
		{"deployment.raft_listen", func(c *Config) { c.Deployment.RaftListen = "0.0.0.0:6001" }},                                    // in_process
		{"deployment.raft_listen", func(c *Config) { c.Deployment.InProcess, c.Deployment.RaftListen = false, "6001" }},
		{"deployment.instance_id", func(c *Config) {
			c.Deployment.InProcess, c.Deployment.ReplicaEndpoints, c.Deployment.Join = false, nil, []string{"127.0.0.1:7070"} // no raft_address
		}},
		{"deployment.instance_id", func(c *Config) {
			c.Deployment.InProcess, c.Deployment.RaftAddress, c.Deployment.InstanceID = false, "127.0.0.1:6004", 1<<16
		}},
		{"log.raft_level", func(c *Config) { c.Log.RaftLevel = "chatty" }},
		{"log.levels", func(c *Config) { c.Log.Levels = map[string]string{"replica": "chatty"} }},
		{"log.levels", func(c *Config) { c.Log.Levels = map[string]string{"replicas": "debug"} }},
		{"log.levels", func(c *Config) { c.Log.Levels = map[string]string{"dragonboat": "debug"} }},
		{"database.base_path", func(c *Config) { c.Database.BasePath = "" }},
		{"database.column_families[1]", func(c *Config) { c.Database.ColumnFamilies = []string{"default", ""} }},
		{"database.column_families[0]", func(c *Config) { c.Database.ColumnFamilies = []string{"__internal"} }},
		{"database.column_families[2]", func(c *Config) { c.Database.ColumnFamilies = []string{"default", "a", "a"} }},
		{"database.retention_window", func(c *Config) { c.Database.RetentionWindow = Duration{} }},
		{"database.retention_window", func(c *Config) { c.Database.RetentionWindow = Duration{-time.Second} }},
		{"database.block_cache_mib", func(c *Config) { c.Database.BlockCacheMiB = 0 }},
		{"database.write_buffer_mib", func(c *Config) { c.Database.WriteBufferMiB = -1 }},
		{"database.memtable_mib", func(c *Config) { c.Database.MemtableMiB = 4 }},
		{"server.listen", func(c *Config) { c.Server.Listen = "" }},
		{"server.listen", func(c *Config) { c.Server.Listen = "localhost" }},
		{"server.metrics", func(c *Config) { c.Server.Metrics = "9100" }},
		{"server.thrift_listen", func(c *Config) { c.Server.ThriftListen = "9090" }},
		{"server.request_timeout", func(c *Config) { c.Server.RequestTimeout = Duration{} }},
		{"server.shutdown_timeout", func(c *Config) { c.Server.ShutdownTimeout = Duration{-time.Second} }},
		{"server.memory_limit_mib", func(c *Config) { c.Server.MemoryLimitMiB = -1 }},
		{"server.max_inflight_mib", func(c *Config) { c.Server.MaxInflightMiB = 4 }}, // under one request
		{"server.max_range_reads", func(c *Config) { c.Server.MaxRangeReads = 0 }},
		{"server.max_stream_mib", func(c *Config) { c.Server.MaxStreamMiB = -1 }},
		{"server.max_stream_calls", func(c *Config) { c.Server.MaxStreamCalls = 0 }},
		{"server.max_streams", func(c *Config) { c.Server.MaxStreams = 0 }},
		{"server.max_connection_streams", func(c *Config) { c.Server.MaxConnectionStreams = 0 }},
		{"server.admins", func(c *Config) { c.Server.Admin, c.Server.Admins = true, []string{"CN=admin"} }}, // no [tls]
		{"server.admins", func(c *Config) {
			c.Server.Admins, c.TLS = []string{"CN=admin"}, TLS{CA: "ca.pem", Cert: "c.pem", Key: "k.pem"}
		}}, // server.admin off
		{"tls.cert", func(c *Config) { c.TLS = TLS{CA: "ca.pem", Key: "k.pem"} }},
		{"tls.ca", func(c *Config) { c.TLS = TLS{Cert: "c.pem", Key: "k.pem"} }},
		{"tls.cert", func(c *Config) { c.TLS.RequireClientCert = true }},
		{"raft.rtt", func(c *Config) { c.Raft.RTT = time.Microsecond }},
		{"raft.heartbeat_rtt", func(c *Config) { c.Raft.HeartbeatRTT = 0 }},
		{"raft.election_rtt", func(c *Config) { c.Raft.ElectionRTT = 2 * c.Raft.HeartbeatRTT }},
		{"raft.snapshot_entries", func(c *Config) { c.Raft.SnapshotEntries = 0 }},
		{"raft.proposal_timeout", func(c *Config) { c.Raft.ProposalTimeout = 0 }},
		{"limits.max_key_size", func(c *Config) { c.Limits.MaxKeySize = 0 }},
		{"limits.max_key_size", func(c *Config) { c.Limits.MaxKeySize = 1 << 30 }},
		{"limits.max_value_size", func(c *Config) { c.Limits.MaxValueSize = -1 }},
		{"limits.max_commit_ops", func(c *Config) { c.Limits.MaxCommitOps = 0 }},
		{"limits.max_commit_bytes", func(c *Config) { c.Limits.MaxCommitBytes = 0 }},
		{"limits.max_range_limit", func(c *Config) { c.Limits.MaxRangeLimit = 0 }},
		{"limits.max_range_bytes", func(c *Config) { c.Limits.MaxRangeBytes = -1 }},
		{"log.level", func(c *Config) { c.Log.Level = "verbose" }},
		{"log.format", func(c *Config) { c.Log.Format = "xml" }},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			cfg := DefaultConfig()
			c.mutate(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted the bad field")
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("Validate() = %q, does not name %s", err, c.field)
			}
			if !errors.Is(err, messages.ErrInvalidArgument) {
				t.Errorf("Validate() = %v, not ErrInvalidArgument", err)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
	}{
		{"metrics off", func(c *Config) { c.Server.Metrics = "" }},
		{"standalone ignores the replica fields", func(c *Config) {
			c.Deployment = Deployment{Mode: ModeStandalone}
		}},
		{"one replica", func(c *Config) { c.Deployment.ReplicaEndpoints = []string{"127.0.0.1:6001"} }},
		{"last instance", func(c *Config) { c.Deployment.InstanceID = 2 }},
		{"extra column families", func(c *Config) { c.Database.ColumnFamilies = []string{"default", "meta", "_one_underscore"} }},
		{"no column families", func(c *Config) { c.Database.ColumnFamilies = nil }},
		{"any port", func(c *Config) { c.Server.Listen = "127.0.0.1:0" }},
		{"a joining replica", func(c *Config) {
			c.Deployment.InProcess, c.Deployment.ReplicaEndpoints, c.Deployment.InstanceID = false, nil, 3
			c.Deployment.RaftAddress, c.Deployment.Join = "127.0.0.1:6004", []string{"127.0.0.1:7070", "127.0.0.1:7071"}
		}},
		{"raft_address as listed", func(c *Config) {
			c.Deployment.InProcess, c.Deployment.RaftAddress = false, c.Deployment.ReplicaEndpoints[0]
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.mutate(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

func TestParseConfigRejects(t *testing.T) {
	cases := []struct {
		name, toml, field string
	}{
		{"unknown key", "[server]\nlisten = \"127.0.0.1:1\"\nlisten2 = \"x\"\n", "server.listen2"},
		{"unknown section", "[serve]\nlisten = \"127.0.0.1:1\"\n", "serve.listen"},
		{"unknown top-level key", "mode = \"standalone\"\n", "mode"},
		{"misspelt limit", "[limits]\nmax_value = 5\n", "limits.max_value"},
		{"wrong type", "[server]\nlisten = 7070\n", "server.listen"},
		{"bad duration", "[database]\nretention_window = \"5 parsecs\"\n", "database.retention_window"},
		{"duration without unit", "[raft]\nrtt = \"20\"\n", "raft.rtt"},
		{"number as duration", "[raft]\nproposal_timeout = 5\n", "raft.proposal_timeout"},
		{"validation after parse", "[deployment]\nmode = \"bogus\"\n", "deployment.mode"},
		{"syntax error", "[server\n", "toml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(c.toml))
			if err == nil {
				t.Fatal("ParseConfig accepted it")
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("ParseConfig() = %q, does not name %s", err, c.field)
			}
			if !errors.Is(err, messages.ErrInvalidArgument) {
				t.Errorf("ParseConfig() = %v, not ErrInvalidArgument", err)
			}
		})
	}
}

func TestDurations(t *testing.T) {
	cases := map[string]time.Duration{
		"250ms": 250 * time.Millisecond, "5s": 5 * time.Second, "1m30s": 90 * time.Second,
		"1h": time.Hour, "1.5s": 1500 * time.Millisecond, "100us": 100 * time.Microsecond,
	}
	for text, want := range cases {
		cfg, err := ParseConfig([]byte("[server]\nrequest_timeout = \"" + text + "\"\n"))
		if err != nil {
			t.Errorf("%s: %v", text, err)
			continue
		}
		if got := cfg.Server.RequestTimeout.Duration; got != want {
			t.Errorf("%s: parsed %v, want %v", text, got, want)
		}
		// MarshalText and UnmarshalText round-trip.
		b, err := cfg.Server.RequestTimeout.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back.Duration != want {
			t.Errorf("%s: round trip through %q gave %v, %v", text, b, back, err)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kvserver.toml")
	if err := os.WriteFile(path, []byte("[deployment]\nmode = \"standalone\"\n[database]\nbase_path = \""+dir+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Deployment.Mode != ModeStandalone || cfg.Database.BasePath != dir {
		t.Errorf("LoadConfig = %+v", cfg)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("LoadConfig(missing) = %v, want an error naming the file", err)
	}
}

// TestConfigReference: docs/CONFIG.md's TOML block is the embedded default,
// and it names every field of the configuration.
func TestConfigReference(t *testing.T) {
	doc, err := os.ReadFile("../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	start := strings.Index(text, "```toml\n")
	end := strings.Index(text[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("docs/CONFIG.md has no TOML block")
	}
	block := text[start+8 : start+8+end]
	if block != DefaultTOML {
		t.Errorf("docs/CONFIG.md's TOML block is not server/default.toml (kvserver --print-config): copy it over")
	}
	cfg, err := ParseConfig([]byte(block))
	if err != nil {
		t.Fatalf("docs/CONFIG.md: %v", err)
	}
	if !configsEqual(cfg, DefaultConfig()) {
		t.Errorf("docs/CONFIG.md's TOML is not the embedded default:\n%+v\nwant\n%+v", cfg, DefaultConfig())
	}
	var walk func(typ reflect.Type, section string)
	walk = func(typ reflect.Type, section string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := strings.Split(f.Tag.Get("toml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() {
				walk(f.Type, tag)
				continue
			}
			if !strings.Contains(block, tag+" =") {
				t.Errorf("docs/CONFIG.md does not document %s.%s", section, tag)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
}
