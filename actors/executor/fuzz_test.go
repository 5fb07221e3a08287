package executor_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/actors/executor"
	"github.com/actorkv/actorkv/messages"
)

// FuzzApply feeds arbitrary bytes to the executor as committed log entries,
// on one engine across inputs: an entry that cannot be decoded is refused
// as corruption (ErrInternal) with nothing applied; one that decodes is
// applied — bad input in it is decided and answered, never a storage
// failure — and the applied index moves to it.
func FuzzApply(f *testing.F) {
	seed := func(cmd *messages.Command) {
		b, err := proto.Marshal(cmd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	now := time.Now().UnixNano()
	seed(&messages.Command{TimestampUnixNanos: now, Op: &messages.Command_Mutation{Mutation: &messages.Mutation{Type: messages.MutationType_SET, Key: []byte("k"), Value: []byte("v")}}})
	seed(&messages.Command{TimestampUnixNanos: now, Op: &messages.Command_Mutation{Mutation: &messages.Mutation{Type: messages.MutationType_CLEAR_RANGE, Key: []byte("a"), End: []byte("z")}}})
	seed(&messages.Command{TimestampUnixNanos: now, Op: &messages.Command_OpenSession{OpenSession: &messages.OpenSession{Owner: "CN=a"}}})
	seed(&messages.Command{TimestampUnixNanos: now, RequestId: &messages.RequestId{ClientId: 3, Seq: 1}, Op: &messages.Command_AtomicCommit{AtomicCommit: &messages.AtomicCommit{
		ReadVersion: 1, ReadConflictRanges: []*messages.KeyRange{{Begin: []byte("a"), End: []byte("b")}},
		Mutations: []*messages.Mutation{{Type: messages.MutationType_SET, Key: []byte("a"), Value: []byte("1")}}}}})
	seed(&messages.Command{TimestampUnixNanos: now, Op: &messages.Command_Batch{Batch: &messages.CommandBatch{Commands: []*messages.Command{
		{Op: &messages.Command_Mutation{Mutation: &messages.Mutation{Type: messages.MutationType_DELETE, Key: []byte("k")}}}}}}})
	f.Add([]byte{0xff, 0x01})
	e := openEngine(f)
	var index uint64
	f.Fuzz(func(t *testing.T, data []byte) {
		index++
		_, results, err := executor.Apply(e, &messages.ApplyBatch{Entries: []*messages.LogEntry{{Index: index, Cmd: data}}})
		if proto.Unmarshal(data, &messages.Command{}) != nil {
			if !errors.Is(err, messages.ErrInternal) {
				t.Fatalf("an entry that does not decode: %v, want ErrInternal", err)
			}
			index-- // nothing was applied
			return
		}
		if err != nil {
			t.Fatalf("a decodable entry failed to apply (a replica would fail-stop): %v", err)
		}
		if len(results) != 1 || e.AppliedIndex() != index {
			t.Fatalf("results %v, applied index %d; want one result at %d", results, e.AppliedIndex(), index)
		}
	})
}
