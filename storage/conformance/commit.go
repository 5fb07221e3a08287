package conformance

import (
	"fmt"
	"math"
	"testing"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// commitCases cover AtomicCommit: atomicity, ordering, conflicts and the
// read version's bounds.
func commitCases() []testCase {
	return []testCase{
		{"AtomicCommitAppliesAllAtOneVersion", testCommitAtomic},
		{"AtomicCommitMutationsApplyInOrder", testCommitOrder},
		{"AtomicCommitConflicts", testCommitConflicts},
		{"FailedCommitLeavesNoWriteBehind", testFailedCommitNoWrite},
		{"AtomicCommitReadVersionInTheFuture", testCommitFutureReadVersion},
		{"AtomicCommitTransactionTooOld", testCommitTooOld},
		{"EmptyRangesConflictWithNothing", testEmptyRangesNoConflict},
	}
}

// testEmptyRangesNoConflict writes empty ranges (begin == end) every way a
// write can — a ClearRange, an atomic commit's CLEAR_RANGE, a write
// conflict range — after a read version: they hold no key, so a commit
// reading the whole of [a, z) at that version does not conflict with them.
// A real write after it still does.
func testEmptyRangesNoConflict(t *testing.T, db kv.Database) {
	put(t, db, "m", "kept")
	rv := readVersion(t, db)
	clearRange(t, db, "m", "m")
	commit(t, db, &messages.AtomicCommit{Mutations: []*messages.Mutation{clearMut("n", "n")}})
	commit(t, db, &messages.AtomicCommit{Mutations: []*messages.Mutation{set("zz/out", "x")}, WriteConflictRanges: []*messages.KeyRange{keyRange("w", "w")}})
	commit(t, db, &messages.AtomicCommit{Mutations: []*messages.Mutation{clearMut("p", "p")}, WriteConflictRanges: []*messages.KeyRange{keyRange("q", "q")}}, cf(cf1))
	wantValue(t, db, "m", "kept") // an empty clear removes nothing
	attempt := func(c *messages.AtomicCommit) error {
		_, err := db.AtomicCommit(t.Context(), c)
		return err
	}
	RequireCode(t, attempt(&messages.AtomicCommit{
		ReadVersion:        rv,
		ReadConflictRanges: []*messages.KeyRange{keyRange("a", "z"), keyRangeIn(cf1, "a", "z")},
		Mutations:          []*messages.Mutation{set("result", "1")},
	}), messages.StatusCode_OK, "commit reading [a, z) after only empty ranges were written")
	// An empty read range conflicts with nothing either.
	put(t, db, "k", "written")
	RequireCode(t, attempt(&messages.AtomicCommit{
		ReadVersion:        rv,
		ReadConflictRanges: []*messages.KeyRange{keyRange("k", "k")},
		Mutations:          []*messages.Mutation{set("result", "2")},
	}), messages.StatusCode_OK, "commit with an empty read range over a written key")
	RequireCode(t, attempt(&messages.AtomicCommit{
		ReadVersion:        rv,
		ReadConflictRanges: []*messages.KeyRange{keyRange("a", "z")},
		Mutations:          []*messages.Mutation{set("result", "3")},
	}), messages.StatusCode_CONFLICT, "commit reading [a, z) after a write of k")
	wantValue(t, db, "result", "2")
}

func testCommitAtomic(t *testing.T, db kv.Database) {
	put(t, db, "del", "x")
	put(t, db, "clr/1", "x")
	put(t, db, "clr/2", "x")
	put(t, db, "keep", "x")
	put(t, db, "c1", "x", cf(cf1))
	beforeDefault := getRange(t, db, "", "", 0, false)
	beforeCF1 := getRange(t, db, "", "", 0, false, cf(cf1))

	rv := readVersion(t, db)
	v := commit(t, db, &messages.AtomicCommit{
		ReadVersion:        rv,
		ReadConflictRanges: []*messages.KeyRange{pointRange("keep")},
		Mutations: []*messages.Mutation{
			set("new1", "1"),
			set("new2", "2"),
			deleteMut("del"),
			clearMut("clr/", "clr0"),
			setIn(cf1, "new3", "3"),
			deleteMut("never-existed"),
		},
	})
	wantGreater(t, "AtomicCommit", v, rv)

	if got, want := getRange(t, db, "", "", 0, false), pairs("keep", "x", "new1", "1", "new2", "2"); got != want {
		t.Fatalf("after the commit, default holds %s; want %s", got, want)
	}
	if got, want := getRange(t, db, "", "", 0, false, cf(cf1)), pairs("c1", "x", "new3", "3"); got != want {
		t.Fatalf("after the commit, cf1 holds %s; want %s", got, want)
	}
	// One version: the state just before it is the old one in full, and the
	// state at it is the new one in full.
	if got := snapshotRange(t, db, "", "", 0, false, v-1); got != beforeDefault {
		t.Fatalf("at version %d (before the commit), default holds %s; want %s", v-1, got, beforeDefault)
	}
	if got := snapshotRange(t, db, "", "", 0, false, v-1, cf(cf1)); got != beforeCF1 {
		t.Fatalf("at version %d (before the commit), cf1 holds %s; want %s", v-1, got, beforeCF1)
	}
	if got, want := snapshotRange(t, db, "", "", 0, false, v), pairs("keep", "x", "new1", "1", "new2", "2"); got != want {
		t.Fatalf("at the commit's version %d, default holds %s; want %s", v, got, want)
	}
	if got, want := snapshotRange(t, db, "", "", 0, false, v, cf(cf1)), pairs("c1", "x", "new3", "3"); got != want {
		t.Fatalf("at the commit's version %d, cf1 holds %s; want %s", v, got, want)
	}
}

// The contract does not say in which order a commit's mutations take
// effect; like FoundationDB, the suite expects the order of the list, which
// is what a client writing "clear the range, then set one key in it" means.
func testCommitOrder(t *testing.T, db kv.Database) {
	for i, tc := range []struct {
		name     string
		existing []string
		muts     func(p string) []*messages.Mutation
		want     map[string]string // relative key -> value; "" means missing
	}{
		{"set then set", nil,
			func(p string) []*messages.Mutation { return []*messages.Mutation{set(p+"k", "a"), set(p+"k", "b")} },
			map[string]string{"k": "b"}},
		{"set then delete", nil,
			func(p string) []*messages.Mutation { return []*messages.Mutation{set(p+"k", "a"), deleteMut(p + "k")} },
			map[string]string{"k": ""}},
		{"delete then set", []string{"k"},
			func(p string) []*messages.Mutation { return []*messages.Mutation{deleteMut(p + "k"), set(p+"k", "a")} },
			map[string]string{"k": "a"}},
		{"set then clear range", nil,
			func(p string) []*messages.Mutation {
				return []*messages.Mutation{set(p+"k", "a"), clearMut(p, p+"\xff")}
			},
			map[string]string{"k": ""}},
		{"clear range then set inside it", []string{"x", "y"},
			func(p string) []*messages.Mutation {
				return []*messages.Mutation{clearMut(p, p+"\xff"), set(p+"x", "new")}
			},
			map[string]string{"x": "new", "y": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := fmt.Sprintf("o%02d/", i)
			for _, k := range tc.existing {
				put(t, db, p+k, "old")
			}
			commit(t, db, &messages.AtomicCommit{Mutations: tc.muts(p)})
			for k, v := range tc.want {
				if v == "" {
					wantMissing(t, db, p+k)
				} else {
					wantValue(t, db, p+k, v)
				}
			}
		})
	}
}

// testCommitConflicts runs one commit per row: read version rv taken after
// the row's keys are written, then the row's interfering write, then the
// commit. A CONFLICT must leave every key as it was; a success must apply
// every mutation.
func testCommitConflicts(t *testing.T, db kv.Database) {
	ok, conflict := messages.StatusCode_OK, messages.StatusCode_CONFLICT
	point := func(p string) []*messages.KeyRange { return []*messages.KeyRange{pointRange(p + "acct")} }
	for i, tc := range []struct {
		name      string
		reads     func(p string) []*messages.KeyRange
		interfere func(t *testing.T, db kv.Database, p string)
		want      messages.StatusCode
	}{
		{"put after the read version", point,
			func(t *testing.T, db kv.Database, p string) { put(t, db, p+"acct", "new") }, conflict},
		{"delete after the read version", point,
			func(t *testing.T, db kv.Database, p string) { del(t, db, p+"acct") }, conflict},
		// A delete of a missing key is a committed write into the range, even
		// though no data changed (as a FoundationDB clear is).
		{"delete of a missing key inside the range",
			func(p string) []*messages.KeyRange { return []*messages.KeyRange{pointRange(p + "ghost")} },
			func(t *testing.T, db kv.Database, p string) { del(t, db, p+"ghost") }, conflict},
		{"clear range covering the key", point,
			func(t *testing.T, db kv.Database, p string) { clearRange(t, db, p+"a", p+"b") }, conflict},
		{"clear range to the end of the key space", point,
			func(t *testing.T, db kv.Database, p string) { clearRange(t, db, p+"ab", "") }, conflict},
		{"another commit's SET", point,
			func(t *testing.T, db kv.Database, p string) {
				commit(t, db, &messages.AtomicCommit{Mutations: []*messages.Mutation{set(p+"acct", "new")}})
			}, conflict},
		{"another commit's DELETE", point,
			func(t *testing.T, db kv.Database, p string) {
				commit(t, db, &messages.AtomicCommit{Mutations: []*messages.Mutation{deleteMut(p + "acct")}})
			}, conflict},
		{"another commit's CLEAR_RANGE", point,
			func(t *testing.T, db kv.Database, p string) {
				commit(t, db, &messages.AtomicCommit{Mutations: []*messages.Mutation{clearMut(p+"acc", p+"acd")}})
			}, conflict},
		{"another commit's write conflict range alone", point,
			func(t *testing.T, db kv.Database, p string) {
				commit(t, db, &messages.AtomicCommit{
					Mutations:           []*messages.Mutation{set(p+"elsewhere", "x")},
					WriteConflictRanges: []*messages.KeyRange{pointRange(p + "acct")},
				})
			}, conflict},
		{"read range with an open end",
			func(p string) []*messages.KeyRange { return []*messages.KeyRange{keyRange(p+"b", "")} },
			func(t *testing.T, db kv.Database, p string) { put(t, db, p+"zzz", "new") }, conflict},
		{"read range with an empty begin",
			func(p string) []*messages.KeyRange { return []*messages.KeyRange{keyRange("", p+"b")} },
			func(t *testing.T, db kv.Database, p string) { put(t, db, p+"acct", "new") }, conflict},
		{"write inside a wide read range",
			func(p string) []*messages.KeyRange { return []*messages.KeyRange{keyRange(p+"a", p+"z")} },
			func(t *testing.T, db kv.Database, p string) { put(t, db, p+"m", "new") }, conflict},
		{"second of several read ranges",
			func(p string) []*messages.KeyRange {
				return []*messages.KeyRange{keyRange(p+"x", p+"y"), pointRange(p + "acct")}
			},
			func(t *testing.T, db kv.Database, p string) { put(t, db, p+"acct", "new") }, conflict},
		{"read range and write in cf1",
			func(p string) []*messages.KeyRange {
				return []*messages.KeyRange{keyRangeIn(cf1, p+"acct", next(p+"acct"))}
			},
			func(t *testing.T, db kv.Database, p string) { put(t, db, p+"acct", "new", cf(cf1)) }, conflict},
		{"write at the exclusive end of the read range", point,
			func(t *testing.T, db kv.Database, p string) { put(t, db, next(p+"acct"), "new") }, ok},
		{"write just before the read range", point,
			func(t *testing.T, db kv.Database, p string) { put(t, db, p+"acc", "new") }, ok},
		{"write before the read version", point,
			func(t *testing.T, db kv.Database, p string) {}, ok},
		{"disjoint key", point,
			func(t *testing.T, db kv.Database, p string) { put(t, db, p+"other", "new") }, ok},
		{"same key in another column family", point,
			func(t *testing.T, db kv.Database, p string) { put(t, db, p+"acct", "new", cf(cf1)) }, ok},
		{"no read conflict ranges",
			func(p string) []*messages.KeyRange { return nil },
			func(t *testing.T, db kv.Database, p string) { put(t, db, p+"acct", "new") }, ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := fmt.Sprintf("x%02d/", i)
			put(t, db, p+"acct", "100")
			put(t, db, p+"acct", "100", cf(cf1))
			put(t, db, p+"victim", "v")
			put(t, db, p+"c/1", "x")
			put(t, db, p+"c/2", "x")
			rv := readVersion(t, db)
			tc.interfere(t, db, p)
			before := state(t, db)
			last := readVersion(t, db)

			v, err := db.AtomicCommit(t.Context(), &messages.AtomicCommit{
				ReadVersion:        rv,
				ReadConflictRanges: tc.reads(p),
				Mutations: []*messages.Mutation{
					set(p+"out", "1"),
					setIn(cf1, p+"out", "1"),
					deleteMut(p + "victim"),
					clearMut(p+"c/", p+"c0"),
				},
			})
			RequireCode(t, err, tc.want, "AtomicCommit")
			if tc.want != ok {
				requireState(t, db, before, "a conflicting commit")
				return
			}
			wantGreater(t, "AtomicCommit", v, last)
			wantValue(t, db, p+"out", "1")
			wantValue(t, db, p+"out", "1", cf(cf1))
			wantMissing(t, db, p+"victim")
			wantMissing(t, db, p+"c/1")
			wantMissing(t, db, p+"c/2")
		})
	}
}

// testFailedCommitNoWrite checks that a commit that failed (conflict or bad
// input) wrote nothing, not even for later conflict checks: a commit whose
// read range covers the failed commit's mutations still succeeds.
func testFailedCommitNoWrite(t *testing.T, db kv.Database) {
	ctx := t.Context()
	put(t, db, "x", "0")
	put(t, db, "acct", "0")
	rv := readVersion(t, db)
	put(t, db, "x", "1")

	_, err := db.AtomicCommit(ctx, &messages.AtomicCommit{
		ReadVersion:        rv,
		ReadConflictRanges: []*messages.KeyRange{pointRange("x")},
		Mutations:          []*messages.Mutation{set("acct", "A")},
	})
	RequireCode(t, err, messages.StatusCode_CONFLICT, "conflicting commit")
	_, err = db.AtomicCommit(ctx, &messages.AtomicCommit{
		Mutations: []*messages.Mutation{set("acct", "C"), {Type: messages.MutationType_SET, Key: []byte("big"), Value: bigValue(limits.MaxValueSize+1, 'b')}},
	})
	RequireCode(t, err, messages.StatusCode_TOO_LARGE, "too large commit")

	commit(t, db, &messages.AtomicCommit{
		ReadVersion:        rv,
		ReadConflictRanges: []*messages.KeyRange{pointRange("acct")},
		Mutations:          []*messages.Mutation{set("y", "B")},
	})
	wantValue(t, db, "acct", "0")
	wantValue(t, db, "y", "B")
}

// The contract names the future read version an error only for snapshot
// reads; for AtomicCommit a read version beyond the latest committed one can
// only be a client bug (it never read there), so the suite expects
// INVALID_ARGUMENT, as the brief of this suite states. It is checked with a
// read conflict range: without one nothing about the read version matters.
func testCommitFutureReadVersion(t *testing.T, db kv.Database) {
	seed(t, db)
	for _, tc := range []struct {
		name  string
		ahead func(rv uint64) uint64
	}{
		{"latest+1", func(rv uint64) uint64 { return rv + 1 }},
		{"latest+1000", func(rv uint64) uint64 { return rv + 1000 }},
		{"max uint64", func(uint64) uint64 { return math.MaxUint64 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := state(t, db)
			rv := readVersion(t, db)
			_, err := db.AtomicCommit(t.Context(), &messages.AtomicCommit{
				ReadVersion:        tc.ahead(rv),
				ReadConflictRanges: []*messages.KeyRange{pointRange("a")},
				Mutations:          []*messages.Mutation{set("a", "future"), set("new", "future")},
			})
			RequireCode(t, err, messages.StatusCode_INVALID_ARGUMENT, fmt.Sprintf("AtomicCommit at read version %d (latest %d)", tc.ahead(rv), rv))
			// The version may be consumed (the replicated group can only
			// compare with the latest version inside the state machine), but
			// nothing may change.
			requireState(t, db, before, "a commit with a future read version")
		})
	}
}

// testCommitTooOld takes a read version, writes inside the read range after
// it, and retries a commit at that read version: it must answer CONFLICT
// until the read version leaves the retention window and TRANSACTION_TOO_OLD
// from then on, and no attempt may apply anything. Each attempt is a command,
// so backends whose clock is the log's see time advance too.
func testCommitTooOld(t *testing.T, db kv.Database) {
	ctx := t.Context()
	put(t, db, "k", "0")
	rv := readVersion(t, db)
	put(t, db, "k", "1")
	before := state(t, db)

	attempt := func(reads ...*messages.KeyRange) error {
		_, err := db.AtomicCommit(ctx, &messages.AtomicCommit{
			ReadVersion:        rv,
			ReadConflictRanges: reads,
			Mutations:          []*messages.Mutation{set("marker", "applied"), set("k", "overwritten")},
		})
		return err
	}
	conflicts := 0
	Eventually(t, func() bool {
		err := attempt(pointRange("k"))
		switch messages.CodeOf(err) {
		case messages.StatusCode_CONFLICT:
			RequireCode(t, err, messages.StatusCode_CONFLICT, "commit inside the window")
			conflicts++
			return false
		case messages.StatusCode_TRANSACTION_TOO_OLD:
			RequireCode(t, err, messages.StatusCode_TRANSACTION_TOO_OLD, "commit after the window")
			return true
		}
		t.Fatalf("commit at read version %d after a conflicting write: got %v (%v); want CONFLICT, then TRANSACTION_TOO_OLD", rv, messages.CodeOf(err), err)
		return false
	}, 30*window, "a commit at an old read version answers TRANSACTION_TOO_OLD")
	t.Logf("%d CONFLICT answers before TRANSACTION_TOO_OLD", conflicts)

	// Too old stays too old.
	RequireCode(t, attempt(pointRange("k")), messages.StatusCode_TRANSACTION_TOO_OLD, "second commit after the window")
	// Once the read version has left the window the commit is too old
	// whatever it read: the store can no longer tell whether it conflicts.
	RequireCode(t, attempt(pointRange("unwritten")), messages.StatusCode_TRANSACTION_TOO_OLD, "commit after the window with an unwritten read range")
	requireState(t, db, before, "commits at a read version that became too old")
}
