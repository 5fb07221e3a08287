package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/actorkv/actorkv/messages"
)

// ack is one acknowledged write.
type ack struct {
	key, value string
	version    uint64
}

// TestSIGTERMDuringWrites sends SIGTERM to a replicated kvserver while
// concurrent clients write, then restarts it on the same data: the server
// must exit 0 within its shutdown timeout, every acknowledged write must be
// there with its value, and the replicas must verify identical.
func TestSIGTERMDuringWrites(t *testing.T) {
	const writers = 4
	dir := t.TempDir()
	s := startServer(t, serverConfig{dataDir: dir})

	var (
		acks    [writers][]ack
		total   atomic.Int64
		stopped atomic.Bool // SIGTERM was sent
		wg      sync.WaitGroup
		errs    = make(chan error, writers)
	)
	for w := range writers {
		kv := s.kvClient(t) // one connection per writer
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				key, value := fmt.Sprintf("load/%d/%06d", w, i), fmt.Sprintf("v-%d-%d-%d", w, i, time.Now().UnixNano())
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := kv.Put(ctx, &messages.PutRequest{Key: []byte(key), Value: []byte(value)})
				cancel()
				if err != nil {
					if !stopped.Load() {
						errs <- fmt.Errorf("writer %d before SIGTERM: put %s: %v", w, key, err)
					}
					return // after SIGTERM: the outcome is unknown, and the server is going
				}
				acks[w] = append(acks[w], ack{key, value, resp.GetVersion()})
				total.Add(1)
			}
		}()
	}
	eventually(t, waitTimeout, func() error {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		if n := total.Load(); n < 500 {
			return fmt.Errorf("%d writes acknowledged", n)
		}
		return nil
	})
	stopped.Store(true)
	start := time.Now()
	code := s.terminate(15 * time.Second) // shutdown_timeout is 10s, then Raft and RocksDB close
	t.Logf("kvserver exited %d %v after SIGTERM; %d writes acknowledged", code, time.Since(start), total.Load())
	if code != 0 {
		t.Fatalf("kvserver exited %d after SIGTERM\n%s", code, s.log.tail(6000))
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	// Restart on the same data: every acknowledged write is there.
	s2 := startServer(t, serverConfig{dataDir: dir})
	kv := s2.kvClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var maxVersion uint64
	for w := range writers {
		resp, err := kv.GetRange(ctx, &messages.GetRangeRequest{Begin: []byte(fmt.Sprintf("load/%d/", w)), End: []byte(fmt.Sprintf("load/%d0", w))})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, e := range resp.GetKvs() {
			got[string(e.GetKey())] = string(e.GetValue())
		}
		var last uint64
		for _, a := range acks[w] {
			if v, ok := got[a.key]; !ok || v != a.value {
				t.Errorf("acknowledged write %s=%s (version %d) lost after restart: found=%t value %q", a.key, a.value, a.version, ok, v)
			}
			if a.version <= last {
				t.Errorf("writer %d: version %d after %d", w, a.version, last)
			}
			last = a.version
			maxVersion = max(maxVersion, a.version)
		}
	}
	rv, err := kv.GetReadVersion(ctx, &messages.GetReadVersionRequest{})
	if err != nil || rv.GetVersion() < maxVersion {
		t.Fatalf("read version after restart %v (%v), below the acknowledged version %d", rv, err, maxVersion)
	}
	r := kvctl(t, "", "--endpoints", s2.GRPC, "--timeout", "30s", "verify", "--require-all", "--wait", "30s")
	if r.code != 0 || !strings.HasSuffix(r.stdout, "OK\n") {
		t.Fatalf("kvctl verify after restart: %v", r)
	}
	t.Logf("verify: %s", strings.TrimSpace(r.stdout))
}

// TestNotReadyWithoutQuorum runs replica 0 of a three-replica TCP cluster
// alone: it lives (/healthz 200) but never has a leader, so /readyz answers
// 503 and the gRPC health service NOT_SERVING. SIGTERM still stops it.
func TestNotReadyWithoutQuorum(t *testing.T) {
	s := startServer(t, serverConfig{lonely: true})
	code, body, err := httpGet(s.HTTP, "/readyz")
	if err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz without a leader: %d %q %v, want 503", code, body, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(dial(t, s.GRPC)).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health without a leader: %v %v, want NOT_SERVING", resp, err)
	}
	if code := s.terminate(30 * time.Second); code != 0 {
		t.Fatalf("kvserver exited %d after SIGTERM", code)
	}
}

// TestBadConfig checks that a configuration with a bad field makes kvserver
// exit non-zero with one line naming the field.
func TestBadConfig(t *testing.T) {
	cases := []struct {
		name, toml string
		flags      []string
		field      string
	}{
		{"bad mode", "[deployment]\nmode = \"bogus\"\n", nil, "deployment.mode"},
		{"unknown key", "[server]\nlisten2 = \"127.0.0.1:1\"\n", nil, "server.listen2"},
		{"unknown section", "[serve]\nlisten = \"127.0.0.1:1\"\n", nil, "serve"},
		{"bad duration", "[database]\nretention_window = \"5 parsecs\"\n", nil, "database.retention_window"},
		{"wrong type", "[server]\nlisten = 7070\n", nil, "server.listen"},
		{"election vs heartbeat", "[raft]\nelection_rtt = 4\nheartbeat_rtt = 2\n", nil, "raft.election_rtt"},
		{"duplicate column family", "[database]\ncolumn_families = [\"default\", \"default\"]\n", nil, "database.column_families[1]"},
		{"zero limit", "[limits]\nmax_value_size = 0\n", nil, "limits.max_value_size"},
		{"bad listen", "[server]\nlisten = \"nowhere\"\n", nil, "server.listen"},
		{"bad mode flag", "", []string{"--mode", "bogus"}, "deployment.mode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"--base-path", filepath.Join(dir, "data")}, c.flags...)
			if c.toml != "" {
				path := filepath.Join(dir, "bad.toml")
				if err := os.WriteFile(path, []byte(c.toml), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			out, err := execOutput(ctx, filepath.Join(binDir, "kvserver"), args...)
			if err == nil {
				t.Fatalf("kvserver accepted the configuration:\n%s", out)
			}
			line := strings.TrimSuffix(out, "\n")
			if strings.Contains(line, "\n") || !strings.Contains(line, c.field) {
				t.Fatalf("want one line naming %s; got %q (%v)", c.field, out, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
				t.Errorf("kvserver created its data directory despite the bad configuration")
			}
		})
	}
}
