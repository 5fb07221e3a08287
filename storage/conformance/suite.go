package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// Config is what the suite asks of a backend.
type Config struct {
	// ColumnFamilies are the column families besides "default"; the suite
	// uses "cf1".
	ColumnFamilies []string
	// RetentionWindow is how long an overwritten version stays readable and
	// checkable. The suite uses a short one so that TRANSACTION_TOO_OLD is
	// reached within a test.
	RetentionWindow time.Duration
	// MaxSessions caps the client sessions the backend remembers
	// (limits.max_sessions). The suite uses a small cap, so that a session
	// is forgotten within a test.
	MaxSessions int
}

// Factory opens a fresh, empty backend for one test; it registers its own
// cleanup (Close) with t.Cleanup.
type Factory func(t testing.TB, cfg Config) kv.Database

// OpenStandalone starts the standalone service configured as cfg asks, in
// a temporary directory, and closes it when t ends: the factory of the
// standalone service, and the backend under front ends tested over it.
func OpenStandalone(t testing.TB, cfg Config) *storage.Standalone {
	t.Helper()
	sc := storage.DefaultConfig(t.TempDir())
	sc.ColumnFamilies = cfg.ColumnFamilies
	sc.RetentionWindow = cfg.RetentionWindow
	if cfg.MaxSessions > 0 {
		sc.Limits.MaxSessions = cfg.MaxSessions
	}
	s, err := storage.OpenStandalone(sc)
	if err != nil {
		t.Fatalf("open the standalone service: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close the standalone service: %v", err)
		}
	})
	return s
}

// cf1 is the extra column family the suite configures.
const cf1 = "cf1"

// window is the retention window the suite configures: long enough that a
// read-then-commit stays inside it even under -race on a loaded machine (at
// 300ms, a gRPC case that reads the whole state in between once ran over),
// short enough to keep the too-old cases quick.
const window = time.Second

// maxSessions is the session cap the suite configures.
const maxSessions = 16

// suiteConfig is the configuration every case is opened with.
func suiteConfig() Config {
	return Config{ColumnFamilies: []string{cf1}, RetentionWindow: window, MaxSessions: maxSessions}
}

// columnFamilies are the families whose contents "data unchanged" compares.
var columnFamilies = []string{kv.DefaultColumnFamily, cf1}

// limits are the limits the suite expects the backend to enforce.
var limits = kv.DefaultLimits()

// testCase is one top-level case of the suite; it gets its own backend.
type testCase struct {
	name string
	run  func(t *testing.T, db kv.Database)
}

// cases lists every case of the suite, grouped by area (one file each).
func cases() []testCase {
	var all []testCase
	for _, group := range [][]testCase{
		basicCases(),
		rangeCases(),
		commitCases(),
		snapshotCases(),
		badInputCases(),
		exactlyOnceCases(),
		faultCases(),
		concurrencyCases(),
		closeCases(),
	} {
		all = append(all, group...)
	}
	return all
}

// Run runs every case of the suite as subtests of t (t.Run), each on a fresh
// backend from open.
func Run(t *testing.T, open Factory) {
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			db := open(t, suiteConfig())
			if db == nil {
				t.Fatal("factory returned a nil Database")
			}
			c.run(t, db)
		})
	}
}

// Eventually polls cond until it returns true and fails t with msg when
// timeout passes first. cond runs on the calling goroutine, so it may call
// t.Fatal. Use it instead of sleeping to wait for something.
func Eventually(t testing.TB, cond func() bool, timeout time.Duration, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := min(10*time.Millisecond, max(timeout/20, time.Millisecond))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("eventually: %s: not true within %v", msg, timeout)
		}
		<-tick.C
	}
}

// DumpAll returns every key/value of column family cf, in ascending key
// order, read with GetRange page by page (so it works beyond one range
// limit). Tests use it to check that data is unchanged.
func DumpAll(ctx context.Context, db kv.Database, cf string) ([]*messages.KeyValue, error) {
	var all []*messages.KeyValue
	var begin []byte
	page := limits.MaxRangeLimit
	for {
		kvs, err := db.GetRange(ctx, begin, nil, page, false, kv.WithColumnFamily(cf))
		if err != nil {
			return nil, fmt.Errorf("dump %s from %q: %w", cf, begin, err)
		}
		all = append(all, kvs...)
		if len(kvs) < page {
			return all, nil
		}
		begin = append(slices.Clone(kvs[len(kvs)-1].GetKey()), 0)
	}
}

// RequireCode fails t unless err has status code want: nil for OK, and
// otherwise an error whose messages.CodeOf is want, that matches want's
// sentinel with errors.Is and no other sentinel of messages (the contract
// says errors wrap exactly one).
func RequireCode(t testing.TB, err error, want messages.StatusCode, what string) {
	t.Helper()
	if want == messages.StatusCode_OK {
		if err != nil {
			t.Fatalf("%s: unexpected error (code %v): %v", what, messages.CodeOf(err), err)
		}
		return
	}
	if err == nil {
		t.Fatalf("%s: succeeded, want %v", what, want)
	}
	if got := messages.CodeOf(err); got != want {
		t.Fatalf("%s: got code %v (%v), want %v", what, got, err, want)
	}
	if !errors.Is(err, want.Sentinel()) {
		t.Fatalf("%s: error %q does not match sentinel %q with errors.Is", what, err, want.Sentinel())
	}
	for code := range messages.StatusCode_name {
		c := messages.StatusCode(code)
		if c != want && c.Sentinel() != nil && errors.Is(err, c.Sentinel()) {
			t.Fatalf("%s: error %q matches both %v and %v; it must wrap exactly one sentinel", what, err, want, c)
		}
	}
}

// ---- small helpers shared by the cases ----

// cf returns the option selecting column family name.
func cf(name string) kv.Option { return kv.WithColumnFamily(name) }

// next returns the smallest key after k: the end of the point range [k, next).
func next(k string) string { return k + "\x00" }

func put(t testing.TB, db kv.Database, key, value string, opts ...kv.Option) uint64 {
	t.Helper()
	v, err := db.Put(t.Context(), []byte(key), []byte(value), opts...)
	RequireCode(t, err, messages.StatusCode_OK, fmt.Sprintf("Put(%q)", key))
	if v == 0 {
		t.Fatalf("Put(%q) returned version 0", key)
	}
	return v
}

func del(t testing.TB, db kv.Database, key string, opts ...kv.Option) uint64 {
	t.Helper()
	v, err := db.Delete(t.Context(), []byte(key), opts...)
	RequireCode(t, err, messages.StatusCode_OK, fmt.Sprintf("Delete(%q)", key))
	return v
}

func clearRange(t testing.TB, db kv.Database, begin, end string, opts ...kv.Option) uint64 {
	t.Helper()
	v, err := db.ClearRange(t.Context(), []byte(begin), []byte(end), opts...)
	RequireCode(t, err, messages.StatusCode_OK, fmt.Sprintf("ClearRange(%q, %q)", begin, end))
	return v
}

func commit(t testing.TB, db kv.Database, c *messages.AtomicCommit, opts ...kv.Option) uint64 {
	t.Helper()
	v, err := db.AtomicCommit(t.Context(), c, opts...)
	RequireCode(t, err, messages.StatusCode_OK, "AtomicCommit")
	return v
}

func readVersion(t testing.TB, db kv.Database) uint64 {
	t.Helper()
	v, err := db.GetReadVersion(t.Context())
	RequireCode(t, err, messages.StatusCode_OK, "GetReadVersion")
	return v
}

// wantValue checks that key holds want.
func wantValue(t testing.TB, db kv.Database, key, want string, opts ...kv.Option) {
	t.Helper()
	got, found, err := db.Get(t.Context(), []byte(key), opts...)
	RequireCode(t, err, messages.StatusCode_OK, fmt.Sprintf("Get(%q)", key))
	if !found || string(got) != want {
		t.Fatalf("Get(%q) = %q, found=%v; want %q", key, got, found, want)
	}
}

// wantMissing checks that key does not exist.
func wantMissing(t testing.TB, db kv.Database, key string, opts ...kv.Option) {
	t.Helper()
	got, found, err := db.Get(t.Context(), []byte(key), opts...)
	RequireCode(t, err, messages.StatusCode_OK, fmt.Sprintf("Get(%q)", key))
	if found || len(got) != 0 {
		t.Fatalf("Get(%q) = %q, found=%v; want missing", key, got, found)
	}
}

// wantGreater checks that a write's version follows the previous one.
func wantGreater(t testing.TB, what string, got, prev uint64) {
	t.Helper()
	if got <= prev {
		t.Fatalf("%s: version %d is not greater than the previous %d", what, got, prev)
	}
}

func set(key, value string) *messages.Mutation {
	return &messages.Mutation{Type: messages.MutationType_SET, Key: []byte(key), Value: []byte(value)}
}

func setIn(family, key, value string) *messages.Mutation {
	m := set(key, value)
	m.ColumnFamily = family
	return m
}

func deleteMut(key string) *messages.Mutation {
	return &messages.Mutation{Type: messages.MutationType_DELETE, Key: []byte(key)}
}

func clearMut(begin, end string) *messages.Mutation {
	return &messages.Mutation{Type: messages.MutationType_CLEAR_RANGE, Key: []byte(begin), End: []byte(end)}
}

func keyRange(begin, end string) *messages.KeyRange {
	return &messages.KeyRange{Begin: []byte(begin), End: []byte(end)}
}

func keyRangeIn(family, begin, end string) *messages.KeyRange {
	r := keyRange(begin, end)
	r.ColumnFamily = family
	return r
}

// pointRange is the read conflict range of exactly key.
func pointRange(key string) *messages.KeyRange { return keyRange(key, next(key)) }

// kv renders entries as "key=value" lines for comparisons and messages;
// long values are shown by length and hash.
func kvText(kvs []*messages.KeyValue) string {
	var b strings.Builder
	for _, e := range kvs {
		v := e.GetValue()
		if len(v) > 64 {
			fmt.Fprintf(&b, "%q=<%d bytes %x> ", e.GetKey(), len(v), sha256.Sum256(v))
		} else {
			fmt.Fprintf(&b, "%q=%q ", e.GetKey(), v)
		}
	}
	return strings.TrimSpace(b.String())
}

// pairs builds the expected rendering of kv from alternating keys and values.
func pairs(kvs ...string) string {
	var out []*messages.KeyValue
	for i := 0; i+1 < len(kvs); i += 2 {
		out = append(out, &messages.KeyValue{Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
	}
	return kvText(out)
}

// keysOf renders keys the way kv renders entries, without values.
func keysOf(keys [][]byte) string {
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%q ", k)
	}
	return strings.TrimSpace(b.String())
}

// quoted renders string keys the way keysOf does.
func quoted(keys ...string) string {
	bs := make([][]byte, len(keys))
	for i, k := range keys {
		bs[i] = []byte(k)
	}
	return keysOf(bs)
}

func getRange(t testing.TB, db kv.Database, begin, end string, limit int, reverse bool, opts ...kv.Option) string {
	t.Helper()
	kvs, err := db.GetRange(t.Context(), []byte(begin), []byte(end), limit, reverse, opts...)
	RequireCode(t, err, messages.StatusCode_OK, fmt.Sprintf("GetRange(%q, %q, %d, %v)", begin, end, limit, reverse))
	return kvText(kvs)
}

func snapshotRange(t testing.TB, db kv.Database, begin, end string, limit int, reverse bool, version uint64, opts ...kv.Option) string {
	t.Helper()
	kvs, err := db.SnapshotGetRange(t.Context(), []byte(begin), []byte(end), limit, reverse, version, opts...)
	RequireCode(t, err, messages.StatusCode_OK, fmt.Sprintf("SnapshotGetRange(%q, %q, %d, %v, @%d)", begin, end, limit, reverse, version))
	return kvText(kvs)
}

// state is the full contents of every column family, rendered for
// comparison.
func state(t testing.TB, db kv.Database) string {
	t.Helper()
	var b strings.Builder
	for _, family := range columnFamilies {
		kvs, err := DumpAll(t.Context(), db, family)
		RequireCode(t, err, messages.StatusCode_OK, "DumpAll("+family+")")
		fmt.Fprintf(&b, "[%s] %s\n", family, kvText(kvs))
	}
	return b.String()
}

// requireState fails t when the contents differ from before.
func requireState(t testing.TB, db kv.Database, before, what string) {
	t.Helper()
	if after := state(t, db); after != before {
		t.Fatalf("%s changed the data:\nbefore:\n%safter:\n%s", what, before, after)
	}
}

// seed writes a few keys into both column families, so that "unchanged" has
// something to compare and a wrongly applied clear or commit shows.
func seed(t testing.TB, db kv.Database) {
	t.Helper()
	for _, k := range []string{"a", "b", "c", "m", "z"} {
		put(t, db, k, "v-"+k)
		put(t, db, k, "w-"+k, cf(cf1))
	}
}

// bigValue returns n bytes of a repeated pattern (not all zeros, so that no
// layer can shortcut it).
func bigValue(n int, fill byte) []byte {
	return bytes.Repeat([]byte{fill}, n)
}
