package messages_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/actorkv/actorkv/messages"
)

// TestOpsTableCoversTheService: every method of the KV service but the
// Batch stream is one row of the operation table, every Batch call one of
// its non-admin rows, and each row's request and response are the method's.
func TestOpsTableCoversTheService(t *testing.T) {
	methods := messages.KV_ServiceDesc.Methods
	if len(methods) != len(messages.Ops()) {
		t.Fatalf("the KV service has %d unary methods, the table %d rows", len(methods), len(messages.Ops()))
	}
	calls := (&messages.Call{}).ProtoReflect().Descriptor().Oneofs().ByName("request").Fields()
	inBatch := 0
	for _, op := range messages.Ops() {
		found := false
		for _, m := range methods {
			found = found || m.MethodName == op.RPC
		}
		if !found {
			t.Errorf("row %s names method %s, which the service does not have", op.Name, op.RPC)
		}
		req := op.NewRequest()
		if messages.OpOf(req) != op {
			t.Errorf("OpOf(%T) is not row %s", req, op.Name)
		}
		fd := calls.ByName(protoreflect.Name(op.Name))
		if op.InBatch() != (fd != nil) {
			t.Errorf("row %s: in batch %v, Call field %v", op.Name, op.InBatch(), fd)
		}
		if fd != nil {
			inBatch++
			if fd.Message().FullName() != req.ProtoReflect().Descriptor().FullName() {
				t.Errorf("Call field %s carries %s, row %s %T", fd.Name(), fd.Message().FullName(), op.Name, req)
			}
		}
		resp := op.Response(messages.Errorf(messages.StatusCode_CONFLICT, "x"))
		if !errors.Is(resp.GetStatus().Err(), messages.ErrConflict) {
			t.Errorf("row %s: Response(err) status %v", op.Name, resp.GetStatus())
		}
	}
	if inBatch != calls.Len() {
		t.Errorf("%d rows are Batch calls, Call has %d", inBatch, calls.Len())
	}
	if messages.OpOf(&messages.Command{}) != nil || messages.OpOf(nil) != nil || messages.OpOf((*messages.PutRequest)(nil)) != nil {
		t.Error("OpOf names an operation for a message that is none")
	}
}

// TestOpsWrites: a write's command and response from the table, request ids
// read and set through it, and stale reads told apart.
func TestOpsWrites(t *testing.T) {
	rid := &messages.RequestId{ClientId: 3, Seq: 4, RespondedTo: 2}
	put := &messages.PutRequest{ColumnFamily: "cf", Key: []byte("k"), Value: []byte("v"), RequestId: rid}
	op := messages.OpOf(put)
	if op.Kind != messages.Write || !op.Deduplicated() || !proto.Equal(op.RequestID(put), rid) {
		t.Fatalf("put: kind %v, request id %v", op.Kind, op.RequestID(put))
	}
	cmd := op.Command(put, messages.Stamp{TimestampUnixNanos: 9})
	want := &messages.Command{RequestId: rid, TimestampUnixNanos: 9, Op: &messages.Command_Mutation{Mutation: &messages.Mutation{
		Type: messages.MutationType_SET, ColumnFamily: "cf", Key: []byte("k"), Value: []byte("v")}}}
	if !proto.Equal(cmd, want) {
		t.Fatalf("command %v, want %v", cmd, want)
	}
	if r := op.Result(17, nil).(*messages.PutResponse); r.GetVersion() != 17 || r.GetStatus().Err() != nil || r.GetStatus() == nil {
		t.Fatalf("result %v", r)
	}
	del := &messages.DeleteRequest{Key: []byte("k")}
	messages.OpOf(del).SetRequestID(del, rid)
	if !proto.Equal(del.GetRequestId(), rid) {
		t.Fatalf("SetRequestID: %v", del)
	}
	open := messages.OpOf(&messages.OpenSessionRequest{})
	limits := &messages.SessionLimits{MaxSessions: 5}
	if open.Deduplicated() || !proto.Equal(open.Command(&messages.OpenSessionRequest{}, messages.Stamp{SessionLimits: limits}).GetOpenSession().GetLimits(), limits) {
		t.Fatal("open session: deduplicated, or the proposer's limits not in its command")
	}
	if r := open.Result(12, nil).(*messages.OpenSessionResponse); r.GetClientId() != 12 {
		t.Fatalf("open session result %v", r)
	}
	stale := &messages.GetRequest{Consistency: messages.Consistency_STALE}
	if !messages.OpOf(stale).Stale(stale) || messages.OpOf(&messages.GetRequest{}).Stale(&messages.GetRequest{}) ||
		messages.OpOf(&messages.GetReadVersionRequest{}).Stale(&messages.GetReadVersionRequest{}) {
		t.Fatal("Stale misreads the consistency")
	}
}

// TestOpsPrivileged: the admin operations are exactly those that break or
// reshape the replicas, or scan their data on every call (a backup scans
// and pins all of it).
func TestOpsPrivileged(t *testing.T) {
	want := map[string]bool{"set_fault_injection": true, "member_add": true, "member_remove": true,
		"member_replace": true, "move_leader": true, "backup": true}
	for _, op := range messages.Ops() {
		if got := op.Privileged(op.NewRequest()); got != want[op.Name] {
			t.Errorf("%s: privileged %t, want %t", op.Name, got, want[op.Name])
		}
	}
	status := messages.OpOf(&messages.StatusRequest{})
	if status.Privileged(&messages.StatusRequest{WithDigests: true}) {
		t.Error("status with whole digests (computed once per applied index) is privileged")
	}
	if !status.Privileged(&messages.StatusRequest{WithDigests: true, DigestRange: &messages.KeyRange{}}) {
		t.Error("status with a digest range (a scan on every call) is not privileged")
	}
}
