// Command kvserver serves actorkv's gRPC API (and a status page, /metrics,
// /healthz, /readyz over HTTP) on a standalone RocksDB or a replicated group. Without
// --config it runs the embedded default: three replicas in this process with
// their data under ./data, on 127.0.0.1:7070.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/actors/replica"
	"github.com/actorkv/actorkv/server"
)

func main() {
	limitMallocArenas()
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kvserver:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	var (
		configPath  string
		printConfig bool
		f           = struct {
			listen, metrics, thriftListen, mode, basePath, logLevel, logFormat, raftAddress string
			tlsCA, tlsCert, tlsKey, raftListen                                              string
			endpoints, join                                                                 []string
			instanceID                                                                      uint32
			inProcess, pprof, admin, requireClientCert                                      bool
			logLevels                                                                       map[string]string
		}{}
	)
	cmd := &cobra.Command{
		Use:   "kvserver",
		Short: "Serve actorkv over gRPC",
		Long: `kvserver serves actorkv's gRPC API on a standalone RocksDB or a replicated
group, with a status page (/), Prometheus metrics, /healthz and /readyz on a
second (HTTP) port (and Go's profiler under /debug/pprof/ there with --pprof).

Without --config it reads the file $CONFIG_PATH names, when set; else it runs
the embedded default (--print-config prints it, every field commented: a
starting point for a file): three replicas in this process, data under
./data, gRPC on 127.0.0.1:7070, HTTP on 127.0.0.1:9100. Flags override the
file.

With server.thrift_listen (--thrift-listen) it also serves the same API over
Thrift (messages/kv.thrift: framed transport, binary protocol; TLS with the
same certificates when TLS is on): kvctl --protocol thrift talks to it.

A cluster runs one replica per process, Raft over TCP: give every process the
same --endpoints (the replicas' Raft addresses) and its own --instance-id
(its index in them), with --in-process=false. A process whose replica was
added to a running cluster (kvctl member add or replace) starts with
--instance-id, its --raft-address and --join (gRPC endpoints of the
cluster), and catches up from the leader. In a container, --raft-listen
0.0.0.0:6001 binds every interface while the Raft address is the name the
others resolve (deploy/docker-compose.yml). See docs/CLUSTER.md.

kvserver probe URL asks a kvserver's HTTP address (say /readyz) and exits 0
on a 2xx answer: a container's health check without curl.

TLS ([tls] or --tls-ca, --tls-cert, --tls-key) encrypts the gRPC API and makes
Raft between the processes mutual TLS; with --tls-require-client-cert every
client must present a certificate signed by the CA, whose subject is its
identity (sessions belong to it; server.admins lists the identities allowed
admin operations). make certs writes a CA and certificates for a local
cluster. Admin operations (fault injection, membership changes, leader moves,
range digests) are refused unless --admin (server.admin).

SIGINT or SIGTERM shut it down gracefully: it stops accepting, finishes
in-flight requests, stops Raft and closes every RocksDB. When a replica of
the process cannot start (its Raft address in use, its directory locked by
another process or holding another cluster's data, a changed address), it
shuts down the same way and exits 1 with the cause on its last line; when
its replica is removed from the membership, it shuts down and exits 0.

Memory: the Go heap's soft limit is server.memory_limit_mib (GOMEMLIMIT wins
when set), and glibc's malloc arenas are capped at two (MALLOC_ARENA_MAX wins
when set), which keeps RocksDB's fragmentation down.`,
		SilenceUsage:  true,
		SilenceErrors: true, // main prints the one error line
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printConfig {
				_, err := fmt.Fprint(cmd.OutOrStdout(), server.DefaultTOML)
				return err
			}
			cfg := server.DefaultConfig()
			if configPath == "" {
				configPath = os.Getenv("CONFIG_PATH")
			}
			if configPath != "" {
				var err error
				if cfg, err = server.ReadConfig(configPath); err != nil { // validated with the flags below
					return err
				}
			}
			fl := cmd.Flags()
			set := func(name string, apply func()) {
				if fl.Changed(name) {
					apply()
				}
			}
			set("listen", func() { cfg.Server.Listen = f.listen })
			set("metrics", func() { cfg.Server.Metrics = f.metrics })
			set("thrift-listen", func() { cfg.Server.ThriftListen = f.thriftListen })
			set("pprof", func() { cfg.Server.Pprof = f.pprof })
			set("admin", func() { cfg.Server.Admin = f.admin })
			set("tls-ca", func() { cfg.TLS.CA = f.tlsCA })
			set("tls-cert", func() { cfg.TLS.Cert = f.tlsCert })
			set("tls-key", func() { cfg.TLS.Key = f.tlsKey })
			set("tls-require-client-cert", func() { cfg.TLS.RequireClientCert = f.requireClientCert })
			set("mode", func() { cfg.Deployment.Mode = f.mode })
			set("base-path", func() { cfg.Database.BasePath = f.basePath })
			set("endpoints", func() { cfg.Deployment.ReplicaEndpoints = f.endpoints })
			set("instance-id", func() { cfg.Deployment.InstanceID = f.instanceID })
			set("raft-address", func() { cfg.Deployment.RaftAddress = f.raftAddress })
			set("raft-listen", func() { cfg.Deployment.RaftListen = f.raftListen })
			set("join", func() { cfg.Deployment.Join = f.join })
			set("in-process", func() { cfg.Deployment.InProcess = f.inProcess })
			set("log-level", func() { cfg.Log.Level = f.logLevel })
			set("log-format", func() { cfg.Log.Format = f.logFormat })
			set("log-levels", func() { cfg.Log.Levels = f.logLevels })
			if err := cfg.Validate(); err != nil {
				return err
			}
			return run(cfg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configPath, "config", "", "TOML configuration file (default: $CONFIG_PATH when set, else the embedded default)")
	fl.BoolVar(&printConfig, "print-config", false, "print the embedded default configuration, every field commented, and exit")
	fl.StringVar(&f.listen, "listen", "", "gRPC listen address (server.listen)")
	fl.StringVar(&f.thriftListen, "thrift-listen", "", `Thrift listen address (messages/kv.thrift); "" turns it off (server.thrift_listen)`)
	fl.StringVar(&f.metrics, "metrics", "", `HTTP address of the status page (/), /metrics, /healthz, /readyz; "" turns it off (server.metrics)`)
	fl.BoolVar(&f.pprof, "pprof", false, "also serve Go's profiler under /debug/pprof/ on the metrics address (server.pprof)")
	fl.BoolVar(&f.admin, "admin", false, "allow admin operations over the network: fault injection, membership changes, leader moves, range digests (server.admin)")
	fl.StringVar(&f.mode, "mode", "", `"standalone" or "replicated" (deployment.mode)`)
	fl.StringVar(&f.basePath, "base-path", "", "data directory (database.base_path)")
	fl.StringSliceVar(&f.endpoints, "endpoints", nil, "Raft addresses of the replicas, comma-separated (deployment.replica_endpoints)")
	fl.Uint32Var(&f.instanceID, "instance-id", 0, "which endpoint is this process (deployment.instance_id)")
	fl.BoolVar(&f.inProcess, "in-process", true, "run every replica in this process (deployment.in_process)")
	fl.StringVar(&f.raftAddress, "raft-address", "", "this process's Raft address, when --endpoints does not list it (deployment.raft_address)")
	fl.StringVar(&f.raftListen, "raft-listen", "", `where this process's Raft transport binds, when not its Raft address: "0.0.0.0:6001" in a container (deployment.raft_listen)`)
	fl.StringSliceVar(&f.join, "join", nil, "gRPC endpoints of a running cluster this process's replica was added to, comma-separated (deployment.join)")
	fl.StringVar(&f.tlsCA, "tls-ca", "", "CA certificate (PEM) of every process's and client's certificate (tls.ca)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "this process's certificate (PEM), for gRPC and mutual-TLS Raft; turns TLS on (tls.cert)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "this process's private key (PEM) (tls.key)")
	fl.BoolVar(&f.requireClientCert, "tls-require-client-cert", false, "refuse gRPC clients without a certificate signed by the CA (tls.require_client_cert)")
	fl.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (log.level)")
	fl.StringVar(&f.logFormat, "log-format", "", "text or json (log.format)")
	fl.StringToStringVar(&f.logLevels, "log-levels", nil, "levels of components, e.g. replica=debug,actor=error ("+strings.Join(server.Components, ", ")+"; log.levels)")
	cmd.AddCommand(newProbeCommand())
	return cmd
}

func newLogger(cfg server.Config, g *gate) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	// Every level passes the inner handler: NewLogHandler applies the
	// default and each component's level.
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(server.NewLogHandler(gated{h, g}, level, cfg.Log.ComponentLevels()))
}

// gate lets the fatal path have the last word on stderr: once closed, no
// log record is written, and none is half-way through being written.
type gate struct {
	mu     sync.RWMutex
	closed bool
}

// last closes the gate for good, writes line and exits with code 1.
func (g *gate) last(line string) {
	g.mu.Lock() // never unlocked: the process ends here
	g.closed = true
	fmt.Fprintln(os.Stderr, line)
	os.Exit(1)
}

type gated struct {
	slog.Handler
	g *gate
}

func (h gated) Handle(ctx context.Context, r slog.Record) error {
	h.g.mu.RLock()
	defer h.g.mu.RUnlock()
	if h.g.closed {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h gated) WithAttrs(as []slog.Attr) slog.Handler {
	return gated{h.Handler.WithAttrs(as), h.g}
}

func (h gated) WithGroup(name string) slog.Handler {
	return gated{h.Handler.WithGroup(name), h.g}
}

func run(cfg server.Config) error {
	g := new(gate)
	log := newLogger(cfg, g)
	slog.SetDefault(log)
	if os.Getenv("GOMEMLIMIT") == "" && cfg.Server.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(cfg.Server.MemoryLimitMiB) << 20)
	}
	if err := replica.SetRaftLogLevel(cfg.Log.RaftLevel); err != nil {
		return err
	}
	replica.OnRaftFatal(func(cause string) {
		// Dragonboat cannot go on (it would panic on its own goroutine): the
		// cause on one line, and out; RocksDB's and the Raft log's WALs
		// keep what was written. No log line may follow it.
		g.last("kvserver: " + cause)
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := server.Start(cfg, log)
	if err != nil {
		return err
	}
	if cfg.Log.Format != "json" { // JSON logs stay pure JSON lines: the "serving" record says the same
		fmt.Fprintf(os.Stderr, "kvserver: %s mode, data in %s\n", cfg.Deployment.Mode, cfg.Database.BasePath)
		fmt.Fprintf(os.Stderr, "kvserver: gRPC on %s; try: go run ./cmd/kvctl --endpoints %s put hello world\n", s.GRPCAddr(), s.GRPCAddr())
		if a := s.ThriftAddr(); a != "" {
			fmt.Fprintf(os.Stderr, "kvserver: Thrift on %s; try: go run ./cmd/kvctl --protocol thrift --endpoints %s get hello\n", a, a)
		}
		if a := s.HTTPAddr(); a != "" {
			fmt.Fprintf(os.Stderr, "kvserver: status page on http://%s/, metrics on /metrics, health on /healthz and /readyz\n", a)
		}
	}
	select {
	case <-ctx.Done():
		log.Info("signal received; shutting down")
		s.Shutdown()
		return nil
	case err := <-s.Ended():
		if errors.Is(err, actors.ErrRemoved) {
			log.Warn("the replica was removed from the membership; shutting down", "err", err)
			s.Shutdown()
			fmt.Fprintln(os.Stderr, "kvserver:", err)
			return nil
		}
		log.Error("a replica could not start; shutting down", "err", err)
		s.Shutdown()
		return err
	}
}
