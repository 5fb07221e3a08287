package storage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/linxGnu/grocksdb"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// State machine snapshots: the whole contents of every column family,
// internal one included, streamed as
//
//	magic "AKVSNAP1" | uvarint len + SnapshotHeader | records | uvarint 0 | crc32c
//
// where a record is uvarint(family position + 1), uvarint(len key), key,
// uvarint(len value), value, and the CRC covers everything before it.

var snapshotMagic = []byte("AKVSNAP1")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrSnapshotStopped is returned when a snapshot save or recovery is stopped
// through its stop channel.
var ErrSnapshotStopped = errors.New("storage: snapshot stopped")

// SnapshotView is a consistent point-in-time view of the engine for
// SaveSnapshot.
type SnapshotView struct {
	e       *Engine
	snap    *grocksdb.Snapshot
	applied uint64
}

// AppliedIndex is the index the view holds the state of.
func (v *SnapshotView) AppliedIndex() uint64 { return v.applied }

// Release frees the view; it is idempotent.
func (v *SnapshotView) Release() {
	if v.snap != nil {
		v.e.db.ReleaseSnapshot(v.snap)
		v.snap = nil
	}
}

// PrepareSnapshot captures the current state for SaveSnapshot. It is cheap and
// may run concurrently with reads; ApplyBatch waits for it.
func (e *Engine) PrepareSnapshot() (*SnapshotView, error) {
	done, err := e.enter(nil)
	if err != nil {
		return nil, err
	}
	defer done()
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	return &SnapshotView{e: e, snap: e.db.NewSnapshot(), applied: e.sm.applied}, nil
}

// families returns the column families in snapshot order: the configured ones
// sorted, then the internal one.
func (e *Engine) families() ([]string, []*grocksdb.ColumnFamilyHandle) {
	names := append(e.ColumnFamilies(), internalColumnFamily)
	hs := make([]*grocksdb.ColumnFamilyHandle, len(names))
	for i, n := range names {
		if n == internalColumnFamily {
			hs[i] = e.internal
		} else {
			hs[i] = e.cfs[n]
		}
	}
	return names, hs
}

// SaveSnapshot writes the state of v to w. It stops early with
// ErrSnapshotStopped when stop is closed. It releases v.
func (e *Engine) SaveSnapshot(v *SnapshotView, w io.Writer, stop <-chan struct{}) error {
	defer v.Release()
	done, err := e.enter(nil)
	if err != nil {
		return err
	}
	defer done()
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 1<<20)
	names, hs := e.families()
	hdr, err := proto.Marshal(&messages.SnapshotHeader{AppliedIndex: v.applied, ColumnFamilies: names})
	if err != nil {
		return fmt.Errorf("storage: encode snapshot header: %w", err)
	}
	bw.Write(snapshotMagic)
	writeBytes(bw, hdr)
	ro := grocksdb.NewDefaultReadOptions()
	defer ro.Destroy()
	ro.SetSnapshot(v.snap)
	ro.SetFillCache(false)
	for i, h := range hs {
		if err := e.saveFamily(bw, ro, h, uint64(i+1), names[i] == internalColumnFamily, stop); err != nil {
			return err
		}
	}
	writeUvarint(bw, 0)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("storage: write snapshot: %w", err)
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc.Sum32())
	if _, err := w.Write(sum[:]); err != nil {
		return fmt.Errorf("storage: write snapshot: %w", err)
	}
	return nil
}

func (e *Engine) saveFamily(bw *bufio.Writer, ro *grocksdb.ReadOptions, h *grocksdb.ColumnFamilyHandle, tag uint64, internal bool, stop <-chan struct{}) error {
	it := e.db.NewIteratorCF(ro, h)
	defer it.Close()
	n := 0
	for it.SeekToFirst(); it.Valid(); it.Next() {
		if n++; n%1024 == 0 {
			select {
			case <-stop:
				return ErrSnapshotStopped
			default:
			}
		}
		k, v := it.Key(), it.Value()
		skip := internal && (bytes.Equal(k.Data(), keyApplied) || bytes.Equal(k.Data(), keyRecovering))
		if !skip {
			writeUvarint(bw, tag)
			writeBytes(bw, k.Data())
			writeBytes(bw, v.Data())
		}
		k.Free()
		v.Free()
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("storage: read for snapshot: %w", err)
	}
	return nil
}

func writeUvarint(w *bufio.Writer, v uint64) {
	var b [binary.MaxVarintLen64]byte
	w.Write(b[:binary.PutUvarint(b[:], v)])
}

func writeBytes(w *bufio.Writer, p []byte) {
	writeUvarint(w, uint64(len(p)))
	w.Write(p)
}

// recoverBatchBytes is the size at which recovery flushes a write batch.
const recoverBatchBytes = 4 << 20

// RecoverSnapshot replaces the whole state with the snapshot read from r.
// It is atomic for readers: a read sees the state before it or after it;
// reads that arrive while it runs fail with UNAVAILABLE (ErrInstalling),
// and Installing reports it. A recovery interrupted by a crash leaves a marker that makes the next Open
// wipe the partial state (applied index 0), so the replica asks for the
// snapshot again instead of serving half of one.
func (e *Engine) RecoverSnapshot(r io.Reader, stop <-chan struct{}) error {
	done, err := e.enter(nil)
	if err != nil {
		return err
	}
	defer done()
	// Readers in flight finish on the old state; new ones are refused
	// until the new state is complete, so none sees a mixture. (Lock order:
	// installMu before applyMu, as a read that consults the machine state
	// takes them.)
	e.installing.Store(true)
	e.installMu.Lock()
	defer func() {
		e.installMu.Unlock()
		e.installing.Store(false)
	}()
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	e.digestMu.Lock()
	e.digestLast = nil // the state may change under an applied index it had
	e.digestMu.Unlock()
	if wiped, err := e.recoverSnapshot(r, stop); err != nil {
		// Refused before anything was touched (a bad header, an unknown
		// family), the old state stands; after the wipe began, the engine
		// serves nothing until it is reopened, which wipes the partial
		// state.
		if wiped {
			e.broken.Store(true)
		}
		return err
	}
	return nil
}

// recoverSnapshot reads and installs the snapshot; wiped reports whether it
// had begun to replace the state when it failed.
func (e *Engine) recoverSnapshot(r io.Reader, stop <-chan struct{}) (bool, error) {
	var wiped bool
	err := e.install(r, stop, &wiped)
	return wiped, err
}

// install checks the snapshot's header, then replaces the state with it,
// setting *wiped once it begins to.
func (e *Engine) install(r io.Reader, stop <-chan struct{}, wiped *bool) error {
	raw := bufio.NewReaderSize(r, 1<<20)
	// The checksum covers the bytes consumed, not those the buffer has read
	// ahead (which include the checksum itself).
	br := &crcReader{r: raw}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, snapshotMagic) {
		return fmt.Errorf("storage: recover snapshot: bad magic: %w", messages.ErrInternal)
	}
	hdrBytes, err := readBytes(br)
	if err != nil {
		return fmt.Errorf("storage: recover snapshot header: %w", err)
	}
	var hdr messages.SnapshotHeader
	if err := proto.Unmarshal(hdrBytes, &hdr); err != nil {
		return fmt.Errorf("storage: decode snapshot header: %w", err)
	}
	hs := make([]*grocksdb.ColumnFamilyHandle, len(hdr.GetColumnFamilies()))
	for i, n := range hdr.GetColumnFamilies() {
		if n == internalColumnFamily {
			hs[i] = e.internal
		} else if h, ok := e.cfs[n]; ok {
			hs[i] = h
		} else {
			return messages.Errorf(messages.StatusCode_UNKNOWN_COLUMN_FAMILY, "snapshot has column family %q, which this replica does not configure", n)
		}
	}

	sync := grocksdb.NewDefaultWriteOptions()
	defer sync.Destroy()
	sync.SetSync(true)
	*wiped = true // from here on the old state is going
	if err := e.db.PutCF(sync, e.internal, keyRecovering, []byte{1}); err != nil {
		return fmt.Errorf("storage: mark recovery: %w", err)
	}
	if err := e.wipeData(); err != nil {
		return err
	}
	wb := grocksdb.NewWriteBatch()
	defer wb.Destroy()
	flush := func() error {
		if wb.Count() == 0 {
			return nil
		}
		err := e.db.Write(e.wo, wb)
		wb.Clear()
		return err
	}
	size := 0
	for n := 0; ; n++ {
		if n%1024 == 0 {
			select {
			case <-stop:
				return ErrSnapshotStopped
			default:
			}
		}
		tag, err := binary.ReadUvarint(br)
		if err != nil {
			return fmt.Errorf("storage: read snapshot record: %w", err)
		}
		if tag == 0 {
			break
		}
		if tag > uint64(len(hs)) {
			return fmt.Errorf("storage: snapshot record names family %d of %d: %w", tag, len(hs), messages.ErrInternal)
		}
		k, err := readBytes(br)
		if err != nil {
			return fmt.Errorf("storage: read snapshot key: %w", err)
		}
		v, err := readBytes(br)
		if err != nil {
			return fmt.Errorf("storage: read snapshot value: %w", err)
		}
		wb.PutCF(hs[tag-1], k, v)
		if size += len(k) + len(v); size >= recoverBatchBytes {
			if err := flush(); err != nil {
				return fmt.Errorf("storage: write snapshot records: %w", err)
			}
			size = 0
		}
	}
	want := br.sum
	var sum [4]byte
	if _, err := io.ReadFull(raw, sum[:]); err != nil {
		return fmt.Errorf("storage: read snapshot checksum: %w", err)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return fmt.Errorf("storage: snapshot checksum %08x, computed %08x: %w", got, want, messages.ErrInternal)
	}
	wb.PutCF(e.internal, keyApplied, putU64(hdr.GetAppliedIndex()))
	wb.DeleteCF(e.internal, keyRecovering)
	if err := flush(); err != nil {
		return fmt.Errorf("storage: finish snapshot recovery: %w", err)
	}
	if err := e.db.FlushWAL(true); err != nil {
		return fmt.Errorf("storage: sync snapshot recovery: %w", err)
	}
	sm, err := loadMachineState(e)
	if err != nil {
		return err
	}
	e.sm = sm
	e.mvcc.reset(sm.applied)
	e.publishApplied(sm.applied)
	return nil
}

// crcReader reads from r and keeps the CRC-32C of every byte it returned.
type crcReader struct {
	r   *bufio.Reader
	sum uint32
	one [1]byte
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.sum = crc32.Update(c.sum, castagnoli, p[:n])
	return n, err
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.one[0] = b
		c.sum = crc32.Update(c.sum, castagnoli, c.one[:])
	}
	return b, err
}

func readBytes(br *crcReader) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	if n > 1<<30 {
		return nil, fmt.Errorf("record of %d bytes: %w", n, messages.ErrInternal)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(br, b)
	return b, err
}

// wipeData deletes every key of every family, the recovery marker excepted.
func (e *Engine) wipeData() error {
	wb := grocksdb.NewWriteBatch()
	defer wb.Destroy()
	_, hs := e.families()
	for _, h := range hs {
		if h == e.internal {
			wb.DeleteRangeCF(h, []byte{}, keyRecovering)
			wb.DeleteRangeCF(h, pointEnd(keyRecovering), maxKeyBound)
			continue
		}
		wb.DeleteRangeCF(h, []byte{}, maxKeyBound)
	}
	if err := e.db.Write(e.wo, wb); err != nil {
		return fmt.Errorf("storage: wipe: %w", err)
	}
	return nil
}

// wipe clears everything, the recovery marker included, durably: the state
// of a replica that has applied nothing.
func (e *Engine) wipe() error {
	if err := e.wipeData(); err != nil {
		return err
	}
	sync := grocksdb.NewDefaultWriteOptions()
	defer sync.Destroy()
	sync.SetSync(true)
	if err := e.db.DeleteCF(sync, e.internal, keyRecovering); err != nil {
		return fmt.Errorf("storage: clear recovery marker: %w", err)
	}
	return nil
}

// Digest is the content digest of a replica at one applied index.
type Digest struct {
	AppliedIndex uint64
	Families     []*messages.ColumnFamilyDigest
	// Combined hashes every family's name and digest, in order.
	Combined []byte
}

// Digest hashes the contents of every configured column family (SHA-256 over
// length-prefixed keys and values) in one consistent view, with the applied
// index of that view. Two replicas at the same applied index must have equal
// digests. It scans all data once per applied index: callers at the same
// applied index get the last digest, and concurrent callers share one scan
// (so asking for digests costs nobody more than one scan per write).
func (e *Engine) Digest(ctx context.Context) (*Digest, error) {
	done, err := e.enterRead(ctx) // a closed, broken or installing engine answers as a read would
	if err != nil {
		return nil, err
	}
	done()
	e.digestMu.Lock()
	if d := e.digestLast; d != nil && d.AppliedIndex == e.AppliedIndex() {
		e.digestMu.Unlock()
		return d, nil
	}
	e.digestMu.Unlock()
	ch := e.digestFlight.DoChan("digest", func() (any, error) {
		d, err := e.digest(context.WithoutCancel(ctx))
		if err == nil {
			e.digestMu.Lock()
			e.digestLast = d
			e.digestMu.Unlock()
		}
		return d, err
	})
	select {
	case <-ctx.Done():
		return nil, contextError(ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Digest), nil
	}
}

// digest computes Digest.
func (e *Engine) digest(ctx context.Context) (*Digest, error) {
	done, err := e.enterRead(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	ro, release := e.scanView()
	defer release()
	index, err := e.appliedIn(ro)
	if err != nil {
		return nil, err
	}
	fams, err := e.familyDigests(ctx, ro)
	if err != nil {
		return nil, err
	}
	return &Digest{AppliedIndex: index, Families: fams, Combined: kv.CombinedDigest(fams)}, nil
}

// familyDigests hashes every configured family in the view of ro
// (kv.HashEntry: the digest kvctl computes of a backup's entries too).
func (e *Engine) familyDigests(ctx context.Context, ro *grocksdb.ReadOptions) ([]*messages.ColumnFamilyDigest, error) {
	var fams []*messages.ColumnFamilyDigest
	for _, cf := range e.cfNames {
		h := kv.NewFamilyHash()
		n, err := e.hashFamily(ctx, ro, e.cfs[cf], h)
		if err != nil {
			return nil, err
		}
		fams = append(fams, &messages.ColumnFamilyDigest{ColumnFamily: cf, Sha256: h.Sum(nil), Keys: n})
	}
	return fams, nil
}

// RangeDigest hashes the entries of [begin, end) of column family cf (empty
// bounds are open) as Digest hashes a family, in one consistent view, and
// returns it with the view's applied index: the key count, the middle key
// (at position count/2) and the first entry. Replicas at the same applied
// index with different family digests differ in one half of the range or
// the other: bisecting with it narrows them to the first differing key.
func (e *Engine) RangeDigest(ctx context.Context, cf string, begin, end []byte) (*messages.RangeDigest, uint64, error) {
	h, ok := e.cfs[cf]
	if !ok {
		return nil, 0, messages.Errorf(messages.StatusCode_UNKNOWN_COLUMN_FAMILY, "column family %q", cf)
	}
	done, err := e.enterRead(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer done()
	ro, release := e.scanView()
	defer release()
	if len(end) > 0 {
		ro.SetIterateUpperBound(end)
	}
	index, err := e.appliedIn(ro)
	if err != nil {
		return nil, 0, err
	}
	scan := func(visit func(i uint64, k, v []byte) bool) error {
		it := e.db.NewIteratorCF(ro, h)
		defer it.Close()
		var i uint64
		for it.Seek(begin); it.Valid(); it.Next() {
			if i%4096 == 4095 && ctx.Err() != nil {
				return contextError(ctx.Err())
			}
			k, v := it.Key(), it.Value()
			more := visit(i, k.Data(), v.Data())
			k.Free()
			v.Free()
			if !more {
				break
			}
			i++
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("storage: range digest: %w", err)
		}
		return nil
	}
	sum := kv.NewFamilyHash()
	rd := &messages.RangeDigest{}
	if err := scan(func(i uint64, k, v []byte) bool {
		if i == 0 {
			rd.First = &messages.KeyValue{Key: bytes.Clone(k), Value: bytes.Clone(v)}
		}
		kv.HashEntry(sum, k, v)
		rd.Keys++
		return true
	}); err != nil {
		return nil, 0, err
	}
	rd.Sha256 = sum.Sum(nil)
	if rd.Keys >= 2 {
		if err := scan(func(i uint64, k, _ []byte) bool {
			if i == rd.Keys/2 {
				rd.Middle = bytes.Clone(k)
				return false
			}
			return true
		}); err != nil {
			return nil, 0, err
		}
	}
	return rd, index, nil
}

// scanView is a consistent view for a scan that should not fill the block
// cache, and what releases it.
func (e *Engine) scanView() (*grocksdb.ReadOptions, func()) {
	snap := e.db.NewSnapshot()
	ro := grocksdb.NewDefaultReadOptions()
	ro.SetSnapshot(snap)
	ro.SetFillCache(false)
	return ro, func() {
		ro.Destroy()
		e.db.ReleaseSnapshot(snap)
	}
}

// appliedIn reads the applied index in the view of ro.
func (e *Engine) appliedIn(ro *grocksdb.ReadOptions) (uint64, error) {
	applied, err := e.db.GetCF(ro, e.internal, keyApplied)
	if err != nil {
		return 0, fmt.Errorf("storage: read the applied index: %w", err)
	}
	defer applied.Free()
	return u64(applied.Data()), nil
}

func (e *Engine) hashFamily(ctx context.Context, ro *grocksdb.ReadOptions, h *grocksdb.ColumnFamilyHandle, out hash.Hash) (uint64, error) {
	it := e.db.NewIteratorCF(ro, h)
	defer it.Close()
	var n uint64
	for it.SeekToFirst(); it.Valid(); it.Next() {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return 0, contextError(ctx.Err())
		}
		k, v := it.Key(), it.Value()
		kv.HashEntry(out, k.Data(), v.Data())
		k.Free()
		v.Free()
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("storage: digest: %w", err)
	}
	return n, nil
}
