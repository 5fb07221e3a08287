package replica

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/lni/dragonboat/v3"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/actors/raftnet"
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
		removed, added, err := n.replaceMember(id, 0, address, budget)
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

// membershipAttempt bounds one attempt of a membership step: a request
// sent to a leader that just died is not answered (dragonboat does not drop
// it when leadership moves), so an attempt lasts about two election
// timeouts (at least a second, at most a proposal timeout) and the next one,
// after the election, reaches the new leader. Every step starts from a read
// of the membership, so a step that commits after its attempt gave up is
// seen there and not repeated.
func (n *node) membershipAttempt() time.Duration {
	return min(n.cfg.Raft.ProposalTimeout, max(time.Second, 2*n.cfg.Raft.ElectionTimeout()))
}

// replaceMember does the work of *messages.ReplaceMember and
// MemberReplaceRequest: it replaces the node replica id is a member as —
// old, or whichever it is when old is 0 — with id's node of the generation
// after the highest it ever had (current or removed: dragonboat never takes
// a removed node id back) at address, and returns the node deleted (0 if
// none was a member) and the node added. When old is no longer a member and
// id already has a newer node at address, an earlier call did the
// replacement: it returns that node. It blocks until done or until budget
// has passed, so it runs through goOp.
//
// Each step starts from a linearizable read of the membership, and a step
// whose outcome is unknown (a timeout, a request dropped in an election)
// is simply followed by the next read: a deletion or addition that commits
// late shows up there. Every change is ordered after the read it was
// decided on (its config change id), so a change that raced it makes it
// fail rather than act on a stale view; and dragonboat rejects a second
// node at the same address, so a replica never ends up with two nodes.
func (n *node) replaceMember(id uint32, old uint64, address string, budget time.Duration) (removed, added uint64, err error) {
	deadline := time.Now().Add(budget)
	attempt := n.membershipAttempt()
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
		if old != 0 && removed == 0 && !slices.Contains(current, old) {
			if len(current) > 0 && current[0] > old && m.Nodes[current[0]] == address {
				return 0, current[0], nil // replaced already (this is a retry)
			}
			return 0, 0, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT,
				"node %d is not a member: replica %d's nodes are %v (see the member list)", old, id, current)
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

// The membership operations of the KV API (MemberList, MemberAdd,
// MemberRemove, MemberReplace, MoveLeader). Each runs on a goroutine the
// node owns, within membershipBudget, and answers the requester directly.

// membershipBudget bounds one membership operation: three Raft rounds at
// least, through an election or two.
func (r *replicaActor) membershipBudget() time.Duration { return 3 * r.cfg.Raft.ProposalTimeout }

// onMembership answers req, a membership request, with the response do
// builds on an owned goroutine.
func (r *replicaActor) onMembership(ctx actor.Context, op *messages.Op, req proto.Message) {
	if r.state != running {
		ctx.Respond(op.Response(errNotRunning))
		return
	}
	if err := validateMembership(req); err != nil {
		ctx.Respond(op.Response(err))
		return
	}
	n, reply, root, budget := r.node, ctx.Sender(), ctx.ActorSystem().Root, r.membershipBudget()
	n.goOp(func() {
		resp := n.membership(op, req, budget)
		if err := resp.GetStatus().Err(); err != nil {
			r.log.Warn("membership request failed", "op", op.Name, "err", err)
		} else if op.Name != "member_list" {
			r.log.Info("membership request done", "op", op.Name, "request", req)
		}
		if reply != nil {
			root.Send(reply, resp)
		}
	})
}

// validateMembership checks a membership request's fields.
func validateMembership(req proto.Message) error {
	bad := func(format string, args ...any) error {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, format, args...)
	}
	id := func(id uint32) error {
		if id >= MaxReplicas {
			return bad("replica id %d is not below %d", id, MaxReplicas)
		}
		return nil
	}
	address := func(a string) error {
		if len(a) > maxAddressLen || !(raftnet.Factory{}).Validate(a) {
			return bad("raft address %q is not host:port (at most %d bytes)", a, maxAddressLen)
		}
		return nil
	}
	switch m := req.(type) {
	case *messages.MemberAddRequest:
		return errors.Join(id(m.GetReplicaId()), address(m.GetRaftAddress()))
	case *messages.MemberRemoveRequest:
		return id(m.GetReplicaId())
	case *messages.MoveLeaderRequest:
		return id(m.GetReplicaId())
	case *messages.MemberReplaceRequest:
		if err := errors.Join(id(m.GetReplicaId()), address(m.GetRaftAddress())); err != nil {
			return err
		}
		if m.GetNodeId() == 0 || ReplicaID(m.GetNodeId()) != m.GetReplicaId() {
			return bad("node %d is not a node of replica %d (see the member list)", m.GetNodeId(), m.GetReplicaId())
		}
	}
	return nil
}

// maxAddressLen bounds a Raft address.
const maxAddressLen = 256

// membership does the work of a membership request and returns its
// response.
func (n *node) membership(op *messages.Op, req proto.Message, budget time.Duration) messages.Statused {
	switch m := req.(type) {
	case *messages.MemberListRequest:
		ms, err := n.memberList(budget)
		return &messages.MemberListResponse{Status: messages.StatusOf(err), Members: ms}
	case *messages.MemberAddRequest:
		member, err := n.addMember(m.GetReplicaId(), m.GetRaftAddress(), budget)
		return &messages.MemberAddResponse{Status: messages.StatusOf(err), Member: member}
	case *messages.MemberRemoveRequest:
		return &messages.MemberRemoveResponse{Status: messages.StatusOf(n.removeMember(m.GetReplicaId(), budget))}
	case *messages.MemberReplaceRequest:
		_, added, err := n.replaceMember(m.GetReplicaId(), m.GetNodeId(), m.GetRaftAddress(), budget)
		if err != nil {
			return &messages.MemberReplaceResponse{Status: messages.StatusOf(err)}
		}
		return &messages.MemberReplaceResponse{Status: messages.StatusOf(nil),
			Member: &messages.Member{ReplicaId: m.GetReplicaId(), NodeId: added, RaftAddress: m.GetRaftAddress()}}
	case *messages.MoveLeaderRequest:
		term, err := n.moveLeader(m.GetReplicaId(), budget)
		return &messages.MoveLeaderResponse{Status: messages.StatusOf(err), Term: term}
	}
	return op.Response(messages.Errorf(messages.StatusCode_INTERNAL, "%s is no membership request", op.Name))
}

// retrying runs f until it succeeds, fails for good, or budget passes; a
// transient failure is tried again after a heartbeat. Each attempt gets
// at most membershipAttempt.
func (n *node) retrying(what string, budget time.Duration, f func(ctx context.Context) (done bool, err error)) error {
	deadline := time.Now().Add(budget)
	attempt := n.membershipAttempt()
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), min(attempt, time.Until(deadline)))
		done, err := f(ctx)
		cancel()
		switch {
		case err == nil && done:
			return nil
		case err != nil && !transient(err):
			return membershipError(what, err)
		case err != nil:
			last = membershipError(what, err)
		}
		if !n.sleep(min(n.cfg.Raft.HeartbeatInterval(), time.Until(deadline))) {
			return messages.Errorf(messages.StatusCode_UNAVAILABLE, "%s: the replica stopped", what)
		}
	}
	if last == nil {
		last = messages.Errorf(messages.StatusCode_TIMEOUT, "%s: not done within %v", what, budget)
	}
	return last
}

// readMembership reads the membership linearizably, within budget.
func (n *node) readMembership(budget time.Duration) (*dragonboat.Membership, error) {
	var m *dragonboat.Membership
	err := n.retrying("read the membership", budget, func(ctx context.Context) (bool, error) {
		var err error
		m, err = n.nh.SyncGetClusterMembership(ctx, n.cfg.ClusterID)
		return err == nil, err
	})
	return m, err
}

// memberList returns the voting members, by replica id.
func (n *node) memberList(budget time.Duration) ([]*messages.Member, error) {
	m, err := n.readMembership(budget)
	if err != nil {
		return nil, err
	}
	leader, ok, _ := n.nh.GetLeaderID(n.cfg.ClusterID)
	ms := make([]*messages.Member, 0, len(m.Nodes))
	for node, addr := range m.Nodes {
		ms = append(ms, &messages.Member{ReplicaId: ReplicaID(node), NodeId: node, RaftAddress: addr, Leader: ok && leader == node})
	}
	slices.SortFunc(ms, func(a, b *messages.Member) int { return cmp.Compare(a.GetReplicaId(), b.GetReplicaId()) })
	return ms, nil
}

// addMember adds replica id at address, as the node of its next
// generation; a replica that is a member at that address already is
// answered as it is.
func (n *node) addMember(id uint32, address string, budget time.Duration) (*messages.Member, error) {
	var member *messages.Member
	err := n.retrying(fmt.Sprintf("add replica %d at %s", id, address), budget, func(ctx context.Context) (bool, error) {
		m, err := n.nh.SyncGetClusterMembership(ctx, n.cfg.ClusterID)
		if err != nil {
			return false, err
		}
		current, next := replicaNodes(m, id)
		if len(current) > 0 {
			if a := m.Nodes[current[0]]; a == address {
				member = &messages.Member{ReplicaId: id, NodeId: current[0], RaftAddress: a}
				return true, nil
			}
			return false, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT,
				"replica %d is a member already, as node %d at %s: replace it to give it another address", id, current[0], m.Nodes[current[0]])
		}
		for node, a := range m.Nodes {
			if a == address {
				return false, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "raft address %s is replica %d's (node %d)", address, ReplicaID(node), node)
			}
		}
		// An added node is of generation 1 or later: generation 0 are the
		// nodes the cluster started with, which never join (see JoinNode).
		node := NodeID(id, max(next, 1))
		if err := n.nh.SyncRequestAddNode(ctx, n.cfg.ClusterID, node, address, m.ConfigChangeID); err != nil {
			return false, err
		}
		member = &messages.Member{ReplicaId: id, NodeId: node, RaftAddress: address}
		return true, nil
	})
	return member, err
}

// removeMember removes replica id's node; nothing to do when it is no
// member.
func (n *node) removeMember(id uint32, budget time.Duration) error {
	return n.retrying(fmt.Sprintf("remove replica %d", id), budget, func(ctx context.Context) (bool, error) {
		m, err := n.nh.SyncGetClusterMembership(ctx, n.cfg.ClusterID)
		if err != nil {
			return false, err
		}
		current, _ := replicaNodes(m, id)
		if len(current) == 0 {
			return true, nil
		}
		if len(m.Nodes) == 1 {
			return false, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "replica %d is the last member", id)
		}
		if err := n.nh.SyncRequestDeleteNode(ctx, n.cfg.ClusterID, current[0], m.ConfigChangeID); err != nil {
			return false, err
		}
		return len(current) == 1, nil // read again if it had another node
	})
}

// moveLeader asks Raft to hand leadership to replica id, again every two
// election timeouts, until it leads; it returns the term it leads at.
func (n *node) moveLeader(id uint32, budget time.Duration) (uint64, error) {
	deadline := time.Now().Add(budget)
	var asked time.Time
	for {
		if l := n.leaderInfo.Load(); l != nil && l.LeaderID != 0 && ReplicaID(l.LeaderID) == id {
			return l.Term, nil
		}
		if time.Now().After(deadline) {
			return 0, messages.Errorf(messages.StatusCode_TIMEOUT, "replica %d did not take the lead within %v", id, budget)
		}
		if time.Since(asked) > 2*n.cfg.Raft.ElectionTimeout() {
			target, ok := n.memberNodeID(id)
			if !ok {
				return 0, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "replica %d is not a member", id)
			}
			if err := n.nh.RequestLeaderTransfer(n.cfg.ClusterID, target); err != nil && !transient(err) {
				return 0, raftError("leader transfer", err)
			}
			asked = time.Now()
		}
		if !n.sleep(n.cfg.Raft.HeartbeatInterval()) {
			return 0, messages.Errorf(messages.StatusCode_UNAVAILABLE, "move leader: the replica stopped")
		}
	}
}
