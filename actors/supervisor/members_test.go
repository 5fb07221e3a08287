package supervisor

import (
	"errors"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actorkv/actorkv/messages"
)

func pid(id string) *actor.PID { return actor.NewPID("nonhost", id) }

// TestMembersLeaderArbitration: which leader reports the group accepts.
func TestMembersLeaderArbitration(t *testing.T) {
	lc := func(by, leader uint32, term uint64, has bool) *messages.LeaderChanged {
		return &messages.LeaderChanged{ReplicaId: by, LeaderId: leader, Term: term, HasLeader: has}
	}
	m := newMembers(0, []uint32{0, 1, 2})
	for _, sl := range m.slots {
		sl.state = up
	}
	for i, c := range []struct {
		msg   *messages.LeaderChanged
		newer bool
	}{
		{lc(1, 0, 1, false), true},  // the first report, even of no leader
		{lc(1, 2, 2, true), true},   // a leader at a higher term
		{lc(0, 1, 1, true), false},  // a lower term
		{lc(0, 0, 5, false), false}, // no leader, from a replica that is not the leader (cut off, campaigning)
		{lc(2, 0, 2, false), true},  // no leader, from the leader itself: it stepped down
		{lc(1, 1, 2, true), true},   // a leader at the same term where none was known
		{lc(0, 2, 2, true), false},  // another leader at the same term: not newer
		{lc(1, 0, 3, true), true},
	} {
		before := m.leader
		got := m.observe(c.msg)
		if got != c.newer || (got && m.leader != c.msg) || (!got && m.leader != before) {
			t.Fatalf("report %d (%v): newer %v, known leader %v; want newer %v", i, c.msg, got, m.leader, c.newer)
		}
	}
}

// TestMembersLeaderArbitrationOneWitness: a process whose only replica up
// is cut off and campaigns knows no leader (one replica per process), while
// in a process where another replica is up, it does not unseat the leader.
func TestMembersLeaderArbitrationOneWitness(t *testing.T) {
	lc := func(by, leader uint32, term uint64, has bool) *messages.LeaderChanged {
		return &messages.LeaderChanged{ReplicaId: by, LeaderId: leader, Term: term, HasLeader: has}
	}
	one := newMembers(1, []uint32{1})
	one.slots[1].state = up
	three := newMembers(0, []uint32{0, 1, 2})
	three.slots[1].state = up
	three.slots[2].state = up
	for _, m := range []*members{one, three} {
		if !m.observe(lc(1, 0, 4, true)) {
			t.Fatal("a first leader was refused")
		}
	}
	if !one.observe(lc(1, 0, 5, false)) || one.leader.GetHasLeader() {
		t.Fatalf("the only replica up campaigns: the process knows no leader; known %v", one.leader)
	}
	if three.observe(lc(1, 0, 5, false)) || !three.leader.GetHasLeader() {
		t.Fatalf("a campaigning replica unseated the leader replica 2 still hears; known %v", three.leader)
	}
	three.slots[2].state = down
	if !three.observe(lc(1, 0, 6, false)) {
		t.Fatal("the only replica up left campaigns: its report was refused")
	}
	if one.observe(lc(1, 0, 3, false)) {
		t.Fatal("a report of a lower term was accepted")
	}
}

// TestMembersLifecycle: up reports from the incarnation that runs, what
// stop and start requests do in each state, and the routes.
func TestMembersLifecycle(t *testing.T) {
	m := newMembers(0, []uint32{0, 1, 2})
	for id := range uint32(3) {
		m.spawned(id, pid(string(rune('a'+id))))
	}
	if _, ok := m.up(1, pid("zz"), 2); ok {
		t.Fatal("accepted an up report from another incarnation")
	}
	for id := range uint32(3) {
		if _, ok := m.up(id, pid(string(rune('a'+id))), uint64(id)+1); !ok {
			t.Fatalf("replica %d's up report refused", id)
		}
	}
	if rs := m.routes().GetReplicas(); len(rs) != 3 || rs[0].GetReplicaId() != 0 || rs[2].GetId() != "c" {
		t.Fatalf("routes %v", rs)
	}
	code := func(err error) messages.StatusCode { return messages.CodeOf(err) }
	cases := []struct {
		name string
		do   func() (decision, error)
		want decision
		code messages.StatusCode
	}{
		{"start a running replica", func() (decision, error) { return m.start(1, false) }, answerNow, messages.StatusCode_OK},
		{"rebuild a running replica", func() (decision, error) { return m.start(1, true) }, answerNow, messages.StatusCode_INVALID_ARGUMENT},
		{"stop an unknown replica", func() (decision, error) { return m.stop(7) }, answerNow, messages.StatusCode_INVALID_ARGUMENT},
		{"stop a running replica", func() (decision, error) { return m.stop(1) }, stopIt, messages.StatusCode_OK},
		{"stop it again while it stops", func() (decision, error) { return m.stop(1) }, waitForDown, messages.StatusCode_OK},
		{"start it while it stops", func() (decision, error) { return m.start(1, false) }, answerNow, messages.StatusCode_UNAVAILABLE},
	}
	for _, c := range cases {
		d, err := c.do()
		if d != c.want || code(err) != c.code {
			t.Fatalf("%s: %v, %v; want %v, %v", c.name, d, err, c.want, c.code)
		}
	}
	if rs := m.routes().GetReplicas(); len(rs) != 2 {
		t.Fatalf("routes while replica 1 stops: %v", rs)
	}
	if sl, wasStarting := m.down(1, ""); sl == nil || wasStarting {
		t.Fatalf("down: %v, %v", sl, wasStarting)
	}
	if d := m.routes().GetDown(); len(d) != 1 || d[0].GetReplicaId() != 1 || d[0].GetFailStop() {
		t.Fatalf("routes after a clean stop: down %v", d)
	}
	if d, err := m.stop(1); d != answerNow || err != nil {
		t.Fatalf("stop a stopped replica: %v, %v; want done", d, err)
	}
	m.observe(&messages.LeaderChanged{ReplicaId: 2, LeaderId: 2, Term: 4, HasLeader: true})
	if d, err := m.start(1, true); d != rebuildIt || err != nil || m.slots[1].state != rebuilding {
		t.Fatalf("rebuild a stopped replica: %v, %v", d, err)
	}
	if p := m.peer(1); p != m.slots[2] {
		t.Fatal("the membership change does not go through the leader's replica")
	}
	if d, err := m.stop(1); d != answerNow || !errors.Is(err, messages.ErrUnavailable) {
		t.Fatalf("stop while rebuilding: %v, %v", d, err)
	}
	// A replica that failed to start is down, and says so.
	m.spawned(1, pid("b2"))
	if _, wasStarting := m.down(1, "disk on fire"); !wasStarting {
		t.Fatal("a replica down while starting did not count as a failed start")
	}
	if d := m.routes().GetDown(); len(d) != 1 || d[0].GetReason() != "disk on fire" || !d[0].GetFailStop() {
		t.Fatalf("routes after a failed start: down %v, want replica 1 with its reason", d)
	}
	// Alone in its process, a replica cannot be rebuilt: no peer to change
	// the membership through.
	alone := newMembers(0, []uint32{2})
	if d, err := alone.start(2, true); d != answerNow || !errors.Is(err, messages.ErrInvalidArgument) {
		t.Fatalf("rebuild with no peer in the process: %v, %v", d, err)
	}
}

// TestMembersHandover: the primary is asked to lead until it has led once.
func TestMembersHandover(t *testing.T) {
	m := newMembers(0, []uint32{0, 1, 2})
	for id := range uint32(3) {
		m.spawned(id, pid(string(rune('a'+id))))
	}
	if l, p := m.handover(); l != nil || p != nil {
		t.Fatal("handover asked with no leader known")
	}
	m.observe(&messages.LeaderChanged{ReplicaId: 1, LeaderId: 1, Term: 2, HasLeader: true})
	if l, _ := m.handover(); l != nil {
		t.Fatal("handover asked while the replicas are not up")
	}
	for id := range uint32(3) {
		m.up(id, pid(string(rune('a'+id))), uint64(id)+1)
	}
	if l, p := m.handover(); l != m.slots[1] || p != m.slots[0] || p.nodeID != 1 {
		t.Fatalf("handover: leader %v, primary %v", l, p)
	}
	m.observe(&messages.LeaderChanged{ReplicaId: 0, LeaderId: 0, Term: 3, HasLeader: true})
	if l, _ := m.handover(); l != nil || !m.handedOver {
		t.Fatal("the primary leads: no more handover")
	}
	m.observe(&messages.LeaderChanged{ReplicaId: 2, LeaderId: 2, Term: 4, HasLeader: true})
	if l, _ := m.handover(); l != nil {
		t.Fatal("handover asked again after the primary had led")
	}
}
