package storage

import (
	"context"
	"testing"

	"github.com/actorkv/actorkv/messages"
)

func batchCmd(cmds ...*messages.Command) *messages.Command {
	return &messages.Command{Op: &messages.Command_Batch{Batch: &messages.CommandBatch{Commands: cmds}}}
}

// TestApplyBatchGroupCommit applies an entry of several writes (group
// commit): they share the entry's index as their version and are decided
// in order, each seeing the writes before it — an atomic commit conflicts
// with an earlier write of the same entry, a retry inside the entry gets
// the first outcome — and each keeps its result; a session is never opened
// inside such an entry (two would share its index). Snapshot reads, the
// sessions and the conflict history come out as if the writes had been
// entries of their own, and survive a restart.
func TestApplyBatchGroupCommit(t *testing.T) {
	ctx := context.Background()
	cfg := replicatedConfig(t.TempDir())
	e := openEngine(t, cfg)
	mustApply(t, e, entries(1, openCmd(nil), setCmd("", "a", "0"))) // session 1; a=0 at 2
	rv := uint64(2)
	reads := []*messages.KeyRange{{Begin: []byte("a"), End: []byte("b")}}
	conflicting := &messages.Command{Op: &messages.Command_AtomicCommit{AtomicCommit: &messages.AtomicCommit{
		ReadVersion: rv, ReadConflictRanges: reads,
		Mutations: []*messages.Mutation{{Type: messages.MutationType_SET, Key: []byte("c"), Value: []byte("never")}}}}}
	res := mustApply(t, e, entries(3, batchCmd(
		withID(setCmd("", "a", "1"), 1, 1, 0),     // writes a at 3
		conflicting,                               // read a at 2: CONFLICT with the write just before it
		withID(setCmd("", "a", "other"), 1, 1, 0), // a retry of seq 1: its first outcome
		withID(setCmd("", "b", "1"), 1, 2, 0),
		openCmd(nil),                           // refused: a session has an entry of its own
		withID(setCmd("", "x", "y"), 77, 1, 0), // an unknown session
	)))
	batch := res[0].GetBatch()
	want := []struct {
		code    messages.StatusCode
		version uint64
	}{{messages.StatusCode_OK, 3}, {messages.StatusCode_CONFLICT, 0}, {messages.StatusCode_OK, 3}, {messages.StatusCode_OK, 3},
		{messages.StatusCode_INVALID_ARGUMENT, 0}, {messages.StatusCode_SESSION_EXPIRED, 0}}
	if res[0].GetVersion() != 3 || len(batch) != len(want) {
		t.Fatalf("entry result %v", res[0])
	}
	for i, w := range want {
		if batch[i].GetStatus().GetCode() != w.code || batch[i].GetVersion() != w.version {
			t.Fatalf("command %d: %v, want %v at version %d", i, batch[i], w.code, w.version)
		}
	}
	check := func(e *Engine, restarted bool) {
		t.Helper()
		for _, c := range []struct {
			key, want string
			found     bool
		}{{"a", "1", true}, {"b", "1", true}, {"c", "", false}} {
			if got, ok := mustGet(t, e, c.key); ok != c.found || got != c.want {
				t.Fatalf("%s = %q (found %v), want %q", c.key, got, ok, c.want)
			}
		}
		if v, _, err := e.SnapshotRead(ctx, []byte("a"), 2); !restarted && (err != nil || string(v) != "0") {
			t.Fatalf("a at version 2 = %q, %v; want 0 (the entry's writes are all at 3)", v, err)
		}
		if v, _, err := e.SnapshotRead(ctx, []byte("a"), 3); err != nil || string(v) != "1" {
			t.Fatalf("a at version 3 = %q, %v; want 1", v, err)
		}
		// The next entry sees every write of the batch at version 3.
		res := mustApply(t, e, entries(e.AppliedIndex()+1, &messages.Command{Op: &messages.Command_AtomicCommit{AtomicCommit: &messages.AtomicCommit{
			ReadVersion: 2, ReadConflictRanges: []*messages.KeyRange{{Begin: []byte("b"), End: []byte("c")}},
			Mutations: []*messages.Mutation{{Type: messages.MutationType_SET, Key: []byte("d"), Value: []byte("1")}}}}}))
		if res[0].GetStatus().GetCode() != messages.StatusCode_CONFLICT {
			t.Fatalf("a commit reading b at 2, after the batch wrote b at 3: %v", res[0])
		}
		res = mustApply(t, e, entries(e.AppliedIndex()+1, withID(setCmd("", "b", "retry"), 1, 2, 0)))
		if res[0].GetVersion() != 3 {
			t.Fatalf("a retry of seq 2 after the batch: %v, want its first outcome at 3", res[0])
		}
	}
	check(e, false)
	check(reopen(t, e, cfg), true)
}
