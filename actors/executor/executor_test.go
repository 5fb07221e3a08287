package executor_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/actors/executor"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

func openEngine(t testing.TB) *storage.Engine {
	t.Helper()
	cfg := storage.DefaultConfig(t.TempDir())
	cfg.SyncWrites = false
	e, err := storage.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func putEntry(t *testing.T, index uint64, key, value string) *messages.LogEntry {
	t.Helper()
	cmd, err := proto.Marshal(&messages.Command{
		TimestampUnixNanos: time.Now().UnixNano(),
		Op: &messages.Command_Mutation{Mutation: &messages.Mutation{
			Type: messages.MutationType_SET, Key: []byte(key), Value: []byte(value)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &messages.LogEntry{Index: index, Cmd: cmd}
}

// TestApplyBatch applies a batch with one result per entry, in order, and
// refuses a batch holding an entry it cannot decode without applying any of
// it.
func TestApplyBatch(t *testing.T) {
	e := openEngine(t)
	ctx := context.Background()
	batch := &messages.ApplyBatch{Entries: []*messages.LogEntry{putEntry(t, 1, "a", "1"), putEntry(t, 2, "b", "2")}}
	entries, results, err := executor.Apply(e, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || len(results) != 2 || results[0].GetVersion() != 1 || results[1].GetVersion() != 2 {
		t.Fatalf("results %v, want versions 1 and 2", results)
	}
	if got, ok, err := e.Get(ctx, []byte("b")); err != nil || !ok || string(got) != "2" {
		t.Fatalf("get b = %q, %v, %v", got, ok, err)
	}

	corrupt := &messages.ApplyBatch{Entries: []*messages.LogEntry{putEntry(t, 3, "c", "3"), {Index: 4, Cmd: []byte{0xff, 0xff, 0xff}}}}
	if _, _, err := executor.Apply(e, corrupt); !errors.Is(err, messages.ErrInternal) {
		t.Fatalf("apply of a corrupt entry: %v, want INTERNAL", err)
	}
	if got := e.AppliedIndex(); got != 2 {
		t.Fatalf("applied index %d after a refused batch, want 2", got)
	}
	if _, ok, err := e.Get(ctx, []byte("c")); err != nil || ok {
		t.Fatalf("the refused batch's first entry was applied: %v, %v", ok, err)
	}
}

// TestExecutorActorAnswers asks the actor to apply a batch and checks its
// answer.
func TestExecutorActorAnswers(t *testing.T) {
	e := openEngine(t)
	system := actor.NewActorSystem()
	var observed []uint64
	pid := system.Root.Spawn(executor.Props(0, e, func(_ uint32, entries []storage.Entry, _ []*messages.CommandResult) {
		for _, en := range entries {
			observed = append(observed, en.Index)
		}
	}, slog.New(slog.DiscardHandler)))
	defer system.Root.Stop(pid)
	res, err := system.Root.RequestFuture(pid, &messages.ApplyBatch{Entries: []*messages.LogEntry{putEntry(t, 1, "k", "v")}}, 10*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	r, ok := res.(*messages.ApplyBatchResult)
	if !ok || r.GetStatus().Err() != nil || len(r.GetResults()) != 1 || r.GetResults()[0].GetVersion() != 1 {
		t.Fatalf("answer %v", res)
	}
	if len(observed) != 1 || observed[0] != 1 {
		t.Fatalf("observer saw %v, want [1]", observed)
	}
}
