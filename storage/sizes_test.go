package storage

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/actorkv/actorkv/kv"
)

// TestSizes: every family is reported, in snapshot order, and the bytes
// written to a family show in its memtable (or, once flushed, its files);
// a closed engine answers ErrClosed.
func TestSizes(t *testing.T) {
	e := openEngine(t, testConfig(t.TempDir()))
	ctx := context.Background()
	value := bytes.Repeat([]byte("v"), 10_000)
	for i := range 20 {
		if _, err := db(e).Put(ctx, []byte{'k', byte(i)}, value, kv.WithColumnFamily(usersCF)); err != nil {
			t.Fatal(err)
		}
	}
	sizes, err := e.Sizes()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range sizes {
		names = append(names, s.GetColumnFamily())
	}
	if want := []string{kv.DefaultColumnFamily, usersCF, internalColumnFamily}; !slices.Equal(names, want) {
		t.Fatalf("families %v, want %v", names, want)
	}
	if users := sizes[1]; users.GetMemtableBytes()+users.GetSstBytes() < 20*10_000 {
		t.Fatalf("users holds %d + %d bytes, want at least the 200,000 written", users.GetMemtableBytes(), users.GetSstBytes())
	}
	if err := closeEngine(e); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Sizes(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sizes of a closed engine: %v, want ErrClosed", err)
	}
}
