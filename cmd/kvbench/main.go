// Command kvbench is actorkv's load generator: a closed loop of --concurrency
// workers running a mix of operations against a kvserver over gRPC, an
// embedded in-process group, or the standalone engine, with a live progress
// line and a final report of throughput and latency percentiles per
// operation.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/kvclient"

	"github.com/actorkv/actorkv/messages"
)

func main() {
	if err := newCommand(os.Stdout, os.Stderr).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kvbench:", err)
		os.Exit(1)
	}
}

// options are kvbench's flags.
type options struct {
	target    string
	endpoints []string
	dir       string
	conns     int
	// preferLeader: writes and linearizable reads to the leader's
	// endpoint (batched gRPC target).
	preferLeader bool
	concurrency  int
	duration     time.Duration
	warmup       time.Duration
	keySize      int
	valueSize    int
	keys         int
	mix          string
	consistency  string
	commitOps    int
	rangeLimit   int
	preload      bool
	json         bool
	quiet        bool
	cpuProfile   string
	unary        bool
	retry        bool
	gaps         time.Duration
	// TLS (target grpc), as kvctl's flags.
	cacert, cert, key string
	skipVerify        bool
}

// tlsConfig is the TLS of the gRPC connections: nil (plaintext) unless a
// TLS flag was given.
func (o options) tlsConfig() (*tls.Config, error) {
	if o.cacert == "" && o.cert == "" && o.key == "" && !o.skipVerify {
		return nil, nil
	}
	return kvclient.TLSConfig(o.cacert, o.cert, o.key, o.skipVerify)
}

func newCommand(stdout, stderr io.Writer) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "kvbench",
		Short: "Load generator for actorkv",
		Long: `kvbench runs a closed loop of --concurrency workers, each issuing the next
operation as soon as the previous one is answered, for --duration after a
--warmup that is not measured. Operations are drawn from --mix:

  put     set one key to a --value-size value
  get     read one key (--consistency linearizable or stale)
  commit  an atomic commit of --commit-ops SETs
  range   a range read of --range-limit entries

Keys are --key-size bytes, drawn uniformly from --keys distinct keys. With
--preload every key is written first, so gets find them.

Targets (--target):
  grpc        a running kvserver at --endpoints (the default); operations
              travel over Batch streams (kvclient), or one unary RPC
              each with --unary. With several endpoints (a cluster) the
              batched workers send writes and linearizable reads to the
              endpoint whose replica leads when the run begins, as etcd's
              benchmark is pointed at etcd's leader (--prefer-leader=false:
              spread over every endpoint, as stale reads always are)
  embedded    a three-replica group in this process, data in --dir
  standalone  the standalone RocksDB engine, data in --dir

With --retry (target grpc) the workers share one client with kvctl's retry
policy over every endpoint: use it with --gaps to measure how long a
failover keeps writes from being acknowledged (scripts/failover.sh).

A progress line goes to stderr every second; the report (ops/s, p50, p95,
p99 and max latency per operation, errors by status, and with --gaps the
longest intervals without an acknowledged operation) goes to stdout, as
JSON with --json.`,
		Example: `  kvbench --endpoints 127.0.0.1:7070 --concurrency 64 --duration 10s --mix put:100
  kvbench --target embedded --concurrency 64 --mix get:100 --preload --consistency stale`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			mix, err := parseMix(o.mix)
			if err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx, o, mix, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.target, "target", "grpc", "grpc, embedded or standalone")
	fl.StringSliceVar(&o.endpoints, "endpoints", []string{"127.0.0.1:7070"}, "kvserver gRPC addresses (target grpc)")
	fl.StringVar(&o.dir, "dir", "", "data directory (targets embedded and standalone; default: a temporary directory, removed after)")
	fl.StringVar(&o.cacert, "cacert", "", "verify the servers' TLS certificates with this CA (PEM; target grpc); any TLS flag turns TLS on")
	fl.StringVar(&o.cert, "cert", "", "the client's TLS certificate (PEM; target grpc)")
	fl.StringVar(&o.key, "key", "", "the private key of --cert (PEM)")
	fl.BoolVar(&o.skipVerify, "insecure-skip-tls-verify", false, "TLS without checking the servers' certificates (target grpc)")
	fl.IntVar(&o.conns, "conns", 2, "gRPC connections per endpoint (target grpc)")
	fl.BoolVar(&o.preferLeader, "prefer-leader", true, "with several endpoints, send writes and linearizable reads to the one whose replica leads when the run begins, as etcd's benchmark targets its leader; stale reads go to all (batched target grpc)")
	fl.BoolVar(&o.unary, "unary", false, "one unary RPC per operation instead of batched streams (target grpc)")
	fl.BoolVar(&o.retry, "retry", false, "retry as kvctl does: writes carry request ids of one session, and a call answered UNAVAILABLE or TIMEOUT goes again, same id, to the next endpoint (target grpc)")
	fl.DurationVar(&o.gaps, "gaps", 0, "report every interval longer than this in which no operation was acknowledged (0: off)")
	fl.IntVar(&o.concurrency, "concurrency", 64, "concurrent workers (clients)")
	fl.DurationVar(&o.duration, "duration", 10*time.Second, "measured duration")
	fl.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before the measurement")
	fl.IntVar(&o.keySize, "key-size", 16, "key size in bytes")
	fl.IntVar(&o.valueSize, "value-size", 128, "value size in bytes")
	fl.IntVar(&o.keys, "keys", 10_000, "distinct keys")
	fl.StringVar(&o.mix, "mix", "put:100", "operation mix, weights: e.g. put:80,get:20 (ops: put, get, commit, range)")
	fl.StringVar(&o.consistency, "consistency", "linearizable", "read consistency: linearizable or stale")
	fl.IntVar(&o.commitOps, "commit-ops", 10, "SETs per atomic commit")
	fl.IntVar(&o.rangeLimit, "range-limit", 100, "entries per range read")
	fl.BoolVar(&o.preload, "preload", false, "write every key before the run")
	fl.BoolVar(&o.json, "json", false, "print the report as JSON")
	fl.BoolVar(&o.quiet, "quiet", false, "no progress line")
	fl.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured part to this file (useful with the embedded and standalone targets)")
	return cmd
}

func (o options) validate() error {
	switch {
	case o.target != "grpc" && o.target != "embedded" && o.target != "standalone":
		return fmt.Errorf("--target %q is not grpc, embedded or standalone", o.target)
	case o.concurrency < 1:
		return fmt.Errorf("--concurrency must be at least 1")
	case o.duration <= 0:
		return fmt.Errorf("--duration must be positive")
	case o.warmup < 0:
		return fmt.Errorf("--warmup must not be negative")
	case o.keySize < 1 || o.keySize > 10_000:
		return fmt.Errorf("--key-size must be in [1, 10000]")
	case o.valueSize < 0 || o.valueSize > 1<<20:
		return fmt.Errorf("--value-size must be in [0, 1048576]")
	case o.keys < 1:
		return fmt.Errorf("--keys must be at least 1")
	case len(strconv.Itoa(o.keys-1)) > o.keySize:
		return fmt.Errorf("--keys %d needs keys of at least %d bytes", o.keys, len(strconv.Itoa(o.keys-1)))
	case o.commitOps < 1 || o.commitOps > 1000:
		return fmt.Errorf("--commit-ops must be in [1, 1000]")
	case o.rangeLimit < 1 || o.rangeLimit > 10_000:
		return fmt.Errorf("--range-limit must be in [1, 10000]")
	case o.conns < 1:
		return fmt.Errorf("--conns must be at least 1")
	case o.retry && (o.target != "grpc" || o.unary):
		return fmt.Errorf("--retry goes with --target grpc over Batch streams (not --unary)")
	case o.gaps < 0:
		return fmt.Errorf("--gaps must not be negative")
	case o.consistency != "linearizable" && o.consistency != "stale":
		return fmt.Errorf("--consistency %q is not linearizable or stale", o.consistency)
	}
	return nil
}

func (o options) readConsistency() messages.Consistency {
	if o.consistency == "stale" {
		return messages.Consistency_STALE
	}
	return messages.Consistency_LINEARIZABLE
}

// op is one kind of operation of the mix.
type op int

const (
	opPut op = iota
	opGet
	opCommit
	opRange
	numOps
)

var opNames = [numOps]string{"put", "get", "commit", "range"}

func (p op) String() string { return opNames[p] }

// parseMix parses "put:80,get:20" into cumulative weights.
func parseMix(s string) ([numOps]int, error) {
	var w [numOps]int
	total := 0
	for part := range strings.SplitSeq(s, ",") {
		name, weight, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			weight = "1"
		}
		n, err := strconv.Atoi(weight)
		if err != nil || n < 0 {
			return w, fmt.Errorf("--mix %q: weight of %q is not a non-negative integer", s, name)
		}
		found := false
		for i, on := range opNames {
			if on == name {
				w[i] += n
				found = true
			}
		}
		if !found {
			return w, fmt.Errorf("--mix %q: unknown operation %q (put, get, commit, range)", s, name)
		}
		total += n
	}
	if total == 0 {
		return w, fmt.Errorf("--mix %q has no weight", s)
	}
	return w, nil
}
