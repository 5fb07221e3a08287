package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/actorkv/actorkv/messages"
)

// TestVersionMemoryBudget writes far more than the kept-versions budget
// within one retention window: the oldest versions leave the window early
// (TRANSACTION_TOO_OLD) while the newest stay readable, and the memory kept
// stays within the budget plus what one checkpoint interval holds (versions
// are dropped a checkpoint at a time, and a checkpoint is taken at least
// every checkpointOps writes).
func TestVersionMemoryBudget(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.SyncWrites = false
	cfg.RetentionWindow = time.Hour // only the budget can push versions out
	cfg.VersionMemoryBytes = 64 << 10
	e := openEngine(t, cfg)
	ctx := context.Background()
	value := make([]byte, 1024)
	var versions []uint64
	for i := range 1000 { // ~1 MiB of mutations, 16× the budget
		v, err := db(e).Put(ctx, fmt.Appendf(nil, "k%04d", i%50), value)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if _, _, err := e.SnapshotRead(ctx, []byte("k0000"), versions[0]); !errors.Is(err, messages.ErrTransactionTooOld) {
		t.Fatalf("read at the first version: %v, want TRANSACTION_TOO_OLD once the budget pushed it out", err)
	}
	last := versions[len(versions)-1]
	got, found, err := e.SnapshotRead(ctx, []byte(fmt.Sprintf("k%04d", 999%50)), last)
	if err != nil || !found || len(got) != len(value) {
		t.Fatalf("read at the newest version: found=%v, %d bytes, %v", found, len(got), err)
	}
	e.mvcc.mu.Lock()
	kept, newest := e.mvcc.bytes, versionBytes(e.mvcc.ops.At(e.mvcc.ops.Len()-1))
	e.mvcc.mu.Unlock()
	// Every version here is the same size: one SET of a 5-byte key and the value.
	if limit := cfg.VersionMemoryBytes + checkpointOps*newest; kept > limit {
		t.Fatalf("%d bytes of versions kept, budget %d, limit %d", kept, cfg.VersionMemoryBytes, limit)
	}
}

// TestIdleVersionsArePruned: the versions a burst of writes leaves are
// dropped once they leave the retention window, with no later write to
// drop them.
func TestIdleVersionsArePruned(t *testing.T) {
	e := openEngine(t, testConfig(t.TempDir())) // a 200ms window
	for i := range 50 {
		mustPut(t, e, "k", strings.Repeat("v", 1000+i))
	}
	last := mustPut(t, e, "k", "last")
	// An entry that changes no data after the last write, applied late
	// enough (past checkpointInterval; a time condition of the engine, not
	// a wait for another goroutine) that its batch takes a checkpoint above
	// the last kept version: that checkpoint stands for the last version,
	// and the kept versions go all the same.
	time.Sleep(checkpointInterval + time.Millisecond)
	if _, err := db(e).OpenSession(context.Background()); err != nil {
		t.Fatal(err)
	}
	kept := func() (int, int) {
		e.mvcc.mu.Lock()
		defer e.mvcc.mu.Unlock()
		return e.mvcc.ops.Len(), e.mvcc.bytes
	}
	if n, _ := kept(); n == 0 {
		t.Fatal("no versions kept after 50 writes")
	}
	eventually(t, 5*time.Second, func() bool { n, b := kept(); return n == 0 && b == 0 }, "versions kept after the window, with no write since")
	// The last version still reads, at its version and after it.
	for _, v := range []uint64{last, e.AppliedIndex()} {
		got, found, err := e.SnapshotRead(context.Background(), []byte("k"), v)
		if err != nil || !found || string(got) != "last" {
			t.Fatalf("SnapshotRead(k, @%d) after the idle prune = %q, %v, %v; want last", v, got, found, err)
		}
	}
}
