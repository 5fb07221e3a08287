package conformance

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// snapshotCases cover SnapshotRead and SnapshotGetRange.
func snapshotCases() []testCase {
	return []testCase{
		{"SnapshotReadSeesEachVersion", testSnapshotEachVersion},
		{"SnapshotRangeSeesOlderState", testSnapshotOlderRange},
		{"SnapshotVersionInTheFuture", testSnapshotFuture},
		{"SnapshotTransactionTooOld", testSnapshotTooOld},
	}
}

// snapshotValue reads key at version and renders the outcome as the value or
// "<missing>".
func snapshotValue(t testing.TB, db kv.Database, key string, version uint64, opts ...kv.Option) string {
	t.Helper()
	v, found, err := db.SnapshotRead(t.Context(), []byte(key), version, opts...)
	RequireCode(t, err, messages.StatusCode_OK, fmt.Sprintf("SnapshotRead(%q, @%d)", key, version))
	if !found {
		if len(v) != 0 {
			t.Fatalf("SnapshotRead(%q, @%d) = %q with found=false", key, version, v)
		}
		return "<missing>"
	}
	return string(v)
}

func testSnapshotEachVersion(t *testing.T, db kv.Database) {
	a := put(t, db, "k", "v1")
	b := put(t, db, "k", "v2")
	c := del(t, db, "k")
	d := put(t, db, "k", "in-cf1", cf(cf1))
	for _, tc := range []struct {
		version       uint64
		want, wantCF1 string
	}{
		{a, "v1", "<missing>"},
		{b, "v2", "<missing>"},
		{c, "<missing>", "<missing>"},
		{d, "<missing>", "in-cf1"},
	} {
		t.Run(fmt.Sprintf("@%d", tc.version), func(t *testing.T) {
			if got := snapshotValue(t, db, "k", tc.version); got != tc.want {
				t.Fatalf("SnapshotRead(k, @%d) = %s; want %s", tc.version, got, tc.want)
			}
			if got := snapshotValue(t, db, "k", tc.version, cf(cf1)); got != tc.wantCF1 {
				t.Fatalf("SnapshotRead(k, @%d) in cf1 = %s; want %s", tc.version, got, tc.wantCF1)
			}
			want := ""
			if tc.want != "<missing>" {
				want = pairs("k", tc.want)
			}
			for _, reverse := range []bool{false, true} {
				if got := snapshotRange(t, db, "k", next("k"), 0, reverse, tc.version); got != want {
					t.Fatalf("SnapshotGetRange([k, k\\x00), reverse=%v, @%d) = %s; want %s", reverse, tc.version, got, want)
				}
			}
		})
	}
	t.Run("latest", func(t *testing.T) {
		put(t, db, "k", "v3")
		rv := readVersion(t, db)
		if got := snapshotValue(t, db, "k", rv); got != "v3" {
			t.Fatalf("SnapshotRead at GetReadVersion = %s; want the latest value v3", got)
		}
	})
}

func testSnapshotOlderRange(t *testing.T, db kv.Database) {
	for _, k := range []string{"p1", "p2", "p3", "p4"} {
		put(t, db, k, "1")
	}
	put(t, db, "p2", "old", cf(cf1))
	a := readVersion(t, db)
	b := clearRange(t, db, "p2", "p4")
	c := put(t, db, "p5", "1")
	d := put(t, db, "p1", "changed")
	put(t, db, "p2", "new", cf(cf1))

	all := pairs("p1", "1", "p2", "1", "p3", "1", "p4", "1")
	for _, tc := range []struct {
		name       string
		begin, end string
		limit      int
		reverse    bool
		version    uint64
		family     string
		want       string
	}{
		{"before the clear", "", "", 0, false, a, "", all},
		{"before the clear, reverse", "", "", 0, true, a, "", pairs("p4", "1", "p3", "1", "p2", "1", "p1", "1")},
		{"before the clear, reverse, limit", "", "", 2, true, a, "", pairs("p4", "1", "p3", "1")},
		{"before the clear, limit", "", "", 2, false, a, "", pairs("p1", "1", "p2", "1")},
		{"before the clear, cleared range only", "p2", "p4", 0, false, a, "", pairs("p2", "1", "p3", "1")},
		{"at the clear", "", "", 0, false, b, "", pairs("p1", "1", "p4", "1")},
		{"after a later put", "", "", 0, false, c, "", pairs("p1", "1", "p4", "1", "p5", "1")},
		{"after an overwrite", "", "", 0, false, d, "", pairs("p1", "changed", "p4", "1", "p5", "1")},
		{"cf1 before its overwrite", "", "", 0, false, d, cf1, pairs("p2", "old")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := snapshotRange(t, db, tc.begin, tc.end, tc.limit, tc.reverse, tc.version, cf(tc.family)); got != tc.want {
				t.Fatalf("SnapshotGetRange(%q, %q, %d, %v, @%d) = %s; want %s", tc.begin, tc.end, tc.limit, tc.reverse, tc.version, got, tc.want)
			}
		})
	}
	t.Run("point reads of cleared keys", func(t *testing.T) {
		if got := snapshotValue(t, db, "p3", a); got != "1" {
			t.Fatalf("SnapshotRead(p3, @%d) = %s; want 1 (cleared only later)", a, got)
		}
		if got := snapshotValue(t, db, "p3", b); got != "<missing>" {
			t.Fatalf("SnapshotRead(p3, @%d) = %s; want missing", b, got)
		}
	})
}

func testSnapshotFuture(t *testing.T, db kv.Database) {
	seed(t, db)
	var rows []badInput
	for _, ahead := range []struct {
		name string
		f    func(rv uint64) uint64
	}{
		{"latest+1", func(rv uint64) uint64 { return rv + 1 }},
		{"latest+1000", func(rv uint64) uint64 { return rv + 1000 }},
		{"max uint64", func(uint64) uint64 { return math.MaxUint64 }},
	} {
		rows = append(rows,
			badInput{"SnapshotRead at " + ahead.name, messages.StatusCode_INVALID_ARGUMENT, func(ctx context.Context, db kv.Database, rv uint64) error {
				_, _, err := db.SnapshotRead(ctx, []byte("a"), ahead.f(rv))
				return err
			}},
			badInput{"SnapshotGetRange at " + ahead.name, messages.StatusCode_INVALID_ARGUMENT, func(ctx context.Context, db kv.Database, rv uint64) error {
				_, err := db.SnapshotGetRange(ctx, nil, nil, 0, false, ahead.f(rv))
				return err
			}},
		)
	}
	runBadInput(t, db, rows, nil)
}

// testSnapshotTooOld reads at an overwritten version until it leaves the
// retention window: every answer before that must be the old value, every
// answer after it TRANSACTION_TOO_OLD. Each poll writes a tick, so that
// backends whose clock is the log's see time advance.
func testSnapshotTooOld(t *testing.T, db kv.Database) {
	ctx := t.Context()
	put(t, db, "k2", "w1")
	a := put(t, db, "k", "v1")
	put(t, db, "k", "v2")
	put(t, db, "k2", "w2")

	var pointOld, rangeOld bool
	ticks := 0
	Eventually(t, func() bool {
		ticks++
		put(t, db, "tick", fmt.Sprint(ticks))

		v, found, err := db.SnapshotRead(ctx, []byte("k"), a)
		switch messages.CodeOf(err) {
		case messages.StatusCode_OK:
			if pointOld {
				t.Fatalf("SnapshotRead at version %d succeeded after it had answered TRANSACTION_TOO_OLD", a)
			}
			if !found || string(v) != "v1" {
				t.Fatalf("SnapshotRead(k, @%d) inside the window = %q, found=%v; want v1", a, v, found)
			}
		case messages.StatusCode_TRANSACTION_TOO_OLD:
			RequireCode(t, err, messages.StatusCode_TRANSACTION_TOO_OLD, "SnapshotRead after the window")
			pointOld = true
		default:
			t.Fatalf("SnapshotRead(k, @%d): got %v (%v); want success, then TRANSACTION_TOO_OLD", a, messages.CodeOf(err), err)
		}

		kvs, err := db.SnapshotGetRange(ctx, []byte("k"), []byte("l"), 0, false, a)
		switch messages.CodeOf(err) {
		case messages.StatusCode_OK:
			if rangeOld {
				t.Fatalf("SnapshotGetRange at version %d succeeded after it had answered TRANSACTION_TOO_OLD", a)
			}
			if got, want := kvText(kvs), pairs("k", "v1", "k2", "w1"); got != want {
				t.Fatalf("SnapshotGetRange([k, l), @%d) inside the window = %s; want %s", a, got, want)
			}
		case messages.StatusCode_TRANSACTION_TOO_OLD:
			RequireCode(t, err, messages.StatusCode_TRANSACTION_TOO_OLD, "SnapshotGetRange after the window")
			rangeOld = true
		default:
			t.Fatalf("SnapshotGetRange(@%d): got %v (%v); want success, then TRANSACTION_TOO_OLD", a, messages.CodeOf(err), err)
		}
		return pointOld && rangeOld
	}, 30*window, "snapshot reads at an old version answer TRANSACTION_TOO_OLD")
	t.Logf("too old after %d polls", ticks)
	// The present is unaffected.
	wantValue(t, db, "k", "v2")
}
