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

// Group commit. A write that arrives while none of the replica's entries
// waits for an answer is proposed at once, alone: one client pays nothing.
// Writes that arrive while MaxProposalsInFlight entries are in flight are
// gathered, and the next entry carries them all (a CommandBatch), as soon as
// an entry is answered — or at once when MaxEntryWrites or MaxEntryBytes
// are reached. No timer waits.

// writeBatch is the writes gathered for the next entry.
type writeBatch struct {
	writes   []queuedWrite
	bytes    int
	inFlight int // entries proposed and not yet answered
}

// queuedWrite is one write waiting for its entry.
type queuedWrite struct {
	op    *messages.Op
	cmd   *messages.Command
	reply *actor.PID
}

// proposalDone is the write waiter's note that one of the replica's entries
// was answered.
type proposalDone struct{}

// propose proposes a write without blocking (the router validated it, and
// the state machine checks it again, deterministically, as it applies),
// alone or gathered with others; the write waiter answers the sender when
// its entry is applied here.
func (r *replicaActor) propose(ctx actor.Context, op *messages.Op, req proto.Message) {
	if r.state != running {
		ctx.Respond(op.Response(errNotRunning))
		return
	}
	w := queuedWrite{op: op, reply: ctx.Sender(),
		cmd: op.Command(req, messages.Stamp{TimestampUnixNanos: time.Now().UnixNano(), SessionLimits: r.cfg.Storage.Limits.SessionLimits()})}
	b, rc := &r.batch, r.cfg.Raft
	// A session is opened by an entry of its own (its id is the index).
	if (len(b.writes) == 0 && b.inFlight < rc.MaxProposalsInFlight) || w.cmd.GetOpenSession() != nil {
		r.proposeEntry(ctx, []queuedWrite{w})
		return
	}
	b.writes = append(b.writes, w)
	b.bytes += proto.Size(w.cmd)
	if len(b.writes) >= rc.MaxEntryWrites || b.bytes >= rc.MaxEntryBytes {
		r.flushWrites(ctx)
	}
}

// onProposalDone proposes the writes gathered meanwhile, if any, now that an
// entry is out of the way.
func (r *replicaActor) onProposalDone(ctx actor.Context) {
	r.batch.inFlight--
	if len(r.batch.writes) > 0 && r.batch.inFlight < r.cfg.Raft.MaxProposalsInFlight && r.state == running {
		r.flushWrites(ctx)
	}
}

// flushWrites proposes the gathered writes as one entry.
func (r *replicaActor) flushWrites(ctx actor.Context) {
	ws := r.batch.writes
	r.batch.writes, r.batch.bytes = nil, 0
	r.proposeEntry(ctx, ws)
}

// failWrites answers the gathered writes with err: they were never proposed.
func (r *replicaActor) failWrites(ctx actor.Context, err error) {
	for _, w := range r.batch.writes {
		if w.reply != nil {
			ctx.Send(w.reply, w.op.Response(err))
		}
	}
	r.batch.writes, r.batch.bytes = nil, 0
}

// proposeEntry proposes ws as one entry — a lone write as its own command,
// several as a CommandBatch — and has the write waiter answer each.
func (r *replicaActor) proposeEntry(ctx actor.Context, ws []queuedWrite) {
	fail := func(err error) {
		r.node.counters.proposalsDropped.Add(1)
		for _, w := range ws {
			if w.reply != nil {
				ctx.Send(w.reply, w.op.Response(err))
			}
		}
	}
	cmd := ws[0].cmd
	if len(ws) > 1 {
		batch := &messages.CommandBatch{Commands: make([]*messages.Command, len(ws))}
		for i, w := range ws {
			batch.Commands[i] = w.cmd
		}
		cmd = &messages.Command{Op: &messages.Command_Batch{Batch: batch}}
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		fail(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "encode command: %v", err))
		return
	}
	if r.node.writes.full() {
		fail(errOverloaded)
		return
	}
	rs, err := r.node.nh.Propose(r.node.session, data, r.cfg.Raft.ProposalTimeout)
	if err != nil {
		fail(raftError("propose", err))
		return
	}
	r.batch.inFlight++
	r.seq++
	self, root, batched, counts := ctx.Self(), ctx.ActorSystem().Root, len(ws) > 1, &r.node.counters
	// The actor is the waiter's only producer, so there is room.
	r.node.writes.add(pending{rs: rs, seq: r.seq, deliver: func(res dragonboat.RequestResult) {
		if !res.Completed() {
			counts.proposalsDropped.Add(1)
		}
		answers := entryOutcomes(res, ws, batched)
		for i, w := range ws {
			if w.reply != nil {
				root.Send(w.reply, answers[i])
			}
		}
		root.Send(self, &proposalDone{})
	}, abandon: func(err error) {
		for _, w := range ws {
			if w.reply != nil {
				root.Send(w.reply, w.op.Response(err))
			}
		}
		root.Send(self, &proposalDone{})
	}})
}

// entryOutcomes turns an entry's result into the answers of its writes.
func entryOutcomes(res dragonboat.RequestResult, ws []queuedWrite, batched bool) []proto.Message {
	out := make([]proto.Message, len(ws))
	if !batched {
		out[0] = ws[0].op.Result(writeOutcome(res))
		return out
	}
	var results []*messages.CommandResult
	var err error
	if _, err = writeOutcome(res); err == nil {
		results, err = decodeBatch(res.GetResult())
		if err == nil && len(results) != len(ws) {
			err = messages.Errorf(messages.StatusCode_INTERNAL, "an entry of %d writes answered %d results", len(ws), len(results))
		}
	}
	for i, w := range ws {
		if err != nil {
			out[i] = w.op.Response(err)
			continue
		}
		out[i] = w.op.Result(results[i].GetVersion(), results[i].GetStatus().Err())
	}
	return out
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
