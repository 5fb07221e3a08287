package storage

import (
	"bytes"
	"container/list"
	"fmt"
	"slices"
	"time"

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
	owner       string // the identity that opened it
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
		s.openSession(eff.GetIndex(), o.GetLimits(), o.GetOwner())
	}
	if rid := eff.GetRequestId(); rid.GetClientId() != 0 {
		s.recordSession(rid, eff.GetIndex(), eff.GetResult())
	}
	s.expireSessions()
	s.applied = eff.GetIndex()
}

// openSession starts the session opened at index (its client id) and
// adopts the limits it brought.
func (s *machineState) openSession(index uint64, limits *messages.SessionLimits, owner string) {
	s.limits = limits
	if old := s.sessions[index]; old != nil { // a session id from before sessions were opened through the log
		s.lru.Remove(old.elem)
	}
	sess := &session{client: index, owner: owner, lastActive: s.maxTs, lastIndex: index, results: map[uint64]*messages.CommandResult{}}
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
		sess := &session{client: st.GetClientId(), owner: st.GetOwner(), respondedTo: st.GetRespondedTo(), lastActive: st.GetLastActiveUnixNanos(),
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

// outcome is what one entry does: its result, the mutations it applies (in
// order) and the ranges it writes. muts and writes may be the scratch of
// the batch, valid until the next entry's decide.
type outcome struct {
	res    *messages.CommandResult
	muts   []*messages.Mutation
	writes []keyRange
}

// scratch is reused by the entries of one batch, so that deciding an entry
// allocates only what it keeps.
type scratch struct {
	writes []keyRange
	muts   []*messages.Mutation
}

// decide decides the outcome of cmd at index from the machine state alone,
// and fills in what eff records of it: a session opened, a retry's first
// outcome, a refusal (an unknown or forgotten session, a request already
// answered, bad input, a conflict, a read version too old), or the
// mutations to apply. It changes nothing (finish does); v checks the input
// deterministically, as the router checked it before.
func (s *machineState) decide(index uint64, cmd *messages.Command, v *kv.Validator, eff *messages.EntryEffect, sc *scratch) outcome {
	refuse := func(err error) outcome { return outcome{res: &messages.CommandResult{Status: messages.StatusOf(err)}} }
	rid := cmd.GetRequestId()
	if op, ok := cmd.GetOp().(*messages.Command_OpenSession); ok {
		if err := v.OpenSession(cmd); err != nil {
			return refuse(err)
		}
		eff.OpenedSession = &messages.OpenSession{Limits: op.OpenSession.GetLimits(), Owner: op.OpenSession.GetOwner()}
		return outcome{res: &messages.CommandResult{Status: statusOK, Version: index}}
	}
	if client := rid.GetClientId(); client != 0 {
		sess := s.sessions[client]
		if sess == nil {
			// Never opened, or forgotten: a retry of a request that was
			// applied before its session was forgotten must not apply again,
			// and nothing tells it from a new request. Refuse it.
			return refuse(messages.Errorf(messages.StatusCode_SESSION_EXPIRED,
				"client session %d is unknown: never opened, or forgotten (limits.max_sessions, limits.session_ttl); request %d was not applied — open a new session",
				client, rid.GetSeq()))
		}
		if sess.owner != rid.GetOwner() {
			// Someone else's request ids: neither its outcome nor its
			// responded_to may touch the session.
			return refuse(messages.Errorf(messages.StatusCode_PERMISSION_DENIED,
				"client session %d belongs to another identity; request %d was not applied", client, rid.GetSeq()))
		}
		if rid.GetSeq() <= sess.respondedTo {
			return refuse(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "request %d of client %d was already answered", rid.GetSeq(), client))
		}
		if r, ok := sess.results[rid.GetSeq()]; ok {
			return outcome{res: r} // a retry: the first outcome, applied once
		}
	}
	o := s.execute(index, cmd, v, sc)
	if len(o.writes) > 0 {
		eff.Writes = rangesToProto(o.writes)
	}
	if rid.GetClientId() != 0 {
		eff.RequestId, eff.Result = rid, o.res
	}
	return o
}

// execute decides the operation of cmd: its result, and the mutations and
// ranges it writes.
func (s *machineState) execute(index uint64, cmd *messages.Command, v *kv.Validator, sc *scratch) outcome {
	refuse := func(err error) outcome { return outcome{res: &messages.CommandResult{Status: messages.StatusOf(err)}} }
	ok := &messages.CommandResult{Status: statusOK, Version: index}
	switch op := cmd.GetOp().(type) {
	case *messages.Command_Mutation:
		m := op.Mutation
		if err := v.Mutation(m); err != nil {
			return refuse(err)
		}
		sc.writes = append(sc.writes[:0], mutationRange(m))
		sc.muts = append(sc.muts[:0], m)
		return outcome{res: ok, muts: sc.muts, writes: sc.writes}
	case *messages.Command_AtomicCommit:
		c := op.AtomicCommit
		if err := v.AtomicCommit(c); err != nil {
			return refuse(err)
		}
		if err := s.checkConflicts(index, c); err != nil {
			return refuse(err)
		}
		writes := sc.writes[:0]
		for _, m := range c.GetMutations() {
			writes = append(writes, mutationRange(m))
		}
		for _, r := range c.GetWriteConflictRanges() {
			writes = append(writes, rangeOf(r.GetColumnFamily(), r.GetBegin(), r.GetEnd()))
		}
		sc.writes = writes
		return outcome{res: ok, muts: c.GetMutations(), writes: writes}
	case *messages.Command_Batch:
		return refuse(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "command at index %d: a batch inside a batch", index))
	default:
		return refuse(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "command at index %d has no operation", index))
	}
}

// mutationRange is the range a validated mutation writes.
func mutationRange(m *messages.Mutation) keyRange {
	if m.GetType() == messages.MutationType_CLEAR_RANGE {
		return rangeOf(m.GetColumnFamily(), m.GetKey(), m.GetEnd())
	}
	return rangeOf(m.GetColumnFamily(), m.GetKey(), pointEnd(m.GetKey()))
}

// checkConflicts decides whether commit c, at index, may commit: its read
// version must be below index and inside the window, and no write after it
// may intersect a read conflict range.
func (s *machineState) checkConflicts(index uint64, c *messages.AtomicCommit) error {
	rv := c.GetReadVersion()
	if rv >= index {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "read version %d is not below the commit version %d", rv, index)
	}
	reads := rangesFromProto(c.GetReadConflictRanges())
	if len(reads) == 0 {
		return nil
	}
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
func (s *machineState) untouched(version, floor uint64, r keyRange) error {
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

// statusOK is the status of every successful result; results are never
// modified once made (ApplyBatch's contract), so they share it.
var statusOK = messages.StatusOf(nil)
