package tests

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/messages"
)

// TestBadInputToGroupPID sends malformed and oversize requests, as protobuf
// messages, straight to the group's PID (the supervisor): each is answered
// with the response type of its request and the status code DESIGN.md
// documents, and nothing reaches the log — no replica's applied index or
// digest changes.
func TestBadInputToGroupPID(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	ctx := c.Context(time.Minute)
	if _, err := c.Client().Put(ctx, []byte("bad/existing"), []byte("v")); err != nil {
		t.Fatalf("put: %v", err)
	}
	before := c.EnsureSame(t)
	applied := c.Recorder().Count(0)

	set := func(key string) *messages.Mutation {
		return &messages.Mutation{Type: messages.MutationType_SET, Key: []byte(key), Value: []byte("v")}
	}
	ops := make([]*messages.Mutation, 1001)
	for i := range ops {
		ops[i] = set(fmt.Sprintf("bad/op%04d", i))
	}
	rid := &messages.RequestId{ClientId: 0xBAD, Seq: 1}
	for _, tc := range []struct {
		name string
		req  proto.Message
		want messages.StatusCode
	}{
		{"empty key", &messages.PutRequest{Value: []byte("v"), RequestId: rid}, messages.StatusCode_INVALID_ARGUMENT},
		{"key of 10,001 bytes", &messages.PutRequest{Key: bytes.Repeat([]byte("k"), 10_001), Value: []byte("v"), RequestId: rid}, messages.StatusCode_INVALID_ARGUMENT},
		{"value of 1 MiB + 1", &messages.PutRequest{Key: []byte("bad/big"), Value: make([]byte, 1<<20+1), RequestId: rid}, messages.StatusCode_TOO_LARGE},
		{"atomic commit of 1,001 operations", &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{Mutations: ops}, RequestId: rid}, messages.StatusCode_TOO_LARGE},
		{"mutation type unspecified", &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{Mutations: []*messages.Mutation{
			{Type: messages.MutationType_MUTATION_UNSPECIFIED, Key: []byte("bad/k"), Value: []byte("v")}}}, RequestId: rid}, messages.StatusCode_INVALID_ARGUMENT},
		{"unknown column family", &messages.PutRequest{ColumnFamily: "no-such-family", Key: []byte("bad/k"), Value: []byte("v"), RequestId: rid}, messages.StatusCode_UNKNOWN_COLUMN_FAMILY},
		{"unknown column family in a commit", &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{Mutations: []*messages.Mutation{
			{Type: messages.MutationType_SET, ColumnFamily: "no-such-family", Key: []byte("bad/k")}}}, RequestId: rid}, messages.StatusCode_UNKNOWN_COLUMN_FAMILY},
		{"request id with seq 0", &messages.PutRequest{Key: []byte("bad/k"), Value: []byte("v"), RequestId: &messages.RequestId{ClientId: 0xBAD, Seq: 0}}, messages.StatusCode_INVALID_ARGUMENT},
		{"request id answered already", &messages.PutRequest{Key: []byte("bad/k"), Value: []byte("v"), RequestId: &messages.RequestId{ClientId: 0xBAD, Seq: 3, RespondedTo: 3}}, messages.StatusCode_INVALID_ARGUMENT},
		{"nil commit", &messages.AtomicCommitRequest{RequestId: rid}, messages.StatusCode_INVALID_ARGUMENT},
		{"delete of an empty key", &messages.DeleteRequest{RequestId: rid}, messages.StatusCode_INVALID_ARGUMENT},
		{"inverted clear range", &messages.ClearRangeRequest{Begin: []byte("bad/z"), End: []byte("bad/a"), RequestId: rid}, messages.StatusCode_INVALID_ARGUMENT},
		{"get of a key of 10,001 bytes", &messages.GetRequest{Key: bytes.Repeat([]byte("k"), 10_001)}, messages.StatusCode_INVALID_ARGUMENT},
		{"range limit over 10,000", &messages.GetRangeRequest{Limit: 10_001}, messages.StatusCode_INVALID_ARGUMENT},
		{"negative list limit", &messages.ListKeysRequest{Limit: -1}, messages.StatusCode_INVALID_ARGUMENT},
		{"snapshot read in an unknown family", &messages.SnapshotReadRequest{ColumnFamily: "no-such-family", Key: []byte("bad/k"), Version: 1}, messages.StatusCode_UNKNOWN_COLUMN_FAMILY},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := c.Group()
			res, err := g.System().Root.RequestFuture(g.PID(), tc.req, 10*time.Second).Result()
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if want := messages.ErrorResponse(tc.req, nil); reflect.TypeOf(res) != reflect.TypeOf(want) {
				t.Fatalf("answered with %T, want %T", res, want)
			}
			st := res.(messages.Statused).GetStatus()
			if st.GetCode() != tc.want {
				t.Fatalf("status %v (%q), want %v", st.GetCode(), st.GetMessage(), tc.want)
			}
		})
	}

	after := c.EnsureSame(t)
	if after.GetAppliedIndex() != before.GetAppliedIndex() || !bytes.Equal(after.GetDigest(), before.GetDigest()) {
		t.Fatalf("bad input changed the replicas: applied %d -> %d, digest %x -> %x",
			before.GetAppliedIndex(), after.GetAppliedIndex(), before.GetDigest(), after.GetDigest())
	}
	for id := range uint32(actorkvtest.Replicas) {
		if n := c.Recorder().Count(id); n != applied {
			t.Errorf("replica %d applied %d entries, %d before the bad input", id, n, applied)
		}
	}
}
