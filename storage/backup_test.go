package storage

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// readBackup reads a whole backup opened by first, page by page, writing
// between pages, and returns what it read per family with the last answer.
func readBackup(t *testing.T, e *Engine, first *messages.BackupResponse, between func(page int)) (map[string]map[string]string, *messages.BackupResponse) {
	t.Helper()
	got := map[string]map[string]string{}
	resp := first
	for page := 0; ; page++ {
		if err := resp.GetStatus().Err(); err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if resp.GetAppliedIndex() != first.GetAppliedIndex() {
			t.Fatalf("page %d at index %d, the backup opened at %d", page, resp.GetAppliedIndex(), first.GetAppliedIndex())
		}
		m := got[resp.GetColumnFamily()]
		if m == nil {
			m = map[string]string{}
			got[resp.GetColumnFamily()] = m
		}
		for _, e := range resp.GetEntries() {
			m[string(e.GetKey())] = string(e.GetValue())
		}
		if resp.GetDone() {
			return got, resp
		}
		between(page)
		resp = e.Backup(context.Background(), &messages.BackupRequest{BackupId: first.GetBackupId(),
			ColumnFamily: resp.GetNextColumnFamily(), After: resp.GetNextAfter()})
	}
}

// TestBackupIsOneVersion: a backup's pages all read the state at the index
// it opened at, while writes go on between them, across families and page
// boundaries (values of 100 KiB make pages of about ten entries), and its
// last page carries the digests of that state.
func TestBackupIsOneVersion(t *testing.T) {
	e := openEngine(t, testConfig(t.TempDir()))
	big := strings.Repeat("v", 100<<10)
	want := map[string]map[string]string{kv.DefaultColumnFamily: {}, usersCF: {}}
	for i := range 40 {
		k := fmt.Sprintf("k%03d", i)
		mustPut(t, e, k, big+k)
		want[kv.DefaultColumnFamily][k] = big + k
		mustPut(t, e, k, k, kv.WithColumnFamily(usersCF))
		want[usersCF][k] = k
	}
	before := mustDigest(t, e)
	first := e.Backup(context.Background(), &messages.BackupRequest{})
	if first.GetAppliedIndex() != before.AppliedIndex || first.GetBackupId() == 0 {
		t.Fatalf("opened at index %d (id %d), the engine was at %d", first.GetAppliedIndex(), first.GetBackupId(), before.AppliedIndex)
	}
	pages := 0
	got, last := readBackup(t, e, first, func(page int) {
		pages++
		// Overwrite, add and delete between pages: the backup sees none.
		mustPut(t, e, "k000", "changed")
		mustPut(t, e, fmt.Sprintf("new%d", page), "x", kv.WithColumnFamily(usersCF))
		if _, err := db(e).Delete(context.Background(), []byte(fmt.Sprintf("k%03d", 39-page))); err != nil {
			t.Fatal(err)
		}
	})
	if pages < 4 {
		t.Fatalf("%d pages: want several (1 MiB each)", pages)
	}
	for cf, m := range want {
		if fmt.Sprint(got[cf]) != fmt.Sprint(m) {
			t.Fatalf("family %s: the backup holds %d entries, the state it opened at %d", cf, len(got[cf]), len(m))
		}
	}
	if !bytes.Equal(last.GetDigest(), before.Combined) || len(last.GetDigests()) != len(before.Families) {
		t.Fatalf("the last page's digest %x, the engine's at the backup's index %x", last.GetDigest(), before.Combined)
	}
	// The backup ended: its id is no longer open.
	resp := e.Backup(context.Background(), &messages.BackupRequest{BackupId: first.GetBackupId(), ColumnFamily: usersCF})
	wantCode(t, resp.GetStatus().Err(), messages.StatusCode_INVALID_ARGUMENT, "a page of an ended backup")
}

// TestBackupBounds: at most MaxBackups are open at once; an abandoned one
// makes room; unknown ids and families are refused; Close releases the
// views still open.
func TestBackupBounds(t *testing.T) {
	e := openEngine(t, testConfig(t.TempDir()))
	mustPut(t, e, "a", "1")
	var ids []uint64
	for range MaxBackups {
		r := e.Backup(context.Background(), &messages.BackupRequest{})
		if err := r.GetStatus().Err(); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.GetBackupId())
	}
	r := e.Backup(context.Background(), &messages.BackupRequest{})
	wantCode(t, r.GetStatus().Err(), messages.StatusCode_RESOURCE_EXHAUSTED, "one backup too many")
	r = e.Backup(context.Background(), &messages.BackupRequest{BackupId: ids[0], ColumnFamily: "nope"})
	wantCode(t, r.GetStatus().Err(), messages.StatusCode_UNKNOWN_COLUMN_FAMILY, "a page of an unknown family")
	r = e.Backup(context.Background(), &messages.BackupRequest{BackupId: ids[0] + 1})
	wantCode(t, r.GetStatus().Err(), messages.StatusCode_INVALID_ARGUMENT, "an unknown backup")
	if r = e.Backup(context.Background(), &messages.BackupRequest{BackupId: ids[0], Abandon: true}); r.GetStatus().Err() != nil || !r.GetDone() {
		t.Fatalf("abandon: %v", r)
	}
	if r = e.Backup(context.Background(), &messages.BackupRequest{}); r.GetStatus().Err() != nil {
		t.Fatalf("a backup after one was abandoned: %v", r.GetStatus().Err())
	}
	if err := closeEngine(e); err != nil { // two views open: Close releases them
		t.Fatal(err)
	}
	r = e.Backup(context.Background(), &messages.BackupRequest{BackupId: ids[1], ColumnFamily: usersCF})
	wantCode(t, r.GetStatus().Err(), messages.StatusCode_UNAVAILABLE, "a page after Close")
}
