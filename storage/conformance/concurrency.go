package conformance

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// concurrencyCases cover concurrent use; they are meant to run under -race.
func concurrencyCases() []testCase {
	return []testCase{
		{"ConcurrentReadModifyWrite", testConcurrentCounters},
	}
}

// closeCases cover Close.
func closeCases() []testCase {
	return []testCase{
		{"Close", testClose},
		{"CloseWhileInUse", testCloseWhileInUse},
	}
}

// testConcurrentCounters runs goroutines that increment shared counters with
// read-modify-write transactions (read at a read version, commit with a read
// conflict range on the counter), retrying on CONFLICT. No increment may be
// lost: each counter ends equal to the number of commits made on it. A
// reader checks meanwhile that no counter is ever seen going back.
func testConcurrentCounters(t *testing.T, db kv.Database) {
	const (
		workers    = 8
		increments = 25 // per worker
		counters   = 3
		maxRetries = 1000 // per increment; only a livelock gets near it
	)
	ctx := t.Context()
	counter := func(i int) string { return fmt.Sprintf("ctr/%d", i) }
	for i := range counters {
		put(t, db, counter(i), "0")
	}

	var (
		commits   [counters]atomic.Int64
		conflicts atomic.Int64
		tooOld    atomic.Int64
		mu        sync.Mutex
		versions  [counters][]uint64 // of every successful commit, by counter
	)
	// increment adds one to counter c and returns the commit version.
	increment := func(c int, lastRV *uint64) (uint64, error) {
		key := counter(c)
		for range maxRetries {
			rv, err := db.GetReadVersion(ctx)
			if err != nil {
				return 0, fmt.Errorf("GetReadVersion: %w", err)
			}
			if rv < *lastRV {
				return 0, fmt.Errorf("GetReadVersion went back from %d to %d", *lastRV, rv)
			}
			*lastRV = rv
			v, found, err := db.SnapshotRead(ctx, []byte(key), rv)
			if err != nil {
				if messages.CodeOf(err) == messages.StatusCode_TRANSACTION_TOO_OLD {
					tooOld.Add(1)
					continue
				}
				return 0, fmt.Errorf("SnapshotRead(%s, @%d): %w", key, rv, err)
			}
			n, err := strconv.Atoi(string(v))
			if !found || err != nil {
				return 0, fmt.Errorf("SnapshotRead(%s, @%d) = %q, found=%v", key, rv, v, found)
			}
			version, err := db.AtomicCommit(ctx, &messages.AtomicCommit{
				ReadVersion:        rv,
				ReadConflictRanges: []*messages.KeyRange{pointRange(key)},
				Mutations:          []*messages.Mutation{set(key, strconv.Itoa(n+1))},
			})
			switch messages.CodeOf(err) {
			case messages.StatusCode_OK:
				if version <= rv {
					return 0, fmt.Errorf("commit at read version %d returned version %d", rv, version)
				}
				return version, nil
			case messages.StatusCode_CONFLICT:
				conflicts.Add(1)
			case messages.StatusCode_TRANSACTION_TOO_OLD:
				// A slow round trip under -race can outlive the short
				// window; a client simply retries.
				tooOld.Add(1)
			default:
				return 0, fmt.Errorf("AtomicCommit(%s = %d) at read version %d: %w", key, n+1, rv, err)
			}
		}
		return 0, fmt.Errorf("increment of %s did not commit in %d attempts", key, maxRetries)
	}

	done := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		seen := make([]int, counters)
		for {
			select {
			case <-done:
				return
			default:
			}
			kvs, err := db.GetRange(ctx, []byte("ctr/"), []byte("ctr0"), 0, false)
			if err != nil {
				t.Errorf("reader: GetRange: %v", err)
				return
			}
			for i, e := range kvs {
				n, err := strconv.Atoi(string(e.GetValue()))
				if err != nil || i >= counters {
					t.Errorf("reader: unexpected entry %q=%q", e.GetKey(), e.GetValue())
					return
				}
				if n < seen[i] {
					t.Errorf("reader: %s went back from %d to %d", e.GetKey(), seen[i], n)
					return
				}
				seen[i] = n
			}
		}
	})

	var writers sync.WaitGroup
	for w := range workers {
		writers.Go(func() {
			var lastRV uint64
			for j := range increments {
				c := (w + j) % counters
				v, err := increment(c, &lastRV)
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				commits[c].Add(1)
				if v > lastRV {
					lastRV = v // the next read version must cover this commit
				}
				mu.Lock()
				versions[c] = append(versions[c], v)
				mu.Unlock()
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	if t.Failed() {
		return
	}

	t.Logf("%d commits, %d conflicts, %d too old", workers*increments, conflicts.Load(), tooOld.Load())
	total := 0
	for c := range counters {
		n := int(commits[c].Load())
		total += n
		wantValue(t, db, counter(c), strconv.Itoa(n))
	}
	if total != workers*increments {
		t.Fatalf("%d commits succeeded; want %d", total, workers*increments)
	}
	// Writes may share a version (a replica gathers several into one log
	// entry), but two increments of one counter never do: the later would
	// have read the earlier's write.
	for c, vs := range versions {
		slices.Sort(vs)
		for i := 1; i < len(vs); i++ {
			if vs[i] == vs[i-1] {
				t.Fatalf("two increments of %s returned the same version %d", counter(c), vs[i])
			}
		}
	}
}

func testClose(t *testing.T, db kv.Database) {
	seed(t, db)
	rv := readVersion(t, db)
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, op := range everyOperation() {
		t.Run(op.name, func(t *testing.T) {
			RequireCode(t, op.op(t.Context(), db, rv), messages.StatusCode_UNAVAILABLE, op.name+" after Close")
		})
	}
}

// testCloseWhileInUse closes the store while goroutines use it: every call
// must either succeed or fail with UNAVAILABLE, and none may hang or race.
func testCloseWhileInUse(t *testing.T, db kv.Database) {
	ctx := t.Context()
	const workers = 4
	var ops atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			key := []byte(fmt.Sprintf("w%d", w))
			for i := 0; ; i++ {
				var err error
				switch i % 4 {
				case 0:
					_, err = db.Put(ctx, key, []byte(strconv.Itoa(i)))
				case 1:
					_, _, err = db.Get(ctx, key)
				case 2:
					_, err = db.GetRange(ctx, nil, nil, 10, i%8 == 2)
				case 3:
					_, err = db.AtomicCommit(ctx, &messages.AtomicCommit{Mutations: []*messages.Mutation{set(string(key), "c")}})
				}
				switch messages.CodeOf(err) {
				case messages.StatusCode_OK:
					ops.Add(1)
				case messages.StatusCode_UNAVAILABLE:
					return
				default:
					t.Errorf("worker %d, op %d during Close: %v (code %v); want success or UNAVAILABLE", w, i, err, messages.CodeOf(err))
					return
				}
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	// Whatever happens below, the workers end before the test does.
	defer func() {
		_ = db.Close()
		<-finished
	}()
	Eventually(t, func() bool { return ops.Load() >= 40 }, 10*time.Second, "workers make progress")
	if err := db.Close(); err != nil {
		t.Errorf("Close while in use: %v", err)
	}
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Errorf("operations still running 10s after Close")
	}
}
