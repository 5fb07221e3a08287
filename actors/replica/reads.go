package replica

import (
	"context"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/lni/dragonboat/v3"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// read serves a read request from the engine, after a ReadIndex round when
// linearizable.
func (r *replicaActor) read(ctx actor.Context, op *messages.Op, req proto.Message, linearizable bool) {
	r.readWith(ctx, linearizable, func() proto.Message { return r.engine.Serve(context.Background(), req) },
		func(err error) proto.Message { return op.Response(err) })
}

// readWith serves a read: linearizable reads first complete a ReadIndex
// round, then every read runs on the read workers.
func (r *replicaActor) readWith(ctx actor.Context, linearizable bool, run func() proto.Message, fail func(error) proto.Message) {
	if r.state != running {
		ctx.Respond(fail(errNotRunning))
		return
	}
	if !linearizable {
		if !r.node.reads.add(pending{reply: ctx.Sender(), done: func(dragonboat.RequestResult) proto.Message { return run() }}) {
			ctx.Respond(fail(errOverloaded))
		}
		return
	}
	if r.node.rounds.full() {
		ctx.Respond(fail(errOverloaded))
		return
	}
	rs, err := r.node.nh.ReadIndex(r.cfg.ClusterID, r.cfg.Raft.ProposalTimeout)
	if err != nil {
		ctx.Respond(fail(raftError("read index", err)))
		return
	}
	reply, root := ctx.Sender(), ctx.ActorSystem().Root
	r.seq++
	r.node.rounds.add(pending{rs: rs, reply: reply, seq: r.seq, done: func(res dragonboat.RequestResult) proto.Message {
		if !res.Completed() {
			return fail(readIndexError(res))
		}
		return run()
	}, abandon: func(err error) {
		if reply != nil {
			root.Send(reply, fail(err))
		}
	}})
}

func readIndexError(res dragonboat.RequestResult) error {
	switch {
	case res.Timeout():
		return messages.Errorf(messages.StatusCode_TIMEOUT, "read index round timed out")
	case res.Dropped():
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "read index dropped: no leader")
	default:
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "read index round did not complete")
	}
}

// snapshotLinearizable decides how a snapshot read at version is served: a
// version this replica has applied is served at once; a newer one only after
// a ReadIndex round, which brings this replica up to every version committed
// before the read started, so a version still beyond it was never committed
// (the engine answers INVALID_ARGUMENT).
func (r *replicaActor) snapshotLinearizable(version uint64) bool {
	return version > r.engine.AppliedIndex()
}
