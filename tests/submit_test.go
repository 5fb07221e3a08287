package tests

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/server"
	"github.com/actorkv/actorkv/storage/conformance"
)

// TestCoreStartConformance holds the path of the gRPC Batch stream —
// server.Core.Start over the group's Client.Submit, where no goroutine waits
// for a call — to the Database contract: the conformance suite runs
// unchanged through it, so it answers as the blocking path does, bad input
// included.
func TestCoreStartConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB, cfg conformance.Config) kv.Database {
		c := actorkvtest.NewCluster(t, actorkvtest.WithColumnFamilies(cfg.ColumnFamilies...), actorkvtest.WithRetentionWindow(cfg.RetentionWindow), actorkvtest.WithMaxSessions(cfg.MaxSessions))
		core := server.NewCore(c.Client(), time.Minute, nil)
		return startedCalls(faultsAfterApply{Client: c.Client(), c: c}, core)
	})
}

// TestCoreStartConformanceStandalone runs the suite through Core.Start over
// the standalone engine, which is no Submitter: each call runs on a
// goroutine of its own.
func TestCoreStartConformanceStandalone(t *testing.T) {
	conformance.Run(t, func(t testing.TB, cfg conformance.Config) kv.Database {
		s := conformance.OpenStandalone(t, cfg)
		return startedCalls(s.Database(), server.NewCore(kv.NewClient(s, kv.DefaultCallTimeout), time.Minute, nil))
	})
}

// TestSubmitRetryAfterTimeoutAppliesOnce is TestRetryAfterTimeoutAppliesOnce
// through Client.Submit: a put whose deadline passes while storage is slow
// answers TIMEOUT; submitted again with the same request id once storage is
// fast, it answers the first version, and every replica executed it once.
func TestSubmitRetryAfterTimeoutAppliesOnce(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	client, err := c.Client().OpenSession(c.Context(time.Minute))
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	c.SlowStorage(300 * time.Millisecond)
	rid := &messages.RequestId{ClientId: client, Seq: 1}
	k := actorkvtest.RequestKey{ClientID: rid.GetClientId(), Seq: rid.GetSeq()}
	put := func(d time.Duration) (uint64, error) {
		req := &messages.PutRequest{Key: []byte("submit/k"), Value: []byte("once"), RequestId: rid}
		resp, err := submitWait(c.Client(), req, time.Now().Add(d))
		if err != nil {
			return 0, err
		}
		return resp.(*messages.PutResponse).GetVersion(), nil
	}
	if _, err := put(100 * time.Millisecond); !errors.Is(err, messages.ErrTimeout) {
		t.Fatalf("put with a 100 ms deadline on 300 ms storage: %v, want TIMEOUT", err)
	}
	c.SlowStorage(0)
	v, err := put(time.Minute)
	if err != nil {
		t.Fatalf("retry with the same request id: %v", err)
	}
	c.EnsureSame(t)
	checkExecutedOnce(t, c, k, v)
}

// TestSubmitAssignsRequestIDs checks that writes submitted without a request
// id get distinct ones of the client, and that a closed client answers
// UNAVAILABLE without sending.
func TestSubmitAssignsRequestIDs(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	cl := c.Group().Client()
	seen := map[uint64]bool{}
	for i := range 20 {
		req := &messages.PutRequest{Key: []byte{'s', byte(i)}, Value: []byte("v")}
		if _, err := submitWait(cl, req, time.Now().Add(time.Minute)); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		rid := req.GetRequestId()
		if rid.GetClientId() == 0 || rid.GetClientId() != cl.SessionID() || seen[rid.GetSeq()] {
			t.Fatalf("put %d carried request id %v (session %d, seqs seen %v)", i, rid, cl.SessionID(), seen)
		}
		seen[rid.GetSeq()] = true
	}
	cl.Close()
	_, err := submitWait(cl, &messages.GetRequest{Key: []byte("s")}, time.Now().Add(time.Minute))
	if !errors.Is(err, messages.ErrUnavailable) {
		t.Fatalf("submit on a closed client: %v, want UNAVAILABLE", err)
	}
}

// submitWait submits req and waits for its answer.
func submitWait(cl *kv.Client, req proto.Message, deadline time.Time) (messages.Statused, error) {
	type answer struct {
		resp messages.Statused
		err  error
	}
	ch := make(chan answer, 1)
	cl.Submit(req, deadline, nil, func(resp messages.Statused, err error) { ch <- answer{resp, err} })
	a := <-ch
	return a.resp, a.err
}

// startedCalls is a Database whose operations are Batch calls served by
// Core.Start (the request of each goes into a messages.Call, the answer comes
// out of its Reply); SetFaultInjection and Close, no calls, go to db.
func startedCalls(db kv.Database, core *server.Core) kv.Database {
	return startedDB{db: db, Requests: overCalls(func(ctx context.Context, call *messages.Call) (*messages.Reply, error) {
		ch := make(chan *messages.Reply, 1)
		core.Start(ctx, call, func(r *messages.Reply, sent func()) { giveBackSent(sent); ch <- r })
		return <-ch, nil
	})}
}

// overCalls is the Database operations as Batch calls: each request goes
// into a messages.Call served by do, its answer comes out of the Reply.
func overCalls(do func(context.Context, *messages.Call) (*messages.Reply, error)) kv.Requests {
	return func(ctx context.Context, req proto.Message) (messages.Statused, error) {
		call, ok := messages.NewCall(1, req)
		if !ok {
			return nil, fmt.Errorf("%T is no Batch call", req)
		}
		reply, err := do(ctx, call)
		if err != nil {
			return nil, err
		}
		return reply.Outcome()
	}
}

type startedDB struct {
	kv.Requests
	db kv.Database
}

func (d startedDB) SetFaultInjection(ctx context.Context, faults *messages.FaultInjection, opts ...kv.Option) error {
	return d.db.SetFaultInjection(ctx, faults, opts...)
}

func (d startedDB) Close() error { return d.db.Close() }

// TestSubmitRetriesThroughFailover crashes the leader while submitted puts
// are in flight and more follow: Submit retries each (same request id) on
// UNAVAILABLE and timeouts until the new leader answers, so every one with a
// generous deadline is acknowledged, and every running replica executed
// each exactly once, at the version its answer carried.
func TestSubmitRetriesThroughFailover(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	cl := c.Group().Client()
	reqs, versions := submitAcrossCrash(t, c, cl, 60, "failover")
	if cl.Retries() == 0 {
		t.Fatalf("no put was retried: the failover did not exercise Submit's retries")
	}
	t.Logf("%d retries", cl.Retries())
	c.EnsureSame(t)
	checkEachExecutedOnce(t, c, reqs, versions)
}

// submitAcrossCrash submits n puts (keys prefix/NNN) through cl at once, with
// one deadline, crashing the leader half-way through, and returns them with
// the version each was answered; every one must be acknowledged.
func submitAcrossCrash(t *testing.T, c *actorkvtest.Cluster, cl *kv.Client, n int, prefix string) ([]*messages.PutRequest, []uint64) {
	t.Helper()
	type answer struct {
		i    int
		resp messages.Statused
		err  error
	}
	answers := make(chan answer, n)
	reqs := make([]*messages.PutRequest, n)
	deadline := time.Now().Add(actorkvtest.WaitTimeout)
	for i := range n {
		if i == n/2 {
			c.Crash(c.Leader())
		}
		reqs[i] = &messages.PutRequest{Key: fmt.Appendf(nil, "%s/%03d", prefix, i), Value: []byte("v")}
		cl.Submit(reqs[i], deadline, nil, func(resp messages.Statused, err error) { answers <- answer{i, resp, err} })
	}
	versions := make([]uint64, n)
	wait := time.NewTimer(time.Until(deadline) + time.Minute) // Submit answers by the deadline
	defer wait.Stop()
	for range n {
		var a answer
		select {
		case a = <-answers:
		case <-wait.C:
			t.Fatalf("submitted puts not all answered %v after their deadline", time.Minute)
		}
		if a.err != nil {
			t.Fatalf("put %d across the failover: %v", a.i, a.err)
		}
		versions[a.i] = a.resp.(*messages.PutResponse).GetVersion()
	}
	return reqs, versions
}

// checkEachExecutedOnce is checkExecutedOnce for each of reqs, at the
// version it was answered.
func checkEachExecutedOnce(t *testing.T, c *actorkvtest.Cluster, reqs []*messages.PutRequest, versions []uint64) {
	t.Helper()
	for i, req := range reqs {
		checkExecutedOnce(t, c, actorkvtest.RequestKey{ClientID: req.GetRequestId().GetClientId(), Seq: req.GetRequestId().GetSeq()}, versions[i])
	}
}

// TestCoreStartHonoursCallTimeout checks the deadline Core.Start gives a
// call over the group: a call's own timeout_micros, even one longer than the
// core.s default, else the default — as Core.Do does.
func TestCoreStartHonoursCallTimeout(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	core := server.NewCore(c.Client(), 100*time.Millisecond, nil)
	c.SlowStorage(400 * time.Millisecond)
	start := func(timeoutMicros int64) *messages.Reply {
		ch := make(chan *messages.Reply, 1)
		call := &messages.Call{Id: 1, TimeoutMicros: timeoutMicros,
			Request: &messages.Call_Put{Put: &messages.PutRequest{Key: []byte("deadline/k"), Value: []byte("v")}}}
		core.Start(context.Background(), call, func(r *messages.Reply, sent func()) { giveBackSent(sent); ch <- r })
		return <-ch
	}
	if r := start(int64(30 * time.Second / time.Microsecond)); r.GetStatus().Err() != nil {
		t.Fatalf("put with its own 30 s timeout, core default 100 ms, storage 400 ms: %v", r.GetStatus().Err())
	}
	if r := start(0); !errors.Is(r.GetStatus().Err(), messages.ErrTimeout) {
		t.Fatalf("put without a timeout of its own (core default 100 ms, storage 400 ms): %v, want TIMEOUT", r.GetStatus().Err())
	}
	c.SlowStorage(0)
}

// giveBackSent calls a Batch call's "reply sent" callback, when it has one.
func giveBackSent(sent func()) {
	if sent != nil {
		sent()
	}
}
