package replica

import (
	"context"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

func (r *replicaActor) onSetFaultInjection(ctx actor.Context, msg *messages.SetFaultInjectionRequest) {
	if r.engine == nil || r.state == stopping {
		ctx.Respond(&messages.SetFaultInjectionResponse{Status: messages.StatusOf(errNotRunning)})
		return
	}
	err := r.engine.SetFaultInjection(context.Background(), msg.GetFaults())
	ctx.Respond(&messages.SetFaultInjectionResponse{Status: messages.StatusOf(err)})
}

func (r *replicaActor) onLeaderChanged(ctx actor.Context, msg *messages.LeaderChanged) {
	r.leader = msg
	if p := ctx.Parent(); p != nil {
		ctx.Send(p, msg)
	}
}

// onTransferLeader asks Raft to hand leadership to the target's current
// node: the one the message names, or else the one the membership this
// replica applied holds for the target replica.
func (r *replicaActor) onTransferLeader(ctx actor.Context, msg *messages.TransferLeader) {
	respond := func(err error) { ctx.Respond(&messages.ReplicaCommandResponse{Status: messages.StatusOf(err)}) }
	if r.state != running {
		respond(errNotRunning)
		return
	}
	target := msg.GetTargetNodeId()
	switch {
	case target != 0 && ReplicaID(target) != msg.GetTargetId():
		respond(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "leader transfer: node %d is not a node of replica %d", target, msg.GetTargetId()))
		return
	case target == 0:
		var ok bool
		if target, ok = r.node.memberNodeID(msg.GetTargetId()); !ok {
			respond(messages.Errorf(messages.StatusCode_UNAVAILABLE, "leader transfer: replica %d is not a member of the group as replica %d knows it", msg.GetTargetId(), r.cfg.ID))
			return
		}
	}
	err := r.node.nh.RequestLeaderTransfer(r.cfg.ClusterID, target)
	if err != nil {
		err = raftError("leader transfer", err)
	}
	respond(err)
}

// onStatus answers *messages.ReplicaStatus; digests are computed on a read
// worker.
func (r *replicaActor) onStatus(ctx actor.Context, msg *messages.ReplicaStatusRequest) {
	st := &messages.ReplicaStatus{ReplicaId: r.cfg.ID, Running: r.state == running, Error: r.failure}
	if l := r.leader; l != nil {
		st.HasLeader, st.LeaderId, st.Term = l.GetHasLeader(), l.GetLeaderId(), l.GetTerm()
		st.IsLeader = l.GetHasLeader() && l.GetLeaderId() == r.cfg.ID
	}
	if r.engine == nil || r.state != running {
		ctx.Respond(st)
		return
	}
	st.AppliedIndex = r.engine.AppliedIndex()
	st.ProposalsInFlight = uint64(r.node.writes.len())
	st.InstallingSnapshot = r.engine.Installing()
	st.NodeId = r.node.nodeID
	if !msg.GetWithDigests() {
		ctx.Respond(st)
		return
	}
	r.readWith(ctx, false, func() proto.Message {
		d, err := r.engine.Digest(context.Background())
		if err != nil {
			st.Error = err.Error()
			return st
		}
		st.AppliedIndex, st.Digests, st.Digest = d.AppliedIndex, d.Families, d.Combined
		return st
	}, func(err error) proto.Message { st.Error = err.Error(); return st })
}
