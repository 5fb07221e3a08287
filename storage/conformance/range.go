package conformance

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// rangeCases cover ListKeys, GetRange and ClearRange.
func rangeCases() []testCase {
	return []testCase{
		{"ListKeys", testListKeys},
		{"GetRange", testGetRange},
		{"ZeroLimitMeansMaximum", testZeroLimit},
		{"ClearRange", testClearRange},
		{"RangeOverTheByteLimit", testRangeOverTheByteLimit},
	}
}

// testRangeOverTheByteLimit: a range or snapshot range read whose entries
// total over limits.max_range_bytes is TOO_LARGE, in either direction; one
// under it, or a list of the same keys, is answered in full.
func testRangeOverTheByteLimit(t *testing.T, db kv.Database) {
	const valueSize = 1 << 20
	n := limits.MaxRangeBytes/valueSize + 3 // over the limit by about 3 values
	perCommit := (limits.MaxCommitBytes - 64<<10) / (valueSize + 64)
	for i := 0; i < n; {
		c := &messages.AtomicCommit{}
		for ; i < n && len(c.Mutations) < perCommit; i++ {
			c.Mutations = append(c.Mutations, &messages.Mutation{Type: messages.MutationType_SET,
				Key: fmt.Appendf(nil, "big/%03d", i), Value: bytes.Repeat([]byte{byte(i)}, valueSize)})
		}
		_, err := db.AtomicCommit(t.Context(), c)
		RequireCode(t, err, messages.StatusCode_OK, "AtomicCommit of 1 MiB values")
	}
	rv := readVersion(t, db)
	fits := limits.MaxRangeBytes/(valueSize+16) - 1
	for _, reverse := range []bool{false, true} {
		_, err := db.GetRange(t.Context(), []byte("big/"), []byte("big0"), 0, reverse)
		RequireCode(t, err, messages.StatusCode_TOO_LARGE, fmt.Sprintf("GetRange of %d MiB (reverse %v)", n, reverse))
		_, err = db.SnapshotGetRange(t.Context(), []byte("big/"), []byte("big0"), 0, reverse, rv)
		RequireCode(t, err, messages.StatusCode_TOO_LARGE, fmt.Sprintf("SnapshotGetRange of %d MiB (reverse %v)", n, reverse))
		kvs, err := db.GetRange(t.Context(), []byte("big/"), []byte("big0"), fits, reverse)
		RequireCode(t, err, messages.StatusCode_OK, fmt.Sprintf("GetRange of %d MiB", fits))
		if len(kvs) != fits || len(kvs[0].GetValue()) != valueSize {
			t.Fatalf("GetRange of %d entries: got %d", fits, len(kvs))
		}
		kvs, err = db.SnapshotGetRange(t.Context(), []byte("big/"), []byte("big0"), fits, reverse, rv)
		RequireCode(t, err, messages.StatusCode_OK, fmt.Sprintf("SnapshotGetRange of %d MiB", fits))
		if len(kvs) != fits {
			t.Fatalf("SnapshotGetRange of %d entries: got %d", fits, len(kvs))
		}
	}
	keys, err := db.ListKeys(t.Context(), []byte("big/"), 0)
	RequireCode(t, err, messages.StatusCode_OK, "ListKeys of the same keys")
	if len(keys) != n {
		t.Fatalf("ListKeys: %d keys, want %d", len(keys), n)
	}
}

func testListKeys(t *testing.T, db kv.Database) {
	all := []string{"a", "ab", "abc", "abd", "b", "ba", "\xfe\xff", "\xff", "\xff\x00", "\xff\xff"}
	// Written out of order, so that ordering comes from the store.
	for _, i := range []int{5, 2, 9, 0, 7, 3, 8, 1, 6, 4} {
		put(t, db, all[i], "v")
	}
	put(t, db, "abz", "only in cf1", cf(cf1))

	for _, tc := range []struct {
		prefix string
		limit  int
		want   []string
	}{
		{"", 0, all},
		{"", 3, all[:3]},
		{"", limits.MaxRangeLimit, all},
		{"ab", 0, []string{"ab", "abc", "abd"}},
		{"ab", 2, []string{"ab", "abc"}},
		{"a", 1, []string{"a"}},
		{"abc", 0, []string{"abc"}}, // a key is its own prefix
		{"abcd", 0, nil},
		{"c", 0, nil},
		{"\xff", 0, []string{"\xff", "\xff\x00", "\xff\xff"}}, // no "next prefix" exists for 0xff
		{"\xff\xff", 0, []string{"\xff\xff"}},
		{"\xfe", 0, []string{"\xfe\xff"}},
	} {
		t.Run(fmt.Sprintf("prefix=%q,limit=%d", tc.prefix, tc.limit), func(t *testing.T) {
			keys, err := db.ListKeys(t.Context(), []byte(tc.prefix), tc.limit)
			RequireCode(t, err, messages.StatusCode_OK, "ListKeys")
			if got, want := keysOf(keys), quoted(tc.want...); got != want {
				t.Fatalf("ListKeys(%q, %d) = [%s]; want [%s]", tc.prefix, tc.limit, got, want)
			}
		})
	}
}

func testGetRange(t *testing.T, db kv.Database) {
	for i, k := range []string{"c", "a", "e", "b", "d"} {
		put(t, db, k, fmt.Sprint(i))
	}
	put(t, db, "c", "other", cf(cf1))
	// Values: a=1 b=3 c=0 d=4 e=2.
	for _, tc := range []struct {
		begin, end string
		limit      int
		reverse    bool
		want       string
	}{
		{"", "", 0, false, pairs("a", "1", "b", "3", "c", "0", "d", "4", "e", "2")},
		{"", "", 0, true, pairs("e", "2", "d", "4", "c", "0", "b", "3", "a", "1")},
		{"b", "d", 0, false, pairs("b", "3", "c", "0")}, // end is exclusive
		{"b", "d", 0, true, pairs("c", "0", "b", "3")},
		{"", "c", 0, false, pairs("a", "1", "b", "3")},
		{"c", "", 0, false, pairs("c", "0", "d", "4", "e", "2")},
		{"c", "", 0, true, pairs("e", "2", "d", "4", "c", "0")},
		{"bb", "dd", 0, false, pairs("c", "0", "d", "4")}, // bounds between keys
		{"a", "e", 2, false, pairs("a", "1", "b", "3")},
		{"a", "e", 2, true, pairs("d", "4", "c", "0")}, // the LAST keys of the range first
		{"", "", 2, true, pairs("e", "2", "d", "4")},
		{"d", "", 1, true, pairs("e", "2")},
		{"a", "a\x00", 0, false, pairs("a", "1")},
		{"", "a\x00", 5, true, pairs("a", "1")},
		{"c", "c", 0, false, ""}, // begin == end is empty
		{"c", "c", 0, true, ""},
		{"", "a", 0, false, ""},
		{"e\x00", "", 0, false, ""},
		{"e\x00", "", 0, true, ""},
	} {
		t.Run(fmt.Sprintf("[%q,%q),limit=%d,reverse=%v", tc.begin, tc.end, tc.limit, tc.reverse), func(t *testing.T) {
			if got := getRange(t, db, tc.begin, tc.end, tc.limit, tc.reverse); got != tc.want {
				t.Fatalf("GetRange = %s; want %s", got, tc.want)
			}
		})
	}
	t.Run("cf1", func(t *testing.T) {
		if got, want := getRange(t, db, "", "", 0, false, cf(cf1)), pairs("c", "other"); got != want {
			t.Fatalf("GetRange(cf1) = %s; want %s", got, want)
		}
	})
}

// testZeroLimit checks "limit 0 means Limits.MaxRangeLimit" with one key
// more than the maximum: 0 must neither mean "nothing" nor "unbounded".
func testZeroLimit(t *testing.T, db kv.Database) {
	ctx := t.Context()
	n := limits.MaxRangeLimit + 1
	key := func(i int) string { return fmt.Sprintf("n/%06d", i) }
	for start := 0; start < n; start += limits.MaxCommitOps {
		var muts []*messages.Mutation
		for i := start; i < min(n, start+limits.MaxCommitOps); i++ {
			muts = append(muts, set(key(i), "v"))
		}
		commit(t, db, &messages.AtomicCommit{Mutations: muts})
	}
	maxLimit := limits.MaxRangeLimit

	keys, err := db.ListKeys(ctx, []byte("n/"), 0)
	RequireCode(t, err, messages.StatusCode_OK, "ListKeys limit 0")
	if len(keys) != maxLimit || string(keys[0]) != key(0) || string(keys[maxLimit-1]) != key(maxLimit-1) {
		t.Fatalf("ListKeys(limit 0) over %d keys returned %d keys; want the first %d", n, len(keys), maxLimit)
	}
	kvs, err := db.GetRange(ctx, nil, nil, 0, false)
	RequireCode(t, err, messages.StatusCode_OK, "GetRange limit 0")
	if len(kvs) != maxLimit || string(kvs[0].GetKey()) != key(0) {
		t.Fatalf("GetRange(limit 0) over %d keys returned %d entries; want the first %d", n, len(kvs), maxLimit)
	}
	kvs, err = db.GetRange(ctx, nil, nil, 0, true)
	RequireCode(t, err, messages.StatusCode_OK, "reverse GetRange limit 0")
	if len(kvs) != maxLimit || string(kvs[0].GetKey()) != key(n-1) || string(kvs[maxLimit-1].GetKey()) != key(1) {
		t.Fatalf("reverse GetRange(limit 0) over %d keys returned %d entries; want the last %d, descending", n, len(kvs), maxLimit)
	}
	rv := readVersion(t, db)
	kvs, err = db.SnapshotGetRange(ctx, nil, nil, 0, false, rv)
	RequireCode(t, err, messages.StatusCode_OK, "SnapshotGetRange limit 0")
	if len(kvs) != maxLimit {
		t.Fatalf("SnapshotGetRange(limit 0) over %d keys returned %d entries; want %d", n, len(kvs), maxLimit)
	}
	all, err := DumpAll(ctx, db, kv.DefaultColumnFamily)
	RequireCode(t, err, messages.StatusCode_OK, "DumpAll")
	if len(all) != n {
		t.Fatalf("DumpAll returned %d entries; want %d", len(all), n)
	}
}

func testClearRange(t *testing.T, db kv.Database) {
	five := []string{"a", "b", "c", "d", "e"}
	for i, tc := range []struct {
		name       string
		begin, end string // relative to the row's prefix; "" stays empty (open)
		family     string
		remain     []string
	}{
		{"middle", "b", "d", "", []string{"a", "d", "e"}},
		{"begin equals end", "b", "b", "", five},
		{"bounds between keys", "bb", "cc", "", []string{"a", "b", "d", "e"}},
		{"empty end clears to the end", "c", "", "", []string{"a", "b"}},
		{"empty begin clears from the start", "", "c", "", []string{"c", "d", "e"}},
		{"whole key space", "", "", "", nil},
		{"end is exclusive", "a", "e", "", []string{"e"}},
		{"nothing after the last key", "e\x00", "", "", five},
		{"in cf1 only", "b", "d", cf1, []string{"a", "d", "e"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("r%02d/", i)
			for _, k := range five {
				put(t, db, prefix+k, "v")
				put(t, db, prefix+k, "w", cf(cf1))
			}
			rel := func(s string) string {
				if s == "" {
					return ""
				}
				return prefix + s
			}
			before := readVersion(t, db)
			v := clearRange(t, db, rel(tc.begin), rel(tc.end), cf(tc.family))
			wantGreater(t, "ClearRange", v, before)

			cleared, untouched := kv.DefaultColumnFamily, cf1
			if tc.family == cf1 {
				cleared, untouched = cf1, kv.DefaultColumnFamily
			}
			var want []string
			for _, k := range tc.remain {
				want = append(want, prefix+k)
			}
			var all []string
			for _, k := range five {
				all = append(all, prefix+k)
			}
			for _, c := range []struct {
				family string
				want   []string
			}{{cleared, want}, {untouched, all}} {
				keys, err := db.ListKeys(t.Context(), []byte(prefix), 0, cf(c.family))
				RequireCode(t, err, messages.StatusCode_OK, "ListKeys")
				if got, want := keysOf(keys), quoted(c.want...); got != want {
					t.Fatalf("after ClearRange(%q, %q) in %q, %s holds [%s]; want [%s]", rel(tc.begin), rel(tc.end), cleared, c.family, got, want)
				}
			}
		})
	}
}
