package conformance

import (
	"context"
	"fmt"
	"testing"

	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// exactlyOnceCases cover retries with WithRequestID.
func exactlyOnceCases() []testCase {
	return []testCase{
		{"RetryWithRequestIDAppliesOnce", testRetryAppliesOnce},
		{"RequestIDsOfDifferentClients", testRequestIDClients},
	}
}

// testRetryAppliesOnce sends a write with a request id, overwrites its key
// with another write, and repeats the first write with the same id: the
// repeat must answer the first outcome (its version, no error) and must not
// apply again, so the key keeps the other write's value.
func testRetryAppliesOnce(t *testing.T, db storage.Database) {
	type write func(ctx context.Context, db storage.Database, p string, rv uint64, opts ...storage.Option) (uint64, error)
	for i, tc := range []struct {
		name     string
		existing bool // the key exists before the first write
		first    write
	}{
		{"Put", false, func(ctx context.Context, db storage.Database, p string, _ uint64, opts ...storage.Option) (uint64, error) {
			return db.Put(ctx, []byte(p+"k"), []byte("first"), opts...)
		}},
		{"Delete", true, func(ctx context.Context, db storage.Database, p string, _ uint64, opts ...storage.Option) (uint64, error) {
			return db.Delete(ctx, []byte(p+"k"), opts...)
		}},
		{"ClearRange", true, func(ctx context.Context, db storage.Database, p string, _ uint64, opts ...storage.Option) (uint64, error) {
			return db.ClearRange(ctx, []byte(p), []byte(p+"\xff"), opts...)
		}},
		{"AtomicCommit", false, func(ctx context.Context, db storage.Database, p string, _ uint64, opts ...storage.Option) (uint64, error) {
			return db.AtomicCommit(ctx, &messages.AtomicCommit{Mutations: []*messages.Mutation{set(p+"k", "first"), set(p+"side", "first")}}, opts...)
		}},
		// The overwrite lands in the read conflict range after the read
		// version: evaluated again, the retry would be a CONFLICT. It must
		// answer the first outcome instead.
		{"AtomicCommit with a read conflict range", true, func(ctx context.Context, db storage.Database, p string, rv uint64, opts ...storage.Option) (uint64, error) {
			return db.AtomicCommit(ctx, &messages.AtomicCommit{
				ReadVersion:        rv,
				ReadConflictRanges: []*messages.KeyRange{pointRange(p + "k")},
				Mutations:          []*messages.Mutation{set(p+"k", "first")},
			}, opts...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			p := fmt.Sprintf("e%02d/", i)
			if tc.existing {
				put(t, db, p+"k", "existing")
			}
			id := storage.WithRequestID(&messages.RequestId{ClientId: uint64(1000 + i), Seq: 1})
			rv := readVersion(t, db)
			a, err := tc.first(ctx, db, p, rv, id)
			RequireCode(t, err, messages.StatusCode_OK, "first "+tc.name)
			wantGreater(t, "first "+tc.name, a, rv)

			b := put(t, db, p+"k", "other")
			wantGreater(t, "overwrite", b, a)

			again, err := tc.first(ctx, db, p, rv, id)
			RequireCode(t, err, messages.StatusCode_OK, "retry of "+tc.name+" with the same request id")
			if again != a {
				t.Fatalf("retry of %s with the same request id returned version %d; want the first outcome's %d", tc.name, again, a)
			}
			wantValue(t, db, p+"k", "other")

			// The next request of the same client is a new write.
			next := storage.WithRequestID(&messages.RequestId{ClientId: uint64(1000 + i), Seq: 2, RespondedTo: 1})
			c, err := db.Put(ctx, []byte(p+"k"), []byte("third"), next)
			RequireCode(t, err, messages.StatusCode_OK, "next request of the client")
			wantGreater(t, "next request of the client", c, b)
			wantValue(t, db, p+"k", "third")
		})
	}
}

// testRequestIDClients checks that a request id is scoped to its client: the
// same seq from another client is another request.
func testRequestIDClients(t *testing.T, db storage.Database) {
	ctx := t.Context()
	a, err := db.Put(ctx, []byte("k"), []byte("from-1"), storage.WithRequestID(&messages.RequestId{ClientId: 1, Seq: 1}))
	RequireCode(t, err, messages.StatusCode_OK, "client 1, seq 1")
	b, err := db.Put(ctx, []byte("k"), []byte("from-2"), storage.WithRequestID(&messages.RequestId{ClientId: 2, Seq: 1}))
	RequireCode(t, err, messages.StatusCode_OK, "client 2, seq 1")
	wantGreater(t, "client 2, seq 1", b, a)
	wantValue(t, db, "k", "from-2")

	// Writes without an id (client 0) are never deduplicated.
	c := put(t, db, "k", "anonymous", storage.WithRequestID(&messages.RequestId{}))
	d := put(t, db, "k", "anonymous")
	wantGreater(t, "second anonymous write", d, c)
}
