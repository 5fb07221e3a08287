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
	cfg := replicatedConfig(t.TempDir())
	e := openEngine(t, cfg)

	// The session's client id is the index of the entry that opens it.
	res := mustApply(t, e, entries(1, openCmd(nil)))
	if res[0].GetStatus().Err() != nil || res[0].GetVersion() != 1 {
		t.Fatalf("open session: %v, want OK with client id 1", res[0])
	}
	const client = 1

	// Seq 1 twice in one batch, then seq 2 whose retry in the same batch
	// would write another value: the first outcome wins each time.
	res = mustApply(t, e, entries(2,
		withID(setCmd("", "k", "first"), client, 1, 0),
		withID(setCmd("", "k", "second"), client, 1, 0),
		withID(setCmd("", "j", "j1"), client, 2, 0),
		withID(setCmd("", "j", "j2"), client, 2, 0),
	))
	for i, want := range []uint64{2, 2, 4, 4} {
		if res[i].GetStatus().Err() != nil || res[i].GetVersion() != want {
			t.Fatalf("entry %d: %v, want OK at version %d", i+2, res[i], want)
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
	res = mustApply(t, e, entries(6, withID(setCmd("nosuch", "x", "v"), client, 3, 0)))
	wantCode(t, res[0].GetStatus().Err(), messages.StatusCode_UNKNOWN_COLUMN_FAMILY, "write to an unknown family")

	// Across batches, and across a restart.
	e = reopen(t, e, cfg)
	res = mustApply(t, e, entries(7,
		withID(setCmd("", "k", "third"), client, 1, 0),
		withID(setCmd("", "x", "v"), client, 3, 0),
	))
	if res[0].GetStatus().Err() != nil || res[0].GetVersion() != 2 {
		t.Fatalf("retry of seq 1 after a restart: %v, want version 2", res[0])
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
	res = mustApply(t, e, entries(9,
		withID(setCmd("", "n", "4"), client, 4, 2),
		withID(setCmd("", "k", "again"), client, 1, 0),
		withID(setCmd("", "j", "again"), client, 2, 0),
		withID(setCmd("", "x", "v"), client, 3, 0),
	))
	if res[0].GetStatus().Err() != nil || res[0].GetVersion() != 9 {
		t.Fatalf("seq 4: %v", res[0])
	}
	wantCode(t, res[1].GetStatus().Err(), messages.StatusCode_INVALID_ARGUMENT, "retry of answered seq 1")
	wantCode(t, res[2].GetStatus().Err(), messages.StatusCode_INVALID_ARGUMENT, "retry of answered seq 2")
	wantCode(t, res[3].GetStatus().Err(), messages.StatusCode_UNKNOWN_COLUMN_FAMILY, "retry of unanswered seq 3")
	if got, _ := mustGet(t, e, "k"); got != "first" {
		t.Fatalf("k = %q: an answered request was applied again", got)
	}
	e = reopen(t, e, cfg)
	res = mustApply(t, e, entries(13, withID(setCmd("", "k", "again"), client, 2, 0)))
	wantCode(t, res[0].GetStatus().Err(), messages.StatusCode_INVALID_ARGUMENT, "retry of answered seq 2 after a restart")

	// Requests without a client id are never deduplicated.
	res = mustApply(t, e, entries(14, setCmd("", "free", "1"), setCmd("", "free", "2")))
	if res[0].GetVersion() != 14 || res[1].GetVersion() != 15 {
		t.Fatalf("anonymous writes: %v", res)
	}

	// A session that was never opened is refused, whatever the seq, and
	// nothing is written; so is an OpenSession that carries a request id.
	res = mustApply(t, e, entries(16,
		withID(setCmd("", "k", "stranger"), 16, 1, 0),
		withID(setCmd("", "k", "stranger"), 999, 5, 2),
		withID(openCmd(nil), client, 5, 0),
	))
	wantCode(t, res[0].GetStatus().Err(), messages.StatusCode_SESSION_EXPIRED, "write of a session never opened (its id is a later index)")
	wantCode(t, res[1].GetStatus().Err(), messages.StatusCode_SESSION_EXPIRED, "write of a session never opened")
	wantCode(t, res[2].GetStatus().Err(), messages.StatusCode_INVALID_ARGUMENT, "open session with a request id")
	if got, _ := mustGet(t, e, "k"); got != "first" {
		t.Fatalf("k = %q: a request of an unknown session was applied", got)
	}
}

// ---- determinism -------------------------------------------------------

// detConfig is the configuration of the determinism tests: a retention
// window small enough that the generated log crosses it many times. (The
// session limits travel in the log: see detLimits.)
func detConfig(dir string) Config {
	cfg := replicatedConfig(dir)
	cfg.RetentionWindow = 200 * time.Millisecond
	return cfg
}

// detLimits are the session limits the generated log's sessions are opened
// with (now and then another set): a TTL and a cap small enough that the
// log crosses each of them many times.
var detLimits = []*messages.SessionLimits{
	{MaxSessions: 4, TtlNanos: int64(3 * time.Second)},
	{MaxSessions: 5, TtlNanos: int64(2 * time.Second)},
}

// logGen generates a replicated log: writes of every kind, atomic commits
// that conflict or are too old, client sessions with retries, idle gaps in
// log time longer than the retention window and the session TTL, and gaps
// in the indexes.
type logGen struct {
	rng     *rand.Rand
	index   uint64
	ts      int64
	clients map[int]*genClient // by slot: the session each client uses now
	retired []*genClient       // sessions their clients left, still retried now and then
	// retries counts the generated retries: of a seq the client had
	// confirmed, and of one it had not; opened the sessions opened;
	// batched the commands that share an entry with others.
	retriesAnswered, retriesOpen, opened, batched int
}

// genClient is one session of a generated client: its id is the index of
// the entry that opened it.
type genClient struct {
	owner                string
	id, seq, respondedTo uint64
	sent                 map[uint64]*messages.Command
}

func newLogGen(seed uint64) *logGen {
	return &logGen{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		ts:      time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(),
		clients: map[int]*genClient{},
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
	if g.rng.IntN(5) == 0 {
		// An entry of several writes (group commit), sessions never
		// opened among them (a session has an entry of its own).
		b := &messages.CommandBatch{}
		for range 2 + g.rng.IntN(4) {
			cmd := g.clientCommand(false)
			cmd.TimestampUnixNanos = g.ts
			g.ts += int64(time.Millisecond)
			b.Commands = append(b.Commands, cmd)
		}
		g.batched += len(b.Commands)
		return Entry{Index: g.index, Cmd: &messages.Command{Op: &messages.Command_Batch{Batch: b}}}
	}
	cmd := g.clientCommand(true)
	cmd.TimestampUnixNanos = g.ts
	return Entry{Index: g.index, Cmd: cmd}
}

// clientCommand returns the next command: anonymous, or a client's (a new
// request, a retry, a request of a session it left, or — when open — the
// opening of a new session).
func (g *logGen) clientCommand(open bool) *messages.Command {
	var cmd *messages.Command
	switch r := g.rng.IntN(10); {
	case r < 4:
		cmd = g.command() // anonymous
	default:
		// Three busy clients and three occasional ones, so that some
		// sessions live long and others are forgotten; now and then a
		// client opens a new session (the state machine may have forgotten
		// its old one: its requests are then refused), and now and then a
		// request of a session a client left is retried.
		slot := 1 + g.rng.IntN(3)
		if g.rng.IntN(5) == 0 {
			slot += 3
		}
		c := g.clients[slot]
		switch {
		case !open && c == nil:
			cmd = g.command()
		case open && (c == nil || g.rng.IntN(12) == 0):
			if c != nil {
				g.retired = append(g.retired, c)
			}
			// Sessions of even slots belong to an identity, the others to
			// the anonymous one.
			owner := ""
			if slot%2 == 0 {
				owner = fmt.Sprintf("CN=client-%d", slot)
			}
			g.clients[slot] = &genClient{id: g.index, owner: owner, sent: map[uint64]*messages.Command{}}
			g.opened++
			limits := detLimits[0]
			if g.rng.IntN(6) == 0 {
				limits = detLimits[1]
			}
			cmd = openCmd(limits)
			cmd.GetOpenSession().Owner = owner
		case len(g.retired) > 0 && g.rng.IntN(10) == 0:
			cmd = g.retry(g.retired[g.rng.IntN(len(g.retired))])
		case c.seq > 0 && g.rng.IntN(4) == 0:
			cmd = g.retry(c)
		default:
			c.seq++
			if g.rng.IntN(3) == 0 {
				c.respondedTo = c.seq - 1 - uint64(g.rng.IntN(int(c.seq-c.respondedTo)))
			}
			cmd = g.command()
			cmd.RequestId = &messages.RequestId{ClientId: c.id, Seq: c.seq, RespondedTo: c.respondedTo, Owner: c.owner}
			if c.seq%17 == 0 { // a stranger's use of the session: refused
				cmd.RequestId.Owner = "CN=stranger"
			}
			c.sent[c.seq] = proto.Clone(cmd).(*messages.Command)
		}
	}
	return cmd
}

// retry returns a retry of one of c's requests, with its original command:
// mostly one of the last few, sometimes any. A client that never sent one
// sends an anonymous command.
func (g *logGen) retry(c *genClient) *messages.Command {
	if c.seq == 0 {
		return g.command()
	}
	seq := c.seq - uint64(g.rng.IntN(int(min(c.seq, 3))))
	if g.rng.IntN(4) == 0 {
		seq = 1 + uint64(g.rng.IntN(int(c.seq)))
	}
	if seq <= c.respondedTo {
		g.retriesAnswered++
	} else {
		g.retriesOpen++
	}
	cmd := proto.Clone(c.sent[seq]).(*messages.Command)
	cmd.RequestId.RespondedTo = min(c.respondedTo, seq-1)
	return cmd
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
func replay(t *testing.T, log []Entry, split func(rest int) int, restart func(batch int) bool, checkpointAfter int) ([]*messages.CommandResult, *Engine) {
	t.Helper()
	cfg := detConfig(t.TempDir())
	cfg.MinCheckpointBytes = checkpointAfter
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

	minCheckpointDefault := DefaultConfig("").MinCheckpointBytes
	want, ref := replay(t, log, func(int) int { return 1 }, func(int) bool { return false }, minCheckpointDefault)
	wantDigest, wantInternal := mustDigest(t, ref), internalDigest(t, ref)

	// The log must exercise what it is meant to. An entry of several
	// commands is looked at command by command, at the entry's index.
	counts := map[messages.StatusCode]int{}
	deduped := 0
	applied := map[[2]uint64]uint64{} // request id -> the index it was applied at
	for i, en := range log {
		cmds, rs := []*messages.Command{en.Cmd}, []*messages.CommandResult{want[i]}
		if b := en.Cmd.GetBatch(); b != nil {
			cmds, rs = b.GetCommands(), want[i].GetBatch()
		}
		seen := map[[2]uint64]bool{} // in this entry: a later one is a retry
		for j, cmd := range cmds {
			r := rs[j]
			counts[r.GetStatus().GetCode()]++
			if v := r.GetVersion(); v != 0 && v != en.Index {
				deduped++ // the first outcome of an earlier entry
			}
			id := cmd.GetRequestId()
			k := [2]uint64{id.GetClientId(), id.GetSeq()}
			if id.GetClientId() == 0 || r.GetVersion() != en.Index || seen[k] {
				continue // anonymous, not applied at this entry, or a retry inside it
			}
			seen[k] = true
			if first, ok := applied[k]; ok {
				t.Fatalf("request %v was applied at index %d and again at %d", k, first, en.Index)
			}
			applied[k] = en.Index
		}
	}
	t.Logf("statuses %v, sessions opened %d, retries of answered/open seqs %d/%d, deduplicated %d, commands in shared entries %d",
		counts, gen.opened, gen.retriesAnswered, gen.retriesOpen, deduped, gen.batched)
	for _, c := range []messages.StatusCode{messages.StatusCode_OK, messages.StatusCode_CONFLICT,
		messages.StatusCode_TRANSACTION_TOO_OLD, messages.StatusCode_INVALID_ARGUMENT, messages.StatusCode_SESSION_EXPIRED} {
		if counts[c] == 0 {
			t.Fatalf("the generated log has no %v outcome: %v", c, counts)
		}
	}
	if deduped == 0 || gen.batched == 0 {
		t.Fatalf("the generated log has %d deduplicated retries and %d commands in shared entries; want both", deduped, gen.batched)
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
	for _, threshold := range []int{minCheckpointDefault, 256} {
		t.Run(fmt.Sprintf("checkpoint after %d bytes", threshold), func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					got, e := replay(t, log, c.split, c.restart, threshold)
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
// log time, or when more than the session cap are active (both as the
// latest OpenSession set them). The wall clock plays
// no part: all of this happens within milliseconds.
func TestApplyBatchWindowInLogTime(t *testing.T) {
	cfg := detConfig(t.TempDir())
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

	// Sessions: opened with a cap of 3, a fourth session evicts the least
	// recently used; the evicted client's retry is refused, never applied
	// again. A duplicate does not count as use; client 10's second request
	// does. (Each session's id is the index of the entry that opened it.)
	limits := &messages.SessionLimits{MaxSessions: 3, TtlNanos: int64(3 * time.Second)}
	es := []Entry{}
	for i := range 4 {
		es = append(es, Entry{Index: uint64(10 + i), Cmd: withTS(openCmd(limits), at(500*time.Millisecond))})
	}
	mustApply(t, e, es[:3])
	res = mustApply(t, e, []Entry{
		{Index: 14, Cmd: withTS(withID(setCmd("", "s10", "1"), 10, 1, 0), at(500*time.Millisecond))},
		{Index: 15, Cmd: withTS(withID(setCmd("", "s11", "1"), 11, 1, 0), at(500*time.Millisecond))},
		{Index: 16, Cmd: withTS(withID(setCmd("", "s12", "1"), 12, 1, 0), at(500*time.Millisecond))},
		{Index: 17, Cmd: withTS(withID(setCmd("", "s10", "2"), 10, 2, 0), at(500*time.Millisecond))},
		{Index: 18, Cmd: withTS(openCmd(limits), at(500*time.Millisecond))}, // the fourth session: 11 is the least recently used
	})
	for i, r := range res {
		wantCode(t, r.GetStatus().Err(), messages.StatusCode_OK, fmt.Sprintf("entry %d", 14+i))
	}
	res = mustApply(t, e, []Entry{
		{Index: 20, Cmd: withTS(withID(setCmd("", "s10", "retry"), 10, 1, 0), at(600*time.Millisecond))},
		{Index: 21, Cmd: withTS(withID(setCmd("", "s11", "retry"), 11, 1, 0), at(600*time.Millisecond))},
	})
	if res[0].GetVersion() != 14 {
		t.Fatalf("retry of client 10 (recently used, kept): %v, want the first outcome at version 14", res[0])
	}
	wantCode(t, res[1].GetStatus().Err(), messages.StatusCode_SESSION_EXPIRED, "retry of client 11 (least recently used, evicted)")
	for k, want := range map[string]string{"s10": "2", "s11": "1"} {
		if got, _ := mustGet(t, e, k); got != want {
			t.Fatalf("%s = %q, want %q: a retry was applied", k, got, want)
		}
	}
	// Client 10 was last active at log time 500ms; a TTL later its session
	// has expired and its retry is refused — across a restart too, which
	// reloads the limits the sessions were opened with.
	e = reopen(t, e, cfg)
	late := at(500*time.Millisecond + 3*time.Second + time.Millisecond)
	res = mustApply(t, e, []Entry{
		{Index: 30, Cmd: withTS(setCmd("", "tick", "1"), late)},
		{Index: 31, Cmd: withTS(withID(setCmd("", "s10", "late"), 10, 1, 0), late)},
	})
	wantCode(t, res[1].GetStatus().Err(), messages.StatusCode_SESSION_EXPIRED, "retry of a session idle beyond its TTL")
	if got, _ := mustGet(t, e, "s10"); got != "2" {
		t.Fatalf("s10 = %q, want 2: a retry of an expired session was applied", got)
	}
	if _, err := e.ApplyBatch([]Entry{{Index: 32, Cmd: withTS(setCmd("", "x", "y"), at(0))}}); err != nil {
		t.Fatalf("an entry stamped earlier than the log time: %v", err) // clocks may step back; log time does not
	}
	if got := e.AppliedIndex(); got != 32 {
		t.Fatalf("applied index %d, want 32", got)
	}
}
