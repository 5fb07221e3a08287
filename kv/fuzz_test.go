package kv_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// FuzzValidateRequest decodes arbitrary bytes as a request of any operation
// and validates it as the router does: no panic, and every refusal is a
// status of the API (INVALID_ARGUMENT, TOO_LARGE, UNKNOWN_COLUMN_FAMILY);
// a write it accepts builds its replicated command.
func FuzzValidateRequest(f *testing.F) {
	for _, req := range []proto.Message{
		&messages.PutRequest{Key: []byte("k"), Value: []byte("v"), ColumnFamily: "meta"},
		&messages.ClearRangeRequest{Begin: []byte("b"), End: []byte("a")},
		&messages.GetRangeRequest{Begin: []byte("a"), Limit: -1},
		&messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{ReadVersion: 3,
			Mutations: []*messages.Mutation{{Type: messages.MutationType_CLEAR_RANGE, Key: []byte("x"), End: []byte("x")}}}},
		&messages.PutRequest{Key: []byte("k"), RequestId: &messages.RequestId{ClientId: 1, Seq: 1, RespondedTo: 5}},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(0), b)
	}
	v := kv.NewValidator(kv.DefaultLimits(), []string{"default", "meta"})
	ops := messages.Ops()
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		op := ops[int(which)%len(ops)]
		req := op.NewRequest()
		if proto.Unmarshal(data, req) != nil {
			return
		}
		err := v.Request(req)
		switch messages.CodeOf(err) {
		case messages.StatusCode_OK:
			if op.Kind == messages.Write {
				if cmd := op.Command(req, messages.Stamp{}); cmd.GetOp() == nil {
					t.Fatalf("%s accepted, and its command has no operation", op.Name)
				}
			}
		case messages.StatusCode_INVALID_ARGUMENT, messages.StatusCode_TOO_LARGE, messages.StatusCode_UNKNOWN_COLUMN_FAMILY:
		default:
			t.Fatalf("%s refused with %v", op.Name, err)
		}
	})
}
