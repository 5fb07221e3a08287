package messages_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/messages"
)

// Fully populated building blocks for the round-trip table: every field is
// set to a non-zero value, so a field the codec drops or mangles shows up.

func status() *messages.Status {
	return &messages.Status{Code: messages.StatusCode_CONFLICT, Message: "conflict: key k"}
}

func sessionLimits() *messages.SessionLimits {
	return &messages.SessionLimits{MaxSessions: 1000, TtlNanos: 60_000_000_000}
}

func requestID() *messages.RequestId {
	return &messages.RequestId{ClientId: 7, Seq: 42, RespondedTo: 41, Owner: "CN=alice"}
}

func keyRange(begin, end string) *messages.KeyRange {
	return &messages.KeyRange{ColumnFamily: "users", Begin: []byte(begin), End: []byte(end)}
}

func mutation(typ messages.MutationType) *messages.Mutation {
	return &messages.Mutation{
		Type:         typ,
		ColumnFamily: "users",
		Key:          []byte("k1"),
		Value:        []byte("v1"),
		End:          []byte("k9"),
	}
}

func atomicCommit() *messages.AtomicCommit {
	return &messages.AtomicCommit{
		Mutations:           []*messages.Mutation{mutation(messages.MutationType_SET), mutation(messages.MutationType_CLEAR_RANGE)},
		ReadConflictRanges:  []*messages.KeyRange{keyRange("a", "b"), keyRange("c", "d")},
		WriteConflictRanges: []*messages.KeyRange{keyRange("k1", "k9")},
		ReadVersion:         99,
	}
}

func kv(k, v string) *messages.KeyValue { return &messages.KeyValue{Key: []byte(k), Value: []byte(v)} }

func faults() *messages.FaultInjection {
	return &messages.FaultInjection{
		ErrorRate:       0.25,
		FailAfterWrites: 100,
		AddedLatency:    durationpb.New(1500 * time.Millisecond),
	}
}

func digest(cf string) *messages.ColumnFamilyDigest {
	return &messages.ColumnFamilyDigest{ColumnFamily: cf, Sha256: []byte{0xde, 0xad, 0xbe, 0xef}, Keys: 12}
}

func replicaStatus(id uint32) *messages.ReplicaStatus {
	return &messages.ReplicaStatus{
		ReplicaId:          id,
		Running:            true,
		IsLeader:           true,
		LeaderId:           2,
		Term:               5,
		AppliedIndex:       1234,
		Digests:            []*messages.ColumnFamilyDigest{digest("default"), digest("users")},
		Digest:             []byte{0x01, 0x02},
		Error:              "storage failed",
		HasLeader:          true,
		ProposalsInFlight:  7,
		InstallingSnapshot: true,
		NodeId:             65539,
		RangeDigest:        rangeDigest(),
		Counters: &messages.ReplicaCounters{ProposalsDropped: 3, SnapshotsSent: 1, SnapshotBytesSent: 4096, SnapshotSendSeconds: 0.5,
			SnapshotsReceived: 2, SnapshotBytesReceived: 8192, SnapshotReceiveSeconds: 1.25},
		Sizes:        []*messages.ColumnFamilySize{{ColumnFamily: "users", SstBytes: 1 << 20, LiveDataBytes: 1 << 19, MemtableBytes: 4096}},
		RaftLogBytes: 1 << 22,
	}
}

func rangeDigest() *messages.RangeDigest {
	return &messages.RangeDigest{Sha256: []byte{9}, Keys: 3, Middle: []byte("m"), First: &messages.KeyValue{Key: []byte("a"), Value: []byte("1")}}
}

// roundTripCases holds at least one populated instance of every message of
// the package; a message with a oneof has one instance per member.
// TestRoundTripCoversEveryMessage keeps it complete.
func roundTripCases() []proto.Message {
	return withBatchCases(baseCases())
}

// baseCases holds one populated instance of every message but the batch
// envelopes, which withBatchCases builds around them.
func baseCases() []proto.Message {
	return []proto.Message{
		// kv.proto
		status(),
		requestID(),
		kv("k", "v"),
		keyRange("a", "z"),
		mutation(messages.MutationType_DELETE),
		&messages.Command{
			RequestId:          requestID(),
			TimestampUnixNanos: 1_700_000_000_000_000_000,
			Op:                 &messages.Command_Mutation{Mutation: mutation(messages.MutationType_SET)},
		},
		&messages.Command{
			RequestId:          requestID(),
			TimestampUnixNanos: -1,
			Op:                 &messages.Command_AtomicCommit{AtomicCommit: atomicCommit()},
		},
		&messages.Command{
			RequestId:          requestID(),
			TimestampUnixNanos: 5,
			Op:                 &messages.Command_OpenSession{OpenSession: &messages.OpenSession{Limits: sessionLimits(), Owner: "CN=alice"}},
		},
		sessionLimits(),
		&messages.OpenSession{Limits: sessionLimits(), Owner: "CN=alice"},
		atomicCommit(),
		&messages.CommandResult{Status: status(), Version: 17, Batch: []*messages.CommandResult{{Status: status(), Version: 17}}},
		&messages.Command{RequestId: requestID(), TimestampUnixNanos: 2, Op: &messages.Command_Batch{Batch: &messages.CommandBatch{Commands: []*messages.Command{
			{RequestId: requestID(), TimestampUnixNanos: 3, Op: &messages.Command_Mutation{Mutation: mutation(messages.MutationType_SET)}}}}}},
		&messages.CommandBatch{Commands: []*messages.Command{{RequestId: requestID(), TimestampUnixNanos: 3, Op: &messages.Command_Mutation{Mutation: mutation(messages.MutationType_SET)}}}},
		faults(),
		&messages.GetRequest{ColumnFamily: "users", Key: []byte("k"), Consistency: messages.Consistency_STALE},
		&messages.GetResponse{Status: status(), Found: true, Value: []byte("v")},
		&messages.PutRequest{ColumnFamily: "users", Key: []byte("k"), Value: []byte("v"), RequestId: requestID()},
		&messages.PutResponse{Status: status(), Version: 3},
		&messages.DeleteRequest{ColumnFamily: "users", Key: []byte("k"), RequestId: requestID()},
		&messages.DeleteResponse{Status: status(), Version: 4},
		&messages.ClearRangeRequest{ColumnFamily: "users", Begin: []byte("a"), End: []byte("b"), RequestId: requestID()},
		&messages.ClearRangeResponse{Status: status(), Version: 5},
		&messages.ListKeysRequest{ColumnFamily: "users", Prefix: []byte("k"), Limit: 10, Consistency: messages.Consistency_STALE},
		&messages.ListKeysResponse{Status: status(), Keys: [][]byte{[]byte("k1"), []byte("k2")}},
		&messages.GetRangeRequest{
			ColumnFamily: "users", Begin: []byte("a"), End: []byte("z"), Limit: 100, Reverse: true,
			Consistency: messages.Consistency_STALE,
		},
		&messages.GetRangeResponse{Status: status(), Kvs: []*messages.KeyValue{kv("a", "1"), kv("b", "2")}},
		&messages.AtomicCommitRequest{Commit: atomicCommit(), RequestId: requestID()},
		&messages.AtomicCommitResponse{Status: status(), Version: 6},
		&messages.OpenSessionRequest{Owner: "CN=alice"},
		&messages.OpenSessionResponse{Status: status(), ClientId: 71},
		&messages.MemberListRequest{},
		&messages.MemberListResponse{Status: status(), Members: []*messages.Member{
			{ReplicaId: 2, NodeId: 3, RaftAddress: "10.0.0.3:6001", Leader: true}, {ReplicaId: 3, NodeId: 65540, RaftAddress: "10.0.0.4:6001", Leader: true}}},
		&messages.Member{ReplicaId: 3, NodeId: 65540, RaftAddress: "10.0.0.4:6001", Leader: true},
		&messages.MemberAddRequest{ReplicaId: 3, RaftAddress: "10.0.0.4:6001"},
		&messages.MemberAddResponse{Status: status(), Member: &messages.Member{ReplicaId: 3, NodeId: 4, RaftAddress: "10.0.0.4:6001", Leader: true}},
		&messages.MemberRemoveRequest{ReplicaId: 3},
		&messages.MemberRemoveResponse{Status: status()},
		&messages.MemberReplaceRequest{ReplicaId: 1, NodeId: 2, RaftAddress: "10.0.0.9:6001"},
		&messages.MemberReplaceResponse{Status: status(), Member: &messages.Member{ReplicaId: 1, NodeId: 65538, RaftAddress: "10.0.0.9:6001", Leader: true}},
		&messages.MoveLeaderRequest{ReplicaId: 2},
		&messages.MoveLeaderResponse{Status: status(), Term: 9},
		&messages.BackupRequest{BackupId: 1 << 63, ReplicaId: 2, ColumnFamily: "users", After: []byte("k\x00"), Abandon: true},
		&messages.BackupResponse{Status: status(), BackupId: 7, ReplicaId: 1, AppliedIndex: 42, ColumnFamilies: []string{"default", "users"},
			ColumnFamily: "users", Entries: []*messages.KeyValue{{Key: []byte("a"), Value: []byte("1")}}, NextColumnFamily: "users",
			NextAfter: []byte("a"), Done: true, Digest: []byte{1, 2}, Digests: []*messages.ColumnFamilyDigest{{ColumnFamily: "users", Sha256: []byte{3}, Keys: 1}}},
		&messages.ReplicaCounters{ProposalsDropped: 3, SnapshotsSent: 1, SnapshotBytesSent: 4096, SnapshotSendSeconds: 0.5,
			SnapshotsReceived: 2, SnapshotBytesReceived: 8192, SnapshotReceiveSeconds: 1.25},
		&messages.ColumnFamilySize{ColumnFamily: "users", SstBytes: 1 << 20, LiveDataBytes: 1 << 19, MemtableBytes: 4096},
		&messages.BackupHeader{AppliedIndex: 42, ColumnFamilies: []string{"default"}, ReplicaId: 2, CreatedUnixNanos: -1},
		&messages.BackupTrailer{Digest: []byte{9}, Digests: []*messages.ColumnFamilyDigest{{ColumnFamily: "default", Sha256: []byte{4}, Keys: 3}}, Keys: 3},
		&messages.GetReadVersionRequest{},
		&messages.GetReadVersionResponse{Status: status(), Version: 7},
		&messages.SnapshotReadRequest{ColumnFamily: "users", Key: []byte("k"), Version: 8},
		&messages.SnapshotReadResponse{Status: status(), Found: true, Value: []byte("v")},
		&messages.SnapshotGetRangeRequest{
			ColumnFamily: "users", Begin: []byte("a"), End: []byte("z"), Limit: 100, Reverse: true, Version: 9,
		},
		&messages.SnapshotGetRangeResponse{Status: status(), Kvs: []*messages.KeyValue{kv("a", "1")}},
		&messages.SetFaultInjectionRequest{Faults: faults(), Replicas: []uint32{1, 2}},
		&messages.SetFaultInjectionResponse{Status: status()},
		digest("default"),
		replicaStatus(1),
		&messages.StatusRequest{WithDigests: true, DigestRange: &messages.KeyRange{ColumnFamily: "users", Begin: []byte("a"), End: []byte("z")}, WithSizes: true},
		rangeDigest(),
		&messages.StatusResponse{
			Status:    status(),
			Replicas:  []*messages.ReplicaStatus{replicaStatus(1), replicaStatus(2)},
			LeaderId:  2,
			Term:      5,
			Mode:      "replicated",
			HasLeader: true,
		},

		// actors.proto
		&messages.LogEntry{Index: 11, Cmd: []byte{0x0a, 0x00}},
		&messages.ApplyBatch{Entries: []*messages.LogEntry{{Index: 11, Cmd: []byte{1}}, {Index: 12, Cmd: []byte{2}}}},
		&messages.ApplyBatchResult{
			Status:  status(),
			Results: []*messages.CommandResult{{Status: status(), Version: 11}, {Status: status(), Version: 12}},
		},
		&messages.Routes{Replicas: []*messages.ReplicaRoute{{ReplicaId: 1, Address: "nonhost", Id: "replica-1"}},
			Down: []*messages.ReplicaDown{{ReplicaId: 2, FailStop: true, Reason: "could not start", Removed: true}}},
		&messages.ReplicaStarting{ReplicaId: 2},
		&messages.ReplicaRoute{ReplicaId: 2, Address: "nonhost", Id: "replica-2"},
		&messages.LeaderChanged{ReplicaId: 1, LeaderId: 2, Term: 3, HasLeader: true},
		&messages.ReplicaUp{ReplicaId: 1, NodeId: 65538},
		&messages.ReplicaDown{ReplicaId: 1, FailStop: true, Reason: "apply failed", Removed: true},
		&messages.SnapshotEvent{ReplicaId: 2, Kind: messages.SnapshotEvent_INSTALLED, Index: 99, NodeId: 65539, From: 1},
		&messages.StopReplica{ReplicaId: 2},
		&messages.StartReplica{ReplicaId: 2, WipeRaftLog: true},
		&messages.ReplicaCommandResponse{Status: status()},
		&messages.ReplicaStatusRequest{WithDigests: true, DigestRange: &messages.KeyRange{ColumnFamily: "users", Begin: []byte("a"), End: []byte("b")}, WithSizes: true},
		&messages.TransferLeader{TargetId: 3, TargetNodeId: 131076},
		&messages.ReplaceMember{ReplicaId: 2, Address: "127.0.0.1:6003", Timeout: durationpb.New(20*time.Second + 500*time.Millisecond)},
		&messages.ReplaceMemberResponse{Status: status(), RemovedNodeId: 3, NodeId: 65539},

		// storage.proto
		&messages.EntryEffect{Index: 9, TimestampUnixNanos: 1_700_000_000_000_000_000,
			Writes:        []*messages.KeyRange{{ColumnFamily: "users", Begin: []byte("a"), End: []byte("b")}},
			RequestId:     &messages.RequestId{ClientId: 1, Seq: 2, RespondedTo: 1, Owner: "CN=alice"},
			Result:        &messages.CommandResult{Status: status(), Version: 9},
			OpenedSession: &messages.OpenSession{Limits: sessionLimits(), Owner: "CN=alice"}},
		&messages.MachineDelta{Effects: []*messages.EntryEffect{{Index: 3, TimestampUnixNanos: 5,
			Writes:        []*messages.KeyRange{{ColumnFamily: "c", Begin: []byte("k"), End: []byte("l")}},
			RequestId:     &messages.RequestId{ClientId: 1, Seq: 2, RespondedTo: 1, Owner: "CN=alice"},
			Result:        &messages.CommandResult{Status: status(), Version: 3},
			OpenedSession: &messages.OpenSession{Limits: sessionLimits(), Owner: "CN=alice"}}}},
		&messages.ConflictEntry{Version: 4, TimestampUnixNanos: 6, Writes: []*messages.KeyRange{{ColumnFamily: "c", Begin: []byte("x"), End: []byte("y")}}},
		&messages.SessionResult{Seq: 5, Result: &messages.CommandResult{Status: status(), Version: 8}},
		&messages.SessionState{ClientId: 1, Owner: "CN=alice", RespondedTo: 2, LastActiveUnixNanos: 3, LastIndex: 4,
			Results: []*messages.SessionResult{{Seq: 3, Result: &messages.CommandResult{Status: status(), Version: 2}}}},
		&messages.MachineCheckpoint{Index: 10, MaxTimestampUnixNanos: 11, Horizon: 3,
			Conflicts: []*messages.ConflictEntry{{Version: 4, TimestampUnixNanos: 6, Writes: []*messages.KeyRange{{ColumnFamily: "c", Begin: []byte("x"), End: []byte("y")}}}},
			Sessions: []*messages.SessionState{{ClientId: 1, Owner: "CN=alice", RespondedTo: 2, LastActiveUnixNanos: 3, LastIndex: 4,
				Results: []*messages.SessionResult{{Seq: 3, Result: &messages.CommandResult{Status: status(), Version: 2}}}}},
			SessionLimits: sessionLimits()},
		&messages.SnapshotHeader{AppliedIndex: 1234, ColumnFamilies: []string{"default", "users", "internal"}},
	}
}

// withBatchCases adds to base one Call and one Reply per member of their
// oneofs, each wrapping the populated instance of that member's type from
// base, and a BatchRequest and a BatchResponse carrying them.
func withBatchCases(base []proto.Message) []proto.Message {
	byName := map[protoreflect.FullName]proto.Message{}
	for _, m := range base {
		byName[m.ProtoReflect().Descriptor().FullName()] = m
	}
	wrap := func(envelope proto.Message, fill func(protoreflect.Message)) []proto.Message {
		var out []proto.Message
		od := envelope.ProtoReflect().Descriptor().Oneofs().Get(0)
		for i := 0; i < od.Fields().Len(); i++ {
			fd := od.Fields().Get(i)
			inner, ok := byName[fd.Message().FullName()]
			if !ok {
				panic("no base case of " + string(fd.Message().FullName()))
			}
			m := envelope.ProtoReflect().New()
			fill(m)
			m.Set(fd, protoreflect.ValueOfMessage(proto.Clone(inner).ProtoReflect()))
			out = append(out, m.Interface())
		}
		return out
	}
	calls := wrap(&messages.Call{}, func(m protoreflect.Message) {
		c := m.Interface().(*messages.Call)
		c.Id, c.TimeoutMicros = 42, 1500
	})
	replies := wrap(&messages.Reply{}, func(m protoreflect.Message) {
		r := m.Interface().(*messages.Reply)
		r.Id, r.Status = 42, status()
	})
	out := append(append(append([]proto.Message{}, base...), calls...), replies...)
	return append(out,
		&messages.BatchRequest{Calls: []*messages.Call{calls[0].(*messages.Call), calls[1].(*messages.Call)}},
		&messages.BatchResponse{Replies: []*messages.Reply{replies[0].(*messages.Reply), replies[1].(*messages.Reply)}, Closing: true},
	)
}

// unpopulated lists the fields of m, recursively, left at their zero value:
// a scalar equal to zero, an unset message, an empty list or map, or a oneof
// with no member set.
func unpopulated(m protoreflect.Message) []string {
	var missing []string
	md := m.Descriptor()
	for i := 0; i < md.Oneofs().Len(); i++ {
		od := md.Oneofs().Get(i)
		if !od.IsSynthetic() && m.WhichOneof(od) == nil {
			missing = append(missing, string(od.FullName()))
		}
	}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			continue // Checked as a oneof above.
		}
		if !m.Has(fd) && !recursive[fd.FullName()] {
			missing = append(missing, string(fd.FullName()))
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					missing = append(missing, unpopulated(mv.Message())...)
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for j := 0; j < v.List().Len(); j++ {
					missing = append(missing, unpopulated(v.List().Get(j).Message())...)
				}
			}
		case fd.Message() != nil:
			missing = append(missing, unpopulated(v.Message())...)
		}
		return true
	})
	return missing
}

// recursive fields hold messages of their own type: no case can set them at
// every depth (TestRoundTripCoversEveryMessage still wants a case that sets
// them).
var recursive = map[protoreflect.FullName]bool{"actorkv.v1.CommandResult.batch": true}

func TestRoundTrip(t *testing.T) {
	for _, want := range roundTripCases() {
		t.Run(string(want.ProtoReflect().Descriptor().Name()), func(t *testing.T) {
			if missing := unpopulated(want.ProtoReflect()); len(missing) > 0 {
				t.Errorf("the test case leaves fields at their zero value: %v", missing)
			}
			b, err := proto.Marshal(want)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got := want.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !proto.Equal(want, got) {
				t.Errorf("round trip changed the message:\nwant %s\n got %s", prototext.Format(want), prototext.Format(got))
			}
		})
	}
}

// forEachMessage calls f on every message declared in mds, nested ones
// included, except the synthetic entries of map fields.
func forEachMessage(mds protoreflect.MessageDescriptors, f func(protoreflect.MessageDescriptor)) {
	for i := 0; i < mds.Len(); i++ {
		md := mds.Get(i)
		if md.IsMapEntry() {
			continue
		}
		f(md)
		forEachMessage(md.Messages(), f)
	}
}

// TestRoundTripCoversEveryMessage fails when a message of the package, or one
// of its fields, has no populated round-trip case: add one to roundTripCases.
func TestRoundTripCoversEveryMessage(t *testing.T) {
	// covered[message][field] is true when some case of the message sets it.
	covered := map[protoreflect.FullName]map[protoreflect.Name]bool{}
	for _, m := range roundTripCases() {
		name := m.ProtoReflect().Descriptor().FullName()
		if covered[name] == nil {
			covered[name] = map[protoreflect.Name]bool{}
		}
		m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			covered[name][fd.Name()] = true
			return true
		})
	}

	pkg := messages.File_kv_proto.Package()
	known := map[string]bool{}
	for _, fd := range []protoreflect.FileDescriptor{
		messages.File_kv_proto, messages.File_actors_proto, messages.File_storage_proto, messages.File_service_proto,
	} {
		known[fd.Path()] = false
	}
	messagesSeen := 0
	protoregistry.GlobalFiles.RangeFilesByPackage(pkg, func(fd protoreflect.FileDescriptor) bool {
		known[fd.Path()] = true
		forEachMessage(fd.Messages(), func(md protoreflect.MessageDescriptor) {
			messagesSeen++
			fields, ok := covered[md.FullName()]
			if !ok {
				t.Errorf("%s (%s) has no round-trip case", md.FullName(), fd.Path())
				return
			}
			for i := 0; i < md.Fields().Len(); i++ {
				if f := md.Fields().Get(i); !fields[f.Name()] {
					t.Errorf("no round-trip case of %s sets field %s", md.FullName(), f.Name())
				}
			}
		})
		return true
	})
	for path, seen := range known {
		if !seen {
			t.Errorf("%s is not registered under package %s", path, pkg)
		}
	}
	if messagesSeen == 0 {
		t.Fatalf("found no message in package %s", pkg)
	}
}

func TestUnmarshalMalformedCommand(t *testing.T) {
	valid, err := proto.Marshal(&messages.Command{
		RequestId: requestID(),
		Op:        &messages.Command_Mutation{Mutation: mutation(messages.MutationType_SET)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"unterminated varint tag", []byte{0xff, 0xff, 0xff}},
		{"truncated", valid[:len(valid)-1]},
		{"field number zero", []byte{0x00, 0x00}},
		{"end group without start", []byte{0x0c}},
		// mutation (field 3) whose column_family (field 2) is not UTF-8.
		{"invalid UTF-8 string", []byte{0x1a, 0x03, 0x12, 0x01, 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c messages.Command
			if err := proto.Unmarshal(tc.b, &c); err == nil {
				t.Errorf("Unmarshal(%x) = nil error, decoded %v", tc.b, prototext.Format(&c))
			}
		})
	}
}

// statusCodes returns every value of the StatusCode enum.
func statusCodes(t *testing.T) []messages.StatusCode {
	values := messages.StatusCode_OK.Descriptor().Values()
	codes := make([]messages.StatusCode, values.Len())
	for i := range codes {
		codes[i] = messages.StatusCode(values.Get(i).Number())
	}
	if len(codes) < 2 {
		t.Fatalf("StatusCode has %d values", len(codes))
	}
	return codes
}

// TestStatusCodeMappings checks that each StatusCode has exactly one distinct
// sentinel (none for OK) and one distinct gRPC code, and that its errors keep
// code, sentinel and message through Status and gRPC.
func TestStatusCodeMappings(t *testing.T) {
	all := statusCodes(t)
	bySentinel := map[error]messages.StatusCode{}
	byGRPC := map[codes.Code]messages.StatusCode{}
	for _, code := range all {
		t.Run(code.String(), func(t *testing.T) {
			sentinel := code.Sentinel()
			if other, dup := bySentinel[sentinel]; dup {
				t.Errorf("sentinel %v is shared with %v", sentinel, other)
			}
			bySentinel[sentinel] = code
			gc := code.GRPCCode()
			// RESOURCE_EXHAUSTED shares TOO_LARGE's gRPC code (the status
			// details tell them apart); every other code has its own.
			shared := code == messages.StatusCode_RESOURCE_EXHAUSTED
			if other, dup := byGRPC[gc]; dup && !shared {
				t.Errorf("gRPC code %v is shared with %v", gc, other)
			}
			if !shared {
				byGRPC[gc] = code
				if got := messages.StatusCodeFromGRPC(gc); got != code {
					t.Errorf("StatusCodeFromGRPC(%v) = %v, want %v", gc, got, code)
				}
			}

			if code == messages.StatusCode_OK {
				if sentinel != nil {
					t.Errorf("OK has sentinel %v, want nil", sentinel)
				}
				if gc != codes.OK {
					t.Errorf("OK maps to gRPC %v", gc)
				}
				return
			}
			if sentinel == nil {
				t.Fatalf("%v has no sentinel", code)
			}

			err := messages.Errorf(code, "key %q", "k")
			checkErr(t, "Errorf", err, code, sentinel, all)
			if want := sentinel.Error() + `: key "k"`; err.Error() != want {
				t.Errorf("Errorf message = %q, want %q", err.Error(), want)
			}
			var e *messages.Error
			if !errors.As(err, &e) || e.Code != code {
				t.Errorf("Errorf result %#v is not a *messages.Error with code %v", err, code)
			}

			// Through a Status, also after encoding it.
			st := messages.StatusOf(err)
			if st.GetCode() != code || st.GetMessage() != err.Error() {
				t.Errorf("StatusOf = %v, want code %v message %q", st, code, err.Error())
			}
			checkErr(t, "Status.Err", st.Err(), code, sentinel, all)
			if st.Err().Error() != err.Error() {
				t.Errorf("Status.Err message = %q, want %q", st.Err().Error(), err.Error())
			}
			b, mErr := proto.Marshal(st)
			if mErr != nil {
				t.Fatal(mErr)
			}
			var decoded messages.Status
			if uErr := proto.Unmarshal(b, &decoded); uErr != nil {
				t.Fatal(uErr)
			}
			checkErr(t, "decoded Status.Err", decoded.Err(), code, sentinel, all)

			// Through gRPC.
			g := messages.ToGRPC(err)
			if s, ok := grpcstatus.FromError(g); !ok || s.Code() != gc || s.Message() != err.Error() {
				t.Errorf("ToGRPC = %v, want a gRPC status with code %v and message %q", g, gc, err.Error())
			}
			back := messages.FromGRPC(g)
			checkErr(t, "FromGRPC(ToGRPC)", back, code, sentinel, all)
			if back.Error() != err.Error() {
				t.Errorf("FromGRPC(ToGRPC) message = %q, want %q", back.Error(), err.Error())
			}

			// A sentinel wrapped with context, as the rest of actorkv does.
			wrapped := fmt.Errorf("storage: apply batch ending at 9: %w", sentinel)
			checkErr(t, "wrapped sentinel", wrapped, code, sentinel, all)
			checkErr(t, "FromGRPC(ToGRPC(wrapped))", messages.FromGRPC(messages.ToGRPC(wrapped)), code, sentinel, all)
			checkErr(t, "StatusOf(wrapped).Err", messages.StatusOf(wrapped).Err(), code, sentinel, all)
		})
	}
	// One sentinel per code: nil for OK plus one per other code.
	if len(bySentinel) != len(all) || len(byGRPC) != len(all)-1 {
		t.Errorf("%d codes map to %d sentinels and %d gRPC codes", len(all), len(bySentinel), len(byGRPC))
	}
}

// checkErr checks that err carries code: it matches sentinel and no other
// code's sentinel, CodeOf returns code, and IsRetryable agrees with the code.
func checkErr(t *testing.T, what string, err error, code messages.StatusCode, sentinel error, all []messages.StatusCode) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: nil error, want %v", what, code)
		return
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("%s: %v does not match sentinel %v", what, err, sentinel)
	}
	for _, other := range all {
		if s := other.Sentinel(); other != code && s != nil && errors.Is(err, s) {
			t.Errorf("%s: %v also matches %v", what, err, s)
		}
	}
	if got := messages.CodeOf(err); got != code {
		t.Errorf("%s: CodeOf = %v, want %v", what, got, code)
	}
	wantRetry := code == messages.StatusCode_UNAVAILABLE || code == messages.StatusCode_TIMEOUT || code == messages.StatusCode_RESOURCE_EXHAUSTED
	if got := messages.IsRetryable(err); got != wantRetry {
		t.Errorf("%s: IsRetryable = %v, want %v", what, got, wantRetry)
	}
}

func TestOKAndNil(t *testing.T) {
	if got := messages.CodeOf(nil); got != messages.StatusCode_OK {
		t.Errorf("CodeOf(nil) = %v", got)
	}
	if st := messages.StatusOf(nil); st.GetCode() != messages.StatusCode_OK || st.GetMessage() != "" {
		t.Errorf("StatusOf(nil) = %v, want an OK status", st)
	}
	if err := messages.StatusOf(nil).Err(); err != nil {
		t.Errorf("StatusOf(nil).Err() = %v", err)
	}
	if err := (*messages.Status)(nil).Err(); err != nil {
		t.Errorf("nil Status Err() = %v", err)
	}
	if err := (&messages.Status{Code: messages.StatusCode_OK, Message: "fine"}).Err(); err != nil {
		t.Errorf("OK Status with a message: Err() = %v", err)
	}
	if messages.ToGRPC(nil) != nil || messages.FromGRPC(nil) != nil {
		t.Error("ToGRPC/FromGRPC of nil is not nil")
	}
	if messages.IsRetryable(nil) {
		t.Error("IsRetryable(nil) = true")
	}
	// Errorf never builds a non-error: OK is turned into INTERNAL.
	if err := messages.Errorf(messages.StatusCode_OK, "x"); err == nil || !errors.Is(err, messages.ErrInternal) {
		t.Errorf("Errorf(OK) = %v, want an internal error", err)
	}
}

func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  *messages.Error
		want string
	}{
		{&messages.Error{Code: messages.StatusCode_CONFLICT}, messages.ErrConflict.Error()},
		{&messages.Error{Code: messages.StatusCode_CONFLICT, Message: "conflict: key k"}, "conflict: key k"},
		{&messages.Error{Code: messages.StatusCode_OK, Message: "no error"}, "no error"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%#v.Error() = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestUnknownCodes(t *testing.T) {
	unknown := messages.StatusCode(1000)
	if got := unknown.Sentinel(); got != messages.ErrInternal {
		t.Errorf("Sentinel of an unknown code = %v, want ErrInternal", got)
	}
	if got := unknown.GRPCCode(); got != codes.Internal {
		t.Errorf("GRPCCode of an unknown code = %v, want Internal", got)
	}
	mapped := map[codes.Code]bool{}
	for _, code := range statusCodes(t) {
		mapped[code.GRPCCode()] = true
	}
	for gc := codes.OK; gc <= codes.Unauthenticated; gc++ {
		if mapped[gc] {
			continue
		}
		if got := messages.StatusCodeFromGRPC(gc); got != messages.StatusCode_INTERNAL {
			t.Errorf("StatusCodeFromGRPC(%v) = %v, want INTERNAL", gc, got)
		}
		if err := messages.FromGRPC(grpcstatus.Error(gc, "boom")); !errors.Is(err, messages.ErrInternal) {
			t.Errorf("FromGRPC(%v status) = %v, want ErrInternal", gc, err)
		}
	}
}

func TestCodeOfForeignErrors(t *testing.T) {
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()

	for _, tc := range []struct {
		name  string
		err   error
		code  messages.StatusCode
		retry bool
	}{
		{"DeadlineExceeded", context.DeadlineExceeded, messages.StatusCode_TIMEOUT, true},
		{"Canceled", context.Canceled, messages.StatusCode_CANCELLED, false},
		{"expired context", expired.Err(), messages.StatusCode_TIMEOUT, true},
		{"cancelled context", cancelled.Err(), messages.StatusCode_CANCELLED, false},
		{"wrapped DeadlineExceeded", fmt.Errorf("get: %w", context.DeadlineExceeded), messages.StatusCode_TIMEOUT, true},
		{"wrapped Canceled", fmt.Errorf("get: %w", context.Canceled), messages.StatusCode_CANCELLED, false},
		{"plain error", errors.New("disk on fire"), messages.StatusCode_INTERNAL, false},
		{"sentinel wins over context", fmt.Errorf("%w: %w", messages.ErrUnavailable, context.Canceled), messages.StatusCode_UNAVAILABLE, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := messages.CodeOf(tc.err); got != tc.code {
				t.Errorf("CodeOf = %v, want %v", got, tc.code)
			}
			if got := messages.IsRetryable(tc.err); got != tc.retry {
				t.Errorf("IsRetryable = %v, want %v", got, tc.retry)
			}
			sentinel := tc.code.Sentinel()
			if err := messages.StatusOf(tc.err).Err(); !errors.Is(err, sentinel) {
				t.Errorf("StatusOf(err).Err() = %v, want a match for %v", err, sentinel)
			}
			// A non-gRPC error handed to FromGRPC keeps its code.
			if err := messages.FromGRPC(tc.err); !errors.Is(err, sentinel) || !strings.Contains(err.Error(), tc.err.Error()) {
				t.Errorf("FromGRPC(err) = %v, want a match for %v keeping the text", err, sentinel)
			}
			if err := messages.FromGRPC(messages.ToGRPC(tc.err)); !errors.Is(err, sentinel) {
				t.Errorf("FromGRPC(ToGRPC(err)) = %v, want a match for %v", err, sentinel)
			}
		})
	}
}
