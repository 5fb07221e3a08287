package kvclient_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// savedBackup is a backup file of an engine holding n keys in two
// families, with the engine's digest.
func savedBackup(t *testing.T, n int) ([]byte, *storage.Digest) {
	t.Helper()
	cfg := storage.DefaultConfig(t.TempDir())
	cfg.ColumnFamilies = []string{"users"}
	cfg.SyncWrites = false
	s, err := storage.OpenStandalone(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db := s.Database()
	ctx := context.Background()
	for i := range n {
		if _, err := db.Put(ctx, []byte(fmt.Sprintf("k%05d", i)), []byte(strings.Repeat("v", i%300))); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Put(ctx, []byte(fmt.Sprintf("u%d", i)), []byte("x"), kv.WithColumnFamily("users")); err != nil {
			t.Fatal(err)
		}
	}
	d, err := s.Engine().Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	do := func(ctx context.Context, req proto.Message) (messages.Statused, error) {
		return s.Engine().Backup(ctx, req.(*messages.BackupRequest)), nil
	}
	info, err := kvclient.SaveBackup(ctx, do, &buf, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if info.Header.GetAppliedIndex() != d.AppliedIndex || !bytes.Equal(info.Trailer.GetDigest(), d.Combined) || info.Trailer.GetKeys() != uint64(2*n) {
		t.Fatalf("saved %d keys at %d, digest %x; the engine: index %d, digest %x", info.Trailer.GetKeys(), info.Header.GetAppliedIndex(), info.Trailer.GetDigest(), d.AppliedIndex, d.Combined)
	}
	return buf.Bytes(), d
}

// TestBackupFileRoundTrip: a saved file reads back entry by entry, in
// order, with the source's digests.
func TestBackupFileRoundTrip(t *testing.T) {
	file, d := savedBackup(t, 3000)
	n := 0
	var last string
	info, err := kvclient.ReadBackup(bytes.NewReader(file), func(cf string, k, v []byte) error {
		if cur := cf + "/" + string(k); cur <= last {
			t.Fatalf("entry %s after %s", cur, last)
		} else {
			last = cur
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 6000 || !bytes.Equal(info.Trailer.GetDigest(), d.Combined) {
		t.Fatalf("read %d entries, digest %x; want 6000, %x", n, info.Trailer.GetDigest(), d.Combined)
	}
}

// TestBadBackupFiles: a damaged file is refused with ErrBadBackup
// (INVALID_ARGUMENT), whatever the damage, and never allocates beyond its
// bounds.
func TestBadBackupFiles(t *testing.T) {
	file, _ := savedBackup(t, 50)
	flip := func(i int) []byte {
		b := bytes.Clone(file)
		b[i] ^= 0x40
		return b
	}
	var huge []byte
	huge = append(huge, "AKVBAK01"...)
	huge = binary.AppendUvarint(huge, 1<<40) // a header of a terabyte
	cases := map[string][]byte{
		"empty":              nil,
		"not a backup":       []byte("hello, world"),
		"huge header":        huge,
		"truncated":          file[:len(file)/2],
		"no checksum":        file[:len(file)-4],
		"a trailing byte":    append(bytes.Clone(file), 0),
		"a flipped checksum": flip(len(file) - 1),
		"a flipped entry":    flip(len(file) / 2),
		"a flipped header":   flip(12),
	}
	for i := 8; i < len(file); i += 97 { // flips everywhere
		cases[fmt.Sprintf("flip at %d", i)] = flip(i)
	}
	for name, b := range cases {
		_, err := kvclient.ReadBackup(bytes.NewReader(b), nil)
		if !errors.Is(err, kvclient.ErrBadBackup) || messages.CodeOf(err) != messages.StatusCode_INVALID_ARGUMENT {
			t.Errorf("%s: %v; want ErrBadBackup", name, err)
		}
	}
}
