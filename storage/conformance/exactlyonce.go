package conformance

import (
	"context"
	"fmt"
	"testing"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// exactlyOnceCases cover retries with WithRequestID, under sessions opened
// with OpenSession.
func exactlyOnceCases() []testCase {
	return []testCase{
		{"RetryWithRequestIDAppliesOnce", testRetryAppliesOnce},
		{"RequestIDsOfDifferentClients", testRequestIDClients},
		{"UnknownSessionIsRefused", testUnknownSession},
		{"RetryOfAForgottenSessionIsNeverApplied", testForgottenSession},
	}
}

// openSession opens a session and returns its client id.
func openSession(t *testing.T, db kv.Database) uint64 {
	t.Helper()
	id, err := db.OpenSession(t.Context())
	RequireCode(t, err, messages.StatusCode_OK, "open session")
	if id == 0 {
		t.Fatal("OpenSession returned client id 0")
	}
	return id
}

// testRetryAppliesOnce sends a write with a request id, overwrites its key
// with another write, and repeats the first write with the same id: the
// repeat must answer the first outcome (its version, no error) and must not
// apply again, so the key keeps the other write's value.
func testRetryAppliesOnce(t *testing.T, db kv.Database) {
	type write func(ctx context.Context, db kv.Database, p string, rv uint64, opts ...kv.Option) (uint64, error)
	for i, tc := range []struct {
		name     string
		existing bool // the key exists before the first write
		first    write
	}{
		{"Put", false, func(ctx context.Context, db kv.Database, p string, _ uint64, opts ...kv.Option) (uint64, error) {
			return db.Put(ctx, []byte(p+"k"), []byte("first"), opts...)
		}},
		{"Delete", true, func(ctx context.Context, db kv.Database, p string, _ uint64, opts ...kv.Option) (uint64, error) {
			return db.Delete(ctx, []byte(p+"k"), opts...)
		}},
		{"ClearRange", true, func(ctx context.Context, db kv.Database, p string, _ uint64, opts ...kv.Option) (uint64, error) {
			return db.ClearRange(ctx, []byte(p), []byte(p+"\xff"), opts...)
		}},
		{"AtomicCommit", false, func(ctx context.Context, db kv.Database, p string, _ uint64, opts ...kv.Option) (uint64, error) {
			return db.AtomicCommit(ctx, &messages.AtomicCommit{Mutations: []*messages.Mutation{set(p+"k", "first"), set(p+"side", "first")}}, opts...)
		}},
		// The overwrite lands in the read conflict range after the read
		// version: evaluated again, the retry would be a CONFLICT. It must
		// answer the first outcome instead.
		{"AtomicCommit with a read conflict range", true, func(ctx context.Context, db kv.Database, p string, rv uint64, opts ...kv.Option) (uint64, error) {
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
			client := openSession(t, db)
			id := kv.WithRequestID(&messages.RequestId{ClientId: client, Seq: 1})
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
			next := kv.WithRequestID(&messages.RequestId{ClientId: client, Seq: 2, RespondedTo: 1})
			c, err := db.Put(ctx, []byte(p+"k"), []byte("third"), next)
			RequireCode(t, err, messages.StatusCode_OK, "next request of the client")
			wantGreater(t, "next request of the client", c, b)
			wantValue(t, db, p+"k", "third")
		})
	}
}

// testRequestIDClients checks that a request id is scoped to its client: the
// same seq from another client is another request.
func testRequestIDClients(t *testing.T, db kv.Database) {
	ctx := t.Context()
	one, two := openSession(t, db), openSession(t, db)
	if one == two {
		t.Fatalf("two sessions got the same client id %d", one)
	}
	a, err := db.Put(ctx, []byte("k"), []byte("from-1"), kv.WithRequestID(&messages.RequestId{ClientId: one, Seq: 1}))
	RequireCode(t, err, messages.StatusCode_OK, "client 1, seq 1")
	b, err := db.Put(ctx, []byte("k"), []byte("from-2"), kv.WithRequestID(&messages.RequestId{ClientId: two, Seq: 1}))
	RequireCode(t, err, messages.StatusCode_OK, "client 2, seq 1")
	wantGreater(t, "client 2, seq 1", b, a)
	wantValue(t, db, "k", "from-2")

	// Writes without an id (client 0) are never deduplicated.
	c := put(t, db, "k", "anonymous", kv.WithRequestID(&messages.RequestId{}))
	d := put(t, db, "k", "anonymous")
	wantGreater(t, "second anonymous write", d, c)
}

// testUnknownSession checks that a write under a client id no session was
// opened with is refused with SESSION_EXPIRED and changes nothing: it could
// be the retry of a request whose session was forgotten.
func testUnknownSession(t *testing.T, db kv.Database) {
	ctx := t.Context()
	put(t, db, "k", "before")
	known := openSession(t, db)
	for _, client := range []uint64{known + 1_000_000, 1<<64 - 1} {
		_, err := db.Put(ctx, []byte("k"), []byte("stranger"), kv.WithRequestID(&messages.RequestId{ClientId: client, Seq: 1}))
		RequireCode(t, err, messages.StatusCode_SESSION_EXPIRED, fmt.Sprintf("put under client id %d, never opened", client))
		if messages.IsRetryable(err) {
			t.Fatalf("SESSION_EXPIRED is retryable: %v", err)
		}
		_, err = db.AtomicCommit(ctx, &messages.AtomicCommit{Mutations: []*messages.Mutation{set("k", "stranger")}},
			kv.WithRequestID(&messages.RequestId{ClientId: client, Seq: 3, RespondedTo: 2}))
		RequireCode(t, err, messages.StatusCode_SESSION_EXPIRED, fmt.Sprintf("commit under client id %d, never opened", client))
	}
	wantValue(t, db, "k", "before")
}

// testForgottenSession is the case of a retry that outlived its session:
// client V writes with request id (V, 1), client W overwrites the key, then
// more sessions are opened (and used) than the backend remembers, so V's is
// forgotten. V's retry of the same request must not be applied again — it
// would overwrite W's acknowledged write — and answers SESSION_EXPIRED.
// Before the session is forgotten, the same retry answers the first outcome.
func testForgottenSession(t *testing.T, db kv.Database) {
	ctx := t.Context()
	v := openSession(t, db)
	retry := func() (uint64, error) {
		return db.Put(ctx, []byte("acct"), []byte("from-V"), kv.WithRequestID(&messages.RequestId{ClientId: v, Seq: 1}))
	}
	first, err := retry()
	RequireCode(t, err, messages.StatusCode_OK, "V's put")
	w := openSession(t, db)
	fromW, err := db.Put(ctx, []byte("acct"), []byte("from-W"), kv.WithRequestID(&messages.RequestId{ClientId: w, Seq: 1}))
	RequireCode(t, err, messages.StatusCode_OK, "W's put")
	wantGreater(t, "W's put", fromW, first)
	again, err := retry()
	RequireCode(t, err, messages.StatusCode_OK, "V's retry while its session is remembered")
	if again != first {
		t.Fatalf("V's retry returned version %d, want the first outcome %d", again, first)
	}
	wantValue(t, db, "acct", "from-W")

	for i := range 2 * maxSessions {
		c := openSession(t, db)
		_, err := db.Put(ctx, []byte(fmt.Sprintf("other/%02d", i)), []byte("x"), kv.WithRequestID(&messages.RequestId{ClientId: c, Seq: 1}))
		RequireCode(t, err, messages.StatusCode_OK, fmt.Sprintf("put of session %d", c))
	}
	_, err = retry()
	RequireCode(t, err, messages.StatusCode_SESSION_EXPIRED, "V's retry after its session was forgotten")
	wantValue(t, db, "acct", "from-W")
	// A new session of V's writes again.
	v = openSession(t, db)
	_, err = retry()
	RequireCode(t, err, messages.StatusCode_OK, "V's put under a new session")
	wantValue(t, db, "acct", "from-V")
}
