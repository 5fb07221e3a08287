package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/lni/dragonboat/v3"

	"github.com/actorkv/actorkv/messages"
)

// memberReplaced is a membership change goroutine's note that the
// replacement of replica id is over (whatever its outcome).
type memberReplaced struct {
	id uint32
}

// onReplaceMember runs the membership change of *messages.ReplaceMember on
// a goroutine the node owns (it blocks on three Raft rounds), which answers
// the sender; one replacement of a replica at a time.
func (r *replicaActor) onReplaceMember(ctx actor.Context, msg *messages.ReplaceMember) {
	fail := func(err error) { ctx.Respond(&messages.ReplaceMemberResponse{Status: messages.StatusOf(err)}) }
	id, address := msg.GetReplicaId(), msg.GetAddress()
	switch {
	case r.state != running:
		fail(errNotRunning)
		return
	case id == r.cfg.ID:
		fail(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "replica %d cannot replace itself in the membership: ask a peer", r.cfg.ID))
		return
	case id >= MaxReplicas || address == "":
		fail(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "replace member: replica %d at %q: need a replica id below %d and an address", id, address, MaxReplicas))
		return
	case r.replacing[id]:
		fail(messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica %d is already being replaced in the membership; try again", id))
		return
	}
	n, reply, root, self := r.node, ctx.Sender(), ctx.ActorSystem().Root, ctx.Self()
	budget := 3 * r.cfg.Raft.ProposalTimeout
	if msg.GetTimeout() != nil {
		budget = msg.GetTimeout().AsDuration()
	}
	if r.replacing == nil {
		r.replacing = map[uint32]bool{}
	}
	r.replacing[id] = true
	r.log.Info("replacing a member", "member", id, "address", address)
	n.goOp(func() {
		removed, added, err := n.replaceMember(id, address, budget)
		if err != nil {
			r.log.Warn("replacing a member failed", "member", id, "err", err)
		} else {
			r.log.Info("member replaced", "member", id, "removed_node", removed, "node", added)
		}
		root.Send(self, &memberReplaced{id: id})
		if reply != nil {
			root.Send(reply, &messages.ReplaceMemberResponse{Status: messages.StatusOf(err), RemovedNodeId: removed, NodeId: added})
		}
	})
}

// replaceMember does the work of *messages.ReplaceMember: it replaces the
// node replica id is a member as with id's node of the generation after the
// highest it ever had (current or removed: dragonboat never takes a removed
// node id back) at address, and returns the node deleted (0 if none was a
// member) and the node added. It blocks until done or until budget has
// passed, so it runs through goOp.
//
// Each step starts from a linearizable read of the membership, and a step
// whose outcome is unknown (a timeout, a request dropped in an election)
// is simply followed by the next read: a deletion or addition that commits
// late shows up there. Every change is ordered after the read it was
// decided on (its config change id), so a change that raced it makes it
// fail rather than act on a stale view; and dragonboat rejects a second
// node at the same address, so a replica never ends up with two nodes.
func (n *node) replaceMember(id uint32, address string, budget time.Duration) (removed, added uint64, err error) {
	deadline := time.Now().Add(budget)
	// One attempt: long enough for a round through an election, short
	// enough to try again within the budget.
	attempt := min(n.cfg.Raft.ProposalTimeout, 10*n.cfg.Raft.ElectionTimeout())
	call := func(f func(ctx context.Context) error) error {
		left := time.Until(deadline)
		if left <= 0 {
			return dragonboat.ErrTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), min(attempt, left))
		defer cancel()
		return f(ctx)
	}
	// A pause after a transient failure, which may come back at once (a
	// request dropped for want of a leader): a heartbeat.
	pause := n.cfg.Raft.HeartbeatInterval()
	var tried uint64 // the node this call asked to add, which may yet commit
	var last error   // the latest transient failure: try again after a pause
	for time.Now().Before(deadline) {
		if last != nil && !n.sleep(min(pause, time.Until(deadline))) {
			return removed, 0, messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica stopped while replacing replica %d: %v", id, last)
		}
		var m *dragonboat.Membership
		err := call(func(ctx context.Context) (err error) {
			m, err = n.nh.SyncGetClusterMembership(ctx, n.cfg.ClusterID)
			return err
		})
		if err != nil {
			if last = membershipError("read the membership", err); transient(err) {
				continue
			}
			return removed, 0, last
		}
		last = nil
		current, next := replicaNodes(m, id)
		if tried != 0 && slices.Contains(current, tried) {
			return removed, tried, nil
		}
		if len(current) > 0 {
			node := current[0]
			if node == n.nodeID {
				return removed, 0, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "replica %d cannot replace its own node %d", id, node)
			}
			err := call(func(ctx context.Context) error {
				return n.nh.SyncRequestDeleteNode(ctx, n.cfg.ClusterID, node, m.ConfigChangeID)
			})
			switch {
			case err == nil:
				removed = node // read the membership again before the addition
			case transient(err):
				last = membershipError(fmt.Sprintf("delete node %d (replica %d)", node, id), err)
			default:
				return removed, 0, membershipError(fmt.Sprintf("delete node %d (replica %d)", node, id), err)
			}
			continue
		}
		node := NodeID(id, next)
		if _, gone := m.Removed[tried]; tried != 0 && !gone {
			node = tried // still pending, perhaps: ask for the same node again
		}
		tried = node
		err = call(func(ctx context.Context) error {
			return n.nh.SyncRequestAddNode(ctx, n.cfg.ClusterID, node, address, m.ConfigChangeID)
		})
		switch {
		case err == nil:
			return removed, node, nil
		case transient(err):
			last = membershipError(fmt.Sprintf("add node %d (replica %d) at %s", node, id, address), err)
		default:
			return removed, 0, membershipError(fmt.Sprintf("add node %d (replica %d) at %s", node, id, address), err)
		}
	}
	if last == nil {
		last = messages.Errorf(messages.StatusCode_TIMEOUT, "no time left")
	}
	return removed, 0, fmt.Errorf("replace replica %d within %v: %w", id, budget, last)
}

// sleep waits for d, or until the node halts; it reports whether the node
// still runs.
func (n *node) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.sm.haltC:
		return false
	}
}

// replicaNodes returns the nodes replica id is a member as in m (voting or
// not), lowest first, and the generation its next node gets: the one after
// the highest it ever had.
func replicaNodes(m *dragonboat.Membership, id uint32) (current []uint64, next uint32) {
	for _, set := range []map[uint64]string{m.Nodes, m.Observers, m.Witnesses} {
		for node := range set {
			if ReplicaID(node) == id {
				current = append(current, node)
				next = max(next, GenerationOf(node)+1)
			}
		}
	}
	for node := range m.Removed {
		if ReplicaID(node) == id {
			next = max(next, GenerationOf(node)+1)
		}
	}
	slices.Sort(current)
	return current, next
}

// transient reports whether a membership round may succeed if tried again
// now: it timed out, was dropped or rejected (an election, a racing change),
// or Raft was busy. A stopped node is not transient.
func transient(err error) bool {
	for _, e := range []error{dragonboat.ErrTimeout, dragonboat.ErrClusterNotReady, dragonboat.ErrClusterNotInitialized,
		dragonboat.ErrSystemBusy, dragonboat.ErrRejected, dragonboat.ErrAborted} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// membershipError maps the failure of a membership round.
func membershipError(op string, err error) error {
	switch {
	case errors.Is(err, dragonboat.ErrTimeout):
		return messages.Errorf(messages.StatusCode_TIMEOUT, "%s: %v: it may still commit", op, err)
	case errors.Is(err, dragonboat.ErrRejected):
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "%s: rejected (another membership change came first): %v", op, err)
	default:
		return raftError(op, err)
	}
}

// memberNodeID returns the node replica id is a voting member as, in the
// membership this node has applied (not linearizable: good enough to name a
// leader transfer's target).
func (n *node) memberNodeID(id uint32) (uint64, bool) {
	info := n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
	if info == nil {
		return 0, false // the NodeHost is closed
	}
	var found uint64
	for _, ci := range info.ClusterInfoList {
		if ci.ClusterID != n.cfg.ClusterID {
			continue
		}
		for node := range ci.Nodes {
			if ReplicaID(node) == id {
				found = max(found, node)
			}
		}
	}
	return found, found != 0
}
