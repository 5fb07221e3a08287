package tests

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// putAll writes n keys prefix0..prefix(n-1) from workers concurrent
// goroutines, each with its own client (its own session) or, with shared,
// through one client. It fails t unless every write is acknowledged with a
// version, and returns the versions by key index.
func putAll(t testing.TB, c *actorkvtest.Cluster, prefix string, n, workers int, shared bool) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	versions := make([]uint64, n)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		db := c.Client()
		if !shared {
			db = c.Group().Client()
		}
		wg.Add(1)
		go func(db *kv.Client) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				k := fmt.Sprintf("%s%06d", prefix, i)
				v, err := db.Put(ctx, []byte(k), []byte("value-"+k))
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", k, err)
					return
				}
				if v == 0 {
					errs <- fmt.Errorf("put %s: acknowledged without a version", k)
					return
				}
				versions[i] = v
			}
		}(db)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return versions
}

// TestReplicatedWrites sends 10,000 SETs from 32 concurrent clients: every
// one is acknowledged with a version (writes gathered into one entry share
// its index, at most max_entry_writes of them), and the three replicas end
// at the same applied index with equal digests, having applied the very
// same sequence of entries, each once.
func TestReplicatedWrites(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	start := time.Now()
	versions := putAll(t, c, "w/", 10_000, 32, false)
	t.Logf("10,000 puts from 32 clients in %v", time.Since(start))
	perVersion := map[uint64]int{}
	for _, v := range versions {
		perVersion[v]++
	}
	most := 0
	for v, n := range perVersion {
		most = max(most, n)
		if n > c.Config().Raft.MaxEntryWrites {
			t.Fatalf("version %d acknowledged for %d writes, more than an entry holds", v, n)
		}
	}
	t.Logf("%d versions for %d writes; at most %d writes in one entry", len(perVersion), len(versions), most)
	same := c.EnsureSame(t)
	if max := slices.Max(versions); same.GetAppliedIndex() < max {
		t.Fatalf("applied index %d is below the highest acknowledged version %d", same.GetAppliedIndex(), max)
	}
	rec := c.Recorder()
	want := rec.Log(0)
	for id := range uint32(actorkvtest.Replicas) {
		if d := rec.Duplicates(id); d != "" {
			t.Errorf("replica %d: %s", id, d)
		}
		got := rec.Log(id)
		if !slices.Equal(got, want) {
			t.Errorf("replica %d applied %d entries, replica 0 %d; first difference at %d", id, len(got), len(want), firstDiff(got, want))
		}
		for i, v := range versions {
			if rec.IndexCount(id, v) != 1 {
				t.Fatalf("replica %d applied the version %d of key %d %d times", id, v, i, rec.IndexCount(id, v))
			}
		}
	}
	if n := len(want); n < len(versions) {
		t.Fatalf("replica 0 recorded %d entries for %d writes", n, len(versions))
	}
	if last := want[len(want)-1].Index; last != same.GetAppliedIndex() {
		t.Fatalf("the last recorded index %d is not the applied index %d", last, same.GetAppliedIndex())
	}
}

func firstDiff[T comparable](a, b []T) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestFacadeReadsAndAtomicCommit goes through the Database facade: a put is
// read back linearizably; a single-SET atomic commit goes through consensus,
// returns its version and is applied, at that version, by all three
// replicas, whose contents end up equal; a stale read (served by replica 0,
// the local replica) sees it too.
func TestFacadeReadsAndAtomicCommit(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	db := c.Client()
	ctx := c.Context(time.Minute)
	v1, err := db.Put(ctx, []byte("f/k"), []byte("v1"))
	if err != nil || v1 == 0 {
		t.Fatalf("put: version %d, %v", v1, err)
	}
	got, found, err := db.Get(ctx, []byte("f/k"))
	if err != nil || !found || string(got) != "v1" {
		t.Fatalf("get after put: %q found=%v, %v", got, found, err)
	}
	v2, err := db.AtomicCommit(ctx, &messages.AtomicCommit{Mutations: []*messages.Mutation{
		{Type: messages.MutationType_SET, Key: []byte("f/ac"), Value: []byte("committed")},
	}})
	if err != nil || v2 <= v1 {
		t.Fatalf("atomic commit: version %d (put was %d), %v", v2, v1, err)
	}
	same := c.EnsureSame(t)
	if same.GetAppliedIndex() < v2 {
		t.Fatalf("replicas converged at %d, below the commit version %d", same.GetAppliedIndex(), v2)
	}
	for id := range uint32(actorkvtest.Replicas) {
		if n := c.Recorder().IndexCount(id, v2); n != 1 {
			t.Errorf("replica %d applied the commit's index %d %d times", id, v2, n)
		}
	}
	got, found, err = db.Get(ctx, []byte("f/ac"), kv.WithConsistency(messages.Consistency_STALE))
	if err != nil || !found || string(got) != "committed" {
		t.Fatalf("stale read of the commit on replica 0: %q found=%v, %v", got, found, err)
	}
	rv, err := db.GetReadVersion(ctx)
	if err != nil || rv < v2 {
		t.Fatalf("read version %d after a commit at %d: %v", rv, v2, err)
	}
	got, found, err = db.SnapshotRead(ctx, []byte("f/ac"), v2)
	if err != nil || !found || string(got) != "committed" {
		t.Fatalf("snapshot read at the commit version: %q found=%v, %v", got, found, err)
	}
}

// TestRestartFromDisk stops the whole group and starts a new one on the same
// directory: the data, the applied index and the digests are those of
// before, no entry is applied again (the recorder spans every group), and
// the new group keeps committing after the old versions.
func TestRestartFromDisk(t *testing.T) {
	dir := t.TempDir()
	rec := actorkvtest.NewApplyRecorder()
	c := actorkvtest.NewCluster(t, actorkvtest.WithDir(dir), actorkvtest.WithRecorder(rec))
	versions := putAll(t, c, "r/", 600, 8, false)
	before := c.EnsureSame(t)
	c.Stop()

	c = actorkvtest.NewCluster(t, actorkvtest.WithDir(dir), actorkvtest.WithRecorder(rec))
	after := c.EnsureSame(t)
	if after.GetAppliedIndex() != before.GetAppliedIndex() || !bytes.Equal(after.GetDigest(), before.GetDigest()) {
		t.Fatalf("after the restart: applied %d digest %x; before: applied %d digest %x",
			after.GetAppliedIndex(), after.GetDigest(), before.GetAppliedIndex(), before.GetDigest())
	}
	ctx := c.Context(time.Minute)
	for _, i := range []int{0, 1, 299, 599} {
		k := fmt.Sprintf("r/%06d", i)
		v, found, err := c.Client().Get(ctx, []byte(k))
		if err != nil || !found || string(v) != "value-"+k {
			t.Fatalf("get %s after the restart: %q found=%v, %v", k, v, found, err)
		}
	}
	kvs, err := c.Client().GetRange(ctx, []byte("r/"), []byte("r0"), 0, false)
	if err != nil || len(kvs) != len(versions) {
		t.Fatalf("range after the restart: %d keys (want %d), %v", len(kvs), len(versions), err)
	}
	v, err := c.Client().Put(ctx, []byte("r/after"), []byte("x"))
	if err != nil || v <= before.GetAppliedIndex() {
		t.Fatalf("put after the restart: version %d (applied before: %d), %v", v, before.GetAppliedIndex(), err)
	}
	c.EnsureSame(t)
	c.Reboot() // once more, in place
	if again := c.EnsureSame(t); again.GetAppliedIndex() != v {
		t.Fatalf("after the second restart: applied %d, want %d", again.GetAppliedIndex(), v)
	}
	for id := range uint32(actorkvtest.Replicas) {
		if d := rec.Duplicates(id); d != "" {
			t.Errorf("replica %d across the restarts: %s", id, d)
		}
		for _, v := range versions {
			if n := rec.IndexCount(id, v); n != 1 {
				t.Fatalf("replica %d applied index %d %d times across the restart", id, v, n)
			}
		}
	}
}

// TestFollowerCatchesUpFromLog stops a follower while 3,000 writes commit;
// restarted, it replays them from the Raft log, one by one, and converges.
func TestFollowerCatchesUpFromLog(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	putAll(t, c, "a/", 100, 4, false)
	c.EnsureSame(t)
	c.Crash(2)
	seen := c.Recorder().Count(2)
	putAll(t, c, "b/", 3000, 16, false)
	c.Restart(2, false)
	same := c.EnsureSame(t)
	rec := c.Recorder()
	if d := rec.Duplicates(2); d != "" {
		t.Fatalf("replica 2: %s", d)
	}
	want, got := rec.Log(0), rec.Log(2)
	if !slices.Equal(got, want) {
		t.Fatalf("replica 2 applied %d entries, replica 0 %d: first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	if caught := len(got) - seen; caught < 3000 {
		t.Fatalf("replica 2 applied %d entries after its restart, want at least 3,000", caught)
	}
	t.Logf("replica 2 replayed %d entries up to %d", len(got)-seen, same.GetAppliedIndex())
}

// TestFollowerCatchesUpFromSnapshot compacts the leader's log every 200
// entries (keeping 50) while a follower is down for 3,000 writes: restarted,
// the follower cannot replay entries the leader no longer has, so it
// installs a snapshot — it never applies the entries it missed one by one —
// and then applies new entries one by one again.
func TestFollowerCatchesUpFromSnapshot(t *testing.T) {
	testSnapshotCatchUp(t, false)
}

// TestFollowerRebuiltAfterWipingRaftLog is TestFollowerCatchesUpFromSnapshot
// with the follower's Raft log (and data) deleted before its restart.
func TestFollowerRebuiltAfterWipingRaftLog(t *testing.T) {
	testSnapshotCatchUp(t, true)
}

func testSnapshotCatchUp(t *testing.T, wipe bool) {
	c := actorkvtest.NewCluster(t, actorkvtest.WithSnapshots(200, 50))
	putAll(t, c, "a/", 300, 4, false)
	c.EnsureSame(t)
	c.Crash(2)
	log := c.Recorder().Log(2)
	last := log[len(log)-1].Index
	putAll(t, c, "b/", 3000, 16, false)
	c.Restart(2, wipe)
	c.EnsureSame(t)
	putAll(t, c, "c/", 50, 4, false) // applied one by one after the snapshot
	same := c.EnsureSame(t)
	rec := c.Recorder()
	if d := rec.Duplicates(2); d != "" && !wipe {
		t.Fatalf("replica 2: %s", d)
	}
	var resumed uint64 // the first index replica 2 applied after its restart
	for _, a := range rec.Log(2) {
		if a.Index > last {
			resumed = a.Index
			break
		}
	}
	if resumed <= last+1 {
		t.Fatalf("replica 2 applied index %d right after %d: it replayed the log instead of installing a snapshot", resumed, last)
	}
	if rec.IndexCount(2, last+1) != 0 || rec.IndexCount(0, last+1) != 1 {
		t.Fatalf("index %d after the crash: applied %d times by replica 2 and %d by replica 0", last+1, rec.IndexCount(2, last+1), rec.IndexCount(0, last+1))
	}
	for _, a := range rec.Log(0) {
		if a.Index >= resumed && rec.IndexCount(2, a.Index) != 1 {
			t.Fatalf("replica 2 applied index %d, after the snapshot, %d times", a.Index, rec.IndexCount(2, a.Index))
		}
	}
	t.Logf("replica 2 stopped at %d, installed a snapshot, applied from %d on, converged at %d", last, resumed, same.GetAppliedIndex())
	ctx := c.Context(time.Minute)
	v, found, err := c.Client().Get(ctx, []byte("b/002999"))
	if err != nil || !found || string(v) != "value-b/002999" {
		t.Fatalf("get b/002999: %q found=%v, %v", v, found, err)
	}
}
