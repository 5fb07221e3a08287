package tests

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/actors/executor"
	"github.com/actorkv/actorkv/actors/supervisor"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// writer writes keys prefix0, prefix1, ... through one client until stopped,
// remembering every acknowledged write.
type writer struct {
	db     *kv.Client
	prefix string
	stop   chan struct{} // closed to stop the writer
	done   chan struct{} // closed when the writer has returned
	acked  atomic.Int64
	mu     sync.Mutex
	err    error
	keys   []string // acknowledged, in order
}

func startWriter(db *kv.Client, prefix string) *writer {
	w := &writer{db: db, prefix: prefix, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			k := fmt.Sprintf("%s%06d", prefix, i)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := db.Put(ctx, []byte(k), []byte("value-"+k))
			cancel()
			w.mu.Lock()
			if err != nil {
				w.err = fmt.Errorf("put %s: %w", k, err)
				w.mu.Unlock()
				return
			}
			w.keys = append(w.keys, k)
			w.mu.Unlock()
			w.acked.Add(1)
		}
	}()
	return w
}

// finish stops the writer and returns the keys it wrote; it fails t if a
// write failed.
func (w *writer) finish(t testing.TB) []string {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		t.Fatalf("writer %s: %v", w.prefix, w.err)
	}
	return w.keys
}

// waitAcked waits until the writer has n more acknowledged writes than now.
func (w *writer) waitAcked(t testing.TB, n int64, what string) {
	t.Helper()
	target := w.acked.Load() + n
	actorkvtest.Eventually(t, func() bool {
		select {
		case <-w.done:
			return true // finish reports the error
		default:
		}
		return w.acked.Load() >= target
	}, actorkvtest.WaitTimeout, fmt.Sprintf("%d more writes acknowledged %s", n, what))
}

// checkKeys reads every key back, linearizably.
// checkNoDuplicates fails t if a replica (every one but those of skip)
// applied an entry or executed a request twice.
func checkNoDuplicates(t testing.TB, c *actorkvtest.Cluster, skip ...uint32) {
	t.Helper()
	for id := range uint32(actorkvtest.Replicas) {
		if slices.Contains(skip, id) {
			continue
		}
		if d := c.Recorder().Duplicates(id); d != "" {
			t.Fatalf("replica %d: %s", id, d)
		}
	}
}

func checkKeys(t testing.TB, c *actorkvtest.Cluster, keys []string) {
	t.Helper()
	ctx := c.Context(time.Minute)
	for _, k := range keys {
		v, found, err := c.Client().Get(ctx, []byte(k))
		if err != nil || !found || string(v) != "value-"+k {
			t.Fatalf("acknowledged write %s lost: %q found=%v, %v", k, v, found, err)
		}
	}
}

// TestFailStopReplica makes every storage operation of replica 2 fail: the
// first batch it cannot apply stops it (fail-stop, reported to the
// supervisor), while replicas 0 and 1 keep acknowledging writes. Restarted
// (a fresh engine has no injected faults), replica 2 catches up, and no
// acknowledged write is lost.
func TestFailStopReplica(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	w := startWriter(c.Group().Client(), "fs/")
	w.waitAcked(t, 50, "before the fault")
	c.InjectFaults(&messages.FaultInjection{ErrorRate: 1}, 2)
	actorkvtest.Eventually(t, func() bool {
		return !actorkvtest.ReplicaStatus(c.Status(false), 2).GetRunning()
	}, actorkvtest.WaitTimeout, "replica 2 stops")
	rec := c.Logs().WaitFor(t, "the supervisor hears of replica 2's fail-stop", func(r actorkvtest.LogRecord) bool {
		return r.Message == "replica down (fail-stop)" && r.Attrs["replica"] == "2"
	})
	if !strings.Contains(rec.Attrs["reason"], "injected") {
		t.Errorf("fail-stop reason %q does not name the injected fault", rec.Attrs["reason"])
	}
	// The fail-stop is signalled once: one failure reaches the supervisor.
	failures := c.Logs().Records(func(r actorkvtest.LogRecord) bool { return r.Message == "replica failed; stopping it" })
	if len(failures) != 1 {
		t.Errorf("the supervisor heard of replica 2's failure %d times, want once: %v", len(failures), failures)
	}
	w.waitAcked(t, 200, "with replica 2 stopped")
	c.Crash(2) // already down: the harness leaves it out of EnsureSame
	c.EnsureSame(t)
	c.Restart(2, false)
	w.waitAcked(t, 50, "after replica 2's restart")
	keys := w.finish(t)
	c.EnsureSame(t)
	if d := c.Recorder().Duplicates(2); d != "" {
		t.Fatalf("replica 2: %s", d)
	}
	checkKeys(t, c, keys)
	t.Logf("%d writes acknowledged across the fail-stop", len(keys))
}

// TestLeaderCrash stops the leader while a writer runs through the facade:
// a new leader is elected, the writer's retries carry it over, and the old
// leader, restarted, catches up.
func TestLeaderCrash(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	w := startWriter(c.Client(), "lc/")
	w.waitAcked(t, 50, "before the crash")
	c.Crash(0)
	leader := c.WaitNewLeader(0)
	w.waitAcked(t, 200, fmt.Sprintf("with replica %d leading", leader))
	c.Restart(0, false)
	w.waitAcked(t, 50, "after replica 0's restart")
	keys := w.finish(t)
	c.EnsureSame(t)
	checkNoDuplicates(t, c)
	checkKeys(t, c, keys)
}

// TestRouterRestartKeepsServing reports a failure of the router to the
// supervisor — the system message a panicking child sends its parent — and
// checks that the supervision strategy restarts it (a SupervisorEvent with
// the restart directive) and that the restarted router, which starts without
// routes, gets them back and serves. A request without a sender, which once
// crashed the router, is answered to no one.
func TestRouterRestartKeepsServing(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	g := c.Group()
	events := make(chan *actor.SupervisorEvent, 16)
	sub := g.System().EventStream.Subscribe(func(evt any) {
		if e, ok := evt.(*actor.SupervisorEvent); ok {
			select {
			case events <- e:
			default:
			}
		}
	})
	defer g.System().EventStream.Unsubscribe(sub)
	ctx := c.Context(time.Minute)
	if _, err := c.Client().Put(ctx, []byte("rr/before"), []byte("v")); err != nil {
		t.Fatalf("put: %v", err)
	}
	g.System().Root.Send(g.Router(), &messages.StatusRequest{}) // no sender: must not crash it
	if st := c.Status(false); len(st.GetReplicas()) != actorkvtest.Replicas {
		t.Fatalf("status after a request without a sender:\n%s", actorkvtest.DescribeStatus(st))
	}
	select {
	case e := <-events:
		t.Fatalf("a request without a sender made the supervisor act on %s: %v", e.Child.GetId(), e.Directive)
	default:
	}
	sup, ok := g.System().ProcessRegistry.Get(g.PID())
	if !ok {
		t.Fatal("the supervisor's process is not registered")
	}
	sup.SendSystemMessage(g.PID(), &actor.Failure{Who: g.Router(), Reason: "test: router failure", RestartStats: actor.NewRestartStatistics()})
	select {
	case e := <-events:
		if !strings.HasSuffix(e.Child.GetId(), "/router") || e.Directive != actor.RestartDirective {
			t.Fatalf("supervisor event for %s: %v, want the router restarted", e.Child.GetId(), e.Directive)
		}
	case <-time.After(actorkvtest.WaitTimeout):
		t.Fatal("the router was not restarted")
	}
	short, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Client().Put(short, []byte("rr/after"), []byte("v")); err != nil {
		t.Fatalf("put after the router's restart: %v", err)
	}
	if st := c.Status(false); len(st.GetReplicas()) != actorkvtest.Replicas || !st.GetHasLeader() {
		t.Fatalf("status after the router's restart:\n%s", actorkvtest.DescribeStatus(st))
	}
	c.EnsureSame(t)
}

// fakeSupervisor records what a supervision strategy decides.
type fakeSupervisor struct {
	restarted, stopped, resumed []*actor.PID
	escalated                   []any
}

func (f *fakeSupervisor) Children() []*actor.PID { return nil }
func (f *fakeSupervisor) EscalateFailure(reason, _ any) {
	f.escalated = append(f.escalated, reason)
}
func (f *fakeSupervisor) RestartChildren(pids ...*actor.PID) {
	f.restarted = append(f.restarted, pids...)
}
func (f *fakeSupervisor) StopChildren(pids ...*actor.PID)   { f.stopped = append(f.stopped, pids...) }
func (f *fakeSupervisor) ResumeChildren(pids ...*actor.PID) { f.resumed = append(f.resumed, pids...) }

// TestSupervisionStrategy drives supervisor.Strategy with a fake
// supervisor: the router is restarted (up to 10 times in 10 s, then
// stopped); a failed replica is stopped, never restarted, whether it
// panicked or fail-stopped.
func TestSupervisionStrategy(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	router := actor.NewPID("nonhost", "actorkv$1/router")
	replica := actor.NewPID("nonhost", "actorkv$1/$3")
	failStop := &executor.FailStop{Replica: 2, Err: errors.New("injected fault")}
	for _, tc := range []struct {
		name     string
		child    *actor.PID
		failures int // earlier failures within the window
		reason   any
		restart  bool
	}{
		{"router panics", router, 0, "boom", true},
		{"router fails the 10th time", router, 9, "boom", true},
		{"router fails the 11th time in 10 s", router, 10, "boom", false},
		{"replica panics", replica, 0, "boom", false},
		{"replica fail-stops", replica, 0, failStop, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := actor.NewRestartStatistics()
			for range tc.failures {
				rs.Fail()
			}
			s := &fakeSupervisor{}
			supervisor.Strategy().HandleFailure(sys, s, tc.child, rs, tc.reason, nil)
			switch {
			case len(s.escalated) > 0 || len(s.resumed) > 0:
				t.Fatalf("escalated %v, resumed %v", s.escalated, s.resumed)
			case tc.restart && (len(s.restarted) != 1 || !s.restarted[0].Equal(tc.child) || len(s.stopped) > 0):
				t.Fatalf("restarted %v, stopped %v: want %s restarted", s.restarted, s.stopped, tc.child)
			case !tc.restart && (len(s.stopped) != 1 || !s.stopped[0].Equal(tc.child) || len(s.restarted) > 0):
				t.Fatalf("restarted %v, stopped %v: want %s stopped", s.restarted, s.stopped, tc.child)
			}
		})
	}
}

// TestClearFaultsWithAReplicaDown: clearing every replica's faults with a
// replica stopped clears those that run (a stopped one has none) and
// answers at once, instead of waiting for the stopped one until the
// deadline.
func TestClearFaultsWithAReplicaDown(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	c.SlowStorage(time.Millisecond, 0, 1)
	c.Crash(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Client().SetFaultInjection(ctx, &messages.FaultInjection{}); err != nil {
		t.Fatalf("clear every fault with replica 2 down: %v", err)
	}
	// Named, it is UNAVAILABLE (retried until the deadline: it may be
	// starting).
	short, cancelShort := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelShort()
	if err := c.Client().SetFaultInjection(short, &messages.FaultInjection{AddedLatency: durationpb.New(time.Millisecond)}, kv.WithReplicas(2)); messages.CodeOf(err) != messages.StatusCode_UNAVAILABLE {
		t.Fatalf("faults for the stopped replica 2: %v, want UNAVAILABLE", err)
	}
}
