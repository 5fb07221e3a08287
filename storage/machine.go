package storage

import (
	"bytes"
	"container/list"
	"fmt"
	"time"

	"github.com/linxGnu/grocksdb"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// machineState is the deterministic state the engine keeps beside the data:
// every replica holds the same one at the same applied index, because it is
// derived from the log alone (entries and the log times proposers stamped on
// them) and persisted in the same write batches as the data.
type machineState struct {
	applied uint64
	maxTs   int64  // largest log time seen, unix nanoseconds
	horizon uint64 // commits whose read version is below it are too old

	// conflicts holds the write ranges of every write version above horizon,
	// ascending by version.
	conflicts []conflictEntry

	sessions map[uint64]*session
	lru      *list.List // of *session, least recently used (lowest lastIndex) first
}

type conflictEntry struct {
	version uint64
	ts      int64
	writes  []keyRange
}

type keyRange struct {
	cf         string
	begin, end []byte // end nil: open
}

func (r keyRange) intersects(o keyRange) bool {
	if r.cf != o.cf {
		return false
	}
	// [a,b) and [c,d) intersect iff a < d and c < b, with nil ends open.
	return (o.end == nil || bytes.Compare(r.begin, o.end) < 0) &&
		(r.end == nil || bytes.Compare(o.begin, r.end) < 0)
}

func rangeOf(cf string, begin, end []byte) keyRange {
	if cf == "" {
		cf = DefaultColumnFamily
	}
	if len(end) == 0 {
		end = nil
	}
	return keyRange{cf: cf, begin: begin, end: end}
}

// session is one client's exactly-once state: the outcomes of its requests
// that it has not yet confirmed as answered.
type session struct {
	client      uint64
	respondedTo uint64
	lastActive  int64
	lastIndex   uint64
	results     map[uint64]*messages.CommandResult
	elem        *list.Element
}

// loadMachineState reads the machine state from the internal column family.
// A snapshot recovery that did not finish is rolled back to an empty state
// first, so the replica asks for the snapshot again.
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
	s := &machineState{sessions: map[uint64]*session{}, lru: list.New()}
	get := func(k []byte) ([]byte, error) {
		v, err := e.db.GetCF(e.ro, e.internal, k)
		if err != nil {
			return nil, fmt.Errorf("storage: read %s: %w", k, err)
		}
		defer v.Free()
		return bytes.Clone(v.Data()), nil
	}
	var b []byte
	if b, err = get(keyApplied); err != nil {
		return nil, err
	}
	s.applied = u64(b)
	if b, err = get(keyMaxTs); err != nil {
		return nil, err
	}
	s.maxTs = int64(u64(b))
	if b, err = get(keyHorizon); err != nil {
		return nil, err
	}
	s.horizon = u64(b)

	err = e.scanInternal(prefixConflict, func(k, v []byte) error {
		var rec messages.ConflictRecord
		if err := proto.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("storage: decode conflict record %x: %w", k, err)
		}
		s.conflicts = append(s.conflicts, conflictEntry{
			version: u64(k[len(prefixConflict):]),
			ts:      rec.GetTimestampUnixNanos(),
			writes:  rangesFromProto(rec.GetWrites()),
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	var order []*session
	err = e.scanInternal(prefixHeader, func(k, v []byte) error {
		var h messages.SessionHeader
		if err := proto.Unmarshal(v, &h); err != nil {
			return fmt.Errorf("storage: decode session header %x: %w", k, err)
		}
		ss := &session{
			client:      u64(k[len(prefixHeader):]),
			respondedTo: h.GetRespondedTo(),
			lastActive:  h.GetLastActiveUnixNanos(),
			lastIndex:   h.GetLastIndex(),
			results:     map[uint64]*messages.CommandResult{},
		}
		s.sessions[ss.client] = ss
		order = append(order, ss)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = e.scanInternal(prefixResult, func(k, v []byte) error {
		if len(k) != len(prefixResult)+16 {
			return fmt.Errorf("storage: malformed session result key %x", k)
		}
		client := u64(k[len(prefixResult) : len(prefixResult)+8])
		seq := u64(k[len(prefixResult)+8:])
		ss, ok := s.sessions[client]
		if !ok {
			return fmt.Errorf("storage: session result %x without a session", k)
		}
		r := &messages.CommandResult{}
		if err := proto.Unmarshal(v, r); err != nil {
			return fmt.Errorf("storage: decode session result %x: %w", k, err)
		}
		ss.results[seq] = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortSessions(order)
	for _, ss := range order {
		ss.elem = s.lru.PushBack(ss)
	}
	return s, nil
}

func sortSessions(ss []*session) {
	// insertion order by lastIndex, which is unique per touch
	for i := 1; i < len(ss); i++ {
		for j := i; j > 0 && ss[j].lastIndex < ss[j-1].lastIndex; j-- {
			ss[j], ss[j-1] = ss[j-1], ss[j]
		}
	}
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

func rangesFromProto(rs []*messages.KeyRange) []keyRange {
	out := make([]keyRange, len(rs))
	for i, r := range rs {
		out[i] = rangeOf(r.GetColumnFamily(), r.GetBegin(), r.GetEnd())
	}
	return out
}

func rangesToProto(rs []keyRange) []*messages.KeyRange {
	out := make([]*messages.KeyRange, len(rs))
	for i, r := range rs {
		out[i] = &messages.KeyRange{ColumnFamily: r.cf, Begin: r.begin, End: r.end}
	}
	return out
}

// applyBatch is one ApplyBatch in progress: the write batch and the undo log
// that rolls the in-memory state back if the write fails.
type applyBatch struct {
	wb   *grocksdb.WriteBatch
	undo []func()
	ops  []versionOps // the writes, for snapshot reads
	hzn  bool         // the horizon moved
}

func (b *applyBatch) onUndo(f func()) { b.undo = append(b.undo, f) }

func (b *applyBatch) rollback() {
	for i := len(b.undo) - 1; i >= 0; i-- {
		b.undo[i]()
	}
}

// applyEntry decides the outcome of one command at index and adds its writes
// to b. It is deterministic: it reads only s and the command.
func (e *Engine) applyEntry(b *applyBatch, index uint64, cmd *messages.Command) *messages.CommandResult {
	s := e.sm
	if ts := cmd.GetTimestampUnixNanos(); ts > s.maxTs {
		old := s.maxTs
		s.maxTs = ts
		b.onUndo(func() { s.maxTs = old })
	}
	e.advanceHorizon(b)

	rid := cmd.GetRequestId()
	client := rid.GetClientId()
	var sess *session
	if client != 0 {
		sess = s.sessions[client]
		if sess != nil {
			if rid.GetSeq() <= sess.respondedTo {
				return &messages.CommandResult{Status: messages.StatusOf(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT,
					"request %d of client %d was already answered", rid.GetSeq(), client))}
			}
			if r, ok := sess.results[rid.GetSeq()]; ok {
				return r // a retry: the first outcome, applied once
			}
		}
	}

	res, writes, muts := e.execute(b, index, cmd)
	if len(writes) > 0 {
		entry := conflictEntry{version: index, ts: s.maxTs, writes: writes}
		s.conflicts = append(s.conflicts, entry)
		b.onUndo(func() { s.conflicts = s.conflicts[:len(s.conflicts)-1] })
		rec, err := proto.Marshal(&messages.ConflictRecord{TimestampUnixNanos: entry.ts, Writes: rangesToProto(writes)})
		if err != nil {
			panic(fmt.Sprintf("storage: encode conflict record: %v", err)) // only a programming error gets here
		}
		b.wb.PutCF(e.internal, conflictKey(index), rec)
		b.ops = append(b.ops, versionOps{version: index, muts: muts})
	}
	if client != 0 {
		e.recordSession(b, sess, rid, index, res)
	}
	e.expireSessions(b)
	return res
}

// execute runs the operation of cmd against the write batch and returns its
// result, the ranges it wrote and its effective mutations.
func (e *Engine) execute(b *applyBatch, index uint64, cmd *messages.Command) (*messages.CommandResult, []keyRange, []*messages.Mutation) {
	fail := func(err error) (*messages.CommandResult, []keyRange, []*messages.Mutation) {
		return &messages.CommandResult{Status: messages.StatusOf(err)}, nil, nil
	}
	switch op := cmd.GetOp().(type) {
	case *messages.Command_Mutation:
		m := op.Mutation
		if err := e.validator.Mutation(m); err != nil {
			return fail(err)
		}
		w := e.writeMutation(b.wb, m)
		return &messages.CommandResult{Status: messages.StatusOf(nil), Version: index}, []keyRange{w}, []*messages.Mutation{m}
	case *messages.Command_AtomicCommit:
		c := op.AtomicCommit
		if err := e.validator.AtomicCommit(c); err != nil {
			return fail(err)
		}
		if err := e.checkConflicts(index, c); err != nil {
			return fail(err)
		}
		writes := make([]keyRange, 0, len(c.GetMutations())+len(c.GetWriteConflictRanges()))
		for _, m := range c.GetMutations() {
			writes = append(writes, e.writeMutation(b.wb, m))
		}
		writes = append(writes, rangesFromProto(c.GetWriteConflictRanges())...)
		return &messages.CommandResult{Status: messages.StatusOf(nil), Version: index}, writes, c.GetMutations()
	default:
		return fail(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "command at index %d has no operation", index))
	}
}

// writeMutation adds a validated mutation to wb and returns the range it
// writes.
func (e *Engine) writeMutation(wb *grocksdb.WriteBatch, m *messages.Mutation) keyRange {
	h, _ := e.handle(m.GetColumnFamily()) // validated: the family exists
	switch m.GetType() {
	case messages.MutationType_SET:
		wb.PutCF(h, m.GetKey(), m.GetValue())
		return rangeOf(m.GetColumnFamily(), m.GetKey(), pointEnd(m.GetKey()))
	case messages.MutationType_DELETE:
		wb.DeleteCF(h, m.GetKey())
		return rangeOf(m.GetColumnFamily(), m.GetKey(), pointEnd(m.GetKey()))
	default: // CLEAR_RANGE
		wb.DeleteRangeCF(h, m.GetKey(), upperBound(m.GetEnd()))
		return rangeOf(m.GetColumnFamily(), m.GetKey(), m.GetEnd())
	}
}

// checkConflicts decides whether commit c, at index, may commit: its read
// version must be below index and inside the window, and no write after it
// may intersect a read conflict range.
func (e *Engine) checkConflicts(index uint64, c *messages.AtomicCommit) error {
	rv := c.GetReadVersion()
	if rv >= index {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "read version %d is not below the commit version %d", rv, index)
	}
	reads := rangesFromProto(c.GetReadConflictRanges())
	if len(reads) == 0 {
		return nil
	}
	s := e.sm
	if rv < s.horizon {
		return messages.Errorf(messages.StatusCode_TRANSACTION_TOO_OLD, "read version %d is older than the retention window (oldest %d)", rv, s.horizon)
	}
	for i := len(s.conflicts) - 1; i >= 0 && s.conflicts[i].version > rv; i-- {
		for _, w := range s.conflicts[i].writes {
			for _, r := range reads {
				if w.intersects(r) {
					return messages.Errorf(messages.StatusCode_CONFLICT, "read range [%q, %q) of %s was written at version %d, after read version %d",
						r.begin, r.end, r.cf, s.conflicts[i].version, rv)
				}
			}
		}
	}
	return nil
}

// advanceHorizon drops conflict history that left the retention window, in
// log time.
func (e *Engine) advanceHorizon(b *applyBatch) {
	s := e.sm
	cutoff := s.maxTs - int64(e.cfg.RetentionWindow)
	n := 0
	for n < len(s.conflicts) && s.conflicts[n].ts < cutoff {
		n++
	}
	if n == 0 {
		return
	}
	oldConflicts, oldHorizon := s.conflicts, s.horizon
	s.horizon = s.conflicts[n-1].version
	s.conflicts = s.conflicts[n:]
	b.hzn = true
	b.onUndo(func() { s.conflicts, s.horizon = oldConflicts, oldHorizon })
}

// recordSession stores res as the outcome of request rid and forgets the
// outcomes the client confirmed as answered.
func (e *Engine) recordSession(b *applyBatch, sess *session, rid *messages.RequestId, index uint64, res *messages.CommandResult) {
	s := e.sm
	client := rid.GetClientId()
	if sess == nil {
		sess = &session{client: client, results: map[uint64]*messages.CommandResult{}}
		s.sessions[client] = sess
		sess.elem = s.lru.PushBack(sess)
		b.onUndo(func() {
			s.lru.Remove(sess.elem)
			delete(s.sessions, client)
		})
	} else {
		old := *sess
		oldResults := make(map[uint64]*messages.CommandResult, len(sess.results))
		for k, v := range sess.results {
			oldResults[k] = v
		}
		prev := sess.elem.Prev()
		s.lru.MoveToBack(sess.elem)
		b.onUndo(func() {
			*sess = old
			sess.results = oldResults
			if prev == nil {
				s.lru.MoveToFront(sess.elem)
			} else {
				s.lru.MoveAfter(sess.elem, prev)
			}
		})
	}
	sess.results[rid.GetSeq()] = res
	enc, err := proto.Marshal(res)
	if err != nil {
		panic(fmt.Sprintf("storage: encode session result: %v", err))
	}
	b.wb.PutCF(e.internal, resultKey(client, rid.GetSeq()), enc)
	// A client cannot have been answered for the request it is making; the
	// validator rejects such ids, and the cap keeps the range below sane.
	if r := min(rid.GetRespondedTo(), rid.GetSeq()-1); r > sess.respondedTo {
		for seq := range sess.results {
			if seq <= r {
				delete(sess.results, seq)
			}
		}
		b.wb.DeleteRangeCF(e.internal, resultKey(client, sess.respondedTo+1), resultKey(client, r+1))
		sess.respondedTo = r
	}
	sess.lastActive = s.maxTs
	sess.lastIndex = index
	hdr, err := proto.Marshal(&messages.SessionHeader{RespondedTo: sess.respondedTo, LastActiveUnixNanos: sess.lastActive, LastIndex: index})
	if err != nil {
		panic(fmt.Sprintf("storage: encode session header: %v", err))
	}
	b.wb.PutCF(e.internal, headerKey(client), hdr)
}

// expireSessions forgets sessions idle for longer than the TTL in log time,
// and the least recently used beyond MaxSessions.
func (e *Engine) expireSessions(b *applyBatch) {
	s := e.sm
	cutoff := s.maxTs - int64(e.cfg.SessionTTL)
	for s.lru.Len() > 0 {
		front := s.lru.Front()
		sess := front.Value.(*session)
		if sess.lastActive >= cutoff && s.lru.Len() <= e.cfg.MaxSessions {
			return
		}
		s.lru.Remove(front)
		delete(s.sessions, sess.client)
		b.onUndo(func() {
			sess.elem = s.lru.PushFront(sess)
			s.sessions[sess.client] = sess
		})
		b.wb.DeleteCF(e.internal, headerKey(sess.client))
		start := resultKey(sess.client, 0)
		b.wb.DeleteRangeCF(e.internal, start, prefixEnd(start[:len(prefixResult)+8]))
	}
}

// Entry is one committed command for ApplyBatch.
type Entry struct {
	// Index is the entry's log index; it becomes the version of its write.
	Index uint64
	Cmd   *messages.Command
}

// ApplyBatch applies committed entries, in order, as one RocksDB write batch
// together with the applied index, and returns one result per entry in the
// same order. Indexes must be increasing and above AppliedIndex. The outcome
// of each entry depends only on the entries applied before it, so every
// replica decides the same.
//
// When it returns an error nothing was written and the in-memory state is
// unchanged; in the replicated group that stops the replica (fail-stop).
// ApplyBatch is called by one goroutine at a time (the executor); it must not
// be called after Close. It keeps the entries' commands (snapshot reads serve
// their mutations for the retention window), so the caller must not modify
// them afterwards.
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
	if err := e.faults.beforeWrite(len(entries)); err != nil {
		return nil, err
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
	b := &applyBatch{wb: grocksdb.NewWriteBatch()}
	defer b.wb.Destroy()
	results := make([]*messages.CommandResult, len(entries))
	for i, en := range entries {
		results[i] = e.applyEntry(b, en.Index, en.Cmd)
	}
	b.wb.PutCF(e.internal, keyApplied, putU64(last))
	b.wb.PutCF(e.internal, keyMaxTs, putU64(uint64(s.maxTs)))
	if b.hzn {
		b.wb.PutCF(e.internal, keyHorizon, putU64(s.horizon))
		b.wb.DeleteRangeCF(e.internal, conflictKey(0), conflictKey(s.horizon+1))
	}
	if err := e.db.Write(e.wo, b.wb); err != nil {
		b.rollback()
		return nil, fmt.Errorf("storage: apply batch ending at %d: %w: %v", last, messages.ErrInternal, err)
	}
	s.applied = last
	e.mvcc.appendBatch(b.ops, last, time.Now())
	e.publishApplied(last)
	return results, nil
}
