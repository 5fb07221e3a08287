package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/actorkv/actorkv/messages"
)

// startFails runs kvserver with args, which must exit 1 (within
// waitTimeout) with its last line "kvserver: ..." naming cause; it returns
// that line.
func startFails(t *testing.T, cause string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	out, err := execOutput(ctx, filepath.Join(binDir, "kvserver"), args...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	if ctx.Err() != nil || code != 1 || !strings.HasPrefix(last, "kvserver: ") || !strings.Contains(last, cause) {
		t.Fatalf("kvserver %v: want exit 1 with a last line naming %q; got exit %d (%v), last line %q\n%s",
			args, cause, code, err, last, out)
	}
	return last
}

// without returns args with flag and its value removed.
func without(args []string, flag string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == flag {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// TestCleanStarts checks that a cluster process whose replica cannot start
// exits 1 with one line naming the cause instead of living on unable to
// serve: its Raft port taken, its directory in use by another process,
// holding another cluster's data or created under another Raft address, or
// emptied (a replica that lost its log cannot rejoin under its old
// identity). And that a process whose replica fail-stopped while serving
// lives on, answers UNAVAILABLE at once (so clients move to another
// process) with the reason in its status, and is not ready, while the
// others are.
func TestCleanStarts(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for i := range 20 {
		if _, err := c.nodes[0].kv.Put(ctx, &messages.PutRequest{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	c.converged()
	n2 := c.nodes[2]
	if code := n2.proc.terminate(30 * time.Second); code != 0 {
		t.Fatalf("node 2 exited %d after SIGTERM", code)
	}

	t.Run("raft port in use", func(t *testing.T) {
		l, err := net.Listen("tcp", c.raft[2])
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		startFails(t, "address already in use", c.flags(n2)...)
	})
	t.Run("directory in use", func(t *testing.T) {
		// Node 0 runs; a second process on its directory, other ports.
		args := append(without(without(c.flags(c.nodes[0]), "--listen"), "--metrics"), "--listen", freePort(t), "--metrics", freePort(t))
		startFails(t, "in use by another", args...)
	})
	t.Run("another cluster's data", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "other.toml")
		if err := os.WriteFile(conf, []byte("[deployment]\ncluster_id = 9\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		startFails(t, "holds cluster 1 replica 2's data", append(c.flags(n2), "--config", conf)...)
	})
	t.Run("changed raft address", func(t *testing.T) {
		eps := slices.Clone(c.raft)
		eps[2] = freePort(t)
		args := append(without(c.flags(n2), "--endpoints"), "--endpoints", strings.Join(eps, ","))
		startFails(t, "a member's Raft address cannot change", args...)
	})
	// The process restarts cleanly on its own data and address.
	c.restart(n2)
	c.converged()

	t.Run("replica fail-stopped", func(t *testing.T) {
		n1 := c.nodes[1]
		if _, err := n1.kv.SetFaultInjection(ctx, &messages.SetFaultInjectionRequest{Faults: &messages.FaultInjection{FailAfterWrites: 1}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, waitTimeout, func() error {
			if _, err := c.nodes[0].kv.Put(ctx, &messages.PutRequest{Key: []byte("after"), Value: []byte("fault")}); err != nil {
				return err
			}
			st, err := n1.kv.Status(ctx, &messages.StatusRequest{})
			if err != nil {
				return err
			}
			if r := st.GetReplicas()[0]; r.GetRunning() || !strings.Contains(r.GetError(), "injected") {
				return fmt.Errorf("replica 1: running %t, error %q; want it down for the injected fault", r.GetRunning(), r.GetError())
			}
			return nil
		})
		// A call with a long deadline is answered UNAVAILABLE, not left to
		// time out.
		lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
		defer lcancel()
		for _, call := range []func() error{
			func() error { _, err := n1.kv.Get(lctx, &messages.GetRequest{Key: []byte("k1")}); return err },
			func() error {
				_, err := n1.kv.Put(lctx, &messages.PutRequest{Key: []byte("k1"), Value: []byte("w")})
				return err
			},
		} {
			if err := call(); grpcstatus.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no replica of this process is running") {
				t.Fatalf("a call through the process whose replica is down: %v, want UNAVAILABLE naming it", err)
			}
		}
		if err := httpGetStatus(n1.http, "/readyz", http.StatusServiceUnavailable); err != nil {
			t.Fatal(err)
		}
		for _, n := range []*node{c.nodes[0], c.nodes[2]} {
			if err := httpGetStatus(n.http, "/readyz", http.StatusOK); err != nil {
				t.Fatalf("node %d: %v", n.id, err)
			}
		}
		if n1.proc.exited() {
			t.Fatal("the process exited when its replica fail-stopped while serving")
		}
		n1.kill()
		c.restart(n1) // fault injection is not persistent: it serves again
		c.converged()
	})

	t.Run("empty directory", func(t *testing.T) {
		// A follower, so that the leader remembers how far its log went (a
		// new leader would not, and would bring the empty replica up to
		// date under its old identity, as etcd would: see docs/CLUSTER.md).
		leader, _ := c.leader(0, c.nodes...)
		victim := c.nodes[(leader.id+1)%3]
		if code := victim.proc.terminate(30 * time.Second); code != 0 {
			t.Fatalf("node %d exited %d after SIGTERM", victim.id, code)
		}
		if err := os.RemoveAll(victim.dir); err != nil {
			t.Fatal(err)
		}
		startFails(t, "Raft log is behind what the cluster committed", c.flags(victim)...)
	})
}

// TestReadyWithAReplicaDown checks /readyz of the embedded default: it
// means "this process can serve a linearizable request now", so with one of
// its three replicas fail-stopped it stays 200, and with two down (no
// quorum) it turns 503.
func TestReadyWithAReplicaDown(t *testing.T) {
	s := startServer(t, serverConfig{})
	kv := s.kvClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	stop := func(id uint32) {
		t.Helper()
		if _, err := kv.SetFaultInjection(ctx, &messages.SetFaultInjectionRequest{Replicas: []uint32{id}, Faults: &messages.FaultInjection{FailAfterWrites: 1}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, waitTimeout, func() error {
			if _, err := kv.Put(ctx, &messages.PutRequest{Key: []byte("k"), Value: []byte("v")}); err != nil {
				return err
			}
			st, err := kv.Status(ctx, &messages.StatusRequest{})
			if err != nil {
				return err
			}
			if r := st.GetReplicas()[id]; r.GetRunning() {
				return fmt.Errorf("replica %d still runs", id)
			}
			return nil
		})
	}
	stop(2)
	if err := httpGetStatus(s.HTTP, "/readyz", http.StatusOK); err != nil {
		t.Fatalf("one replica of three down: %v", err)
	}
	if _, err := kv.Get(ctx, &messages.GetRequest{Key: []byte("k")}); err != nil {
		t.Fatalf("linearizable read with one replica down: %v", err)
	}
	// A second one down: no quorum. The write that fails replica 1 may
	// not be answered; /readyz turns 503.
	if _, err := kv.SetFaultInjection(ctx, &messages.SetFaultInjectionRequest{Replicas: []uint32{1}, Faults: &messages.FaultInjection{FailAfterWrites: 1}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitTimeout, func() error {
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		_, _ = kv.Put(wctx, &messages.PutRequest{Key: []byte("k"), Value: []byte("w")})
		wcancel()
		return httpGetStatus(s.HTTP, "/readyz", http.StatusServiceUnavailable)
	})
}
