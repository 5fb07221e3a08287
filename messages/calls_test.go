package messages_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// callPairs is every operation a Batch call carries: its oneof name, a
// request and a response.
var callPairs = []struct {
	op   string
	req  proto.Message
	resp messages.Statused
}{
	{"get", &messages.GetRequest{Key: []byte("k")}, &messages.GetResponse{Found: true, Value: []byte("v")}},
	{"put", &messages.PutRequest{Key: []byte("k"), Value: []byte("v")}, &messages.PutResponse{Version: 3}},
	{"delete", &messages.DeleteRequest{Key: []byte("k")}, &messages.DeleteResponse{Version: 4}},
	{"clear_range", &messages.ClearRangeRequest{Begin: []byte("a"), End: []byte("b")}, &messages.ClearRangeResponse{Version: 5}},
	{"list_keys", &messages.ListKeysRequest{Prefix: []byte("p"), Limit: 2}, &messages.ListKeysResponse{Keys: [][]byte{[]byte("p1")}}},
	{"get_range", &messages.GetRangeRequest{Begin: []byte("a"), Limit: 1}, &messages.GetRangeResponse{Kvs: []*messages.KeyValue{{Key: []byte("a"), Value: []byte("1")}}}},
	{"atomic_commit", &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{ReadVersion: 2}}, &messages.AtomicCommitResponse{Version: 6}},
	{"get_read_version", &messages.GetReadVersionRequest{}, &messages.GetReadVersionResponse{Version: 7}},
	{"snapshot_read", &messages.SnapshotReadRequest{Key: []byte("k"), Version: 2}, &messages.SnapshotReadResponse{Found: true, Value: []byte("v")}},
	{"snapshot_get_range", &messages.SnapshotGetRangeRequest{Begin: []byte("a"), Version: 2}, &messages.SnapshotGetRangeResponse{Kvs: []*messages.KeyValue{{Key: []byte("b")}}}},
	{"open_session", &messages.OpenSessionRequest{}, &messages.OpenSessionResponse{ClientId: 8}},
}

// TestCallsCarryEveryOperation: each request goes into a Call under its
// operation's name and comes out unchanged; each response goes into a Reply
// and comes out unchanged, its status on the reply.
func TestCallsCarryEveryOperation(t *testing.T) {
	if n := (&messages.Call{}).ProtoReflect().Descriptor().Oneofs().ByName("request").Fields().Len(); n != len(callPairs) {
		t.Fatalf("Call carries %d operations, the table %d", n, len(callPairs))
	}
	for _, p := range callPairs {
		call, ok := messages.NewCall(9, p.req)
		if !ok {
			t.Fatalf("%s: NewCall(%T) refused", p.op, p.req)
		}
		op, req := call.Operation()
		if call.GetId() != 9 || op != p.op || !proto.Equal(req, p.req) {
			t.Fatalf("%s: call %v gives %q %v", p.op, call, op, req)
		}
		reply := messages.NewReply(9, op, p.resp, nil)
		got, err := reply.Outcome()
		if err != nil || reply.GetId() != 9 || !proto.Equal(got, p.resp) {
			t.Fatalf("%s: reply %v gives %v, %v; want %v", p.op, reply, got, err, p.resp)
		}
	}
}

// TestCallsRefuseWhatTheyCannotCarry: NewCall refuses a request no Batch
// call carries and a nil one; a Call naming no operation has none; a Reply
// built from an error, or from the wrong response, gives back the error.
func TestCallsRefuseWhatTheyCannotCarry(t *testing.T) {
	for _, req := range []proto.Message{nil, (*messages.PutRequest)(nil), &messages.StatusRequest{}, &messages.SetFaultInjectionRequest{}} {
		if c, ok := messages.NewCall(1, req); ok {
			t.Fatalf("NewCall(%T) = %v, want refused", req, c)
		}
	}
	if op, req := (&messages.Call{Id: 1}).Operation(); op != "" || req != nil {
		t.Fatalf("empty call gives %q %v", op, req)
	}
	if op, req := (&messages.Call{Request: &messages.Call_Put{}}).Operation(); op != "" || req != nil {
		t.Fatalf("call with a nil put gives %q %v", op, req)
	}
	conflict := messages.Errorf(messages.StatusCode_CONFLICT, "key k")
	if resp, err := messages.NewReply(1, "put", nil, conflict).Outcome(); resp != nil || messages.CodeOf(err) != messages.StatusCode_CONFLICT {
		t.Fatalf("reply of an error gives %v, %v", resp, err)
	}
	if resp, err := messages.NewReply(1, "put", &messages.GetResponse{}, nil).Outcome(); resp != nil || messages.CodeOf(err) != messages.StatusCode_INTERNAL {
		t.Fatalf("put answered with a GetResponse gives %v, %v; want INTERNAL", resp, err)
	}
	withStatus := &messages.PutResponse{Status: &messages.Status{Code: messages.StatusCode_OK}, Version: 3}
	if resp, err := messages.NewReply(1, "put", withStatus, nil).Outcome(); err != nil || resp.GetStatus() != nil || resp.(*messages.PutResponse).GetVersion() != 3 {
		t.Fatalf("reply of a response with a status gives %v, %v; want the response, its status on the reply", resp, err)
	}
	if resp, err := (&messages.Reply{Id: 1}).Outcome(); resp != nil || err != nil {
		t.Fatalf("empty reply gives %v, %v", resp, err)
	}
}
