package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// saveSnapshot returns the snapshot stream of e's current state.
func saveSnapshot(t testing.TB, e *Engine) []byte {
	t.Helper()
	v, err := e.PrepareSnapshot()
	if err != nil {
		t.Fatalf("PrepareSnapshot: %v", err)
	}
	var buf bytes.Buffer
	if err := e.SaveSnapshot(v, &buf, nil); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	return buf.Bytes()
}

// applyAll applies es in batches of 16.
func applyAll(t testing.TB, e *Engine, es []Entry) []*messages.CommandResult {
	t.Helper()
	var out []*messages.CommandResult
	for len(es) > 0 {
		n := min(16, len(es))
		out = append(out, mustApply(t, e, cloneEntries(es[:n]))...)
		es = es[n:]
	}
	return out
}

func TestSnapshotSaveAndRecover(t *testing.T) {
	ctx := context.Background()
	log, _ := genLog(11, 500)
	head, tail := log[:400], log[400:]

	a := openEngine(t, detConfig(t.TempDir()))
	applyAll(t, a, head)
	if len(a.sm.sessions) == 0 || a.sm.conflicts.Len() == 0 {
		t.Fatalf("workload left %d sessions and %d conflict records; want both", len(a.sm.sessions), a.sm.conflicts.Len())
	}
	snap := saveSnapshot(t, a)
	wantDigest, wantInternal := mustDigest(t, a), internalDigest(t, a)

	// B is fresh; C has other data, at a higher applied index, in the
	// same families.
	b := openEngine(t, detConfig(t.TempDir()))
	c := openEngine(t, detConfig(t.TempDir()))
	other, _ := genLog(99, 700)
	applyAll(t, c, other)
	if c.AppliedIndex() <= a.AppliedIndex() {
		t.Fatalf("C should be ahead of A: %d <= %d", c.AppliedIndex(), a.AppliedIndex())
	}

	for name, e := range map[string]*Engine{"fresh": b, "non-empty": c} {
		t.Run(name, func(t *testing.T) {
			if err := e.RecoverSnapshot(bytes.NewReader(snap), nil); err != nil {
				t.Fatalf("RecoverSnapshot: %v", err)
			}
			if got := e.AppliedIndex(); got != a.AppliedIndex() {
				t.Fatalf("AppliedIndex = %d, want %d", got, a.AppliedIndex())
			}
			if rv, err := e.GetReadVersion(ctx); err != nil || rv != a.AppliedIndex() {
				t.Fatalf("GetReadVersion = %d, %v", rv, err)
			}
			if d := digestDiff(mustDigest(t, e), wantDigest); d != "" {
				t.Fatalf("digest after recovery: %s", d)
			}
			if !bytes.Equal(internalDigest(t, e), wantInternal) {
				t.Fatal("internal state after recovery differs")
			}
		})
	}

	// All three apply the rest of the log alike.
	want := applyAll(t, a, tail)
	finalDigest := mustDigest(t, a)
	for name, e := range map[string]*Engine{"fresh": b, "non-empty": c} {
		t.Run(name+" continues", func(t *testing.T) {
			got := applyAll(t, e, tail)
			for i := range want {
				if !proto.Equal(got[i], want[i]) {
					t.Fatalf("entry %d after recovery: %v, A: %v", tail[i].Index, got[i], want[i])
				}
			}
			if d := digestDiff(mustDigest(t, e), finalDigest); d != "" {
				t.Fatalf("digest: %s", d)
			}
			// and a restart after a recovery keeps it
			cfg := e.cfg
			e = reopen(t, e, cfg)
			if d := digestDiff(mustDigest(t, e), finalDigest); d != "" {
				t.Fatalf("digest after reopen: %s", d)
			}
		})
	}
}

// failingReader returns data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestSnapshotRecoverBadStreams(t *testing.T) {
	// A few thousand keys, so the stream is long enough to cut in many
	// places and stop checks happen mid-stream.
	src := openEngine(t, detConfig(t.TempDir()))
	es := entries(1, openCmd(nil), openCmd(nil), openCmd(nil), openCmd(nil), openCmd(nil)) // sessions 1..5
	for i := range 3000 {
		cf := ""
		if i%3 == 0 {
			cf = usersCF
		}
		es = append(es, Entry{Index: uint64(i + 6), Cmd: withID(setCmd(cf, fmt.Sprintf("key-%05d", i), fmt.Sprintf("value-%d", i)), uint64(i%5+1), uint64(i/5+1), 0)})
	}
	mustApply(t, src, es)
	snap := saveSnapshot(t, src)
	srcDigest := mustDigest(t, src)

	// The target starts with data of its own at index 1.
	target := func(t *testing.T) (*Engine, Config) {
		cfg := detConfig(t.TempDir())
		e := openEngine(t, cfg)
		mustApply(t, e, []Entry{{Index: 1, Cmd: setCmd("", "mine", "1")}})
		return e, cfg
	}
	flip := func(at int) []byte {
		b := bytes.Clone(snap)
		b[at] ^= 0x20
		return b
	}
	bad := []struct {
		name string
		r    io.Reader
	}{
		{"flipped magic", bytes.NewReader(flip(2))},
		{"flipped header", bytes.NewReader(flip(len(snapshotMagic) + 4))},
		{"flipped byte early", bytes.NewReader(flip(200))},
		{"flipped byte in the middle", bytes.NewReader(flip(len(snap) / 2))},
		{"flipped byte late", bytes.NewReader(flip(len(snap) - 40))},
		{"flipped checksum", bytes.NewReader(flip(len(snap) - 1))},
		{"cut in the middle", bytes.NewReader(snap[:len(snap)/2])},
		{"cut before the checksum", bytes.NewReader(snap[:len(snap)-4])},
		{"cut inside the checksum", bytes.NewReader(snap[:len(snap)-2])},
		{"empty", bytes.NewReader(nil)},
		{"read error", &failingReader{data: snap[:len(snap)/3], err: errors.New("connection reset")}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			e, cfg := target(t)
			err := e.RecoverSnapshot(c.r, nil)
			if err == nil {
				t.Fatal("RecoverSnapshot accepted a bad stream")
			}
			// A stream refused before anything was touched (its magic or
			// header) leaves the old state serving; any later failure makes
			// the engine refuse service until reopened, and a reopen never
			// serves a mix of old and new state.
			untouched := false
			if v, ok, err := e.Get(context.Background(), []byte("mine")); err == nil {
				if !ok || string(v) != "1" {
					t.Fatalf("Get after a failed recovery that left the engine serving: %q, %v", v, ok)
				}
				untouched = true
			} else if !errors.Is(err, messages.ErrUnavailable) {
				t.Fatalf("Get after a failed recovery: %v, want the old value or ErrUnavailable", err)
			}
			e = reopen(t, e, cfg)
			if untouched && mustDigest(t, e).AppliedIndex != 1 {
				t.Fatal("a recovery that left the engine serving had touched its state")
			}
			d := mustDigest(t, e)
			switch d.AppliedIndex {
			case 1: // failed before touching anything
				if v, ok := mustGet(t, e, "mine"); !ok || v != "1" {
					t.Fatalf("own data lost by a recovery that touched nothing: %q, %v", v, ok)
				}
			case 0: // rolled back to empty
				for _, f := range d.Families {
					if f.GetKeys() != 0 {
						t.Fatalf("family %s has %d keys after a rolled-back recovery", f.GetColumnFamily(), f.GetKeys())
					}
				}
			default:
				t.Fatalf("applied index %d after reopening a failed recovery", d.AppliedIndex)
			}
			// The replica can ask for the snapshot again.
			if err := e.RecoverSnapshot(bytes.NewReader(snap), nil); err != nil {
				t.Fatalf("second RecoverSnapshot: %v", err)
			}
			if diff := digestDiff(mustDigest(t, e), srcDigest); diff != "" {
				t.Fatalf("digest after the second recovery: %s", diff)
			}
		})
	}

	t.Run("interrupted recovery rolls back on open", func(t *testing.T) {
		e, cfg := target(t)
		// Enough of the stream that records were written before the error.
		err := e.RecoverSnapshot(&failingReader{data: snap[:len(snap)-100], err: errors.New("crash")}, nil)
		if err == nil {
			t.Fatal("RecoverSnapshot succeeded")
		}
		e = reopen(t, e, cfg)
		if got := e.AppliedIndex(); got != 0 {
			t.Fatalf("AppliedIndex after an interrupted recovery = %d, want 0", got)
		}
		d := mustDigest(t, e)
		for _, f := range d.Families {
			if f.GetKeys() != 0 {
				t.Fatalf("family %s has %d keys after an interrupted recovery", f.GetColumnFamily(), f.GetKeys())
			}
		}
		if len(e.sm.sessions) != 0 || e.sm.conflicts.Len() != 0 || e.sm.maxTs != 0 {
			t.Fatalf("machine state survived: %d sessions, %d conflicts, log time %d", len(e.sm.sessions), e.sm.conflicts.Len(), e.sm.maxTs)
		}
		// A reopened replica is healthy: it applies from index 1 again.
		mustApply(t, e, []Entry{{Index: 1, Cmd: setCmd("", "k", "v")}})
	})

	t.Run("stop", func(t *testing.T) {
		stop := make(chan struct{})
		close(stop)
		v, err := src.PrepareSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		if err := src.SaveSnapshot(v, io.Discard, stop); !errors.Is(err, ErrSnapshotStopped) {
			t.Fatalf("SaveSnapshot with stop closed: %v, want ErrSnapshotStopped", err)
		}
		e, _ := target(t)
		if err := e.RecoverSnapshot(bytes.NewReader(snap), stop); !errors.Is(err, ErrSnapshotStopped) {
			t.Fatalf("RecoverSnapshot with stop closed: %v, want ErrSnapshotStopped", err)
		}
		// The source is unaffected by a stopped save.
		if d := digestDiff(mustDigest(t, src), srcDigest); d != "" {
			t.Fatalf("source digest after a stopped save: %s", d)
		}
	})

	t.Run("unknown family", func(t *testing.T) {
		cfg := detConfig(t.TempDir())
		cfg.ColumnFamilies = nil // no "users"
		e := openEngine(t, cfg)
		if err := e.RecoverSnapshot(bytes.NewReader(snap), nil); !errors.Is(err, messages.ErrUnknownColumnFamily) {
			t.Fatalf("RecoverSnapshot into an engine without the family: %v", err)
		}
	})
}

func TestSnapshotViewIsPointInTime(t *testing.T) {
	e := openEngine(t, detConfig(t.TempDir()))
	mustApply(t, e, entries(1, setCmd("", "a", "1"), setCmd("", "b", "1")))
	v, err := e.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if v.AppliedIndex() != 2 {
		t.Fatalf("view at %d, want 2", v.AppliedIndex())
	}
	want := mustDigest(t, e)
	// Writes after the view are not in the stream.
	mustApply(t, e, entries(3, setCmd("", "a", "2"), setCmd("", "c", "1")))
	var buf bytes.Buffer
	if err := e.SaveSnapshot(v, &buf, nil); err != nil {
		t.Fatal(err)
	}
	v.Release() // idempotent after SaveSnapshot released it
	other := openEngine(t, detConfig(t.TempDir()))
	if err := other.RecoverSnapshot(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if d := digestDiff(mustDigest(t, other), want); d != "" {
		t.Fatalf("recovered state is not the view's: %s", d)
	}
}

func TestSnapshotLargerThanReadBuffer(t *testing.T) {
	// Streams longer than recovery's read buffer and write batch (several
	// MiB) round-trip too.
	src := openEngine(t, detConfig(t.TempDir()))
	value := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	var es []Entry
	for i := range 100 {
		es = append(es, Entry{Index: uint64(i + 1), Cmd: setCmd("", fmt.Sprintf("big-%03d", i), string(value[i:]))})
	}
	mustApply(t, src, es)
	snap := saveSnapshot(t, src)
	if len(snap) < 3*recoverBatchBytes/2 {
		t.Fatalf("snapshot is only %d bytes", len(snap))
	}
	dst := openEngine(t, detConfig(t.TempDir()))
	if err := dst.RecoverSnapshot(bytes.NewReader(snap), nil); err != nil {
		t.Fatalf("RecoverSnapshot: %v", err)
	}
	if d := digestDiff(mustDigest(t, dst), mustDigest(t, src)); d != "" {
		t.Fatal(d)
	}
}

// TestRangeDigest: a range digest over a whole family is the family's
// digest; a range's middle key splits its keys in halves, and the digests of
// the halves tell which half holds a difference.
func TestRangeDigest(t *testing.T) {
	ctx := context.Background()
	a := openEngine(t, detConfig(t.TempDir()))
	b := openEngine(t, detConfig(t.TempDir()))
	var es []Entry
	for i := range 10 {
		es = append(es, Entry{Index: uint64(i + 1), Cmd: setCmd(usersCF, fmt.Sprintf("k%d", i), "v")})
	}
	mustApply(t, a, cloneEntries(es))
	es[7].Cmd = setCmd(usersCF, "k7", "other")
	mustApply(t, b, cloneEntries(es))
	whole, applied, err := a.RangeDigest(ctx, usersCF, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var fam *messages.ColumnFamilyDigest
	for _, f := range mustDigest(t, a).Families {
		if f.GetColumnFamily() == usersCF {
			fam = f
		}
	}
	if applied != 10 || whole.GetKeys() != 10 || !bytes.Equal(whole.GetSha256(), fam.GetSha256()) {
		t.Fatalf("whole-family range digest %v at %d; family digest %v", whole, applied, fam)
	}
	if string(whole.GetMiddle()) != "k5" || string(whole.GetFirst().GetKey()) != "k0" {
		t.Fatalf("middle %q, first %v; want k5 and k0", whole.GetMiddle(), whole.GetFirst())
	}
	la, _, _ := a.RangeDigest(ctx, usersCF, nil, whole.GetMiddle())
	lb, _, _ := b.RangeDigest(ctx, usersCF, nil, whole.GetMiddle())
	ra, _, _ := a.RangeDigest(ctx, usersCF, whole.GetMiddle(), nil)
	rb, _, _ := b.RangeDigest(ctx, usersCF, whole.GetMiddle(), nil)
	if la.GetKeys() != 5 || !bytes.Equal(la.GetSha256(), lb.GetSha256()) || bytes.Equal(ra.GetSha256(), rb.GetSha256()) {
		t.Fatalf("halves: left %d keys, equal %t; right equal %t", la.GetKeys(), bytes.Equal(la.GetSha256(), lb.GetSha256()), bytes.Equal(ra.GetSha256(), rb.GetSha256()))
	}
	one, _, _ := b.RangeDigest(ctx, usersCF, []byte("k7"), []byte("k8"))
	if one.GetKeys() != 1 || string(one.GetFirst().GetValue()) != "other" || len(one.GetMiddle()) != 0 {
		t.Fatalf("a one-key range: %v", one)
	}
	if _, _, err := a.RangeDigest(ctx, "nosuch", nil, nil); !errors.Is(err, messages.ErrUnknownColumnFamily) {
		t.Fatalf("unknown family: %v", err)
	}
}

// TestDigestOncePerAppliedIndex: callers at one applied index share one
// scan's digest; after a write the digest is computed again.
func TestDigestOncePerAppliedIndex(t *testing.T) {
	e := openEngine(t, detConfig(t.TempDir()))
	mustApply(t, e, []Entry{{Index: 1, Cmd: setCmd("", "a", "1")}})
	first, second := mustDigest(t, e), mustDigest(t, e)
	if first != second {
		t.Fatal("two digests at one applied index were computed twice")
	}
	mustApply(t, e, []Entry{{Index: 2, Cmd: setCmd("", "a", "2")}})
	if third := mustDigest(t, e); third == first || third.AppliedIndex != 2 || bytes.Equal(third.Combined, first.Combined) {
		t.Fatalf("the digest after a write: %+v (before: %+v)", third, first)
	}
}
