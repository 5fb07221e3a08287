package storage

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// The state machine's rules are plain logic: these tests drive a
// machineState entry by entry, with neither RocksDB nor an actor system.

// ruleMachine is a machine state with the pieces one entry needs.
type ruleMachine struct {
	s      *machineState
	v      *kv.Validator
	window time.Duration
	sc     scratch
}

func newRuleMachine(window time.Duration) *ruleMachine {
	return &ruleMachine{s: newMachineState(), v: kv.NewValidator(kv.DefaultLimits(), []string{usersCF}), window: window}
}

// apply runs one entry through the rules, as applyEntry does, and returns
// its outcome.
func (m *ruleMachine) apply(index uint64, ts time.Duration, cmd *messages.Command) outcome {
	cmd.TimestampUnixNanos = int64(ts)
	eff := &messages.EntryEffect{Index: index, TimestampUnixNanos: cmd.TimestampUnixNanos}
	m.s.begin(eff.TimestampUnixNanos, m.window)
	o := m.s.decide(index, cmd, m.v, eff, &m.sc)
	m.s.finish(eff, o.writes)
	return o
}

func commitCmd(rv uint64, reads []*messages.KeyRange, muts ...*messages.Mutation) *messages.Command {
	return &messages.Command{Op: &messages.Command_AtomicCommit{AtomicCommit: &messages.AtomicCommit{ReadVersion: rv, ReadConflictRanges: reads, Mutations: muts}}}
}

func kr(begin, end string) *messages.KeyRange {
	return &messages.KeyRange{Begin: []byte(begin), End: []byte(end)}
}

func TestRulesSessions(t *testing.T) {
	m := newRuleMachine(time.Minute)
	limits := &messages.SessionLimits{MaxSessions: 2, TtlNanos: int64(time.Second)}
	code := func(o outcome) messages.StatusCode { return o.res.GetStatus().GetCode() }
	steps := []struct {
		name    string
		index   uint64
		at      time.Duration
		cmd     *messages.Command
		code    messages.StatusCode
		version uint64 // of an OK result
		writes  int
	}{
		{"a write of a session never opened", 1, 0, withID(setCmd("", "k", "v"), 1, 1, 0), messages.StatusCode_SESSION_EXPIRED, 0, 0},
		{"open session 2", 2, 0, openCmd(limits), messages.StatusCode_OK, 2, 0},
		{"its first write", 3, 0, withID(setCmd("", "k", "v"), 2, 1, 0), messages.StatusCode_OK, 3, 1},
		{"its retry: the first outcome, nothing written", 4, 0, withID(setCmd("", "k", "other"), 2, 1, 0), messages.StatusCode_OK, 3, 0},
		{"seq 2, confirming seq 1 answered", 5, 0, withID(setCmd("", "j", "v"), 2, 2, 1), messages.StatusCode_OK, 5, 1},
		{"a retry of the answered seq 1", 6, 0, withID(setCmd("", "k", "v"), 2, 1, 0), messages.StatusCode_INVALID_ARGUMENT, 0, 0},
		{"bad input is decided, and remembered", 7, 0, withID(setCmd("nosuch", "k", "v"), 2, 3, 2), messages.StatusCode_UNKNOWN_COLUMN_FAMILY, 0, 0},
		{"open session 8", 8, 0, openCmd(limits), messages.StatusCode_OK, 8, 0},
		{"open session 9: over the cap of 2, session 2 (least recently used) is forgotten", 9, 0, openCmd(limits), messages.StatusCode_OK, 9, 0},
		{"session 2's retry is refused, never applied", 10, 0, withID(setCmd("nosuch", "k", "v"), 2, 3, 2), messages.StatusCode_SESSION_EXPIRED, 0, 0},
		{"session 9 writes", 11, 500 * time.Millisecond, withID(setCmd("", "k", "v"), 9, 1, 0), messages.StatusCode_OK, 11, 1},
		{"an entry a second of log time later: session 8, idle since 0, is forgotten after it", 12, 1200 * time.Millisecond, setCmd("", "t", "v"), messages.StatusCode_OK, 12, 1},
		{"session 8's write", 13, 1200 * time.Millisecond, withID(setCmd("", "k", "v"), 8, 1, 0), messages.StatusCode_SESSION_EXPIRED, 0, 0},
		{"session 9, active at 500 ms, is not", 15, 1200 * time.Millisecond, withID(setCmd("", "k", "w"), 9, 2, 1), messages.StatusCode_OK, 15, 1},
		{"opening a session with a request id", 14, 1200 * time.Millisecond, withID(openCmd(limits), 9, 3, 2), messages.StatusCode_INVALID_ARGUMENT, 0, 0},
	}
	for _, st := range steps {
		o := m.apply(st.index, st.at, st.cmd)
		if code(o) != st.code || (st.code == messages.StatusCode_OK && o.res.GetVersion() != st.version) || len(o.writes) != st.writes {
			t.Fatalf("%s: %v with %d writes; want %v at version %d with %d", st.name, o.res, len(o.writes), st.code, st.version, st.writes)
		}
	}
	if maxSessions, ttl := m.s.sessionLimits(); maxSessions != 2 || ttl != time.Second {
		t.Fatalf("limits in force %d, %v; want those the sessions were opened with", maxSessions, ttl)
	}
}

// TestRulesSessionOwners: a session belongs to the identity that opened it.
// Another identity's request under it is refused PERMISSION_DENIED before
// anything else — it neither learns the first outcome of a request, nor
// writes, nor moves the session's responded_to — and the owner's own
// requests go on as before, also after a checkpoint round trip.
func TestRulesSessionOwners(t *testing.T) {
	m := newRuleMachine(time.Minute)
	code := func(o outcome) messages.StatusCode { return o.res.GetStatus().GetCode() }
	owned := func(cmd *messages.Command, owner string) *messages.Command {
		cmd.RequestId.Owner = owner
		return cmd
	}
	open := openCmd(nil)
	open.GetOpenSession().Owner = "CN=alice"
	steps := []struct {
		name    string
		cmd     *messages.Command
		code    messages.StatusCode
		version uint64
	}{
		{"alice opens session 1", open, messages.StatusCode_OK, 1},
		{"alice's seq 1", owned(withID(setCmd("", "k", "alice"), 1, 1, 0), "CN=alice"), messages.StatusCode_OK, 2},
		{"mallory replays alice's seq 1: no first outcome for her", owned(withID(setCmd("", "k", "mallory"), 1, 1, 0), "CN=mallory"), messages.StatusCode_PERMISSION_DENIED, 0},
		{"mallory takes alice's next seq first", owned(withID(setCmd("", "k", "mallory"), 1, 2, 1), "CN=mallory"), messages.StatusCode_PERMISSION_DENIED, 0},
		{"an anonymous caller tries it with a huge responded_to", owned(withID(setCmd("", "k", "anon"), 1, 1<<40, 1<<40-1), ""), messages.StatusCode_PERMISSION_DENIED, 0},
		{"alice's seq 2 is hers, and applied", owned(withID(setCmd("", "k", "alice2"), 1, 2, 1), "CN=alice"), messages.StatusCode_OK, 6},
		{"alice's retry of seq 2: its first outcome", owned(withID(setCmd("", "k", "alice2"), 1, 2, 1), "CN=alice"), messages.StatusCode_OK, 6},
	}
	for i, st := range steps {
		o := m.apply(uint64(i+1), 0, st.cmd)
		if code(o) != st.code || (st.code == messages.StatusCode_OK && o.res.GetVersion() != st.version) {
			t.Fatalf("%s: %v; want %v at version %d", st.name, o.res, st.code, st.version)
		}
		if st.code != messages.StatusCode_OK && len(o.writes) != 0 {
			t.Fatalf("%s: refused, and wrote %d ranges", st.name, len(o.writes))
		}
	}
	if sess := m.s.sessions[1]; sess.respondedTo != 1 || sess.owner != "CN=alice" {
		t.Fatalf("alice's session after the strangers: responded_to %d, owner %q", sess.respondedTo, sess.owner)
	}
	b, err := m.s.encodeCheckpoint(0)
	if err != nil {
		t.Fatal(err)
	}
	var c messages.MachineCheckpoint
	if err := proto.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	m.s = stateFromCheckpoint(&c)
	if o := m.apply(8, 0, owned(withID(setCmd("", "k", "m"), 1, 3, 2), "CN=mallory")); code(o) != messages.StatusCode_PERMISSION_DENIED {
		t.Fatalf("after a checkpoint round trip, mallory's request: %v", o.res)
	}
	if o := m.apply(9, 0, owned(withID(setCmd("", "k", "a3"), 1, 3, 2), "CN=alice")); code(o) != messages.StatusCode_OK {
		t.Fatalf("after a checkpoint round trip, alice's request: %v", o.res)
	}
}

func TestRulesConflictsAndWindow(t *testing.T) {
	m := newRuleMachine(time.Second)
	code := func(o outcome) messages.StatusCode { return o.res.GetStatus().GetCode() }
	m.apply(1, 0, setCmd("", "a", "1"))
	m.apply(2, 100*time.Millisecond, setCmd("", "m", "1"))
	m.apply(3, 100*time.Millisecond, &messages.Command{Op: &messages.Command_Mutation{Mutation: &messages.Mutation{Type: messages.MutationType_CLEAR_RANGE, Key: []byte("q"), End: []byte("q")}}})
	m.apply(4, 100*time.Millisecond, commitCmd(0, nil, &messages.Mutation{Type: messages.MutationType_SET, Key: []byte("zz"), Value: []byte("x")}))
	for _, c := range []struct {
		name  string
		index uint64
		cmd   *messages.Command
		code  messages.StatusCode
	}{
		{"a read range written after the read version", 5, commitCmd(1, []*messages.KeyRange{kr("l", "n")}), messages.StatusCode_CONFLICT},
		{"a read range written only before it", 6, commitCmd(2, []*messages.KeyRange{kr("a", "b")}), messages.StatusCode_OK},
		{"a read range holding only an empty clear", 7, commitCmd(2, []*messages.KeyRange{kr("p", "r")}), messages.StatusCode_OK},
		{"an empty read range over a written key", 8, commitCmd(1, []*messages.KeyRange{kr("m", "m")}), messages.StatusCode_OK},
		{"the same range in another family", 9, commitCmd(1, []*messages.KeyRange{{ColumnFamily: usersCF, Begin: []byte("l"), End: []byte("n")}}), messages.StatusCode_OK},
		{"a read version at the commit version", 10, commitCmd(10, []*messages.KeyRange{kr("a", "b")}), messages.StatusCode_INVALID_ARGUMENT},
		{"no read ranges never conflict", 11, commitCmd(1, nil, &messages.Mutation{Type: messages.MutationType_SET, Key: []byte("m"), Value: []byte("y")}), messages.StatusCode_OK},
	} {
		if o := m.apply(c.index, 200*time.Millisecond, c.cmd); code(o) != c.code {
			t.Fatalf("%s: %v, want %v", c.name, o.res, c.code)
		}
	}
	// The conflict history is decided in log time: versions 1..4 leave
	// the window once an entry 1 s of log time after them is applied.
	if err := m.s.untouched(1, 11, rangeOf("", []byte("a"), []byte("b"))); err != nil {
		t.Fatalf("a unwritten since version 1: %v", err)
	}
	if err := m.s.untouched(1, 11, rangeOf("", []byte("m"), []byte("n"))); !errors.Is(err, messages.ErrTransactionTooOld) {
		t.Fatalf("m written at 2 and 11: %v, want TRANSACTION_TOO_OLD", err)
	}
	if o := m.apply(12, 1500*time.Millisecond, commitCmd(3, []*messages.KeyRange{kr("a", "b")})); code(o) != messages.StatusCode_TRANSACTION_TOO_OLD {
		t.Fatalf("a read version behind the window: %v", o.res)
	}
	if err := m.s.untouched(1, 11, rangeOf("", []byte("a"), []byte("b"))); !errors.Is(err, messages.ErrTransactionTooOld) {
		t.Fatalf("a version behind the window's horizon %d: %v", m.s.horizon, err)
	}
	if m.s.horizon != 11 || m.s.conflicts.Len() != 0 {
		t.Fatalf("horizon %d with %d versions kept; want 11 and none", m.s.horizon, m.s.conflicts.Len())
	}
}
