package router_test

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actorkv/actorkv/actors/router"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// fakeReplica answers writes with its id as the version, gets with its id as
// the value and status requests with its status; it counts what it got.
type fakeReplica struct {
	id       uint32
	received atomic.Int64
	tooOld   atomic.Bool // snapshot reads answer TRANSACTION_TOO_OLD
}

func (f *fakeReplica) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *messages.PutRequest:
		f.received.Add(1)
		ctx.Respond(&messages.PutResponse{Status: messages.StatusOf(nil), Version: uint64(f.id)})
	case *messages.GetRequest:
		f.received.Add(1)
		ctx.Respond(&messages.GetResponse{Status: messages.StatusOf(nil), Found: true, Value: []byte{byte('0' + f.id)}})
	case *messages.ReplicaStatusRequest:
		ctx.Respond(&messages.ReplicaStatus{ReplicaId: f.id, Running: true})
	case *messages.SnapshotReadRequest:
		f.received.Add(1)
		if f.tooOld.Load() {
			ctx.Respond(&messages.SnapshotReadResponse{Status: messages.StatusOf(messages.Errorf(messages.StatusCode_TRANSACTION_TOO_OLD, "replica %d restarted", f.id))})
			return
		}
		ctx.Respond(&messages.SnapshotReadResponse{Status: messages.StatusOf(nil), Found: true, Value: []byte{byte('0' + f.id)}})
	}
}

type group struct {
	system   *actor.ActorSystem
	router   *actor.PID
	replicas []*fakeReplica
	pids     []*actor.PID
}

func start(t *testing.T) *group {
	t.Helper()
	g := &group{system: actor.NewActorSystem()}
	for id := range uint32(3) {
		f := &fakeReplica{id: id}
		g.replicas = append(g.replicas, f)
		g.pids = append(g.pids, g.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return f })))
	}
	g.router = g.system.Root.Spawn(router.Props(router.Config{
		Replicas:  []uint32{0, 1, 2},
		Primary:   0,
		Local:     1,
		Validator: kv.NewValidator(kv.DefaultLimits(), nil),
		Timeout:   2 * time.Second,
		Logger:    slog.New(slog.DiscardHandler),
	}))
	t.Cleanup(func() { g.system.Shutdown() })
	return g
}

// routes tells the router which of the fake replicas run.
func (g *group) routes(ids ...uint32) {
	rs := &messages.Routes{}
	for _, id := range ids {
		rs.Replicas = append(rs.Replicas, &messages.ReplicaRoute{ReplicaId: id, Address: g.pids[id].GetAddress(), Id: g.pids[id].GetId()})
	}
	g.system.Root.Send(g.router, rs)
}

func (g *group) ask(t *testing.T, msg any) any {
	t.Helper()
	res, err := g.system.Root.RequestFuture(g.router, msg, 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// put returns the id of the replica that served a put, or its error.
func (g *group) put(t *testing.T) (uint64, error) {
	t.Helper()
	r := g.ask(t, &messages.PutRequest{Key: []byte("k"), Value: []byte("v")}).(*messages.PutResponse)
	return r.GetVersion(), r.GetStatus().Err()
}

// TestRouting checks where requests go: writes to the leader's replica, the
// primary while no leader is known or the leader's replica is not running,
// stale reads to the local replica; bad input and requests with no replica
// running are answered by the router.
func TestRouting(t *testing.T) {
	g := start(t)
	if _, err := g.put(t); !errors.Is(err, messages.ErrUnavailable) {
		t.Fatalf("put with no replica running: %v, want UNAVAILABLE", err)
	}
	g.routes(0, 1, 2)
	if id, err := g.put(t); err != nil || id != 0 {
		t.Fatalf("put before a leader is known went to %d (%v), want the primary 0", id, err)
	}
	g.system.Root.Send(g.router, &messages.LeaderChanged{ReplicaId: 1, LeaderId: 2, HasLeader: true, Term: 3})
	if id, err := g.put(t); err != nil || id != 2 {
		t.Fatalf("put with leader 2 went to %d (%v)", id, err)
	}
	for _, c := range []struct {
		consistency messages.Consistency
		want        byte
	}{{messages.Consistency_STALE, '1'}, {messages.Consistency_LINEARIZABLE, '2'}} {
		r := g.ask(t, &messages.GetRequest{Key: []byte("k"), Consistency: c.consistency}).(*messages.GetResponse)
		if r.GetStatus().Err() != nil || string(r.GetValue()) != string(c.want) {
			t.Errorf("%v get served by %q (%v), want %c", c.consistency, r.GetValue(), r.GetStatus().Err(), c.want)
		}
	}
	g.routes(0, 1) // the leader's replica stopped
	if id, err := g.put(t); err != nil || id != 0 {
		t.Fatalf("put with the leader's replica down went to %d (%v), want the primary 0", id, err)
	}
	g.routes(1, 2)
	g.system.Root.Send(g.router, &messages.LeaderChanged{ReplicaId: 1, HasLeader: false, Term: 4})
	if id, err := g.put(t); err != nil || id != 1 {
		t.Fatalf("put with no leader and the primary down went to %d (%v), want the lowest running 1", id, err)
	}

	before := g.replicas[0].received.Load() + g.replicas[1].received.Load() + g.replicas[2].received.Load()
	r := g.ask(t, &messages.PutRequest{Value: []byte("v")}).(*messages.PutResponse) // no key
	if !errors.Is(r.GetStatus().Err(), messages.ErrInvalidArgument) {
		t.Fatalf("put without a key: %v, want INVALID_ARGUMENT", r.GetStatus().Err())
	}
	if after := g.replicas[0].received.Load() + g.replicas[1].received.Load() + g.replicas[2].received.Load(); after != before {
		t.Fatalf("a bad request reached a replica (%d requests, then %d)", before, after)
	}
}

// TestStatus gathers every replica's status, marking the one not running.
func TestStatus(t *testing.T) {
	g := start(t)
	g.routes(0, 2)
	g.system.Root.Send(g.router, &messages.LeaderChanged{ReplicaId: 0, LeaderId: 0, HasLeader: true, Term: 2})
	st := g.ask(t, &messages.StatusRequest{}).(*messages.StatusResponse)
	if !st.GetHasLeader() || st.GetLeaderId() != 0 || st.GetTerm() != 2 || len(st.GetReplicas()) != 3 {
		t.Fatalf("status %v", st)
	}
	for i, r := range st.GetReplicas() {
		if r.GetReplicaId() != uint32(i) || r.GetRunning() != (i != 1) {
			t.Errorf("replica %d: %v", i, r)
		}
	}
}

// TestSnapshotReadFallsBack: a snapshot read goes to the leader's replica;
// one answering TRANSACTION_TOO_OLD (it restarted since the version) passes
// it to another running replica, and the router answers TOO_OLD only when
// every one did.
func TestSnapshotReadFallsBack(t *testing.T) {
	g := start(t)
	g.routes(0, 1, 2)
	g.system.Root.Send(g.router, &messages.LeaderChanged{ReplicaId: 1, LeaderId: 2, HasLeader: true, Term: 3})
	read := func() *messages.SnapshotReadResponse {
		return g.ask(t, &messages.SnapshotReadRequest{Key: []byte("k"), Version: 5}).(*messages.SnapshotReadResponse)
	}
	if r := read(); r.GetStatus().Err() != nil || string(r.GetValue()) != "2" {
		t.Fatalf("snapshot read served by %q (%v), want the leader's replica 2", r.GetValue(), r.GetStatus().Err())
	}
	g.replicas[2].tooOld.Store(true)
	if r := read(); r.GetStatus().Err() != nil || string(r.GetValue()) != "0" {
		t.Fatalf("snapshot read with the leader's replica too old served by %q (%v), want replica 0", r.GetValue(), r.GetStatus().Err())
	}
	g.replicas[0].tooOld.Store(true)
	g.replicas[1].tooOld.Store(true)
	before := g.replicas[0].received.Load() + g.replicas[1].received.Load() + g.replicas[2].received.Load()
	if r := read(); !errors.Is(r.GetStatus().Err(), messages.ErrTransactionTooOld) {
		t.Fatalf("snapshot read with every replica too old: %v, want TRANSACTION_TOO_OLD", r.GetStatus().Err())
	}
	if n := g.replicas[0].received.Load() + g.replicas[1].received.Load() + g.replicas[2].received.Load() - before; n != 3 {
		t.Fatalf("the read asked %d replicas, want each of the 3 once", n)
	}
}
