package conformance

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// badInputCases cover input the store must refuse (DESIGN.md, "Bad input"),
// unknown column families, and requests whose context is already done.
func badInputCases() []testCase {
	return []testCase{
		{"BadInput", testBadInput},
		{"UnknownColumnFamily", testUnknownColumnFamily},
		{"CancelledContext", testCancelledContext},
		{"ExpiredDeadline", testExpiredDeadline},
	}
}

// badInput is one call that must fail with want and change nothing. rv is
// the latest version, read just before the call.
type badInput struct {
	name string
	want messages.StatusCode
	op   func(ctx context.Context, db kv.Database, rv uint64) error
}

// runBadInput runs each row as a subtest on a seeded db and checks the
// documented error, that no data changed in any column family, and that no
// version was consumed. ctxOf gives the row's context (nil: t.Context()).
func runBadInput(t *testing.T, db kv.Database, rows []badInput, ctxOf func(t *testing.T) context.Context) {
	t.Helper()
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			ctx := t.Context()
			if ctxOf != nil {
				ctx = ctxOf(t)
			}
			before := state(t, db)
			rv := readVersion(t, db)
			RequireCode(t, row.op(ctx, db, rv), row.want, row.name)
			requireState(t, db, before, row.name)
			if after := readVersion(t, db); after != rv {
				t.Fatalf("%s consumed versions: GetReadVersion went from %d to %d", row.name, rv, after)
			}
		})
	}
}

// commitOf wraps mutations into a commit; a valid SET comes first, so that a
// partly applied commit shows.
func commitOf(muts ...*messages.Mutation) *messages.AtomicCommit {
	return &messages.AtomicCommit{Mutations: append([]*messages.Mutation{set("a", "partly applied")}, muts...)}
}

func commitOp(c *messages.AtomicCommit) func(context.Context, kv.Database, uint64) error {
	return func(ctx context.Context, db kv.Database, _ uint64) error {
		_, err := db.AtomicCommit(ctx, c)
		return err
	}
}

func testBadInput(t *testing.T, db kv.Database) {
	seed(t, db)
	invalid, tooLarge := messages.StatusCode_INVALID_ARGUMENT, messages.StatusCode_TOO_LARGE
	longKey := bytes.Repeat([]byte("k"), limits.MaxKeySize+1)
	bigVal := bigValue(limits.MaxValueSize+1, 'v')

	var rows []badInput
	for _, k := range []struct {
		name string
		key  []byte
	}{{"empty key", nil}, {fmt.Sprintf("key of %d bytes", len(longKey)), longKey}} {
		rows = append(rows,
			badInput{"Get: " + k.name, invalid, func(ctx context.Context, db kv.Database, _ uint64) error {
				_, _, err := db.Get(ctx, k.key)
				return err
			}},
			badInput{"Put: " + k.name, invalid, func(ctx context.Context, db kv.Database, _ uint64) error {
				_, err := db.Put(ctx, k.key, []byte("v"))
				return err
			}},
			badInput{"Delete: " + k.name, invalid, func(ctx context.Context, db kv.Database, _ uint64) error {
				_, err := db.Delete(ctx, k.key)
				return err
			}},
			badInput{"SnapshotRead: " + k.name, invalid, func(ctx context.Context, db kv.Database, rv uint64) error {
				_, _, err := db.SnapshotRead(ctx, k.key, rv)
				return err
			}},
			badInput{"AtomicCommit SET: " + k.name, invalid, commitOp(commitOf(&messages.Mutation{Type: messages.MutationType_SET, Key: k.key, Value: []byte("v")}))},
			badInput{"AtomicCommit DELETE: " + k.name, invalid, commitOp(commitOf(&messages.Mutation{Type: messages.MutationType_DELETE, Key: k.key}))},
		)
	}

	nineMiB := make([]*messages.Mutation, 9)
	for i := range nineMiB {
		nineMiB[i] = &messages.Mutation{Type: messages.MutationType_SET, Key: []byte(fmt.Sprintf("big%d", i)), Value: bigValue(limits.MaxValueSize, byte('0'+i))}
	}
	tooMany := make([]*messages.Mutation, limits.MaxCommitOps+1)
	for i := range tooMany {
		tooMany[i] = set(fmt.Sprintf("op/%04d", i), "v")
	}
	rows = append(rows,
		badInput{fmt.Sprintf("Put: value of %d bytes", len(bigVal)), tooLarge, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.Put(ctx, []byte("a"), bigVal)
			return err
		}},
		badInput{fmt.Sprintf("AtomicCommit SET: value of %d bytes", len(bigVal)), tooLarge,
			commitOp(commitOf(&messages.Mutation{Type: messages.MutationType_SET, Key: []byte("b"), Value: bigVal}))},
		badInput{fmt.Sprintf("AtomicCommit: %d operations", len(tooMany)), tooLarge,
			commitOp(&messages.AtomicCommit{Mutations: tooMany})},
		badInput{"AtomicCommit: 9 values of 1 MiB (over 8 MiB)", tooLarge,
			commitOp(&messages.AtomicCommit{Mutations: nineMiB})},
	)

	for _, limit := range []int{limits.MaxRangeLimit + 1, -1} {
		rows = append(rows,
			badInput{fmt.Sprintf("ListKeys: limit %d", limit), invalid, func(ctx context.Context, db kv.Database, _ uint64) error {
				_, err := db.ListKeys(ctx, nil, limit)
				return err
			}},
			badInput{fmt.Sprintf("GetRange: limit %d", limit), invalid, func(ctx context.Context, db kv.Database, _ uint64) error {
				_, err := db.GetRange(ctx, nil, nil, limit, false)
				return err
			}},
			badInput{fmt.Sprintf("SnapshotGetRange: limit %d", limit), invalid, func(ctx context.Context, db kv.Database, rv uint64) error {
				_, err := db.SnapshotGetRange(ctx, nil, nil, limit, false, rv)
				return err
			}},
		)
	}

	// Inverted ranges: begin "m" after end "c". A store that swapped the
	// bounds would clear or return "c".
	m, c := []byte("m"), []byte("c")
	rows = append(rows,
		badInput{"GetRange: begin > end", invalid, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.GetRange(ctx, m, c, 0, false)
			return err
		}},
		badInput{"GetRange reverse: begin > end", invalid, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.GetRange(ctx, m, c, 0, true)
			return err
		}},
		badInput{"SnapshotGetRange: begin > end", invalid, func(ctx context.Context, db kv.Database, rv uint64) error {
			_, err := db.SnapshotGetRange(ctx, m, c, 0, false, rv)
			return err
		}},
		badInput{"ClearRange: begin > end", invalid, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.ClearRange(ctx, m, c)
			return err
		}},
		badInput{"AtomicCommit CLEAR_RANGE: begin > end", invalid, commitOp(commitOf(clearMut("m", "c")))},
		badInput{"AtomicCommit read conflict range: begin > end", invalid, func(ctx context.Context, db kv.Database, rv uint64) error {
			cm := commitOf()
			cm.ReadVersion = rv
			cm.ReadConflictRanges = []*messages.KeyRange{keyRange("m", "c")}
			_, err := db.AtomicCommit(ctx, cm)
			return err
		}},
		badInput{"AtomicCommit write conflict range: begin > end", invalid, func(ctx context.Context, db kv.Database, _ uint64) error {
			cm := commitOf()
			cm.WriteConflictRanges = []*messages.KeyRange{keyRange("m", "c")}
			_, err := db.AtomicCommit(ctx, cm)
			return err
		}},
		badInput{"AtomicCommit: mutation type MUTATION_UNSPECIFIED", invalid,
			commitOp(commitOf(&messages.Mutation{Type: messages.MutationType_MUTATION_UNSPECIFIED, Key: []byte("b"), Value: []byte("v")}))},
		badInput{"AtomicCommit: unknown mutation type 99", invalid,
			commitOp(commitOf(&messages.Mutation{Type: messages.MutationType(99), Key: []byte("b"), Value: []byte("v")}))},
		badInput{"AtomicCommit: nil commit", invalid, commitOp(nil)},
	)
	runBadInput(t, db, rows, nil)
}

func testUnknownColumnFamily(t *testing.T, db kv.Database) {
	seed(t, db)
	const nope = "nope"
	unknown := messages.StatusCode_UNKNOWN_COLUMN_FAMILY
	opt := cf(nope)
	rows := []badInput{
		{"Get", unknown, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, _, err := db.Get(ctx, []byte("a"), opt)
			return err
		}},
		{"Put", unknown, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.Put(ctx, []byte("a"), []byte("v"), opt)
			return err
		}},
		{"Delete", unknown, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.Delete(ctx, []byte("a"), opt)
			return err
		}},
		{"ClearRange", unknown, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.ClearRange(ctx, nil, nil, opt)
			return err
		}},
		{"ListKeys", unknown, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.ListKeys(ctx, nil, 0, opt)
			return err
		}},
		{"GetRange", unknown, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.GetRange(ctx, nil, nil, 0, false, opt)
			return err
		}},
		{"SnapshotRead", unknown, func(ctx context.Context, db kv.Database, rv uint64) error {
			_, _, err := db.SnapshotRead(ctx, []byte("a"), rv, opt)
			return err
		}},
		{"SnapshotGetRange", unknown, func(ctx context.Context, db kv.Database, rv uint64) error {
			_, err := db.SnapshotGetRange(ctx, nil, nil, 0, false, rv, opt)
			return err
		}},
		{"AtomicCommit SET", unknown, commitOp(commitOf(setIn(nope, "a", "v")))},
		{"AtomicCommit DELETE", unknown, commitOp(commitOf(&messages.Mutation{Type: messages.MutationType_DELETE, ColumnFamily: nope, Key: []byte("a")}))},
		{"AtomicCommit CLEAR_RANGE", unknown, commitOp(commitOf(&messages.Mutation{Type: messages.MutationType_CLEAR_RANGE, ColumnFamily: nope}))},
		{"AtomicCommit read conflict range", unknown, func(ctx context.Context, db kv.Database, rv uint64) error {
			cm := commitOf()
			cm.ReadVersion = rv
			cm.ReadConflictRanges = []*messages.KeyRange{keyRangeIn(nope, "a", "b")}
			_, err := db.AtomicCommit(ctx, cm)
			return err
		}},
		{"AtomicCommit write conflict range", unknown, func(ctx context.Context, db kv.Database, _ uint64) error {
			cm := commitOf()
			cm.WriteConflictRanges = []*messages.KeyRange{keyRangeIn(nope, "a", "b")}
			_, err := db.AtomicCommit(ctx, cm)
			return err
		}},
	}
	runBadInput(t, db, rows, nil)
}

// everyOperation is one valid call of each Database method but Close: used
// to check what every method does on a done context or a closed store. The
// writes would change "a"; the reads use version rv.
func everyOperation() []badInput {
	return []badInput{
		{"Get", 0, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, _, err := db.Get(ctx, []byte("a"))
			return err
		}},
		{"Put", 0, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.Put(ctx, []byte("a"), []byte("changed"))
			return err
		}},
		{"Put with request id", 0, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.Put(ctx, []byte("a"), []byte("changed"), kv.WithRequestID(&messages.RequestId{ClientId: 77, Seq: 1}))
			return err
		}},
		{"Delete", 0, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.Delete(ctx, []byte("a"))
			return err
		}},
		{"ClearRange", 0, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.ClearRange(ctx, nil, nil)
			return err
		}},
		{"ListKeys", 0, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.ListKeys(ctx, nil, 0)
			return err
		}},
		{"GetRange", 0, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.GetRange(ctx, nil, nil, 0, false)
			return err
		}},
		{"AtomicCommit", 0, func(ctx context.Context, db kv.Database, rv uint64) error {
			_, err := db.AtomicCommit(ctx, &messages.AtomicCommit{
				ReadVersion:        rv,
				ReadConflictRanges: []*messages.KeyRange{pointRange("a")},
				Mutations:          []*messages.Mutation{set("a", "changed"), deleteMut("b")},
			})
			return err
		}},
		{"GetReadVersion", 0, func(ctx context.Context, db kv.Database, _ uint64) error {
			_, err := db.GetReadVersion(ctx)
			return err
		}},
		{"SnapshotRead", 0, func(ctx context.Context, db kv.Database, rv uint64) error {
			_, _, err := db.SnapshotRead(ctx, []byte("a"), rv)
			return err
		}},
		{"SnapshotGetRange", 0, func(ctx context.Context, db kv.Database, rv uint64) error {
			_, err := db.SnapshotGetRange(ctx, nil, nil, 0, false, rv)
			return err
		}},
		{"SetFaultInjection", 0, func(ctx context.Context, db kv.Database, _ uint64) error {
			// Faults that would break every later read, had they been set.
			return db.SetFaultInjection(ctx, &messages.FaultInjection{ErrorRate: 1})
		}},
	}
}

// withCode returns rows with want set to code.
func withCode(rows []badInput, code messages.StatusCode) []badInput {
	for i := range rows {
		rows[i].want = code
	}
	return rows
}

// resetFaults turns fault injection off when the test ends, before the
// factory's Close, so that a failed check cannot leave it on.
func resetFaults(t testing.TB, db kv.Database) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = db.SetFaultInjection(ctx, &messages.FaultInjection{})
	})
}

func testCancelledContext(t *testing.T, db kv.Database) {
	seed(t, db)
	resetFaults(t, db)
	runBadInput(t, db, withCode(everyOperation(), messages.StatusCode_CANCELLED), func(t *testing.T) context.Context {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		return ctx
	})
}

func testExpiredDeadline(t *testing.T, db kv.Database) {
	seed(t, db)
	resetFaults(t, db)
	runBadInput(t, db, withCode(everyOperation(), messages.StatusCode_TIMEOUT), func(t *testing.T) context.Context {
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		t.Cleanup(cancel)
		return ctx
	})
}
