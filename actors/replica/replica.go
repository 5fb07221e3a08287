package replica

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// The replica actor is a thin shell: Receive hands each message to an onXxx
// handler — its lifecycle (lifecycle.go), the writes it proposes
// (writes.go), the reads it serves (reads.go), its administration
// (admin.go) and the membership changes it makes (membership.go). Nothing
// in it blocks: Raft and storage are reached through owned goroutines that
// answer by message or straight to the requester.

type state int

const (
	starting state = iota
	running
	stopping
)

type replicaActor struct {
	cfg       Config
	owner     *sync.WaitGroup // the group's: waits for this replica's goroutines
	log       *slog.Logger
	state     state
	engine    *storage.Engine
	node      *node
	executor  *actor.PID
	leader    *messages.LeaderChanged // the latest this replica observed
	start     *start                  // the start in progress or done; nil if none ran
	failure   string                  // why the replica is failing, if it is
	removed   bool                    // it stops because it was removed from the membership
	replacing map[uint32]bool         // replicas a membership change of this replica is replacing now
	batch     writeBatch              // writes gathered for the next entry (group commit)
	seq       uint64                  // of the last request handed to a waiter
}

// Props returns the props of replica cfg.ID. owner tracks the goroutines the
// replica starts for its start and stop, so the group can wait for them.
// When the replica has stopped and released its storage it sends
// *messages.ReplicaDown to its parent; when it is serving, *messages.ReplicaUp.
func Props(cfg Config, owner *sync.WaitGroup) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		log := cfg.logger()
		return &replicaActor{cfg: cfg, owner: owner, log: log.With("component", "replica", "replica", cfg.ID)}
	})
}

// HandleFailure is the replica's supervision strategy for its executor
// (protoactor asks the actor itself before its props): every failure is
// escalated to the replica's own supervisor, because a replica whose
// executor broke must stop, not retry; the reason is kept, so the
// replica's ReplicaDown says why. (A storage failure does not come this way:
// the executor answers it, and the state machine tells the replica once —
// see onApplyFailed.)
func (r *replicaActor) HandleFailure(_ *actor.ActorSystem, s actor.Supervisor, _ *actor.PID, _ *actor.RestartStatistics, reason, msg any) {
	r.failure = fmt.Sprint(reason)
	s.EscalateFailure(reason, msg)
}

func (r *replicaActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		r.onStarted(ctx)
	case *storageOpened:
		r.onStorageOpened(ctx, msg)
	case *nodeStarted:
		r.onNodeStarted(ctx, msg)
	case *applyFailed:
		r.onApplyFailed(msg)
	case *nodeUnloaded:
		r.onNodeUnloaded(ctx)
	case *memberReplaced:
		delete(r.replacing, msg.id)
	case *proposalDone:
		r.onProposalDone(ctx)
	case *actor.Stopping:
		r.onStopping(ctx)
	case *actor.Stopped, *actor.Restarting, *actor.Terminated:
	case *messages.SetFaultInjectionRequest:
		r.onSetFaultInjection(ctx, msg)
	case *messages.ReplicaStatusRequest:
		r.onStatus(ctx, msg)
	case *messages.BackupRequest:
		r.onBackup(ctx, msg)
	case *messages.TransferLeader:
		r.onTransferLeader(ctx, msg)
	case *messages.ReplaceMember:
		r.onReplaceMember(ctx, msg)
	case *messages.LeaderChanged:
		r.onLeaderChanged(ctx, msg)
	case *messages.SnapshotEvent: // from dragonboat's system events: for the supervisor's watchers
		if p := ctx.Parent(); p != nil {
			ctx.Send(p, msg)
		}
	case proto.Message:
		switch op := messages.OpOf(msg); {
		case op == nil || op.Kind == messages.Admin:
		case op.Kind == messages.Membership:
			r.onMembership(ctx, op, msg)
			return
		default:
			r.serve(ctx, op, msg)
			return
		}
		r.log.Warn("replica: unexpected message", "type", fmt.Sprintf("%T", msg))
	default:
		r.log.Warn("replica: unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

var errNotRunning = messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica is not running")
