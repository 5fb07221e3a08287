package tests

import (
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/messages"
)

// events collects what the group publishes on its actor system's event
// stream, as an embedder's subscriber would (forwarding to its own actor).
type events struct {
	mu  sync.Mutex
	got []proto.Message
}

func (e *events) add(evt any) {
	if m, ok := evt.(proto.Message); ok {
		e.mu.Lock()
		e.got = append(e.got, m)
		e.mu.Unlock()
	}
}

func (e *events) has(match func(proto.Message) bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.got {
		if match(m) {
			return true
		}
	}
	return false
}

// TestEventsForEmbedders: leader changes, replicas going down (fail-stop
// with its reason) and up, and snapshots created, sent and installed are
// published as protobuf messages on the actor system's event stream.
func TestEventsForEmbedders(t *testing.T) {
	c := actorkvtest.NewCluster(t, actorkvtest.WithSnapshots(20, 5))
	var e events
	sub := c.Group().System().EventStream.Subscribe(e.add)
	defer c.Group().System().EventStream.Unsubscribe(sub)
	ctx := c.Context(time.Minute)

	c.TransferLeader(1)
	// A failing disk fail-stops replica 2; rebuilt, it catches up through a
	// snapshot.
	c.InjectFaults(&messages.FaultInjection{FailAfterWrites: 1}, 2)
	for i := range 60 {
		if _, err := c.Client().Put(ctx, []byte("ev"), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	c.Restart(2, true)
	c.EnsureSame(t)
	for _, want := range []struct {
		what  string
		match func(proto.Message) bool
	}{
		{"replica 1 leads", func(m proto.Message) bool {
			l, ok := m.(*messages.LeaderChanged)
			return ok && l.GetHasLeader() && l.GetLeaderId() == 1
		}},
		{"replica 2 down, fail-stop", func(m proto.Message) bool {
			d, ok := m.(*messages.ReplicaDown)
			return ok && d.GetReplicaId() == 2 && d.GetFailStop() && d.GetReason() != ""
		}},
		{"replica 2 up again", func(m proto.Message) bool {
			u, ok := m.(*messages.ReplicaUp)
			return ok && u.GetReplicaId() == 2 && u.GetNodeId() > 65536
		}},
		{"a snapshot created", func(m proto.Message) bool {
			s, ok := m.(*messages.SnapshotEvent)
			return ok && s.GetKind() == messages.SnapshotEvent_CREATED
		}},
		{"a snapshot sent", func(m proto.Message) bool {
			s, ok := m.(*messages.SnapshotEvent)
			return ok && s.GetKind() == messages.SnapshotEvent_SENT
		}},
		{"replica 2 installed a snapshot", func(m proto.Message) bool {
			s, ok := m.(*messages.SnapshotEvent)
			return ok && s.GetKind() == messages.SnapshotEvent_INSTALLED && s.GetReplicaId() == 2 && s.GetIndex() > 0
		}},
	} {
		actorkvtest.Eventually(t, func() bool { return e.has(want.match) }, actorkvtest.WaitTimeout, want.what)
	}
}
