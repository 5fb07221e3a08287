package replica

import (
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/lni/dragonboat/v3"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// serve serves a request of the KV API as the operation table says:
// writes are proposed, reads served after a ReadIndex round unless stale,
// snapshot reads at once when this replica has applied their version.
func (r *replicaActor) serve(ctx actor.Context, op *messages.Op, req proto.Message) {
	switch op.Kind {
	case messages.Write:
		r.propose(ctx, op, req)
	case messages.SnapshotRead:
		r.read(ctx, op, req, r.snapshotLinearizable(req.(interface{ GetVersion() uint64 }).GetVersion()))
	default:
		r.read(ctx, op, req, !op.Stale(req))
	}
}

// propose proposes a write without blocking (the router validated it, and
// the state machine checks it again, deterministically, as it applies);
// the write waiter answers the sender when the entry is applied here.
func (r *replicaActor) propose(ctx actor.Context, op *messages.Op, req proto.Message) {
	if r.state != running {
		ctx.Respond(op.Response(errNotRunning))
		return
	}
	cmd := op.Command(req, messages.Stamp{TimestampUnixNanos: time.Now().UnixNano(), SessionLimits: r.cfg.Storage.Limits.SessionLimits()})
	data, err := proto.Marshal(cmd)
	if err != nil {
		ctx.Respond(op.Response(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "encode command: %v", err)))
		return
	}
	if r.node.writes.full() {
		ctx.Respond(op.Response(errOverloaded))
		return
	}
	rs, err := r.node.nh.Propose(r.node.session, data, r.cfg.Raft.ProposalTimeout)
	if err != nil {
		ctx.Respond(op.Response(raftError("propose", err)))
		return
	}
	// The actor is the waiter's only producer, so there is room.
	r.node.writes.add(pending{rs: rs, reply: ctx.Sender(), done: func(res dragonboat.RequestResult) proto.Message {
		return op.Result(writeOutcome(res))
	}})
}

// writeOutcome turns a proposal's result into its version or error.
func writeOutcome(res dragonboat.RequestResult) (uint64, error) {
	switch {
	case res.Completed():
		return decodeResult(res.GetResult())
	case res.Timeout():
		return 0, messages.Errorf(messages.StatusCode_TIMEOUT, "proposal timed out; its outcome is unknown: retry with the same request id")
	case res.Dropped():
		return 0, messages.Errorf(messages.StatusCode_UNAVAILABLE, "proposal dropped: no leader")
	case res.Terminated():
		return 0, messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica stopped; the outcome is unknown: retry with the same request id")
	default:
		return 0, messages.Errorf(messages.StatusCode_UNAVAILABLE, "proposal rejected or aborted")
	}
}

// raftError maps an error returned at once by dragonboat.
func raftError(op string, err error) error {
	switch {
	case errors.Is(err, dragonboat.ErrSystemBusy):
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "%s: raft busy: %v", op, err)
	case errors.Is(err, dragonboat.ErrTimeoutTooSmall), errors.Is(err, dragonboat.ErrPayloadTooBig):
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "%s: %v", op, err)
	default:
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "%s: %v", op, err)
	}
}
