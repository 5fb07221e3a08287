package kvclient

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
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// A backup file (kvctl snapshot save) holds one replica's data at one
// applied index:
//
//	magic "AKVBAK01" | uvarint len + BackupHeader
//	| records: uvarint(family position + 1), uvarint len key, key, uvarint len value, value
//	| uvarint 0 | uvarint len + BackupTrailer | CRC-32C (big endian) of all before it
//
// Records come family by family, in the header's order, keys ascending.
// The trailer's digests are the replica's digests of its view (kv.HashEntry),
// checked against the entries both when the file is written and when it is
// read.

var backupMagic = []byte("AKVBAK01")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Bounds of what a backup file may hold, checked when it is read: a file
// is input like any other.
const (
	maxBackupHeader = 1 << 20
	maxBackupKey    = 1 << 20
	maxBackupValue  = 64 << 20
)

// BackupInfo describes a backup: its header and trailer.
type BackupInfo struct {
	Header  *messages.BackupHeader
	Trailer *messages.BackupTrailer
}

// SaveBackup copies one replica's data, consistent at one applied index,
// from the server behind do to w as a backup file. do must reach one server
// (one endpoint: every page of a backup is read from the replica that
// holds it); each request gets pageTimeout. It checks the digests of what
// it wrote against those of the replica's view and fails with INTERNAL if
// they differ. A backup that fails half-way is abandoned on the server.
func SaveBackup(ctx context.Context, do kv.Requests, w io.Writer, pageTimeout time.Duration) (*BackupInfo, error) {
	page := func(req *messages.BackupRequest) (*messages.BackupResponse, error) {
		pctx, cancel := context.WithTimeout(ctx, pageTimeout)
		defer cancel()
		resp, err := kv.Call[*messages.BackupResponse](pctx, do, req)
		if err == nil {
			err = resp.GetStatus().Err()
		}
		return resp, err
	}
	resp, err := page(&messages.BackupRequest{})
	if err != nil {
		return nil, err
	}
	id, replica := resp.GetBackupId(), resp.GetReplicaId()
	saved := false
	defer func() {
		if !saved && !resp.GetDone() {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pageTimeout)
			defer cancel()
			_, _ = do(actx, &messages.BackupRequest{BackupId: id, ReplicaId: replica, Abandon: true})
		}
	}()
	hdr := &messages.BackupHeader{AppliedIndex: resp.GetAppliedIndex(), ColumnFamilies: resp.GetColumnFamilies(),
		ReplicaId: replica, CreatedUnixNanos: time.Now().UnixNano()}
	bw, err := newBackupWriter(w, hdr)
	if err != nil {
		return nil, err
	}
	for {
		if resp.GetBackupId() != id || resp.GetAppliedIndex() != hdr.GetAppliedIndex() {
			return nil, messages.Errorf(messages.StatusCode_INTERNAL, "backup %d at index %d answered as backup %d at index %d", id, hdr.GetAppliedIndex(), resp.GetBackupId(), resp.GetAppliedIndex())
		}
		for _, e := range resp.GetEntries() {
			if err := bw.add(resp.GetColumnFamily(), e.GetKey(), e.GetValue()); err != nil {
				return nil, err
			}
		}
		if resp.GetDone() {
			break
		}
		if resp, err = page(&messages.BackupRequest{BackupId: id, ReplicaId: replica,
			ColumnFamily: resp.GetNextColumnFamily(), After: resp.GetNextAfter()}); err != nil {
			return nil, err
		}
	}
	tr, err := bw.finish()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(tr.GetDigest(), resp.GetDigest()) {
		return nil, fmt.Errorf("%w: the entries read hash to %x, replica %d's view at index %d to %x",
			ErrBackupMismatch, tr.GetDigest(), replica, hdr.GetAppliedIndex(), resp.GetDigest())
	}
	saved = true
	return &BackupInfo{Header: hdr, Trailer: tr}, nil
}

// backupHash checks the order of a backup's entries and hashes them as a
// replica hashes its families (kv.HashEntry).
type backupHash struct {
	families []string
	pos      int // the family of the last entry
	last     []byte
	hashes   []hash.Hash
	counts   []uint64
	keys     uint64
}

func newBackupHash(families []string) *backupHash {
	h := &backupHash{families: families, counts: make([]uint64, len(families))}
	for range families {
		h.hashes = append(h.hashes, kv.NewFamilyHash())
	}
	return h
}

// add hashes one entry and returns its family's position; entries come
// family by family, in the header's order, keys ascending.
func (h *backupHash) add(cf string, k, v []byte) (int, error) {
	pos := h.pos
	for pos < len(h.families) && h.families[pos] != cf {
		pos, h.last = pos+1, nil
	}
	if pos == len(h.families) || (h.last != nil && bytes.Compare(k, h.last) <= 0) {
		return 0, messages.Errorf(messages.StatusCode_INTERNAL, "backup: entry %q of family %q out of order", k, cf)
	}
	h.pos, h.last = pos, append(h.last[:0], k...)
	kv.HashEntry(h.hashes[pos], k, v)
	h.counts[pos]++
	h.keys++
	return pos, nil
}

// trailer is the digests of the entries so far.
func (h *backupHash) trailer() *messages.BackupTrailer {
	tr := &messages.BackupTrailer{Keys: h.keys}
	for i, cf := range h.families {
		tr.Digests = append(tr.Digests, &messages.ColumnFamilyDigest{ColumnFamily: cf, Sha256: h.hashes[i].Sum(nil), Keys: h.counts[i]})
	}
	tr.Digest = kv.CombinedDigest(tr.Digests)
	return tr
}

// backupWriter writes a backup file and hashes its entries.
type backupWriter struct {
	*backupHash
	bw  *bufio.Writer
	w   io.Writer
	crc hash.Hash32
}

func newBackupWriter(w io.Writer, hdr *messages.BackupHeader) (*backupWriter, error) {
	b := &backupWriter{backupHash: newBackupHash(hdr.GetColumnFamilies()), w: w, crc: crc32.New(castagnoli)}
	b.bw = bufio.NewWriterSize(io.MultiWriter(w, b.crc), 1<<20)
	enc, err := proto.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	b.bw.Write(backupMagic)
	writeChunk(b.bw, enc)
	return b, nil
}

func (b *backupWriter) add(cf string, k, v []byte) error {
	pos, err := b.backupHash.add(cf, k, v)
	if err != nil {
		return err
	}
	writeUvarint(b.bw, uint64(pos+1))
	writeChunk(b.bw, k)
	writeChunk(b.bw, v)
	return nil
}

// finish writes the trailer and the checksum.
func (b *backupWriter) finish() (*messages.BackupTrailer, error) {
	tr := b.trailer()
	enc, err := proto.Marshal(tr)
	if err != nil {
		return nil, err
	}
	writeUvarint(b.bw, 0)
	writeChunk(b.bw, enc)
	if err := b.bw.Flush(); err != nil {
		return nil, fmt.Errorf("backup: write: %w", err)
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], b.crc.Sum32())
	if _, err := b.w.Write(sum[:]); err != nil {
		return nil, fmt.Errorf("backup: write: %w", err)
	}
	return tr, nil
}

func writeUvarint(w *bufio.Writer, v uint64) {
	var b [binary.MaxVarintLen64]byte
	w.Write(b[:binary.PutUvarint(b[:], v)])
}

func writeChunk(w *bufio.Writer, p []byte) {
	writeUvarint(w, uint64(len(p)))
	w.Write(p)
}

// ErrBackupMismatch is what SaveBackup answers when the entries it read do
// not hash to the digests of the replica's view (INTERNAL): the data it was
// sent is not the data the replica holds.
var ErrBackupMismatch = &messages.Error{Code: messages.StatusCode_INTERNAL, Message: "backup: digest mismatch"}

// ErrBadBackup marks a backup file that is not one, is damaged, or whose
// entries do not hash to its digests (INVALID_ARGUMENT).
var ErrBadBackup = &messages.Error{Code: messages.StatusCode_INVALID_ARGUMENT, Message: "not a valid backup file"}

func badBackup(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadBackup}, args...)...)
}

// ReadBackup reads a backup file from r, calling each (when not nil) with
// every entry in order, and checks its checksum and that its entries hash
// to the digests of its trailer. The entries passed to each before an error
// are not to be trusted: read a file once to check it before using them.
func ReadBackup(r io.Reader, each func(cf string, key, value []byte) error) (*BackupInfo, error) {
	crc := crc32.New(castagnoli)
	br := &crcReader{br: bufio.NewReaderSize(r, 1<<20), crc: crc}
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, backupMagic) {
		return nil, badBackup("no backup magic at its start")
	}
	enc, err := readChunk(br, maxBackupHeader, "header")
	if err != nil {
		return nil, err
	}
	hdr := &messages.BackupHeader{}
	if err := proto.Unmarshal(enc, hdr); err != nil {
		return nil, badBackup("header: %v", err)
	}
	b := newBackupHash(hdr.GetColumnFamilies())
	for {
		tag, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, badBackup("truncated after %d entries", b.keys)
		}
		if tag == 0 {
			break
		}
		if tag > uint64(len(b.families)) || int(tag-1) < b.pos {
			return nil, badBackup("entry %d names family %d of %d, out of order", b.keys+1, tag, len(b.families))
		}
		k, err := readChunk(br, maxBackupKey, "key")
		if err != nil {
			return nil, err
		}
		v, err := readChunk(br, maxBackupValue, "value")
		if err != nil {
			return nil, err
		}
		cf := b.families[tag-1]
		if _, err := b.add(cf, k, v); err != nil {
			return nil, badBackup("%v", err)
		}
		if each != nil {
			if err := each(cf, k, v); err != nil {
				return nil, err
			}
		}
	}
	if enc, err = readChunk(br, maxBackupHeader, "trailer"); err != nil {
		return nil, err
	}
	want := crc.Sum32() // of everything read so far: the checksum follows
	var sum [4]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return nil, badBackup("no checksum at its end")
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return nil, badBackup("checksum %08x, contents %08x", got, want)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return nil, badBackup("bytes after its checksum")
	}
	tr := &messages.BackupTrailer{}
	if err := proto.Unmarshal(enc, tr); err != nil {
		return nil, badBackup("trailer: %v", err)
	}
	if got := b.trailer(); !bytes.Equal(got.GetDigest(), tr.GetDigest()) || got.GetKeys() != tr.GetKeys() {
		return nil, badBackup("its %d entries hash to %x, its trailer says %d entries, %x", got.GetKeys(), got.GetDigest(), tr.GetKeys(), tr.GetDigest())
	}
	return &BackupInfo{Header: hdr, Trailer: tr}, nil
}

// crcReader reads through a buffer and checksums the bytes read, not those
// buffered ahead.
type crcReader struct {
	br  *bufio.Reader
	crc hash.Hash32
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.br.Read(p)
	c.crc.Write(p[:n])
	return n, err
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.br.ReadByte()
	if err == nil {
		c.crc.Write([]byte{b})
	}
	return b, err
}

func readChunk(br *crcReader, limit uint64, what string) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, badBackup("truncated at a %s", what)
	}
	if n > limit {
		return nil, badBackup("a %s of %d bytes, over %d", what, n, limit)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		return nil, badBackup("truncated in a %s", what)
	}
	return p, nil
}
