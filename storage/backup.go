package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/linxGnu/grocksdb"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// Backups (kvctl snapshot save) read a pinned view of the engine's data page
// by page: messages.BackupRequest says how. A view pins a RocksDB snapshot,
// so the engine bounds how many are open and releases one that no request
// touched for BackupIdle.

const (
	// MaxBackups is how many backups an engine holds open at once; one
	// more is refused with RESOURCE_EXHAUSTED.
	MaxBackups = 2
	// BackupIdle is how long a backup's view stays pinned without a
	// request.
	BackupIdle = time.Minute
	// backupPageBytes bounds a page's keys and values (a page holds at
	// least one entry, so one value over it makes a larger page).
	backupPageBytes = 1 << 20
	// backupPageEntries bounds a page's entries.
	backupPageEntries = 10000
)

// backupView is one open backup.
type backupView struct {
	mu       sync.Mutex            // held while a page is read or the view released
	ro       *grocksdb.ReadOptions // reads the pinned view; nil once released
	free     func()                // releases it (scanView's)
	applied  uint64
	lastUsed time.Time
}

func (v *backupView) release() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ro != nil {
		v.free()
		v.ro = nil
	}
}

// backups are an engine's open backups.
type backups struct {
	mu    sync.Mutex
	views map[uint64]*backupView
}

var errBackupNotOpen = messages.Errorf(messages.StatusCode_INVALID_ARGUMENT,
	"backup is not open here: it ended, was idle for over %v, or its replica restarted; start a new one", BackupIdle)

// Backup serves one request of a backup: it opens one (backup_id 0) and
// answers its first page, reads the next page, or abandons one. The caller
// has made the read linearizable when it opens one, if it must be. A backup
// is not opened during a snapshot install (UNAVAILABLE, as a read): its view
// would pin a half-written state; the pages of one opened before read their
// pinned view, which the install does not touch.
func (e *Engine) Backup(ctx context.Context, req *messages.BackupRequest) *messages.BackupResponse {
	enter := e.enter
	if req.GetBackupId() == 0 {
		enter = e.enterRead
	}
	done, err := enter(ctx)
	if err != nil {
		return &messages.BackupResponse{Status: messages.StatusOf(err)}
	}
	defer done()
	resp, err := e.backup(ctx, req)
	if err != nil {
		return &messages.BackupResponse{Status: messages.StatusOf(err)}
	}
	resp.Status = messages.StatusOf(nil)
	return resp
}

func (e *Engine) backup(ctx context.Context, req *messages.BackupRequest) (*messages.BackupResponse, error) {
	now := time.Now()
	e.releaseIdleBackups(now) // before counting the open ones
	e.backups.mu.Lock()
	id := req.GetBackupId()
	if id == 0 {
		if len(e.backups.views) >= MaxBackups {
			e.backups.mu.Unlock()
			return nil, messages.Errorf(messages.StatusCode_RESOURCE_EXHAUSTED, "%d backups are open on this replica; wait for one to end (or %v)", MaxBackups, BackupIdle)
		}
		v, err := e.openBackupView()
		if err != nil {
			e.backups.mu.Unlock()
			return nil, err
		}
		for id == 0 || e.backups.views[id] != nil {
			id = randomID()
		}
		if e.backups.views == nil {
			e.backups.views = map[uint64]*backupView{}
		}
		v.lastUsed = now
		e.backups.views[id] = v
		e.backups.mu.Unlock()
		first := ""
		if len(e.cfNames) > 0 {
			first = e.cfNames[0]
		}
		return e.backupPage(ctx, id, v, first, nil)
	}
	v := e.backups.views[id]
	if v == nil {
		e.backups.mu.Unlock()
		return nil, errBackupNotOpen
	}
	v.lastUsed = now
	if req.GetAbandon() {
		delete(e.backups.views, id)
		e.backups.mu.Unlock()
		v.release()
		return &messages.BackupResponse{BackupId: id, AppliedIndex: v.applied, Done: true}, nil
	}
	e.backups.mu.Unlock()
	cf := req.GetColumnFamily()
	if cf == "" {
		cf = kv.DefaultColumnFamily
	}
	if !slices.Contains(e.cfNames, cf) {
		return nil, messages.Errorf(messages.StatusCode_UNKNOWN_COLUMN_FAMILY, "column family %q", cf)
	}
	return e.backupPage(ctx, id, v, cf, req.GetAfter())
}

// openBackupView pins the current state: every family and the applied
// index, in one RocksDB snapshot (ApplyBatch writes both in one batch).
func (e *Engine) openBackupView() (*backupView, error) {
	ro, free := e.scanView()
	applied, err := e.appliedIn(ro)
	if err != nil {
		free()
		return nil, err
	}
	return &backupView{ro: ro, free: free, applied: applied}, nil
}

// backupPage reads the page of view v that starts after key after of family
// cf (one family's entries, up to backupPageBytes or backupPageEntries);
// with the last entry of the last family it adds the view's digests and
// releases the view.
func (e *Engine) backupPage(ctx context.Context, id uint64, v *backupView, cf string, after []byte) (*messages.BackupResponse, error) {
	v.mu.Lock()
	if v.ro == nil {
		v.mu.Unlock()
		return nil, errBackupNotOpen
	}
	resp := &messages.BackupResponse{BackupId: id, AppliedIndex: v.applied, ColumnFamilies: e.ColumnFamilies(), ColumnFamily: cf}
	next, full, err := e.readPage(ctx, v.ro, e.cfs[cf], after, resp)
	if err != nil {
		v.mu.Unlock()
		return nil, err
	}
	if full {
		resp.NextColumnFamily, resp.NextAfter = cf, next
		v.mu.Unlock()
		return resp, nil
	}
	// The family is done. A page holds one family's entries: the next
	// page starts at the next family, if there is one.
	if pos := slices.Index(e.cfNames, cf) + 1; pos < len(e.cfNames) {
		resp.NextColumnFamily = e.cfNames[pos]
		v.mu.Unlock()
		return resp, nil
	}
	fams, err := e.familyDigests(ctx, v.ro)
	v.mu.Unlock()
	if err != nil {
		return nil, err
	}
	resp.Done, resp.Digests, resp.Digest = true, fams, kv.CombinedDigest(fams)
	e.backups.mu.Lock()
	delete(e.backups.views, id)
	e.backups.mu.Unlock()
	v.release()
	return resp, nil
}

// readPage appends the entries of family h after key after to resp until
// the page is full (it returns the last key read and true) or the family
// ends (false).
func (e *Engine) readPage(ctx context.Context, ro *grocksdb.ReadOptions, h *grocksdb.ColumnFamilyHandle, after []byte, resp *messages.BackupResponse) ([]byte, bool, error) {
	it := e.db.NewIteratorCF(ro, h)
	defer it.Close()
	if len(after) == 0 {
		it.SeekToFirst()
	} else {
		it.Seek(after)
		if it.Valid() && bytes.Equal(it.Key().Data(), after) {
			it.Next()
		}
	}
	size := 0
	for ; it.Valid(); it.Next() {
		if len(resp.Entries) > 0 && (size >= backupPageBytes || len(resp.Entries) >= backupPageEntries) {
			return resp.Entries[len(resp.Entries)-1].GetKey(), true, nil
		}
		if len(resp.Entries)%1024 == 1023 && ctx.Err() != nil {
			return nil, false, contextError(ctx.Err())
		}
		k, val := it.Key(), it.Value()
		entry := &messages.KeyValue{Key: bytes.Clone(k.Data()), Value: bytes.Clone(val.Data())}
		k.Free()
		val.Free()
		size += len(entry.Key) + len(entry.Value)
		resp.Entries = append(resp.Entries, entry)
	}
	if err := it.Err(); err != nil {
		return nil, false, fmt.Errorf("storage: read for backup: %w", err)
	}
	return nil, false, nil
}

// releaseIdleBackups releases the backups no request touched for
// BackupIdle (a client that died mid-backup): on the next request, and from
// the engine's pruner, so an abandoned view never pins old data for long.
func (e *Engine) releaseIdleBackups(now time.Time) {
	var idle []*backupView
	e.backups.mu.Lock()
	for id, v := range e.backups.views {
		if now.Sub(v.lastUsed) > BackupIdle {
			delete(e.backups.views, id)
			idle = append(idle, v)
		}
	}
	e.backups.mu.Unlock()
	for _, v := range idle {
		v.release()
	}
}

// releaseBackups releases every open backup (the engine closes).
func (e *Engine) releaseBackups() {
	e.backups.mu.Lock()
	views := e.backups.views
	e.backups.views = nil
	e.backups.mu.Unlock()
	for _, v := range views {
		v.release()
	}
}

func randomID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
