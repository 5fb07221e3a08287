package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// TestRecoverSnapshotIsAtomicForReaders reads a replica while it installs a
// snapshot that replaces every key: each read sees the old state whole, the
// new state whole, or is refused (UNAVAILABLE, the replica installing) —
// never a mixture, which the recovery's wipe and batched rewrite would show.
func TestRecoverSnapshotIsAtomicForReaders(t *testing.T) {
	const keys = 3000 // 4 KiB each: the recovery writes several batches
	value := bytes.Repeat([]byte("v"), 4096)
	fill := func(e *Engine, prefix string) {
		es := make([]Entry, keys)
		for i := range es {
			es[i] = Entry{Index: uint64(i + 1), Cmd: setCmd("", fmt.Sprintf("%s/%04d", prefix, i), string(value))}
		}
		mustApply(t, e, es)
	}
	src := openEngine(t, replicatedConfig(t.TempDir()))
	fill(src, "new")
	snap := saveSnapshot(t, src)
	dst := openEngine(t, replicatedConfig(t.TempDir()))
	fill(dst, "old")

	var done atomic.Bool
	var reads, refused, states [3]atomic.Int64 // by reader kind: list, get, range
	var wg sync.WaitGroup
	fails := make(chan string, 3)
	fail := func(format string, args ...any) { // keeps the first few; never blocks a reader
		select {
		case fails <- fmt.Sprintf(format, args...):
		default:
		}
	}
	check := func(kind int, keysSeen []string, err error) {
		reads[kind].Add(1)
		switch {
		case errors.Is(err, ErrInstalling):
			refused[kind].Add(1)
			return
		case err != nil:
			fail("read %d: %v", kind, err)
			return
		}
		old, new := 0, 0
		for _, k := range keysSeen {
			if strings.HasPrefix(k, "old/") {
				old++
			} else {
				new++
			}
		}
		if !(old == len(keysSeen) || new == len(keysSeen)) || (kind != 1 && len(keysSeen) != keys) {
			fail("read %d saw %d old and %d new keys: a state neither before nor after the install", kind, old, new)
			return
		}
		states[kind].Add(1)
	}
	ctx := context.Background()
	wg.Go(func() {
		for !done.Load() {
			ks, err := dst.ListKeys(ctx, nil, 0)
			seen := make([]string, len(ks))
			for i, k := range ks {
				seen[i] = string(k)
			}
			check(0, seen, err)
		}
	})
	wg.Go(func() {
		for !done.Load() {
			// old/0000 and new/2999: present together only in a mixture.
			_, okOld, err := dst.Get(ctx, []byte("old/0000"))
			var seen []string
			if err == nil {
				if okOld {
					seen = append(seen, "old/0000")
				}
				var okNew bool
				_, okNew, err = dst.Get(ctx, []byte("new/2999"))
				if okNew {
					seen = append(seen, "new/2999")
				}
				if err == nil && len(seen) != 1 {
					fail("gets saw %v: one of old/0000 and new/2999 exists in every state", seen)
				}
			}
			check(1, seen, err)
		}
	})
	wg.Go(func() {
		for !done.Load() {
			kvs, err := dst.GetRange(ctx, nil, nil, 0, false)
			seen := make([]string, len(kvs))
			for i, kv := range kvs {
				seen[i] = string(kv.Key)
			}
			check(2, seen, err)
		}
	})
	// Let the readers start on the old state, then install.
	eventually(t, 10*time.Second, func() bool { return states[0].Load() > 0 && states[2].Load() > 0 }, "readers never read")
	if err := dst.RecoverSnapshot(bytes.NewReader(snap), nil); err != nil {
		t.Fatal(err)
	}
	if dst.Installing() {
		t.Fatal("Installing() after the recovery returned")
	}
	after := states[0].Load()
	eventually(t, 10*time.Second, func() bool { return states[0].Load() > after }, "no read after the install")
	done.Store(true)
	wg.Wait()
	close(fails)
	for msg := range fails {
		t.Error(msg)
	}
	for kind, name := range []string{"list", "get", "range"} {
		t.Logf("%s: %d reads, %d refused while installing", name, reads[kind].Load(), refused[kind].Load())
	}
	if got, ok := mustGet(t, dst, "new/2999"); !ok || got != string(value) {
		t.Fatal("the install did not complete")
	}
}

// TestSnapshotReadsAcrossReopenAndInstall: a replica that restarted, or
// installed a snapshot, has no history of the versions before it in memory;
// a snapshot read at such a version is still answered where nothing was
// written since — the conflict history, replicated and persisted, proves it
// — and refused TRANSACTION_TOO_OLD where something was.
func TestSnapshotReadsAcrossReopenAndInstall(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.RetentionWindow = time.Minute
	e := openEngine(t, cfg)
	mustPut(t, e, "a", "1")
	mustPut(t, e, "b", "1")
	mustPut(t, e, "c", "1", kv.WithColumnFamily(usersCF))
	rv, err := e.GetReadVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, e, "b", "2")
	mustPut(t, e, "d", "1")

	check := func(what string, e *Engine) {
		t.Helper()
		t.Log(what)
		if got, ok, err := e.SnapshotRead(ctx, []byte("a"), rv); err != nil || !ok || string(got) != "1" {
			t.Fatalf("SnapshotRead(a, %d) = %q, %v, %v; want 1 (a was not written since)", rv, got, ok, err)
		}
		if got, ok, err := e.SnapshotRead(ctx, []byte("never"), rv); err != nil || ok {
			t.Fatalf("SnapshotRead(never, %d) = %q, %v, %v; want missing (never written)", rv, got, ok, err)
		}
		if got, ok, err := e.SnapshotRead(ctx, []byte("c"), rv, kv.WithColumnFamily(usersCF)); err != nil || !ok || string(got) != "1" {
			t.Fatalf("SnapshotRead(users/c, %d) = %q, %v, %v; want 1", rv, got, ok, err)
		}
		if _, _, err := e.SnapshotRead(ctx, []byte("b"), rv); !errors.Is(err, messages.ErrTransactionTooOld) {
			t.Fatalf("SnapshotRead(b, %d): %v; want TRANSACTION_TOO_OLD (b was written since; its value at the version is gone here)", rv, err)
		}
		if kvs, err := e.SnapshotGetRange(ctx, []byte("a"), []byte("b"), 0, false, rv); err != nil || len(kvs) != 1 || string(kvs[0].Value) != "1" {
			t.Fatalf("SnapshotGetRange([a, b), %d) = %v, %v; want a=1", rv, kvs, err)
		}
		if _, err := e.SnapshotGetRange(ctx, []byte("a"), nil, 0, false, rv); !errors.Is(err, messages.ErrTransactionTooOld) {
			t.Fatalf("SnapshotGetRange([a, ...), %d): %v; want TRANSACTION_TOO_OLD", rv, err)
		}
	}
	e = reopen(t, e, cfg)
	check("after a restart", e)
	snap := saveSnapshot(t, e)
	other := openEngine(t, func() Config { c := cfg; c.Dir = t.TempDir(); return c }())
	if err := other.RecoverSnapshot(bytes.NewReader(snap), nil); err != nil {
		t.Fatal(err)
	}
	check("after a snapshot install", other)
}
