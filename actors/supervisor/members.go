package supervisor

import (
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actorkv/actorkv/messages"
)

// members is the supervisor's knowledge and decisions, as plain code: which
// replicas of this process run (a slot each), the leader the group knows,
// and whether the primary has led yet. The actor shell (supervisor.go)
// feeds it what it hears and carries out what it decides; members_test.go
// tests it without an actor system.
type members struct {
	primary    uint32
	slots      map[uint32]*slot
	leader     *messages.LeaderChanged // the newest the group accepted
	handedOver bool                    // the primary has led: no more handover requests
}

type replicaState int

const (
	down       replicaState = iota
	rebuilding              // down, while a peer replaces its node in the membership
	starting
	up
	stopping
)

// slot is one replica of this process.
type slot struct {
	pid     *actor.PID
	state   replicaState
	nodeID  uint64       // its dragonboat node id, from ReplicaUp or a membership change; 0: unknown
	reason  string       // why it went down last (empty: a clean stop)
	waiters []*actor.PID // answered when the replica is up or down
}

func newMembers(primary uint32, ids []uint32) *members {
	m := &members{primary: primary, slots: map[uint32]*slot{}}
	for _, id := range ids {
		m.slots[id] = &slot{}
	}
	return m
}

// ids returns the replica ids of this process, ascending.
func (m *members) ids() []uint32 {
	ids := make([]uint32, 0, len(m.slots))
	for id := range m.slots {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// spawned records that replica id's actor pid is starting.
func (m *members) spawned(id uint32, pid *actor.PID) {
	sl := m.slots[id]
	sl.pid, sl.state = pid, starting
}

// up takes a replica's report that it serves; false when it comes from an
// incarnation that stopped meanwhile (ignore it).
func (m *members) up(id uint32, from *actor.PID, nodeID uint64) (*slot, bool) {
	sl := m.slots[id]
	if sl == nil || sl.state != starting || !sl.pid.Equal(from) {
		return nil, false
	}
	sl.state, sl.nodeID = up, nodeID
	return sl, true
}

// terminated takes the end of an actor; true when it was a replica that
// was up or starting: it no longer serves.
func (m *members) terminated(who *actor.PID) bool {
	changed := false
	for _, sl := range m.slots {
		if sl.pid.Equal(who) && (sl.state == up || sl.state == starting) {
			sl.state = stopping
			changed = true
		}
	}
	return changed
}

// down takes a replica's report that it stopped (for reason; empty: a
// clean stop) and released its storage: its slot, and whether it was still
// starting (it failed to start).
func (m *members) down(id uint32, reason string) (sl *slot, wasStarting bool) {
	sl = m.slots[id]
	if sl == nil {
		return nil, false
	}
	wasStarting = sl.state == starting
	sl.state, sl.reason = down, reason
	return sl, wasStarting
}

// observe takes a replica's report of a leader change and reports whether
// it is newer than what the group knows (and is now the leader it knows):
// a leader at a higher term is, and so is a leader at the same term where
// none was known. A report of no leader counts only when it comes from the
// known leader itself (it stepped down, or campaigns), or from the only
// replica of this process that is up: a replica cut off from the others
// campaigns at ever higher terms without ever winning, and must not unseat
// the leader the majority elected at a lower term while another replica
// here still hears that leader; but when it is this process's only witness
// (one replica per process), what it knows is all the process knows.
func (m *members) observe(msg *messages.LeaderChanged) bool {
	l := m.leader
	var newer bool
	switch {
	case l == nil:
		newer = true
	case msg.GetHasLeader():
		newer = msg.GetTerm() > l.GetTerm() || (msg.GetTerm() == l.GetTerm() && !l.GetHasLeader())
	default:
		newer = l.GetHasLeader() && msg.GetTerm() >= l.GetTerm() &&
			(msg.GetReplicaId() == l.GetLeaderId() || m.onlyUp(msg.GetReplicaId()))
	}
	if newer {
		m.leader = msg
	}
	return newer
}

// onlyUp reports whether replica id is the only replica of this process
// that is up.
func (m *members) onlyUp(id uint32) bool {
	for other, sl := range m.slots {
		if other != id && sl.state == up {
			return false
		}
	}
	return true
}

// handover decides, until the primary has led once, whether to ask the
// leader to hand leadership over to the primary: it returns the leader's
// slot and the primary's, or nil when there is nothing to ask (no leader
// known, the primary leads — from then on never again —, or either is not
// up).
func (m *members) handover() (leader, primary *slot) {
	l := m.leader
	if m.handedOver || l == nil || !l.GetHasLeader() {
		return nil, nil
	}
	if l.GetLeaderId() == m.primary {
		m.handedOver = true
		return nil, nil
	}
	p, ls := m.slots[m.primary], m.slots[l.GetLeaderId()]
	if p == nil || p.state != up || ls == nil || ls.state != up {
		return nil, nil
	}
	return ls, p
}

// decision is what the supervisor does with a stop or start request.
type decision int

const (
	answerNow   decision = iota // answer with the error (nil: done already)
	stopIt                      // stop the replica; answer when it is down
	waitForDown                 // it is stopping already; answer when it is down
	startIt                     // spawn it from its data; answer when it is up
	rebuildIt                   // replace its node in the membership, then spawn it anew
)

// stop decides what a StopReplica of id does.
func (m *members) stop(id uint32) (decision, error) {
	sl := m.slots[id]
	switch {
	case sl == nil:
		return answerNow, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "replica %d does not run in this process", id)
	case sl.state == down:
		return answerNow, nil
	case sl.state == rebuilding: // down, but a start follows the membership change
		return answerNow, messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica %d is being rebuilt; try again", id)
	case sl.state == stopping:
		return waitForDown, nil
	}
	sl.state = stopping
	return stopIt, nil
}

// start decides what a StartReplica of id (rebuilt from scratch with wipe)
// does.
func (m *members) start(id uint32, wipe bool) (decision, error) {
	sl := m.slots[id]
	switch {
	case sl == nil:
		return answerNow, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "replica %d does not run in this process", id)
	case sl.state == up && wipe:
		return answerNow, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "replica %d is running: stop it before rebuilding it", id)
	case sl.state == up:
		return answerNow, nil
	case sl.state == down && wipe:
		if m.peer(id) == nil {
			if len(m.slots) == 1 {
				return answerNow, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT,
					"replica %d cannot be rebuilt from scratch in this process: it must first be replaced in the Raft membership, "+
						"which takes a running member in this process, and this process runs no other replica of the group (one replica per process)", id)
			}
			return answerNow, messages.Errorf(messages.StatusCode_UNAVAILABLE,
				"replica %d cannot be rebuilt from scratch now: replacing it in the Raft membership takes another running replica in this process", id)
		}
		sl.state = rebuilding
		return rebuildIt, nil
	case sl.state == down:
		return startIt, nil
	case sl.state == rebuilding:
		return answerNow, messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica %d is being rebuilt; try again", id)
	}
	return answerNow, messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica %d is starting or stopping; try again", id)
}

// peer returns a running replica other than id to change the membership
// through: the leader's if it runs here, else the lowest running id; nil
// when none runs.
func (m *members) peer(id uint32) *slot {
	if l := m.leader; l != nil && l.GetHasLeader() && l.GetLeaderId() != id {
		if sl := m.slots[l.GetLeaderId()]; sl != nil && sl.state == up {
			return sl
		}
	}
	for _, other := range m.ids() {
		if sl := m.slots[other]; other != id && sl.state == up {
			return sl
		}
	}
	return nil
}

// routes are the replicas that serve, for the router.
func (m *members) routes() *messages.Routes {
	routes := &messages.Routes{}
	for _, id := range m.ids() {
		switch sl := m.slots[id]; sl.state {
		case up:
			routes.Replicas = append(routes.Replicas, &messages.ReplicaRoute{ReplicaId: id, Address: sl.pid.GetAddress(), Id: sl.pid.GetId()})
		case down:
			routes.Down = append(routes.Down, &messages.ReplicaDown{ReplicaId: id, FailStop: sl.reason != "", Reason: sl.reason})
		}
	}
	return routes
}

// transferVia returns the replica a leader transfer to target is sent
// through (the leader's, else any running one, which forwards it) and the
// target's node id when known; nil when none runs here.
func (m *members) transferVia(target uint32) (*slot, uint64) {
	var node uint64
	if sl := m.slots[target]; sl != nil {
		node = sl.nodeID
	}
	via := m.peer(target)
	if via == nil {
		via = m.slots[target]
	}
	if via == nil || via.state != up {
		return nil, node
	}
	return via, node
}
