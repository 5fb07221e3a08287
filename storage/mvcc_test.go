package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// history records committed writes by version, so tests can compute the
// state at any version.
type history struct {
	mu  sync.Mutex
	ops map[uint64][]*messages.Mutation
}

func newHistory() *history { return &history{ops: map[uint64][]*messages.Mutation{}} }

// add records the mutations committed at version, in their order.
func (h *history) add(version uint64, muts ...*messages.Mutation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops[version] = muts
}

// stateAt returns the contents of the default family after version.
func (h *history) stateAt(version uint64) map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	versions := slices.Sorted(maps.Keys(h.ops))
	state := map[string]string{}
	for _, v := range versions {
		if v > version {
			break
		}
		for _, m := range h.ops[v] {
			switch m.GetType() {
			case messages.MutationType_SET:
				state[string(m.GetKey())] = string(m.GetValue())
			case messages.MutationType_DELETE:
				delete(state, string(m.GetKey()))
			case messages.MutationType_CLEAR_RANGE:
				for k := range state {
					if k >= string(m.GetKey()) && (len(m.GetEnd()) == 0 || k < string(m.GetEnd())) {
						delete(state, k)
					}
				}
			}
		}
	}
	return state
}

// rangeOfState returns the entries of state in [begin, end), ascending or
// descending, at most limit.
func rangeOfState(state map[string]string, begin, end string, limit int, reverse bool) []string {
	var keys []string
	for k := range state {
		if k >= begin && (end == "" || k < end) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if reverse {
		slices.Reverse(keys)
	}
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + state[k]
	}
	return out
}

func kvStrings(kvs []*messages.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = string(kv.Key) + "=" + string(kv.Value)
	}
	return out
}

// write commits m through the standalone path and records it.
func (h *history) write(ctx context.Context, e *Engine, m *messages.Mutation) error {
	var v uint64
	var err error
	switch m.GetType() {
	case messages.MutationType_SET:
		v, err = db(e).Put(ctx, m.GetKey(), m.GetValue())
	case messages.MutationType_DELETE:
		v, err = db(e).Delete(ctx, m.GetKey())
	default:
		v, err = db(e).ClearRange(ctx, m.GetKey(), m.GetEnd())
	}
	if err == nil {
		h.add(v, m)
	}
	return err
}

// The mutations of the snapshot-read scripts.
func set(k, v string) *messages.Mutation {
	return &messages.Mutation{Type: messages.MutationType_SET, Key: []byte(k), Value: []byte(v)}
}

func del(k string) *messages.Mutation {
	return &messages.Mutation{Type: messages.MutationType_DELETE, Key: []byte(k)}
}

func clr(b, e string) *messages.Mutation {
	return &messages.Mutation{Type: messages.MutationType_CLEAR_RANGE, Key: []byte(b), End: []byte(e)}
}

func TestSnapshotReadsAtOldVersions(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.RetentionWindow = time.Minute // nothing leaves the window here
	e := openEngine(t, cfg)
	h := newHistory()
	script := []*messages.Mutation{
		set("a", "1"), set("b", "1"), set("c", "1"), set("d", "1"), set("e", "1"),
		set("b", "2"), del("c"), clr("b", "d"), set("bb", "1"), set("c", "3"),
		clr("d", ""), set("f", "1"), set("a", "2"), del("a"), set("z", "1"),
	}
	// Interleave a write to another family at every step, so overlays hold
	// mutations the default family must ignore.
	for i, m := range script {
		if err := h.write(ctx, e, m); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if _, err := db(e).ClearRange(ctx, nil, nil, kv.WithColumnFamily(usersCF)); err != nil {
			t.Fatal(err)
		}
		if _, err := db(e).Put(ctx, []byte("b"), []byte("users"), kv.WithColumnFamily(usersCF)); err != nil {
			t.Fatal(err)
		}
	}
	latest := e.AppliedIndex()
	checkSnapshotReads(t, e, h, latest)
	if _, _, err := e.SnapshotRead(ctx, []byte("a"), latest+1); !errors.Is(err, messages.ErrInvalidArgument) {
		t.Fatalf("SnapshotRead beyond the latest version: %v, want ErrInvalidArgument", err)
	}
	if _, err := e.SnapshotGetRange(ctx, nil, nil, 0, false, latest+5); !errors.Is(err, messages.ErrInvalidArgument) {
		t.Fatalf("SnapshotGetRange beyond the latest version: %v, want ErrInvalidArgument", err)
	}
}

// checkSnapshotReads compares point and range snapshot reads of the default
// family at every version up to latest with the state h says it had.
func checkSnapshotReads(t *testing.T, e *Engine, h *history, latest uint64) {
	t.Helper()
	ctx := context.Background()
	for v := uint64(0); v <= latest; v++ {
		state := h.stateAt(v)
		for _, k := range []string{"a", "b", "bb", "c", "d", "e", "f", "z", "zz"} {
			got, ok, err := e.SnapshotRead(ctx, []byte(k), v)
			if err != nil {
				t.Fatalf("SnapshotRead(%s, %d): %v", k, v, err)
			}
			want, wantOK := state[k]
			if ok != wantOK || string(got) != want {
				t.Fatalf("SnapshotRead(%s, %d) = %q, %v; want %q, %v", k, v, got, ok, want, wantOK)
			}
		}
		for _, r := range []struct {
			begin, end string
			limit      int
		}{{"", "", 0}, {"b", "d", 0}, {"a", "z", 2}, {"bb", "", 3}, {"", "c", 1}} {
			for _, reverse := range []bool{false, true} {
				kvs, err := e.SnapshotGetRange(ctx, []byte(r.begin), []byte(r.end), r.limit, reverse, v)
				if err != nil {
					t.Fatalf("SnapshotGetRange(%q, %q, %d, %v, %d): %v", r.begin, r.end, r.limit, reverse, v, err)
				}
				if got, want := kvStrings(kvs), rangeOfState(state, r.begin, r.end, r.limit, reverse); !slices.Equal(got, want) {
					t.Fatalf("SnapshotGetRange(%q, %q, %d, reverse %v) at %d = %v, want %v", r.begin, r.end, r.limit, reverse, v, got, want)
				}
			}
		}
	}
}

// TestSnapshotReadsOfAtomicCommits reads at the versions of atomic commits
// whose mutations overlap: within a version the later mutation wins.
func TestSnapshotReadsOfAtomicCommits(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.RetentionWindow = time.Minute
	e := openEngine(t, cfg)
	h := newHistory()
	commits := [][]*messages.Mutation{
		{set("a", "1"), set("b", "1"), set("c", "1"), set("e", "1")},
		{set("a", "2"), clr("a", "c"), set("b", "2")},      // a cleared after its SET, b set after the clear
		{del("c"), set("c", "2"), set("d", "1"), del("d")}, // c back after its DELETE, d gone again
		{clr("", ""), set("bb", "1"), set("z", "1")},       // everything cleared, two keys back
		{set("f", "1"), set("f", "2"), clr("e", "g"), set("g", "1")},
	}
	for i, muts := range commits {
		v, err := db(e).AtomicCommit(ctx, &messages.AtomicCommit{Mutations: muts})
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		h.add(v, muts...)
		if _, err := db(e).Put(ctx, []byte("b"), []byte("users"), kv.WithColumnFamily(usersCF)); err != nil {
			t.Fatal(err)
		}
	}
	checkSnapshotReads(t, e, h, e.AppliedIndex())
}

func TestSnapshotReadLeavesWindow(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.RetentionWindow = 100 * time.Millisecond
	e := openEngine(t, cfg)
	v1 := mustPut(t, e, "k", "1")
	v2 := mustPut(t, e, "k", "2")
	// v1 is readable until the write that replaced it is older than the
	// window.
	eventually(t, 10*time.Second, func() bool {
		_, _, err := e.SnapshotRead(ctx, []byte("k"), v1)
		if err != nil && !errors.Is(err, messages.ErrTransactionTooOld) {
			t.Fatalf("SnapshotRead(v1): %v", err)
		}
		return err != nil
	}, "version %d never left the window", v1)
	// The latest version stays readable however old it is.
	if got, ok, err := e.SnapshotRead(ctx, []byte("k"), v2); err != nil || !ok || string(got) != "2" {
		t.Fatalf("SnapshotRead(v2) = %q, %v, %v", got, ok, err)
	}
	if _, err := e.SnapshotGetRange(ctx, nil, nil, 0, false, v1); !errors.Is(err, messages.ErrTransactionTooOld) {
		t.Fatalf("SnapshotGetRange(v1): %v, want ErrTransactionTooOld", err)
	}
}

func TestSnapshotReadsUnderConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.RetentionWindow = time.Minute
	e := openEngine(t, cfg)
	h := newHistory()
	const keys = 12
	key := func(i int) []byte { return fmt.Appendf(nil, "k%02d", i) }

	stop := make(chan struct{})
	var writers sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 2 {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var m *messages.Mutation
				switch r := rng.IntN(20); {
				case r < 15:
					m = &messages.Mutation{Type: messages.MutationType_SET, Key: key(rng.IntN(keys)), Value: fmt.Appendf(nil, "w%d-%d", w, i)}
				case r < 19:
					m = &messages.Mutation{Type: messages.MutationType_DELETE, Key: key(rng.IntN(keys))}
				default:
					b := rng.IntN(keys)
					m = &messages.Mutation{Type: messages.MutationType_CLEAR_RANGE, Key: key(b), End: key(b + rng.IntN(4))}
				}
				if err := h.write(ctx, e, m); err != nil {
					errs <- err
					return
				}
			}
		})
	}

	// observation is one snapshot read and what it returned: a point read
	// of key, or (isRange) a range read.
	type observation struct {
		version    uint64
		key        string
		value      string
		found      bool
		isRange    bool
		rng        []string
		begin, end string
		limit      int
		reverse    bool
	}
	var readers sync.WaitGroup
	obs := make(chan []observation, 3)
	for r := range 3 {
		readers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 11))
			var mine []observation
			// At least 150 rounds, and until the writers have done 300
			// writes (or the deadline passes, which the check below
			// reports).
			deadline := time.Now().Add(20 * time.Second)
			for i := 0; (i < 150 || e.AppliedIndex() < 300) && time.Now().Before(deadline); i++ {
				rv, err := e.GetReadVersion(ctx)
				if err != nil {
					errs <- err
					break
				}
				k := key(rng.IntN(keys))
				val, found, err := e.SnapshotRead(ctx, k, rv)
				if err != nil {
					errs <- fmt.Errorf("SnapshotRead(%s, %d): %w", k, rv, err)
					break
				}
				mine = append(mine, observation{version: rv, key: string(k), value: string(val), found: found})
				b, end := rng.IntN(keys), rng.IntN(keys+2)
				begin, endKey := key(b), key(end)
				if end <= b {
					endKey = nil
				}
				limit, reverse := rng.IntN(5), rng.IntN(2) == 0
				// Sometimes an older version, to read through a deeper overlay.
				at := rv - min(rv, uint64(rng.IntN(100)))
				kvs, err := e.SnapshotGetRange(ctx, begin, endKey, limit, reverse, at)
				if err != nil {
					errs <- fmt.Errorf("SnapshotGetRange at %d: %w", at, err)
					break
				}
				mine = append(mine, observation{version: at, isRange: true, rng: kvStrings(kvs), begin: string(begin), end: string(endKey), limit: limit, reverse: reverse})
			}
			obs <- mine
		})
	}
	readers.Wait()
	close(stop)
	writers.Wait()
	close(obs)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := 0
	for mine := range obs {
		for _, o := range mine {
			state := h.stateAt(o.version)
			if o.isRange {
				if want := rangeOfState(state, o.begin, o.end, o.limit, o.reverse); !slices.Equal(o.rng, want) {
					t.Fatalf("SnapshotGetRange(%q, %q, %d, reverse %v) at %d = %v, want %v", o.begin, o.end, o.limit, o.reverse, o.version, o.rng, want)
				}
				continue
			}
			want, wantFound := state[o.key]
			if o.found != wantFound || o.value != want {
				t.Fatalf("SnapshotRead(%s, %d) = %q, %v; want %q, %v", o.key, o.version, o.value, o.found, want, wantFound)
			}
			n++
		}
	}
	if n == 0 || e.AppliedIndex() < 300 {
		t.Fatalf("too little happened: %d point reads, %d writes", n, e.AppliedIndex())
	}
	t.Logf("%d writes, %d point reads checked", e.AppliedIndex(), n)
}

func TestWriteArgumentsAreNotRetained(t *testing.T) {
	// The Database contract: arguments are not retained. A caller reusing
	// its buffers after a write returns must not change what snapshot reads
	// of that version see.
	ctx := context.Background()
	e := openEngine(t, testConfig(t.TempDir()))
	key, val := []byte("key"), []byte("value-1")
	v1, err := db(e).Put(ctx, key, val)
	if err != nil {
		t.Fatal(err)
	}
	copy(val, "VALUE-X")
	copy(key, "KEY")
	commit := &messages.AtomicCommit{Mutations: []*messages.Mutation{{Type: messages.MutationType_SET, Key: []byte("c"), Value: []byte("commit-1")}}}
	v2, err := db(e).AtomicCommit(ctx, commit)
	if err != nil {
		t.Fatal(err)
	}
	copy(commit.Mutations[0].Value, "COMMIT-X")
	commit.Mutations[0].Key[0] = 'x'
	for _, c := range []struct {
		key, want string
		version   uint64
	}{{"key", "value-1", v1}, {"key", "value-1", v2}, {"c", "commit-1", v2}} {
		got, ok, err := e.SnapshotRead(ctx, []byte(c.key), c.version)
		if err != nil || !ok || !bytes.Equal(got, []byte(c.want)) {
			t.Fatalf("SnapshotRead(%s, %d) = %q, %v, %v; want %q", c.key, c.version, got, ok, err, c.want)
		}
	}
	kvs, err := e.SnapshotGetRange(ctx, nil, nil, 0, false, v2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kvStrings(kvs), []string{"c=commit-1", "key=value-1"}; !slices.Equal(got, want) {
		t.Fatalf("SnapshotGetRange at %d = %v, want %v", v2, got, want)
	}
}
