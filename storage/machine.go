package storage

import (
	"bytes"
	"container/list"
	"fmt"
	"slices"
	"time"

	"github.com/linxGnu/grocksdb"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// machineState is the deterministic state the engine keeps beside the data:
// every replica holds the same one at the same applied index, because it is
// derived from the log alone (entries and the log times proposers stamped on
// them). It lives in memory and is persisted as one MachineDelta per applied
// batch (in that batch's write batch) plus, now and then, a
// MachineCheckpoint that replaces the deltas before it (keys.go).
type machineState struct {
	applied uint64
	maxTs   int64  // largest log time seen, unix nanoseconds
	horizon uint64 // commits whose read version is below it are too old

	// conflicts holds the write ranges of every write version above horizon,
	// ascending by version.
	conflicts deque[conflictEntry]

	sessions map[uint64]*session
	lru      *list.List // of *session, least recently used (lowest lastIndex) first
	// limits are the session limits of the latest session opened (nil:
	// none was; defaultSessionLimits apply). They come from the log, so
	// every replica forgets the same sessions at the same entry.
	limits *messages.SessionLimits
}

func newMachineState() *machineState {
	return &machineState{sessions: map[uint64]*session{}, lru: list.New()}
}

// defaultSessionLimits apply until the first session is opened.
var defaultSessionLimits = kv.DefaultLimits().SessionLimits()

// sessionLimits returns the limits in force: those of the latest session
// opened, a zero field taking the default.
func (s *machineState) sessionLimits() (maxSessions int, ttl time.Duration) {
	l := s.limits
	maxSessions, ttl = int(l.GetMaxSessions()), time.Duration(l.GetTtlNanos())
	if maxSessions <= 0 {
		maxSessions = int(defaultSessionLimits.GetMaxSessions())
	}
	if ttl <= 0 {
		ttl = time.Duration(defaultSessionLimits.GetTtlNanos())
	}
	return maxSessions, ttl
}

type conflictEntry struct {
	version uint64
	ts      int64
	writes  packedRanges
}

type keyRange struct {
	cf         string
	begin, end []byte // end nil: open
}

// empty reports whether r holds no key: begin == end (or begin after a
// closed end).
func (r keyRange) empty() bool {
	return r.end != nil && bytes.Compare(r.begin, r.end) >= 0
}

// intersects reports whether some key is in both r and o; an empty range
// intersects nothing.
func (r keyRange) intersects(o keyRange) bool {
	if r.cf != o.cf || r.empty() || o.empty() {
		return false
	}
	// [a,b) and [c,d) intersect iff a < d and c < b, with nil ends open.
	return (o.end == nil || bytes.Compare(r.begin, o.end) < 0) &&
		(r.end == nil || bytes.Compare(o.begin, r.end) < 0)
}

// contains reports whether key is in r.
func (r keyRange) contains(key []byte) bool {
	return bytes.Compare(r.begin, key) <= 0 && (r.end == nil || bytes.Compare(key, r.end) < 0)
}

func rangeOf(cf string, begin, end []byte) keyRange {
	if cf == "" {
		cf = kv.DefaultColumnFamily
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

// The state machine's rules. Every entry goes through begin, then (live
// only) its decision, then finish; replaying a persisted EntryEffect runs the
// same begin and finish, so the rebuilt state is the state the replica had.
// They change the state in place: when a batch's write fails, the engine
// reloads the state from storage, which the failed batch never reached.

// begin advances log time to the entry's timestamp and drops the conflict
// history that left the retention window.
func (s *machineState) begin(ts int64, window time.Duration) {
	s.maxTs = max(s.maxTs, ts)
	cutoff := s.maxTs - int64(window)
	n := 0
	for n < s.conflicts.Len() && s.conflicts.At(n).ts < cutoff {
		n++
	}
	if n == 0 {
		return
	}
	s.horizon = s.conflicts.At(n - 1).version
	s.conflicts.DropFront(n)
}

// finish records the entry's writes in the conflict history (empty ranges
// conflict with nothing, so they are left out), opens the session it opened
// or records its outcome in its session, then expires sessions.
func (s *machineState) finish(eff *messages.EntryEffect, writes []keyRange) {
	writes = slices.DeleteFunc(writes, keyRange.empty)
	if len(writes) > 0 {
		s.conflicts.PushBack(conflictEntry{version: eff.GetIndex(), ts: s.maxTs, writes: packRanges(writes)})
	}
	if o := eff.GetOpenedSession(); o != nil {
		s.openSession(eff.GetIndex(), o.GetLimits())
	}
	if rid := eff.GetRequestId(); rid.GetClientId() != 0 {
		s.recordSession(rid, eff.GetIndex(), eff.GetResult())
	}
	s.expireSessions()
	s.applied = eff.GetIndex()
}

// openSession starts the session opened at index (its client id) and
// adopts the limits it brought.
func (s *machineState) openSession(index uint64, limits *messages.SessionLimits) {
	s.limits = limits
	if old := s.sessions[index]; old != nil { // a session id from before sessions were opened through the log
		s.lru.Remove(old.elem)
	}
	sess := &session{client: index, lastActive: s.maxTs, lastIndex: index, results: map[uint64]*messages.CommandResult{}}
	sess.elem = s.lru.PushBack(sess)
	s.sessions[index] = sess
}

// recordSession stores res as the outcome of request rid and forgets the
// outcomes the client confirmed as answered. The session exists: decide
// refuses requests of unknown sessions (it is created here only when
// replaying effects persisted before sessions were opened through the log).
func (s *machineState) recordSession(rid *messages.RequestId, index uint64, res *messages.CommandResult) {
	client, seq := rid.GetClientId(), rid.GetSeq()
	sess := s.sessions[client]
	if sess == nil {
		sess = &session{client: client, results: map[uint64]*messages.CommandResult{}}
		s.sessions[client] = sess
		sess.elem = s.lru.PushBack(sess)
	} else {
		s.lru.MoveToBack(sess.elem)
	}
	sess.results[seq] = res
	// A client cannot have been answered for the request it is making; the
	// validator rejects such ids, and the cap keeps the state sane.
	if r := min(rid.GetRespondedTo(), seq-1); r > sess.respondedTo {
		// Walk whichever is shorter: the newly answered seqs, or the
		// remembered ones (a client that skipped far ahead).
		if r-sess.respondedTo <= uint64(len(sess.results)) {
			for q := sess.respondedTo + 1; q <= r; q++ {
				delete(sess.results, q)
			}
		} else {
			for q := range sess.results {
				if q <= r {
					delete(sess.results, q)
				}
			}
		}
		sess.respondedTo = r
	}
	sess.lastActive = s.maxTs
	sess.lastIndex = index
}

// expireSessions forgets sessions idle for longer than the session TTL in
// log time, and the least recently used beyond the session cap.
func (s *machineState) expireSessions() {
	maxSessions, ttl := s.sessionLimits()
	cutoff := s.maxTs - int64(ttl)
	for s.lru.Len() > 0 {
		front := s.lru.Front()
		sess := front.Value.(*session)
		if sess.lastActive >= cutoff && s.lru.Len() <= maxSessions {
			return
		}
		s.lru.Remove(front)
		delete(s.sessions, sess.client)
	}
}

// replay applies a persisted effect to the state.
func (s *machineState) replay(eff *messages.EntryEffect, cfg Config) {
	s.begin(eff.GetTimestampUnixNanos(), cfg.RetentionWindow)
	s.finish(eff, rangesFromProto(eff.GetWrites()))
}

// stateFromCheckpoint is the inverse of encodeCheckpoint, from the decoded
// message.
func stateFromCheckpoint(c *messages.MachineCheckpoint) *machineState {
	s := newMachineState()
	s.applied, s.maxTs, s.horizon, s.limits = c.GetIndex(), c.GetMaxTimestampUnixNanos(), c.GetHorizon(), c.GetSessionLimits()
	for _, ce := range c.GetConflicts() {
		s.conflicts.PushBack(conflictEntry{version: ce.GetVersion(), ts: ce.GetTimestampUnixNanos(), writes: packRanges(rangesFromProto(ce.GetWrites()))})
	}
	for _, st := range c.GetSessions() {
		sess := &session{client: st.GetClientId(), respondedTo: st.GetRespondedTo(), lastActive: st.GetLastActiveUnixNanos(),
			lastIndex: st.GetLastIndex(), results: map[uint64]*messages.CommandResult{}}
		for _, r := range st.GetResults() {
			sess.results[r.GetSeq()] = r.GetResult()
		}
		sess.elem = s.lru.PushBack(sess)
		s.sessions[sess.client] = sess
	}
	return s
}

// machineDigest is the deterministic encoding of the machine state, for
// comparing replicas.
func (s *machineState) digest() []byte {
	b, err := s.encodeCheckpoint(0)
	if err != nil {
		panic(fmt.Sprintf("storage: encode machine state: %v", err))
	}
	return b
}

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
	e.deltaBytes = 0
	err = e.scanInternal(prefixDelta, func(k, v []byte) error {
		d := &messages.MachineDelta{}
		if err := proto.Unmarshal(v, d); err != nil {
			return fmt.Errorf("storage: decode machine delta %x: %w: %v", k, messages.ErrInternal, err)
		}
		e.deltaBytes += len(v)
		for _, eff := range d.GetEffects() {
			if eff.GetIndex() > s.applied {
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
	// Scratch of one entry's execute: what it returns is copied (packed,
	// encoded) before the next entry runs.
	writes []keyRange
	muts   []*messages.Mutation
}

// applyEntry decides the outcome of one command at index and adds its writes
// to b. It is deterministic: it reads only the machine state and the command.
func (e *Engine) applyEntry(b *applyBatch, index uint64, cmd *messages.Command) *messages.CommandResult {
	s := e.sm
	eff := &messages.EntryEffect{Index: index, TimestampUnixNanos: cmd.GetTimestampUnixNanos()}
	b.effects = append(b.effects, eff)
	s.begin(eff.TimestampUnixNanos, e.cfg.RetentionWindow)
	res, writes := e.decide(b, index, cmd, eff)
	s.finish(eff, writes)
	return res
}

// decide returns the outcome of cmd and the ranges it wrote, and fills in
// what eff records of it.
func (e *Engine) decide(b *applyBatch, index uint64, cmd *messages.Command, eff *messages.EntryEffect) (*messages.CommandResult, []keyRange) {
	rid := cmd.GetRequestId()
	if op, ok := cmd.GetOp().(*messages.Command_OpenSession); ok {
		if err := e.validator.OpenSession(cmd); err != nil {
			return &messages.CommandResult{Status: messages.StatusOf(err)}, nil
		}
		eff.OpenedSession = &messages.OpenSession{Limits: op.OpenSession.GetLimits()}
		return &messages.CommandResult{Status: statusOK, Version: index}, nil
	}
	if client := rid.GetClientId(); client != 0 {
		sess := e.sm.sessions[client]
		if sess == nil {
			// Never opened, or forgotten: a retry of a request that was
			// applied before its session was forgotten must not apply again,
			// and nothing tells it from a new request. Refuse it.
			return &messages.CommandResult{Status: messages.StatusOf(messages.Errorf(messages.StatusCode_SESSION_EXPIRED,
				"client session %d is unknown: never opened, or forgotten (limits.max_sessions, limits.session_ttl); request %d was not applied — open a new session",
				client, rid.GetSeq()))}, nil
		}
		if rid.GetSeq() <= sess.respondedTo {
			return &messages.CommandResult{Status: messages.StatusOf(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT,
				"request %d of client %d was already answered", rid.GetSeq(), client))}, nil
		}
		if r, ok := sess.results[rid.GetSeq()]; ok {
			return r, nil // a retry: the first outcome, applied once
		}
	}
	res, writes, muts := e.execute(b, index, cmd)
	if len(writes) > 0 {
		eff.Writes = rangesToProto(writes)
		b.ops = append(b.ops, versionOps{version: index, muts: packMutations(muts)})
	}
	if rid.GetClientId() != 0 {
		eff.RequestId, eff.Result = rid, res
	}
	return res, writes
}

// execute runs the operation of cmd against the write batch and returns its
// result, the ranges it wrote and its effective mutations (the slices may be
// b's scratch, valid until the next entry).
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
		b.writes = append(b.writes[:0], e.writeMutation(b.wb, m))
		b.muts = append(b.muts[:0], m)
		return &messages.CommandResult{Status: statusOK, Version: index}, b.writes, b.muts
	case *messages.Command_AtomicCommit:
		c := op.AtomicCommit
		if err := e.validator.AtomicCommit(c); err != nil {
			return fail(err)
		}
		if err := e.checkConflicts(index, c); err != nil {
			return fail(err)
		}
		writes := b.writes[:0]
		for _, m := range c.GetMutations() {
			writes = append(writes, e.writeMutation(b.wb, m))
		}
		for _, r := range c.GetWriteConflictRanges() {
			writes = append(writes, rangeOf(r.GetColumnFamily(), r.GetBegin(), r.GetEnd()))
		}
		b.writes = writes
		return &messages.CommandResult{Status: statusOK, Version: index}, writes, c.GetMutations()
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
	for i := s.conflicts.Len() - 1; i >= 0 && s.conflicts.At(i).version > rv; i-- {
		for w := range s.conflicts.At(i).writes.all() {
			for _, r := range reads {
				if w.intersects(r) {
					return messages.Errorf(messages.StatusCode_CONFLICT, "read range [%q, %q) of %s was written at version %d, after read version %d",
						r.begin, r.end, r.cf, s.conflicts.At(i).version, rv)
				}
			}
		}
	}
	return nil
}

// untouched decides whether the state at version, for the keys of r,
// equals the state at the later version floor (the oldest version the
// replica's in-memory history serves): it does when version is inside the
// conflict history's window (not below the horizon: the history holds the
// ranges of every write after it) and no write in (version, floor]
// intersects r. Otherwise the read is TRANSACTION_TOO_OLD here.
func (e *Engine) untouched(version, floor uint64, r keyRange) error {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	s := e.sm
	if version < s.horizon {
		return messages.Errorf(messages.StatusCode_TRANSACTION_TOO_OLD, "version %d is older than the retention window (oldest readable %d)", version, max(floor, s.horizon))
	}
	first := s.conflicts.search(func(c *conflictEntry) bool { return c.version > version })
	for i := first; i < s.conflicts.Len() && s.conflicts.At(i).version <= floor; i++ {
		for w := range s.conflicts.At(i).writes.all() {
			if w.intersects(r) {
				return messages.Errorf(messages.StatusCode_TRANSACTION_TOO_OLD,
					"version %d is older than the retention window (oldest readable %d), and the range read was written since, at version %d",
					version, floor, s.conflicts.At(i).version)
			}
		}
	}
	return nil
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

// statusOK is the status of every successful result; results are never
// modified once made (ApplyBatch's contract), so they share it.
var statusOK = messages.StatusOf(nil)

// Entry is one committed command for ApplyBatch.
type Entry struct {
	// Index is the entry's log index; it becomes the version of its write.
	Index uint64
	Cmd   *messages.Command
}

// failWrite, when set (tests only), fails the RocksDB write of ApplyBatch,
// to exercise the rollback of the in-memory state.
var failWrite func() error

func (e *Engine) writeBatch(wb *grocksdb.WriteBatch) error {
	if failWrite != nil {
		if err := failWrite(); err != nil {
			return err
		}
	}
	return e.db.Write(e.wo, wb)
}

// minCheckpointBytes is the delta volume below which no checkpoint is
// written; above it, one is written once the deltas outgrow twice the last
// checkpoint, so loading replays at most about that much. Tests lower it.
var minCheckpointBytes = 1 << 20

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
	if deltaBytes > max(minCheckpointBytes, 2*e.ckptBytes) {
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
	if err := e.writeBatch(b.wb); err != nil {
		e.reloadMachineState()
		return nil, fmt.Errorf("storage: apply batch ending at %d: %w: %v", last, messages.ErrInternal, err)
	}
	e.deltaBytes, e.ckptBytes = deltaBytes, ckptBytes
	e.mvcc.appendBatch(b.ops, last, time.Now())
	e.publishApplied(last)
	return results, nil
}
