package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// TestStaleReadsDuringSnapshotInstall is the torn-read case: a replica that
// had applied a run of anchors restarts and catches up from a snapshot
// while stale reads go through it. Installing a snapshot replaces its data
// in several writes; no read may see the anchors' last key without the rest,
// nor any other state the log never had: every state of that replica after
// its restart holds every anchor.
func TestStaleReadsDuringSnapshotInstall(t *testing.T) {
	const anchors = 3000 // of 4 KiB: the snapshot's recovery writes several batches
	c := actorkvtest.NewCluster(t, actorkvtest.WithSnapshots(300, 50))
	value := bytes.Repeat([]byte("a"), 4096)
	ctx := c.Context(2 * time.Minute)
	put := func(db kv.Database, k string, v []byte) {
		if _, err := db.Put(ctx, []byte(k), v); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	put(c.Client(), "anchor/~first", []byte("first"))
	var wg sync.WaitGroup
	for w := range 8 {
		db := c.Group().Client()
		wg.Go(func() {
			for i := w; i < anchors; i += 8 {
				put(db, fmt.Sprintf("anchor/%05d", i), value)
			}
		})
	}
	wg.Wait()
	put(c.Client(), "anchor/!last", []byte("last"))
	c.EnsureSame(t)
	// Replica 0 serves the group's stale reads (it is the local replica).
	c.Crash(0)
	c.WaitNewLeader(0)
	log := c.Recorder().Log(0)
	stopped := log[len(log)-1].Index
	putAll(t, c, "after/", 1000, 8, false) // the leader compacts its log past replica 0

	var done atomic.Bool
	var reads, failed atomic.Int64
	torn := make(chan string, 1)
	readers := sync.WaitGroup{}
	for range 2 {
		db := c.Group().Client()
		readers.Go(func() {
			for !done.Load() {
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				keys, err := db.ListKeys(rctx, []byte("anchor/"), 0, kv.WithConsistency(messages.Consistency_STALE))
				cancel()
				if err != nil {
					failed.Add(1) // retried past its deadline: no answer, not a wrong one
					continue
				}
				reads.Add(1)
				if len(keys) != anchors+2 {
					select {
					case torn <- fmt.Sprintf("a stale ListKeys returned %d of the %d anchors", len(keys), anchors+2):
					default:
					}
				}
			}
		})
	}
	c.Restart(0, false)
	c.EnsureSame(t)
	after := reads.Load()
	actorkvtest.Eventually(t, func() bool { return reads.Load() > after+10 }, actorkvtest.WaitTimeout, "stale reads through replica 0 after it caught up")
	done.Store(true)
	readers.Wait()
	select {
	case msg := <-torn:
		t.Fatal(msg)
	default:
	}
	if n := c.Recorder().IndexCount(0, stopped+1); n != 0 {
		t.Fatalf("replica 0 applied index %d after its restart: it replayed the log instead of installing a snapshot", stopped+1)
	}
	t.Logf("replica 0 stopped at %d and installed a snapshot; %d stale reads (%d without an answer in time)", stopped, reads.Load(), failed.Load())
}

// TestSnapshotReadsAfterRestartOrInstall: a snapshot read at a version
// inside the retention window keeps working when the replica that serves it
// restarted, or installed a snapshot, since: where nothing was written since
// the version, that replica answers (its persisted conflict history proves
// the value unchanged); where something was, its history is gone and the
// router asks a replica that still holds it.
func TestSnapshotReadsAfterRestartOrInstall(t *testing.T) {
	for _, install := range []bool{false, true} {
		name := "restart"
		if install {
			name = "install"
		}
		t.Run(name, func(t *testing.T) {
			c := actorkvtest.NewCluster(t, actorkvtest.WithRetentionWindow(time.Minute), actorkvtest.WithSnapshots(300, 50))
			ctx := c.Context(time.Minute)
			db := c.Client()
			for _, kv := range [][2]string{{"a", "1"}, {"b", "1"}} {
				if _, err := db.Put(ctx, []byte(kv[0]), []byte(kv[1])); err != nil {
					t.Fatal(err)
				}
			}
			rv, err := db.GetReadVersion(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Put(ctx, []byte("b"), []byte("2")); err != nil {
				t.Fatal(err)
			}
			c.EnsureSame(t)
			// Replica 0 leads: snapshot reads go to it. Restart it, with a
			// snapshot to install if asked, and give it the lead back.
			c.Crash(0)
			c.WaitNewLeader(0)
			if install {
				putAll(t, c, "after/", 800, 8, false)
			}
			c.Restart(0, false)
			c.EnsureSame(t)
			c.TransferLeader(0)
			for _, want := range [][2]string{{"a", "1"}, {"b", "1"}} {
				v, found, err := db.SnapshotRead(ctx, []byte(want[0]), rv)
				if err != nil || !found || string(v) != want[1] {
					t.Fatalf("SnapshotRead(%s, %d) after replica 0's %s = %q, %v, %v; want %q", want[0], rv, name, v, found, err, want[1])
				}
			}
			kvs, err := db.SnapshotGetRange(ctx, []byte("a"), []byte("c"), 0, false, rv)
			if err != nil || len(kvs) != 2 || string(kvs[1].GetValue()) != "1" {
				t.Fatalf("SnapshotGetRange([a, c), %d) after replica 0's %s = %v, %v; want a=1 b=1", rv, name, kvs, err)
			}
			// With every replica's history of b gone (all restarted), the
			// answer is TRANSACTION_TOO_OLD — while a stays readable.
			for _, id := range []uint32{1, 2} {
				c.Crash(id)
				c.Restart(id, false)
			}
			c.EnsureSame(t)
			if _, _, err := db.SnapshotRead(ctx, []byte("b"), rv); !errors.Is(err, messages.ErrTransactionTooOld) {
				t.Fatalf("SnapshotRead(b, %d) with every replica restarted: %v, want TRANSACTION_TOO_OLD", rv, err)
			}
			if v, _, err := db.SnapshotRead(ctx, []byte("a"), rv); err != nil || string(v) != "1" {
				t.Fatalf("SnapshotRead(a, %d) with every replica restarted: %q, %v", rv, v, err)
			}
		})
	}
}
