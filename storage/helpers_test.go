package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// usersCF is the extra column family most engine tests configure.
const usersCF = "users"

// testConfig is a small configuration in dir: one extra family, no fsync
// (tests do not survive power loss), a short retention window.
func testConfig(dir string) Config {
	cfg := DefaultConfig(dir)
	cfg.ColumnFamilies = []string{usersCF}
	cfg.SyncWrites = false
	cfg.RetentionWindow = 200 * time.Millisecond
	cfg.BlockCacheBytes = 4 << 20
	cfg.WriteBufferBytes = 4 << 20
	return cfg
}

// openEngine opens cfg and closes the engine when the test ends.
func openEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Dir, err)
	}
	t.Cleanup(func() { closeEngine(e) })
	return e
}

// standalones are the standalone services the tests started over their
// engines (see db).
var (
	standalonesMu sync.Mutex
	standalones   = map[*Engine]*Standalone{}
)

// db returns a Database over the standalone service of e, which is started
// on first use and closed with e (closeEngine): the way tests write to an
// engine as a standalone database does. Each call is one attempt, and a
// write carries only the request id the test gives it (kv.Client would
// open a session first, taking a version).
func db(e *Engine) kv.Database {
	standalonesMu.Lock()
	defer standalonesMu.Unlock()
	s := standalones[e]
	if s == nil {
		s = NewStandalone(e)
		standalones[e] = s
	}
	return onceDB{Requests: func(ctx context.Context, req proto.Message) (messages.Statused, error) {
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(time.Minute)
		}
		type answer struct {
			resp messages.Statused
			err  error
		}
		ch := make(chan answer, 1)
		s.Send(req, deadline, func(resp messages.Statused, err error) { ch <- answer{resp, err} })
		a := <-ch
		if a.err == nil {
			a.err = a.resp.GetStatus().Err()
		}
		return a.resp, a.err
	}}
}

type onceDB struct{ kv.Requests }

func (onceDB) Close() error { return nil }

// closeEngine closes e, and the standalone service over it if any.
func closeEngine(e *Engine) error {
	standalonesMu.Lock()
	s := standalones[e]
	delete(standalones, e)
	standalonesMu.Unlock()
	if s != nil {
		return s.Close()
	}
	return e.Close()
}

// reopen closes e and opens its directory again with cfg.
func reopen(t testing.TB, e *Engine, cfg Config) *Engine {
	t.Helper()
	if err := closeEngine(e); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openEngine(t, cfg)
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: "+format, append([]any{d}, args...)...)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

func mustPut(t testing.TB, e *Engine, key, value string, opts ...kv.Option) uint64 {
	t.Helper()
	v, err := db(e).Put(context.Background(), []byte(key), []byte(value), opts...)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return v
}

func mustGet(t testing.TB, e *Engine, key string, opts ...kv.Option) (string, bool) {
	t.Helper()
	v, ok, err := e.Get(context.Background(), []byte(key), opts...)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(v), ok
}

func mustDigest(t testing.TB, e *Engine) *Digest {
	t.Helper()
	d, err := e.Digest(context.Background())
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	return d
}

// digestDiff reports how a and b differ ("" when they are equal, applied
// index included).
func digestDiff(a, b *Digest) string {
	if a.AppliedIndex != b.AppliedIndex {
		return fmt.Sprintf("applied index %d != %d", a.AppliedIndex, b.AppliedIndex)
	}
	if !bytes.Equal(a.Combined, b.Combined) {
		return fmt.Sprintf("combined digest %x != %x (families %v / %v)", a.Combined, b.Combined, familySummary(a), familySummary(b))
	}
	return ""
}

func familySummary(d *Digest) string {
	var s string
	for _, f := range d.Families {
		s += fmt.Sprintf("%s:%d:%x ", f.GetColumnFamily(), f.GetKeys(), f.GetSha256()[:4])
	}
	return s
}

// internalDigest hashes the machine state (log time, horizon, conflict
// history, sessions, applied index), which Digest leaves out, in its
// deterministic encoding, so tests can require replicas to agree on it too.
// The persisted form (checkpoint and deltas) differs with batch boundaries;
// the state it rebuilds must not.
func internalDigest(t testing.TB, e *Engine) []byte {
	t.Helper()
	done, err := e.enter(nil)
	if err != nil {
		t.Fatalf("internal digest: %v", err)
	}
	defer done()
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	sum := sha256.Sum256(e.sm.digest())
	return sum[:]
}

// wantCode fails unless err carries code.
func wantCode(t testing.TB, err error, code messages.StatusCode, what string) {
	t.Helper()
	if got := messages.CodeOf(err); got != code {
		t.Fatalf("%s: got %v (%v), want %v", what, got, err, code)
	}
	if code != messages.StatusCode_OK && !errors.Is(err, code.Sentinel()) {
		t.Fatalf("%s: %v does not match sentinel %v", what, err, code.Sentinel())
	}
}

func setCmd(cf, key, value string) *messages.Command {
	return &messages.Command{Op: &messages.Command_Mutation{Mutation: &messages.Mutation{
		Type: messages.MutationType_SET, ColumnFamily: cf, Key: []byte(key), Value: []byte(value)}}}
}

func withID(cmd *messages.Command, client, seq, respondedTo uint64) *messages.Command {
	cmd.RequestId = &messages.RequestId{ClientId: client, Seq: seq, RespondedTo: respondedTo}
	return cmd
}

// openCmd opens a session (its client id is the entry's index) with the
// given limits (nil: the defaults).
func openCmd(limits *messages.SessionLimits) *messages.Command {
	return &messages.Command{Op: &messages.Command_OpenSession{OpenSession: &messages.OpenSession{Limits: limits}}}
}

func withTS(cmd *messages.Command, ts int64) *messages.Command {
	cmd.TimestampUnixNanos = ts
	return cmd
}

// entries numbers cmds from first on.
func entries(first uint64, cmds ...*messages.Command) []Entry {
	out := make([]Entry, len(cmds))
	for i, c := range cmds {
		out[i] = Entry{Index: first + uint64(i), Cmd: c}
	}
	return out
}

func mustApply(t testing.TB, e *Engine, es []Entry) []*messages.CommandResult {
	t.Helper()
	res, err := e.ApplyBatch(es)
	if err != nil {
		t.Fatalf("ApplyBatch(%d entries from %d): %v", len(es), es[0].Index, err)
	}
	if len(res) != len(es) {
		t.Fatalf("ApplyBatch: %d results for %d entries", len(res), len(es))
	}
	return res
}

// dump returns every key and value of family cf, for comparisons.
func dump(t testing.TB, e *Engine, cf string) map[string]string {
	t.Helper()
	kvs, err := e.GetRange(context.Background(), nil, nil, 0, false, kv.WithColumnFamily(cf))
	if err != nil {
		t.Fatalf("GetRange(%s): %v", cf, err)
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m
}
