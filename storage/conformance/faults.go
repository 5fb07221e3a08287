package conformance

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// faultCases cover SetFaultInjection. They inject faults into reads only:
// in the replicated group a write that fails in storage stops its replica,
// which is backend-specific and tested with the group.
func faultCases() []testCase {
	return []testCase{
		{"FaultInjectionFailsReads", testFaultErrors},
		{"FaultInjectionAddsLatency", testFaultLatency},
	}
}

func setFaults(t testing.TB, db kv.Database, f *messages.FaultInjection) {
	t.Helper()
	RequireCode(t, db.SetFaultInjection(t.Context(), f), messages.StatusCode_OK, "SetFaultInjection")
}

func testFaultErrors(t *testing.T, db kv.Database) {
	seed(t, db)
	resetFaults(t, db)
	rv := readVersion(t, db)
	before := state(t, db)

	// Each read with its expected result when no fault is injected.
	reads := []struct {
		name string
		read func(ctx context.Context) (string, error)
		want string
	}{
		{"Get", func(ctx context.Context) (string, error) {
			v, _, err := db.Get(ctx, []byte("a"))
			return string(v), err
		}, "v-a"},
		{"GetRange", func(ctx context.Context) (string, error) {
			kvs, err := db.GetRange(ctx, []byte("a"), []byte("c"), 0, false)
			return kvText(kvs), err
		}, pairs("a", "v-a", "b", "v-b")},
		{"GetRange in cf1", func(ctx context.Context) (string, error) {
			kvs, err := db.GetRange(ctx, []byte("a"), []byte("c"), 0, true, cf(cf1))
			return kvText(kvs), err
		}, pairs("b", "w-b", "a", "w-a")},
		{"ListKeys", func(ctx context.Context) (string, error) {
			keys, err := db.ListKeys(ctx, []byte("m"), 0)
			return keysOf(keys), err
		}, quoted("m")},
		{"SnapshotRead", func(ctx context.Context) (string, error) {
			v, _, err := db.SnapshotRead(ctx, []byte("z"), rv)
			return string(v), err
		}, "v-z"},
		{"SnapshotGetRange", func(ctx context.Context) (string, error) {
			kvs, err := db.SnapshotGetRange(ctx, []byte("c"), []byte("n"), 0, false, rv)
			return kvText(kvs), err
		}, pairs("c", "v-c", "m", "v-m")},
	}

	setFaults(t, db, &messages.FaultInjection{ErrorRate: 1})
	for _, r := range reads {
		t.Run("error_rate 1: "+r.name, func(t *testing.T) {
			got, err := r.read(t.Context())
			RequireCode(t, err, messages.StatusCode_INTERNAL, r.name+" with error_rate 1")
			if got != "" {
				t.Fatalf("%s failed but returned data %q", r.name, got)
			}
		})
	}

	setFaults(t, db, &messages.FaultInjection{})
	for _, r := range reads {
		t.Run("reset: "+r.name, func(t *testing.T) {
			got, err := r.read(t.Context())
			RequireCode(t, err, messages.StatusCode_OK, r.name+" after the faults were reset")
			if got != r.want {
				t.Fatalf("%s after the faults were reset = %s; want %s", r.name, got, r.want)
			}
		})
	}
	requireState(t, db, before, "failed reads")
	// Writes work again too.
	put(t, db, "after", "faults")
	wantValue(t, db, "after", "faults")
}

// testFaultLatency checks the latency knob does something: a Get takes at
// least the added latency. It is a lower bound only, not a speed target.
func testFaultLatency(t *testing.T, db kv.Database) {
	put(t, db, "k", "v")
	resetFaults(t, db)
	const latency = 20 * time.Millisecond
	setFaults(t, db, &messages.FaultInjection{AddedLatency: durationpb.New(latency)})
	start := time.Now()
	wantValue(t, db, "k", "v")
	if elapsed := time.Since(start); elapsed < latency {
		t.Fatalf("Get with %v of added latency took %v", latency, elapsed)
	}
	setFaults(t, db, &messages.FaultInjection{})
	wantValue(t, db, "k", "v")
}
