package storage

import (
	"bytes"
	"fmt"
	"time"

	"github.com/linxGnu/grocksdb"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// The engine's side of the state machine: it applies the outcomes the rules
// (machine.go) decide as one RocksDB write batch, together with the batch's
// machine-state delta and the applied index, and loads the machine state
// back from storage.

// loadMachineState rebuilds the machine state from the internal column
// family: the checkpoint, then every delta after it. A snapshot recovery that
// did not finish is rolled back to an empty state first, so the replica asks
// for the snapshot again.
func loadMachineState(e *Engine) (*machineState, error) {
	rec, err := e.db.GetCF(e.ro, e.internal, keyRecovering)
	if err != nil {
		return nil, fmt.Errorf("storage: read recovery marker: %w", err)
	}
	interrupted := rec.Exists()
	rec.Free()
	if interrupted {
		if err := e.wipe(); err != nil {
			return nil, err
		}
	}
	s := newMachineState()
	ck, err := e.db.GetCF(e.ro, e.internal, keyCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("storage: read machine checkpoint: %w", err)
	}
	e.ckptBytes = ck.Size()
	if ck.Exists() {
		c := &messages.MachineCheckpoint{}
		if err := proto.Unmarshal(ck.Data(), c); err != nil {
			ck.Free()
			return nil, fmt.Errorf("storage: decode machine checkpoint: %w: %v", messages.ErrInternal, err)
		}
		s = stateFromCheckpoint(c)
	}
	ck.Free()
	base := s.applied // the checkpoint's: deltas after it replay
	e.deltaBytes = 0
	err = e.scanInternal(prefixDelta, func(k, v []byte) error {
		d := &messages.MachineDelta{}
		if err := proto.Unmarshal(v, d); err != nil {
			return fmt.Errorf("storage: decode machine delta %x: %w: %v", k, messages.ErrInternal, err)
		}
		e.deltaBytes += len(v)
		for _, eff := range d.GetEffects() {
			if eff.GetIndex() > base { // the commands of a batch share one index
				s.replay(eff, e.cfg)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	applied, err := e.db.GetCF(e.ro, e.internal, keyApplied)
	if err != nil {
		return nil, fmt.Errorf("storage: read applied index: %w", err)
	}
	defer applied.Free()
	if got := u64(applied.Data()); got != s.applied {
		return nil, fmt.Errorf("storage: applied index %d, machine state at %d: %w", got, s.applied, messages.ErrInternal)
	}
	return s, nil
}

// scanInternal calls f for every internal key with prefix, in order.
func (e *Engine) scanInternal(prefix []byte, f func(k, v []byte) error) error {
	ro := grocksdb.NewDefaultReadOptions()
	defer ro.Destroy()
	ro.SetIterateUpperBound(prefixEnd(prefix))
	it := e.db.NewIteratorCF(ro, e.internal)
	defer it.Close()
	for it.Seek(prefix); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		err := f(bytes.Clone(k.Data()), bytes.Clone(v.Data()))
		k.Free()
		v.Free()
		if err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("storage: scan %s: %w", prefix, err)
	}
	return nil
}

// applyBatch is one ApplyBatch in progress.
type applyBatch struct {
	wb      *grocksdb.WriteBatch
	effects []*messages.EntryEffect // for this batch's MachineDelta
	ops     []versionOps            // the writes, for snapshot reads
	scratch scratch
}

// applyEntry decides the outcome of the command of one entry at index and
// adds its writes to b: a batch's commands one after the other, at the same
// version, each seeing the writes of those before it. It is deterministic:
// the rules read only the machine state and the commands.
func (e *Engine) applyEntry(b *applyBatch, index uint64, cmd *messages.Command) *messages.CommandResult {
	batch := cmd.GetBatch()
	if batch == nil {
		return e.applyCommand(b, index, cmd)
	}
	res := &messages.CommandResult{Status: statusOK, Version: index, Batch: make([]*messages.CommandResult, len(batch.GetCommands()))}
	for i, c := range batch.GetCommands() {
		if c.GetOpenSession() != nil {
			// A session's client id is its entry's index: two sessions in
			// one entry would share it.
			res.Batch[i] = &messages.CommandResult{Status: messages.StatusOf(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT,
				"command %d of entry %d: a session is opened by an entry of its own", i, index))}
			continue
		}
		res.Batch[i] = e.applyCommand(b, index, c)
	}
	return res
}

// applyCommand decides one client command at version index and adds its
// writes to b.
func (e *Engine) applyCommand(b *applyBatch, index uint64, cmd *messages.Command) *messages.CommandResult {
	s := e.sm
	eff := &messages.EntryEffect{Index: index, TimestampUnixNanos: cmd.GetTimestampUnixNanos()}
	b.effects = append(b.effects, eff)
	s.begin(eff.TimestampUnixNanos, e.cfg.RetentionWindow)
	o := s.decide(index, cmd, e.validator, eff, &b.scratch)
	for _, m := range o.muts {
		e.writeMutation(b.wb, m)
	}
	if len(o.writes) > 0 {
		b.ops = append(b.ops, versionOps{version: index, muts: packMutations(o.muts)})
	}
	s.finish(eff, o.writes)
	return o.res
}

// writeMutation adds a validated mutation to wb.
func (e *Engine) writeMutation(wb *grocksdb.WriteBatch, m *messages.Mutation) {
	h, _ := e.handle(m.GetColumnFamily()) // validated: the family exists
	switch m.GetType() {
	case messages.MutationType_SET:
		wb.PutCF(h, m.GetKey(), m.GetValue())
	case messages.MutationType_DELETE:
		wb.DeleteCF(h, m.GetKey())
	default: // CLEAR_RANGE
		wb.DeleteRangeCF(h, m.GetKey(), upperBound(m.GetEnd()))
	}
}

// untouched is machineState.untouched under the apply lock: the machine
// state changes as batches are applied.
func (e *Engine) untouched(version, floor uint64, r keyRange) error {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	return e.sm.untouched(version, floor, r)
}

// reloadMachineState replaces the machine state, which a batch whose write
// failed has already changed, with the state persisted before that batch.
// If even that fails, only reopening the engine helps.
func (e *Engine) reloadMachineState() {
	sm, err := loadMachineState(e)
	if err != nil {
		e.broken.Store(true)
		return
	}
	e.sm = sm
}

// Entry is one committed command for ApplyBatch.
type Entry struct {
	// Index is the entry's log index; it becomes the version of its write.
	Index uint64
	Cmd   *messages.Command
}

// ApplyBatch applies committed entries, in order, as one RocksDB write batch
// together with the applied index and the batch's machine-state delta, and
// returns one result per entry in the same order. Indexes must be increasing
// and above AppliedIndex. The outcome of each entry depends only on the
// entries applied before it, so every replica decides the same.
//
// When it returns an error nothing was written and the in-memory state is
// unchanged; in the replicated group that stops the replica (fail-stop).
// ApplyBatch is called by one goroutine at a time (the executor); it must not
// be called after Close. It keeps the entries' commands (snapshot reads serve
// their mutations for the retention window) and the results it returns
// (exactly-once answers), so the caller must not modify either.
func (e *Engine) ApplyBatch(entries []Entry) ([]*messages.CommandResult, error) {
	done, err := e.enter(nil)
	if err != nil {
		return nil, err
	}
	defer done()
	return e.applyBatch(entries)
}

func (e *Engine) applyBatch(entries []Entry) ([]*messages.CommandResult, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	s := e.sm
	last := s.applied
	for _, en := range entries {
		if en.Index <= last {
			return nil, fmt.Errorf("storage: apply batch: index %d does not follow %d: %w", en.Index, last, messages.ErrInternal)
		}
		last = en.Index
	}
	b := &applyBatch{wb: grocksdb.NewWriteBatch(), effects: make([]*messages.EntryEffect, 0, len(entries)), ops: make([]versionOps, 0, len(entries))}
	defer b.wb.Destroy()
	results := make([]*messages.CommandResult, len(entries))
	for i, en := range entries {
		results[i] = e.applyEntry(b, en.Index, en.Cmd)
	}
	delta, err := proto.Marshal(&messages.MachineDelta{Effects: b.effects})
	if err != nil {
		e.reloadMachineState()
		return nil, fmt.Errorf("storage: encode machine delta: %w: %v", messages.ErrInternal, err)
	}
	deltaBytes, ckptBytes := e.deltaBytes+len(delta), e.ckptBytes
	if deltaBytes > max(e.cfg.MinCheckpointBytes, 2*e.ckptBytes) {
		ckpt, err := s.encodeCheckpoint(e.ckptBytes + e.ckptBytes/4)
		if err != nil {
			e.reloadMachineState()
			return nil, fmt.Errorf("storage: encode machine checkpoint: %w: %v", messages.ErrInternal, err)
		}
		b.wb.PutCF(e.internal, keyCheckpoint, ckpt)
		b.wb.DeleteRangeCF(e.internal, prefixDelta, prefixEnd(prefixDelta))
		deltaBytes, ckptBytes = 0, len(ckpt)
	} else {
		b.wb.PutCF(e.internal, deltaKey(last), delta)
	}
	b.wb.PutCF(e.internal, keyApplied, putU64(last))
	if err := e.write(b.wb, len(entries)); err != nil {
		e.reloadMachineState()
		return nil, fmt.Errorf("storage: apply batch ending at %d: %w", last, err)
	}
	e.deltaBytes, e.ckptBytes = deltaBytes, ckptBytes
	e.mvcc.appendBatch(b.ops, last, time.Now())
	e.publishApplied(last)
	return results, nil
}

// write makes wb, a batch's one RocksDB write, of n entries. Injected
// storage faults fail it here, after the batch was decided, as a failing
// disk would.
func (e *Engine) write(wb *grocksdb.WriteBatch, n int) error {
	if err := e.faults.beforeWrite(n); err != nil {
		return err
	}
	if err := e.db.Write(e.wo, wb); err != nil {
		return fmt.Errorf("%w: %v", messages.ErrInternal, err)
	}
	return nil
}
