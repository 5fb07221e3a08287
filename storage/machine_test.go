package storage

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// replicatedConfig is testConfig for an engine fed only through ApplyBatch.
func replicatedConfig(dir string) Config {
	cfg := testConfig(dir)
	cfg.Replicated = true
	return cfg
}

func TestApplyBatchExplicitIndexes(t *testing.T) {
	ctx := context.Background()
	cfg := replicatedConfig(t.TempDir())
	e := openEngine(t, cfg)

	res := mustApply(t, e, []Entry{
		{Index: 10, Cmd: setCmd("", "a", "1")},
		{Index: 11, Cmd: setCmd(usersCF, "b", "2")},
		{Index: 15, Cmd: setCmd("", "a", "3")},
	})
	for i, want := range []uint64{10, 11, 15} {
		if err := res[i].GetStatus().Err(); err != nil || res[i].GetVersion() != want {
			t.Fatalf("result %d = %v, want OK at version %d", i, res[i], want)
		}
	}
	if got := e.AppliedIndex(); got != 15 {
		t.Fatalf("AppliedIndex = %d, want 15", got)
	}
	if rv, err := e.GetReadVersion(ctx); err != nil || rv != 15 {
		t.Fatalf("GetReadVersion = %d, %v; want 15", rv, err)
	}
	for _, c := range []struct {
		version uint64
		want    string
	}{{10, "1"}, {11, "1"}, {12, "1"}, {14, "1"}, {15, "3"}} {
		if v, ok, err := e.SnapshotRead(ctx, []byte("a"), c.version); err != nil || !ok || string(v) != c.want {
			t.Fatalf("SnapshotRead(a, %d) = %q, %v, %v; want %q", c.version, v, ok, err, c.want)
		}
	}
	if _, err := e.Put(ctx, []byte("x"), []byte("y")); err == nil {
		t.Fatal("Put on a replicated engine succeeded")
	}

	digest := mustDigest(t, e)
	internal := internalDigest(t, e)
	bad := []struct {
		name  string
		batch []Entry
	}{
		{"repeats the applied index", []Entry{{Index: 15, Cmd: setCmd("", "a", "bad")}}},
		{"below the applied index", []Entry{{Index: 3, Cmd: setCmd("", "a", "bad")}}},
		{"not increasing inside the batch", []Entry{{Index: 16, Cmd: setCmd("", "a", "bad")}, {Index: 16, Cmd: setCmd("", "c", "bad")}}},
		{"decreasing inside the batch", []Entry{{Index: 17, Cmd: setCmd("", "a", "bad")}, {Index: 16, Cmd: setCmd("", "c", "bad")}}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			if _, err := e.ApplyBatch(c.batch); err == nil {
				t.Fatal("ApplyBatch accepted the batch")
			}
			if got := e.AppliedIndex(); got != 15 {
				t.Fatalf("AppliedIndex = %d after a refused batch", got)
			}
			if d := digestDiff(mustDigest(t, e), digest); d != "" {
				t.Fatalf("refused batch changed the data: %s", d)
			}
			if got := internalDigest(t, e); !bytes.Equal(got, internal) {
				t.Fatal("refused batch changed the internal state")
			}
		})
	}
	if res, err := e.ApplyBatch(nil); err != nil || res != nil {
		t.Fatalf("empty ApplyBatch = %v, %v", res, err)
	}

	e = reopen(t, e, cfg)
	if got := e.AppliedIndex(); got != 15 {
		t.Fatalf("AppliedIndex after reopen = %d, want 15", got)
	}
	if d := digestDiff(mustDigest(t, e), digest); d != "" {
		t.Fatalf("digest after reopen: %s", d)
	}
	res = mustApply(t, e, []Entry{{Index: 20, Cmd: setCmd("", "z", "after reopen")}})
	if res[0].GetVersion() != 20 {
		t.Fatalf("entry 20 got %v", res[0])
	}
}

func TestApplyBatchExactlyOnce(t *testing.T) {
	const client = 7
	cfg := replicatedConfig(t.TempDir())
	e := openEngine(t, cfg)

	// Seq 1 twice in one batch, then seq 2 whose retry in the same batch
	// would write another value: the first outcome wins each time.
	res := mustApply(t, e, entries(1,
		withID(setCmd("", "k", "first"), client, 1, 0),
		withID(setCmd("", "k", "second"), client, 1, 0),
		withID(setCmd("", "j", "j1"), client, 2, 0),
		withID(setCmd("", "j", "j2"), client, 2, 0),
	))
	for i, want := range []uint64{1, 1, 3, 3} {
		if res[i].GetStatus().Err() != nil || res[i].GetVersion() != want {
			t.Fatalf("entry %d: %v, want OK at version %d", i+1, res[i], want)
		}
	}
	if got, _ := mustGet(t, e, "k"); got != "first" {
		t.Fatalf("k = %q: a duplicate inside the batch was applied", got)
	}
	if got, _ := mustGet(t, e, "j"); got != "j1" {
		t.Fatalf("j = %q: a duplicate inside the batch was applied", got)
	}

	// A failed request is remembered too: its retry fails the same way even
	// though it would now succeed.
	res = mustApply(t, e, entries(5, withID(setCmd("nosuch", "x", "v"), client, 3, 0)))
	wantCode(t, res[0].GetStatus().Err(), messages.StatusCode_UNKNOWN_COLUMN_FAMILY, "write to an unknown family")

	// Across batches, and across a restart.
	e = reopen(t, e, cfg)
	res = mustApply(t, e, entries(6,
		withID(setCmd("", "k", "third"), client, 1, 0),
		withID(setCmd("", "x", "v"), client, 3, 0),
	))
	if res[0].GetStatus().Err() != nil || res[0].GetVersion() != 1 {
		t.Fatalf("retry of seq 1 after a restart: %v, want version 1", res[0])
	}
	wantCode(t, res[1].GetStatus().Err(), messages.StatusCode_UNKNOWN_COLUMN_FAMILY, "retry of a failed request")
	if got, _ := mustGet(t, e, "k"); got != "first" {
		t.Fatalf("k = %q: a retry across batches was applied", got)
	}
	if _, ok := mustGet(t, e, "x"); ok {
		t.Fatal("x was written by the retry of a failed request")
	}

	// responded_to 2 forgets the outcomes of 1 and 2: their retries are
	// refused, never applied again; 3 is still remembered.
	res = mustApply(t, e, entries(8,
		withID(setCmd("", "n", "4"), client, 4, 2),
		withID(setCmd("", "k", "again"), client, 1, 0),
		withID(setCmd("", "j", "again"), client, 2, 0),
		withID(setCmd("", "x", "v"), client, 3, 0),
	))
	if res[0].GetStatus().Err() != nil || res[0].GetVersion() != 8 {
		t.Fatalf("seq 4: %v", res[0])
	}
	wantCode(t, res[1].GetStatus().Err(), messages.StatusCode_INVALID_ARGUMENT, "retry of answered seq 1")
	wantCode(t, res[2].GetStatus().Err(), messages.StatusCode_INVALID_ARGUMENT, "retry of answered seq 2")
	wantCode(t, res[3].GetStatus().Err(), messages.StatusCode_UNKNOWN_COLUMN_FAMILY, "retry of unanswered seq 3")
	if got, _ := mustGet(t, e, "k"); got != "first" {
		t.Fatalf("k = %q: an answered request was applied again", got)
	}
	e = reopen(t, e, cfg)
	res = mustApply(t, e, entries(12, withID(setCmd("", "k", "again"), client, 2, 0)))
	wantCode(t, res[0].GetStatus().Err(), messages.StatusCode_INVALID_ARGUMENT, "retry of answered seq 2 after a restart")

	// Requests without a client id are never deduplicated.
	res = mustApply(t, e, entries(13, setCmd("", "free", "1"), setCmd("", "free", "2")))
	if res[0].GetVersion() != 13 || res[1].GetVersion() != 14 {
		t.Fatalf("anonymous writes: %v", res)
	}
}

// ---- determinism -------------------------------------------------------

// detConfig is the configuration of the determinism tests: a retention
// window, a session TTL and a session cap small enough that the generated
// log crosses each of them many times.
func detConfig(dir string) Config {
	cfg := replicatedConfig(dir)
	cfg.RetentionWindow = 200 * time.Millisecond
	cfg.SessionTTL = 3 * time.Second
	cfg.MaxSessions = 4
	return cfg
}

// logGen generates a replicated log: writes of every kind, atomic commits
// that conflict or are too old, client sessions with retries, idle gaps in
// log time longer than the retention window and the session TTL, and gaps
// in the indexes.
type logGen struct {
	rng     *rand.Rand
	index   uint64
	ts      int64
	clients map[uint64]*genClient
	// retries counts the generated retries: of a seq the client had
	// confirmed, and of one it had not.
	retriesAnswered, retriesOpen int
}

type genClient struct {
	seq, respondedTo uint64
	sent             map[uint64]*messages.Command
}

func newLogGen(seed uint64) *logGen {
	return &logGen{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		ts:      time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(),
		clients: map[uint64]*genClient{},
	}
}

func (g *logGen) key() []byte { return fmt.Appendf(nil, "k%02d", g.rng.IntN(24)) }

func (g *logGen) cf() string {
	if g.rng.IntN(4) == 0 {
		return usersCF
	}
	return ""
}

func (g *logGen) mutation() *messages.Mutation {
	m := &messages.Mutation{ColumnFamily: g.cf(), Key: g.key()}
	switch r := g.rng.IntN(10); {
	case r < 6:
		m.Type = messages.MutationType_SET
		m.Value = fmt.Appendf(nil, "v%d-%d", g.index, g.rng.IntN(1000))
	case r < 8:
		m.Type = messages.MutationType_DELETE
	case r < 9:
		m.Type = messages.MutationType_CLEAR_RANGE
		m.End = fmt.Appendf(nil, "%s%d", m.Key, g.rng.IntN(10))
	default:
		m.Type = messages.MutationType_CLEAR_RANGE
		if g.rng.IntN(2) == 0 {
			m.End = nil // to the end of the key space
		} else {
			m.End = g.key()
			if bytes.Compare(m.Key, m.End) > 0 {
				m.Key, m.End = m.End, m.Key
			}
		}
	}
	return m
}

func (g *logGen) keyRange() *messages.KeyRange {
	b := g.key()
	return &messages.KeyRange{ColumnFamily: g.cf(), Begin: b, End: fmt.Appendf(nil, "%s%c", b[:2], b[2]+byte(1+g.rng.IntN(3)))}
}

func (g *logGen) command() *messages.Command {
	switch r := g.rng.IntN(20); {
	case r < 8:
		return &messages.Command{Op: &messages.Command_Mutation{Mutation: g.mutation()}}
	case r < 19:
		c := &messages.AtomicCommit{}
		for range 1 + g.rng.IntN(4) {
			c.Mutations = append(c.Mutations, g.mutation())
		}
		for range g.rng.IntN(3) {
			c.ReadConflictRanges = append(c.ReadConflictRanges, g.keyRange())
		}
		if g.rng.IntN(4) == 0 {
			c.WriteConflictRanges = append(c.WriteConflictRanges, g.keyRange())
		}
		// Mostly recent read versions (some conflict), sometimes far back
		// (too old once the window has moved past them), rarely invalid.
		back := uint64(1 + g.rng.IntN(6))
		if g.rng.IntN(5) == 0 {
			back = uint64(1 + g.rng.IntN(60))
		}
		if g.rng.IntN(40) == 0 {
			back = 0 // read version = commit version: invalid
		}
		c.ReadVersion = g.index - min(back, g.index)
		return &messages.Command{Op: &messages.Command_AtomicCommit{AtomicCommit: c}}
	default:
		// Bad input that reached the log: an empty key.
		return &messages.Command{Op: &messages.Command_Mutation{Mutation: &messages.Mutation{Type: messages.MutationType_SET}}}
	}
}

// next returns the next entry.
func (g *logGen) next() Entry {
	g.index += 1 + uint64(g.rng.IntN(2)*g.rng.IntN(3))
	switch r := g.rng.IntN(100); {
	case r < 1:
		g.ts += int64(4 * time.Second) // beyond the session TTL
	case r < 10:
		g.ts += int64(300 * time.Millisecond) // beyond the retention window
	default:
		g.ts += int64(time.Duration(g.rng.IntN(20)) * time.Millisecond)
	}
	var cmd *messages.Command
	switch r := g.rng.IntN(10); {
	case r < 4:
		cmd = g.command() // anonymous
	default:
		// Three busy clients and three occasional ones, so that some
		// sessions live long and others are evicted.
		id := uint64(1 + g.rng.IntN(3))
		if g.rng.IntN(5) == 0 {
			id += 3
		}
		c := g.clients[id]
		if c == nil {
			c = &genClient{sent: map[uint64]*messages.Command{}}
			g.clients[id] = c
		}
		if c.seq > 0 && g.rng.IntN(4) == 0 {
			// A retry of an earlier request, with its original command:
			// mostly one of the last few, sometimes any.
			seq := c.seq - uint64(g.rng.IntN(int(min(c.seq, 3))))
			if g.rng.IntN(4) == 0 {
				seq = 1 + uint64(g.rng.IntN(int(c.seq)))
			}
			if seq <= c.respondedTo {
				g.retriesAnswered++
			} else {
				g.retriesOpen++
			}
			cmd = proto.Clone(c.sent[seq]).(*messages.Command)
			cmd.RequestId.RespondedTo = min(c.respondedTo, seq-1)
		} else {
			c.seq++
			if g.rng.IntN(3) == 0 {
				c.respondedTo = c.seq - 1 - uint64(g.rng.IntN(int(c.seq-c.respondedTo)))
			}
			cmd = g.command()
			cmd.RequestId = &messages.RequestId{ClientId: id, Seq: c.seq, RespondedTo: c.respondedTo}
			c.sent[c.seq] = proto.Clone(cmd).(*messages.Command)
		}
	}
	cmd.TimestampUnixNanos = g.ts
	return Entry{Index: g.index, Cmd: cmd}
}

func genLog(seed uint64, n int) ([]Entry, *logGen) {
	g := newLogGen(seed)
	log := make([]Entry, n)
	for i := range log {
		log[i] = g.next()
	}
	return log, g
}

// cloneEntries deep-copies entries, so engines never share commands.
func cloneEntries(es []Entry) []Entry {
	out := make([]Entry, len(es))
	for i, en := range es {
		out[i] = Entry{Index: en.Index, Cmd: proto.Clone(en.Cmd).(*messages.Command)}
	}
	return out
}

// replay applies log to a fresh engine, cutting it into batches by split
// (which returns the next batch length) and restarting the engine after the
// batches restart selects. It returns the results, in log order, and the
// engine.
func replay(t *testing.T, log []Entry, split func(rest int) int, restart func(batch int) bool) ([]*messages.CommandResult, *Engine) {
	t.Helper()
	cfg := detConfig(t.TempDir())
	e := openEngine(t, cfg)
	var results []*messages.CommandResult
	for batch, rest := 0, cloneEntries(log); len(rest) > 0; batch++ {
		n := min(split(len(rest)), len(rest))
		results = append(results, mustApply(t, e, rest[:n])...)
		rest = rest[n:]
		if restart(batch) {
			e = reopen(t, e, cfg)
		}
	}
	return results, e
}

// TestApplyBatchDeterministic proves that every decision of the state
// machine comes from the log alone: the same log applied in different batch
// boundaries, with restarts in between, gives the same result for every
// entry and the same final state, data and machine state alike.
func TestApplyBatchDeterministic(t *testing.T) {
	const n = 600
	log, gen := genLog(1, n)

	want, ref := replay(t, log, func(int) int { return 1 }, func(int) bool { return false })
	wantDigest, wantInternal := mustDigest(t, ref), internalDigest(t, ref)

	// The log must exercise what it is meant to.
	counts := map[messages.StatusCode]int{}
	deduped, reapplied := 0, 0
	for i, r := range want {
		counts[r.GetStatus().GetCode()]++
		if v := r.GetVersion(); v != 0 && v != log[i].Index {
			deduped++ // the first outcome of an earlier entry
		}
	}
	firstSeen := map[[2]uint64]bool{}
	for i, en := range log {
		id := en.Cmd.GetRequestId()
		k := [2]uint64{id.GetClientId(), id.GetSeq()}
		if id.GetClientId() == 0 {
			continue
		}
		if firstSeen[k] && want[i].GetVersion() == en.Index {
			reapplied++ // a retry whose session had expired
		}
		firstSeen[k] = true
	}
	t.Logf("statuses %v, retries of answered/open seqs %d/%d, deduplicated %d, re-applied after expiry %d",
		counts, gen.retriesAnswered, gen.retriesOpen, deduped, reapplied)
	for _, c := range []messages.StatusCode{messages.StatusCode_OK, messages.StatusCode_CONFLICT,
		messages.StatusCode_TRANSACTION_TOO_OLD, messages.StatusCode_INVALID_ARGUMENT} {
		if counts[c] == 0 {
			t.Fatalf("the generated log has no %v outcome: %v", c, counts)
		}
	}
	if deduped == 0 || reapplied == 0 {
		t.Fatalf("the generated log has %d deduplicated retries and %d re-applied after session expiry; want both", deduped, reapplied)
	}

	check := func(t *testing.T, got []*messages.CommandResult, e *Engine) {
		t.Helper()
		for i := range want {
			if !proto.Equal(got[i], want[i]) {
				t.Fatalf("entry %d (index %d): %v, reference %v", i, log[i].Index, got[i], want[i])
			}
		}
		if d := digestDiff(mustDigest(t, e), wantDigest); d != "" {
			t.Fatalf("digest: %s", d)
		}
		if !bytes.Equal(internalDigest(t, e), wantInternal) {
			t.Fatal("internal state (sessions, conflict history) differs from the reference")
		}
	}
	rng := rand.New(rand.NewPCG(2, 3))
	cases := []struct {
		name    string
		split   func(rest int) int
		restart func(batch int) bool
	}{
		{"one batch", func(rest int) int { return rest }, func(int) bool { return false }},
		{"pairs with restarts", func(int) int { return 2 }, func(b int) bool { return b%50 == 49 }},
		{"random splits", func(int) int { return 1 + rng.IntN(40) }, func(int) bool { return false }},
		{"random splits and restarts", func(int) int { return 1 + rng.IntN(40) }, func(int) bool { return rng.IntN(4) == 0 }},
		{"one entry per batch with restarts", func(int) int { return 1 }, func(b int) bool { return b%97 == 13 }},
	}
	// With the default threshold the machine state persists as deltas only;
	// with a tiny one nearly every batch writes a checkpoint that replaces
	// them, so loads at the restarts start from checkpoints.
	minCheckpointDefault := minCheckpointBytes
	for _, threshold := range []int{minCheckpointDefault, 256} {
		t.Run(fmt.Sprintf("checkpoint after %d bytes", threshold), func(t *testing.T) {
			defer func(old int) { minCheckpointBytes = old }(minCheckpointBytes)
			minCheckpointBytes = threshold
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					got, e := replay(t, log, c.split, c.restart)
					check(t, got, e)
					if threshold < minCheckpointDefault && e.ckptBytes == 0 {
						t.Fatal("no machine checkpoint was written")
					}
				})
			}
		})
	}
}

// TestApplyBatchWindowInLogTime pins the log-time rules one by one: an
// atomic commit is too old once a write after its read version is older, in
// log time, than the retention window; a session expires after the TTL of
// log time, or when more than MaxSessions are active. The wall clock plays
// no part: all of this happens within milliseconds.
func TestApplyBatchWindowInLogTime(t *testing.T) {
	cfg := detConfig(t.TempDir())
	cfg.MaxSessions = 3
	e := openEngine(t, cfg)
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	at := func(d time.Duration) int64 { return base + int64(d) }
	commit := func(rv uint64, key string) *messages.Command {
		return &messages.Command{Op: &messages.Command_AtomicCommit{AtomicCommit: &messages.AtomicCommit{
			ReadVersion:        rv,
			Mutations:          []*messages.Mutation{{Type: messages.MutationType_SET, Key: []byte(key + "-out"), Value: []byte("x")}},
			ReadConflictRanges: []*messages.KeyRange{{Begin: []byte(key), End: pointEnd([]byte(key))}},
		}}}
	}
	res := mustApply(t, e, []Entry{
		{Index: 1, Cmd: withTS(setCmd("", "a", "1"), at(0))},
		{Index: 2, Cmd: withTS(setCmd("", "b", "1"), at(100*time.Millisecond))},
		// Inside the window: conflicts are decided from the history.
		{Index: 3, Cmd: withTS(commit(1, "a"), at(150*time.Millisecond))}, // a unchanged after 1: OK
		{Index: 4, Cmd: withTS(commit(1, "b"), at(150*time.Millisecond))}, // b written at 2: CONFLICT
	})
	wantCode(t, res[2].GetStatus().Err(), messages.StatusCode_OK, "commit inside the window")
	wantCode(t, res[3].GetStatus().Err(), messages.StatusCode_CONFLICT, "conflicting commit")

	// Log time moves 300ms on: versions 1..3 left the window.
	res = mustApply(t, e, []Entry{
		{Index: 5, Cmd: withTS(setCmd("", "c", "1"), at(450*time.Millisecond))},
		{Index: 6, Cmd: withTS(commit(1, "a"), at(450*time.Millisecond))},
		{Index: 7, Cmd: withTS(commit(5, "c"), at(450*time.Millisecond))},
	})
	wantCode(t, res[1].GetStatus().Err(), messages.StatusCode_TRANSACTION_TOO_OLD, "commit with a read version behind the window")
	wantCode(t, res[2].GetStatus().Err(), messages.StatusCode_OK, "commit with a recent read version")

	// Sessions: with MaxSessions 3, a fourth client evicts the least
	// recently used; the evicted client's retry is applied anew.
	// A duplicate does not count as use; client 1's second request does.
	es := []Entry{}
	for i, id := range [][2]uint64{{1, 1}, {2, 1}, {3, 1}, {1, 2}, {4, 1}} {
		es = append(es, Entry{Index: uint64(10 + i), Cmd: withTS(withID(setCmd("", fmt.Sprint("s", id[0]), fmt.Sprint(i)), id[0], id[1], 0), at(500*time.Millisecond))})
	}
	mustApply(t, e, es)
	res = mustApply(t, e, []Entry{
		{Index: 20, Cmd: withTS(withID(setCmd("", "s1", "retry"), 1, 1, 0), at(600*time.Millisecond))},
		{Index: 21, Cmd: withTS(withID(setCmd("", "s2", "retry"), 2, 1, 0), at(600*time.Millisecond))},
	})
	if res[0].GetVersion() != 10 {
		t.Fatalf("retry of client 1 (recently used, kept): %v, want the first outcome at version 10", res[0])
	}
	if res[1].GetVersion() != 21 {
		t.Fatalf("retry of client 2 (least recently used, evicted): %v, want re-applied at 21", res[1])
	}
	// Client 1 was last active at log time 500ms; a TTL later its session
	// has expired and its retry is applied anew.
	e = reopen(t, e, cfg)
	late := at(500*time.Millisecond + cfg.SessionTTL + time.Millisecond)
	res = mustApply(t, e, []Entry{
		{Index: 30, Cmd: withTS(setCmd("", "tick", "1"), late)},
		{Index: 31, Cmd: withTS(withID(setCmd("", "s1", "late"), 1, 1, 0), late)},
	})
	if res[1].GetVersion() != 31 {
		t.Fatalf("retry of an expired session: %v, want re-applied at 31", res[1])
	}
	if got, _ := mustGet(t, e, "s1"); got != "late" {
		t.Fatalf("s1 = %q", got)
	}
	if _, err := e.ApplyBatch([]Entry{{Index: 32, Cmd: withTS(setCmd("", "x", "y"), at(0))}}); err != nil {
		t.Fatalf("an entry stamped earlier than the log time: %v", err) // clocks may step back; log time does not
	}
	if err := e.WaitApplied(context.Background(), 32); err != nil {
		t.Fatalf("WaitApplied(32): %v", err)
	}
}
