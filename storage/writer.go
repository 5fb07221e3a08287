package storage

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// The standalone write path. Writers hand their command to one owned
// goroutine that drains every pending command into one ApplyBatch (group
// commit), so concurrent writers share one RocksDB write and one fsync.

// maxGroup bounds the commands of one group commit.
const maxGroup = 256

type writeReq struct {
	cmd  *messages.Command
	res  *messages.CommandResult
	err  error
	done chan struct{} // closed when res or err is set
}

type groupWriter struct {
	e     *Engine
	reqs  chan *writeReq
	stopC chan struct{} // closed by stop
	doneC chan struct{} // closed when the goroutine has exited
}

func newGroupWriter(e *Engine) *groupWriter {
	w := &groupWriter{
		e:     e,
		reqs:  make(chan *writeReq, maxGroup),
		stopC: make(chan struct{}),
		doneC: make(chan struct{}),
	}
	go w.run()
	return w
}

func (w *groupWriter) run() {
	defer close(w.doneC)
	batch := make([]*writeReq, 0, maxGroup)
	entries := make([]Entry, 0, maxGroup)
	for {
		select {
		case <-w.stopC:
			w.failPending()
			return
		case r := <-w.reqs:
			batch = append(batch[:0], r)
		}
	drain:
		for len(batch) < maxGroup {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		entries = entries[:0]
		next := w.e.applied.Load()
		for _, r := range batch {
			next++
			entries = append(entries, Entry{Index: next, Cmd: r.cmd})
		}
		results, err := w.e.applyBatch(entries)
		for i, r := range batch {
			if err != nil {
				r.err = err
			} else {
				r.res = results[i]
			}
			close(r.done)
		}
	}
}

func (w *groupWriter) failPending() {
	for {
		select {
		case r := <-w.reqs:
			r.err = ErrClosed
			close(r.done)
		default:
			return
		}
	}
}

// stop ends the goroutine, failing what is still queued, and waits for it.
func (w *groupWriter) stop() {
	close(w.stopC)
	<-w.doneC
}

// commit runs cmd through the group writer and returns its commit version.
// Called with the engine entered (not closed).
func (e *Engine) commit(ctx context.Context, cmd *messages.Command) (uint64, error) {
	if e.cfg.Replicated {
		return 0, messages.Errorf(messages.StatusCode_INTERNAL, "storage: engine is fed by the replicated group; write through the group")
	}
	if err := e.validator.Command(cmd); err != nil {
		return 0, err
	}
	e.writerOnce.Do(func() { e.writer = newGroupWriter(e) })
	// The command outlives the call: it may still be queued when ctx ends,
	// and ApplyBatch keeps its mutations for snapshot reads. Arguments are
	// not retained, so it must not share the caller's slices.
	cmd = proto.Clone(cmd).(*messages.Command)
	cmd.TimestampUnixNanos = time.Now().UnixNano()
	r := &writeReq{cmd: cmd, done: make(chan struct{})}
	select {
	case e.writer.reqs <- r:
	case <-ctx.Done():
		return 0, contextError(ctx.Err()) // not queued: nothing was written
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		// Queued: it may still commit. A retry with the same request id
		// gets the first outcome.
		return 0, messages.Errorf(messages.StatusCode_TIMEOUT, "write outcome unknown: %v", ctx.Err())
	}
	if r.err != nil {
		return 0, r.err
	}
	return r.res.GetVersion(), r.res.GetStatus().Err()
}

func (e *Engine) write(ctx context.Context, cmd *messages.Command) (uint64, error) {
	done, err := e.enter(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	return e.commit(ctx, cmd)
}

func mutationCommand(o Options, m *messages.Mutation) *messages.Command {
	m.ColumnFamily = o.ColumnFamily
	return &messages.Command{RequestId: o.RequestID, Op: &messages.Command_Mutation{Mutation: m}}
}

// Put implements Database.
func (e *Engine) Put(ctx context.Context, key, value []byte, opts ...Option) (uint64, error) {
	o := ApplyOptions(opts)
	return e.write(ctx, mutationCommand(o, &messages.Mutation{Type: messages.MutationType_SET, Key: key, Value: value}))
}

// Delete implements Database.
func (e *Engine) Delete(ctx context.Context, key []byte, opts ...Option) (uint64, error) {
	o := ApplyOptions(opts)
	return e.write(ctx, mutationCommand(o, &messages.Mutation{Type: messages.MutationType_DELETE, Key: key}))
}

// ClearRange implements Database.
func (e *Engine) ClearRange(ctx context.Context, begin, end []byte, opts ...Option) (uint64, error) {
	o := ApplyOptions(opts)
	return e.write(ctx, mutationCommand(o, &messages.Mutation{Type: messages.MutationType_CLEAR_RANGE, Key: begin, End: end}))
}

// AtomicCommit implements Database. Mutations and conflict ranges that name
// no column family use WithColumnFamily's (default "default").
func (e *Engine) AtomicCommit(ctx context.Context, commit *messages.AtomicCommit, opts ...Option) (uint64, error) {
	o := ApplyOptions(opts)
	if commit == nil {
		return 0, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "atomic commit is missing")
	}
	return e.write(ctx, &messages.Command{RequestId: o.RequestID, Op: &messages.Command_AtomicCommit{AtomicCommit: DefaultFamily(commit, o.ColumnFamily)}})
}

// OpenSession implements Database: the session's client id is the version
// of the write that opens it.
func (e *Engine) OpenSession(ctx context.Context) (uint64, error) {
	return e.write(ctx, &messages.Command{Op: &messages.Command_OpenSession{OpenSession: &messages.OpenSession{Limits: e.cfg.Limits.SessionLimits()}}})
}

// DefaultFamily returns commit with cf filled in where a mutation or conflict
// range names no column family (a copy when anything changes).
func DefaultFamily(commit *messages.AtomicCommit, cf string) *messages.AtomicCommit {
	if cf == "" || cf == DefaultColumnFamily {
		return commit
	}
	c := proto.Clone(commit).(*messages.AtomicCommit)
	for _, m := range c.Mutations {
		if m.ColumnFamily == "" {
			m.ColumnFamily = cf
		}
	}
	for _, rs := range [][]*messages.KeyRange{c.ReadConflictRanges, c.WriteConflictRanges} {
		for _, r := range rs {
			if r.ColumnFamily == "" {
				r.ColumnFamily = cf
			}
		}
	}
	return c
}
