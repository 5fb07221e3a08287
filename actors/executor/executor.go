// Package executor holds the executor actor: the only writer of its
// replica's RocksDB. It receives *messages.ApplyBatch from its replica's
// state machine (dragonboat's apply goroutine) and answers
// *messages.ApplyBatchResult with one result per entry, in order, after
// applying the whole batch as one write batch together with the applied
// index.
//
// A batch that cannot be decoded or written is fail-stop: the executor
// answers with the failure, having applied none of it, and the replica's
// state machine stops the replica (FailStop is its reason). The executor
// never skips an entry.
package executor

import (
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// FailStop is the failure reason of a replica whose storage failed to apply
// a committed batch.
type FailStop struct {
	Replica uint32
	Err     error
}

func (f *FailStop) Error() string {
	return fmt.Sprintf("replica %d fail-stop: %v", f.Replica, f.Err)
}

func (f *FailStop) Unwrap() error { return f.Err }

// Observer is told about every applied batch, after it is durable in the
// write batch; tests use it to record the apply order and count
// applications. It runs inside the executor and must not block.
type Observer func(replica uint32, entries []storage.Entry, results []*messages.CommandResult)

// Apply decodes and applies one batch. It is the executor's whole logic,
// kept apart from the actor shell.
func Apply(engine *storage.Engine, batch *messages.ApplyBatch) ([]storage.Entry, []*messages.CommandResult, error) {
	entries := make([]storage.Entry, len(batch.GetEntries()))
	for i, le := range batch.GetEntries() {
		cmd := &messages.Command{}
		if err := proto.Unmarshal(le.GetCmd(), cmd); err != nil {
			return nil, nil, fmt.Errorf("executor: committed entry %d cannot be decoded (corruption): %w: %v", le.GetIndex(), messages.ErrInternal, err)
		}
		entries[i] = storage.Entry{Index: le.GetIndex(), Cmd: cmd}
	}
	results, err := engine.ApplyBatch(entries)
	if err != nil {
		return nil, nil, err
	}
	return entries, results, nil
}

type executorActor struct {
	replica uint32
	engine  *storage.Engine
	observe Observer
	log     *slog.Logger
}

// Props returns the props of the executor of replica, writing to engine.
// observe may be nil.
func Props(replica uint32, engine *storage.Engine, observe Observer, log *slog.Logger) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &executorActor{replica: replica, engine: engine, observe: observe, log: log}
	})
}

func (a *executorActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *messages.ApplyBatch:
		a.onApplyBatch(ctx, msg)
	case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
	default:
		a.log.Warn("executor: unexpected message", "replica", a.replica, "type", fmt.Sprintf("%T", msg))
	}
}

func (a *executorActor) onApplyBatch(ctx actor.Context, msg *messages.ApplyBatch) {
	entries, results, err := Apply(a.engine, msg)
	if err != nil {
		a.log.Error("executor: batch not applied; the replica fail-stops", "replica", a.replica, "err", err)
		ctx.Respond(&messages.ApplyBatchResult{Status: messages.StatusOf(err)})
		return
	}
	if a.observe != nil {
		a.observe(a.replica, entries, results)
	}
	ctx.Respond(&messages.ApplyBatchResult{Status: messages.StatusOf(nil), Results: results})
}
