package storage

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// TestApplyBatchRollsBackOnWriteFailure makes the RocksDB write of a batch
// fail (an injected storage fault) after every entry of it was decided, and checks that the machine
// state (sessions, conflict history, log time) and the data are exactly as
// before, and that applying the same batch again gives the results it would
// have given the first time.
func TestApplyBatchRollsBackOnWriteFailure(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.SyncWrites = false
	e := openEngine(t, cfg)
	ref := openEngine(t, func() Config { c := cfg; c.Dir = t.TempDir(); return c }())

	prefix := entries(1,
		withTS(openCmd(nil), 50),                           // session 1
		withTS(openCmd(nil), 60),                           // session 2
		withTS(withID(setCmd("", "a", "1"), 1, 1, 0), 100), // 3
		withTS(withID(setCmd("", "b", "1"), 1, 2, 0), 200), // 4
		withTS(withID(setCmd("", "c", "1"), 2, 1, 0), 300), // 5
	)
	// The batch opens a session and uses it, touches existing sessions,
	// answers (forgets) older outcomes, repeats a request, conflicts, and
	// advances log time.
	batch := entries(6,
		withTS(withID(setCmd("", "a", "2"), 1, 3, 2), 400),
		withTS(openCmd(nil), 500), // session 7
		withTS(withID(setCmd("", "d", "1"), 7, 1, 0), 550),
		withTS(withID(setCmd("", "c", "1"), 2, 1, 0), 600), // a retry of index 5
		withTS(withID(&messages.Command{Op: &messages.Command_AtomicCommit{AtomicCommit: &messages.AtomicCommit{
			ReadVersion:        4,
			ReadConflictRanges: []*messages.KeyRange{{Begin: []byte("a"), End: []byte("b")}},
			Mutations:          []*messages.Mutation{{Type: messages.MutationType_SET, Key: []byte("z"), Value: []byte("x")}},
		}}}, 7, 2, 1), 700),
	)
	mustApply(t, e, prefix)
	mustApply(t, ref, prefix)
	wantDigest, wantInternal := mustDigest(t, e), internalDigest(t, e)

	// The write of the batch fails, after every entry of it was decided.
	if err := e.SetFaultInjection(context.Background(), &messages.FaultInjection{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := e.ApplyBatch(batch)
	if err := e.SetFaultInjection(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, messages.ErrInternal) {
		t.Fatalf("ApplyBatch with a failing write: %v, want an INTERNAL error", err)
	}
	if d := digestDiff(mustDigest(t, e), wantDigest); d != "" {
		t.Fatalf("data changed by a failed batch: %s", d)
	}
	if !bytes.Equal(internalDigest(t, e), wantInternal) {
		t.Fatal("machine state changed by a failed batch")
	}
	if got := e.AppliedIndex(); got != 5 {
		t.Fatalf("applied index %d after a failed batch, want 5", got)
	}

	got := mustApply(t, e, batch)
	want := mustApply(t, ref, batch)
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("entry %d after the rollback: %v, want %v", i, got[i], want[i])
		}
	}
	if want[3].GetVersion() != 5 {
		t.Fatalf("the retry answered version %d, want the first outcome's 5", want[3].GetVersion())
	}
	if want[4].GetStatus().GetCode() != messages.StatusCode_CONFLICT {
		t.Fatalf("the commit answered %v, want CONFLICT", want[4].GetStatus())
	}
	if !bytes.Equal(internalDigest(t, e), internalDigest(t, ref)) {
		t.Fatal("machine state after the retried batch differs from the reference")
	}
	if d := digestDiff(mustDigest(t, e), mustDigest(t, ref)); d != "" {
		t.Fatalf("data after the retried batch differs from the reference: %s", d)
	}
}
