package replica

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

func (r *replicaActor) onSetFaultInjection(ctx actor.Context, msg *messages.SetFaultInjectionRequest) {
	if r.engine == nil || r.state == stopping {
		ctx.Respond(&messages.SetFaultInjectionResponse{Status: messages.StatusOf(errNotRunning)})
		return
	}
	err := r.engine.SetFaultInjection(context.Background(), msg.GetFaults())
	ctx.Respond(&messages.SetFaultInjectionResponse{Status: messages.StatusOf(err)})
}

// onLeaderChanged follows the leader this replica observes, and tells the
// supervisor. When leadership moves, the proposals and ReadIndex rounds in
// flight here — a leader that lost its lead, or a follower's requests
// forwarded to a leader that died — would complete only at their timeout:
// they are answered at once instead (fast failover), a write with its
// outcome unknown (TIMEOUT: it may yet commit, and a retry with its request
// id is safe), a read as UNAVAILABLE.
func (r *replicaActor) onLeaderChanged(ctx actor.Context, msg *messages.LeaderChanged) {
	prev := r.leader
	r.leader = msg
	if p := ctx.Parent(); p != nil {
		ctx.Send(p, msg)
	}
	moved := prev != nil && (prev.GetTerm() != msg.GetTerm() || prev.GetHasLeader() != msg.GetHasLeader() || prev.GetLeaderId() != msg.GetLeaderId())
	if moved && r.state == running && r.seq > 0 {
		r.node.writes.abandon(r.seq, errLeadershipMovedWrite)
		r.node.rounds.abandon(r.seq, errLeadershipMovedRead)
	}
}

var (
	errLeadershipMovedWrite = messages.Errorf(messages.StatusCode_TIMEOUT,
		"leadership moved while the write was in flight; its outcome is unknown: retry with the same request id")
	errLeadershipMovedRead = messages.Errorf(messages.StatusCode_UNAVAILABLE, "leadership moved during the read's ReadIndex round; retry")
)

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

// onBackup serves a backup's request on a read worker; one that opens a
// backup first completes a ReadIndex round, so the backup holds every write
// acknowledged before it began.
func (r *replicaActor) onBackup(ctx actor.Context, msg *messages.BackupRequest) {
	r.readWith(ctx, msg.GetBackupId() == 0, func() proto.Message {
		resp := r.engine.Backup(context.Background(), msg)
		resp.ReplicaId = r.cfg.ID
		return resp
	}, func(err error) proto.Message { return &messages.BackupResponse{Status: messages.StatusOf(err)} })
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
	st.Counters = r.node.counters.proto()
	if !msg.GetWithDigests() && !msg.GetWithSizes() {
		ctx.Respond(st)
		return
	}
	// Digests scan, and sizes read the Raft directory: on a read worker,
	// with what it needs taken here, on the actor's goroutine.
	engine, id, raftDir := r.engine, r.cfg.ID, r.cfg.raftDir()
	r.readWith(ctx, false, func() proto.Message {
		if msg.GetWithSizes() {
			if err := sizes(st, engine, id, raftDir); err != nil {
				st.Error = err.Error()
				return st
			}
		}
		if !msg.GetWithDigests() {
			return st
		}
		if kr := msg.GetDigestRange(); kr != nil {
			cf := kr.GetColumnFamily()
			if cf == "" {
				cf = kv.DefaultColumnFamily
			}
			rd, applied, err := engine.RangeDigest(context.Background(), cf, kr.GetBegin(), kr.GetEnd())
			if err != nil {
				st.Error = err.Error()
				return st
			}
			st.AppliedIndex, st.RangeDigest = applied, rd
			return st
		}
		d, err := engine.Digest(context.Background())
		if err != nil {
			st.Error = err.Error()
			return st
		}
		st.AppliedIndex, st.Digests, st.Digest = d.AppliedIndex, d.Families, d.Combined
		return st
	}, func(err error) proto.Message { st.Error = err.Error(); return st })
}

// sizes fills in st's column family sizes and the size of replica id's Raft
// log in raftDir; it runs on a read worker.
func sizes(st *messages.ReplicaStatus, engine *storage.Engine, id uint32, raftDir string) error {
	sizes, err := engine.Sizes()
	if err != nil {
		return err
	}
	logBytes, err := dirBytes(raftDir)
	if err != nil {
		return fmt.Errorf("replica %d: size of the Raft log: %w", id, err)
	}
	st.Sizes, st.RaftLogBytes = sizes, logBytes
	return nil
}
