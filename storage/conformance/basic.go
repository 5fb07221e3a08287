package conformance

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// basicCases cover single-key operations, versions, column families and the
// ownership of slices.
func basicCases() []testCase {
	return []testCase{
		{"PutGetDelete", testPutGetDelete},
		{"GetMissingKey", testGetMissingKey},
		{"DeleteMissingKey", testDeleteMissingKey},
		{"EmptyValue", testEmptyValue},
		{"Versions", testVersions},
		{"ColumnFamiliesAreIndependent", testColumnFamilies},
		{"SlicesBelongToTheCaller", testOwnership},
		{"LimitsAreInclusive", testLimitsInclusive},
	}
}

func testPutGetDelete(t *testing.T, db kv.Database) {
	v1 := put(t, db, "k", "v1")
	wantValue(t, db, "k", "v1")

	v2 := put(t, db, "k", "v2")
	wantGreater(t, "overwrite", v2, v1)
	wantValue(t, db, "k", "v2")

	v3 := del(t, db, "k")
	wantGreater(t, "delete", v3, v2)
	wantMissing(t, db, "k")

	// A deleted key can be written again.
	v4 := put(t, db, "k", "v3")
	wantGreater(t, "put after delete", v4, v3)
	wantValue(t, db, "k", "v3")
}

func testGetMissingKey(t *testing.T, db kv.Database) {
	wantMissing(t, db, "never-written")
	put(t, db, "present", "x")
	// Neighbours of an existing key are still missing.
	wantMissing(t, db, "presen")
	wantMissing(t, db, "present\x00")
	wantMissing(t, db, "never-written", cf(cf1))
}

func testDeleteMissingKey(t *testing.T, db kv.Database) {
	before := readVersion(t, db)
	v := del(t, db, "never-written")
	// A delete of a missing key is still a committed write ("every committed
	// write gets the next version"), so it has a version like any other.
	wantGreater(t, "delete of a missing key", v, before)
	wantMissing(t, db, "never-written")
}

// An empty value is a value: the contract only requires keys to be
// non-empty, and a store that confused "" with "missing" would lose data.
func testEmptyValue(t *testing.T, db kv.Database) {
	put(t, db, "empty", "")
	got, found, err := db.Get(t.Context(), []byte("empty"))
	RequireCode(t, err, messages.StatusCode_OK, "Get(empty)")
	if !found || len(got) != 0 {
		t.Fatalf("Get of a key set to the empty value = %q, found=%v; want \"\", found", got, found)
	}
	if got := getRange(t, db, "", "", 0, false); got != pairs("empty", "") {
		t.Fatalf("GetRange = %s; want %s", got, pairs("empty", ""))
	}
	keys, err := db.ListKeys(t.Context(), nil, 0)
	RequireCode(t, err, messages.StatusCode_OK, "ListKeys")
	if got := keysOf(keys); got != quoted("empty") {
		t.Fatalf("ListKeys = %s; want %s", got, quoted("empty"))
	}
}

// testVersions checks that every kind of write returns a version strictly
// greater than the previous write's, and that GetReadVersion covers every
// acknowledged write and never decreases.
func testVersions(t *testing.T, db kv.Database) {
	ctx := t.Context()
	prevRead := readVersion(t, db)
	prevWrite := prevRead // a write after a read version must follow it
	writes := []struct {
		name  string
		write func() (uint64, error)
	}{
		{"put", func() (uint64, error) { return db.Put(ctx, []byte("a"), []byte("1")) }},
		{"overwrite", func() (uint64, error) { return db.Put(ctx, []byte("a"), []byte("2")) }},
		{"put in cf1", func() (uint64, error) { return db.Put(ctx, []byte("a"), []byte("3"), cf(cf1)) }},
		{"delete", func() (uint64, error) { return db.Delete(ctx, []byte("a")) }},
		{"delete of a missing key", func() (uint64, error) { return db.Delete(ctx, []byte("a")) }},
		{"clear range", func() (uint64, error) { return db.ClearRange(ctx, []byte("a"), []byte("b"), cf(cf1)) }},
		{"clear of an empty range", func() (uint64, error) { return db.ClearRange(ctx, []byte("x"), []byte("y")) }},
		{"atomic commit", func() (uint64, error) {
			return db.AtomicCommit(ctx, &messages.AtomicCommit{Mutations: []*messages.Mutation{set("b", "1"), setIn(cf1, "b", "2")}})
		}},
		{"put after the commit", func() (uint64, error) { return db.Put(ctx, []byte("c"), []byte("1")) }},
	}
	for _, w := range writes {
		v, err := w.write()
		RequireCode(t, err, messages.StatusCode_OK, w.name)
		wantGreater(t, w.name, v, prevWrite)
		prevWrite = v
		for range 2 {
			rv := readVersion(t, db)
			if rv < v {
				t.Fatalf("after %s at version %d, GetReadVersion = %d; want >= %d", w.name, v, rv, v)
			}
			if rv < prevRead {
				t.Fatalf("GetReadVersion went back from %d to %d", prevRead, rv)
			}
			prevRead = rv
		}
	}
}

func testColumnFamilies(t *testing.T, db kv.Database) {
	put(t, db, "k", "in-default")
	put(t, db, "k", "in-cf1", cf(cf1))
	wantValue(t, db, "k", "in-default")
	wantValue(t, db, "k", "in-default", cf(kv.DefaultColumnFamily)) // named explicitly
	wantValue(t, db, "k", "in-cf1", cf(cf1))

	put(t, db, "only-default", "d")
	put(t, db, "only-cf1", "c", cf(cf1))
	wantMissing(t, db, "only-default", cf(cf1))
	wantMissing(t, db, "only-cf1")

	if got, want := getRange(t, db, "", "", 0, false), pairs("k", "in-default", "only-default", "d"); got != want {
		t.Fatalf("GetRange(default) = %s; want %s", got, want)
	}
	if got, want := getRange(t, db, "", "", 0, false, cf(cf1)), pairs("k", "in-cf1", "only-cf1", "c"); got != want {
		t.Fatalf("GetRange(cf1) = %s; want %s", got, want)
	}
	keys, err := db.ListKeys(t.Context(), []byte("only"), 0, cf(cf1))
	RequireCode(t, err, messages.StatusCode_OK, "ListKeys(cf1)")
	if got, want := keysOf(keys), quoted("only-cf1"); got != want {
		t.Fatalf("ListKeys(cf1) = %s; want %s", got, want)
	}

	del(t, db, "k")
	wantMissing(t, db, "k")
	wantValue(t, db, "k", "in-cf1", cf(cf1))

	clearRange(t, db, "", "", cf(cf1))
	wantMissing(t, db, "k", cf(cf1))
	wantMissing(t, db, "only-cf1", cf(cf1))
	wantValue(t, db, "only-default", "d")
}

// testOwnership checks "returned slices belong to the caller; arguments are
// not retained".
func testOwnership(t *testing.T, db kv.Database) {
	ctx := t.Context()
	key, value := []byte("own"), []byte("original")
	put(t, db, "own2", "other")
	if _, err := db.Put(ctx, key, value); err != nil {
		t.Fatal(err)
	}
	copy(key, "OWN")
	copy(value, "CHANGED!")
	wantValue(t, db, "own", "original")
	wantMissing(t, db, "OWN")

	got, _, err := db.Get(ctx, []byte("own"))
	RequireCode(t, err, messages.StatusCode_OK, "Get")
	copy(got, "XXXXXXXX")
	wantValue(t, db, "own", "original")

	kvs, err := db.GetRange(ctx, nil, nil, 0, false)
	RequireCode(t, err, messages.StatusCode_OK, "GetRange")
	for _, e := range kvs {
		copy(e.Key, "ZZZ")
		copy(e.Value, "YYYYYYYY")
	}
	keys, err := db.ListKeys(ctx, nil, 0)
	RequireCode(t, err, messages.StatusCode_OK, "ListKeys")
	for _, k := range keys {
		copy(k, "QQQ")
	}
	rv := readVersion(t, db)
	snap, _, err := db.SnapshotRead(ctx, []byte("own"), rv)
	RequireCode(t, err, messages.StatusCode_OK, "SnapshotRead")
	copy(snap, "SSSSSSSS")
	if got, want := getRange(t, db, "", "", 0, false), pairs("own", "original", "own2", "other"); got != want {
		t.Fatalf("after the caller changed returned slices, GetRange = %s; want %s", got, want)
	}
}

// testLimitsInclusive checks that input exactly at each limit is accepted
// (the bad-input cases check one past it).
func testLimitsInclusive(t *testing.T, db kv.Database) {
	ctx := t.Context()
	maxKey := bytes.Repeat([]byte("k"), limits.MaxKeySize)
	maxValue := bigValue(limits.MaxValueSize, 'v')

	if _, err := db.Put(ctx, maxKey, []byte("x")); err != nil {
		t.Fatalf("Put of a key of exactly %d bytes: %v", limits.MaxKeySize, err)
	}
	got, found, err := db.Get(ctx, maxKey)
	RequireCode(t, err, messages.StatusCode_OK, "Get of the longest key")
	if !found || string(got) != "x" {
		t.Fatalf("Get of the longest key = %q, found=%v", got, found)
	}
	if _, err := db.Put(ctx, []byte("big"), maxValue); err != nil {
		t.Fatalf("Put of a value of exactly %d bytes: %v", limits.MaxValueSize, err)
	}
	got, found, err = db.Get(ctx, []byte("big"))
	RequireCode(t, err, messages.StatusCode_OK, "Get of the largest value")
	if !found || !bytes.Equal(got, maxValue) {
		t.Fatalf("Get of the largest value returned %d bytes, found=%v", len(got), found)
	}

	muts := make([]*messages.Mutation, limits.MaxCommitOps)
	for i := range muts {
		muts[i] = set(fmt.Sprintf("op/%04d", i), "v")
	}
	if _, err := db.AtomicCommit(ctx, &messages.AtomicCommit{Mutations: muts}); err != nil {
		t.Fatalf("AtomicCommit of exactly %d operations: %v", limits.MaxCommitOps, err)
	}
	keys, err := db.ListKeys(ctx, []byte("op/"), limits.MaxRangeLimit)
	RequireCode(t, err, messages.StatusCode_OK, "ListKeys with the maximum limit")
	if len(keys) != limits.MaxCommitOps {
		t.Fatalf("ListKeys after a commit of %d SETs returned %d keys", limits.MaxCommitOps, len(keys))
	}
	if _, err := db.GetRange(ctx, nil, nil, limits.MaxRangeLimit, true); err != nil {
		t.Fatalf("GetRange with the maximum limit: %v", err)
	}
}
