package messages

import (
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Kind says how the group serves an operation.
type Kind int

const (
	// Write goes through the log on the leader's replica: its command is
	// proposed, decided by the state machine and answered once applied.
	// A write whose request has a request_id field is deduplicated by it.
	Write Kind = iota + 1
	// Read is served from a replica's storage: linearizably (after a
	// ReadIndex round on the leader's replica) unless the request asks for
	// a stale read (its consistency field).
	Read
	// SnapshotRead is served at a version by a replica that still holds
	// that version's history.
	SnapshotRead
	// Admin is an operation on the replicas themselves (fault injection,
	// status), not on the data; it is not a Batch call.
	Admin
	// Membership reads or changes the group's Raft membership (a replica
	// serves it); it is not a Batch call.
	Membership
)

// Op is one row of the operation table: an operation of the KV API, with
// its request and response messages. The table is the one list of
// operations; routing (actors/router), request ids (kv), dispatch
// (actors/replica, server) and error mapping (ErrorResponse) read it.
type Op struct {
	// Name is the operation's name: its field in Call and Reply, and its
	// label in metrics ("clear_range").
	Name string
	// RPC is its method in the KV gRPC service ("ClearRange").
	RPC  string
	Kind Kind

	request, response protoreflect.MessageType
	// command builds the operation of a write's replicated command; nil
	// for other kinds.
	command func(proto.Message, Stamp) isCommand_Op
	// result builds a write's response from its commit version.
	result func(version uint64) Statused
	// privileged says which of its requests are admin operations (nil:
	// none).
	privileged func(proto.Message) bool
	// rangeRead: a read whose reply may hold many entries.
	rangeRead bool
}

// ranged marks o a range read.
func ranged(o *Op) *Op {
	o.rangeRead = true
	return o
}

// RangeRead reports whether the operation is a range read (get_range,
// list_keys, snapshot_get_range): its reply may hold up to
// limits.max_range_bytes.
func (o *Op) RangeRead() bool { return o.rangeRead }

// always marks every request of a row privileged.
func always(proto.Message) bool { return true }

// admin marks the requests of o that privileged says are admin operations.
func admin(o *Op, privileged func(proto.Message) bool) *Op {
	o.privileged = privileged
	return o
}

// write, read, snapshotRead and admin build rows of the table.
func write[Req proto.Message, Resp Statused](name, rpc string, command func(Req, Stamp) isCommand_Op, result func(uint64) Resp) *Op {
	var req Req
	var resp Resp
	return &Op{Name: name, RPC: rpc, Kind: Write, request: req.ProtoReflect().Type(), response: resp.ProtoReflect().Type(),
		command: func(m proto.Message, s Stamp) isCommand_Op { return command(m.(Req), s) },
		result:  func(v uint64) Statused { return result(v) }}
}

func row[Req proto.Message, Resp Statused](kind Kind, name, rpc string) *Op {
	var req Req
	var resp Resp
	return &Op{Name: name, RPC: rpc, Kind: kind, request: req.ProtoReflect().Type(), response: resp.ProtoReflect().Type()}
}

func mutationOp(t MutationType, cf string, key, value, end []byte) isCommand_Op {
	return &Command_Mutation{Mutation: &Mutation{Type: t, ColumnFamily: cf, Key: key, Value: value, End: end}}
}

// ops is the operation table. (Built on first use: the message types are
// registered by the generated code's init functions, which run after
// package variables are initialised.)
var ops = sync.OnceValue(func() []*Op {
	return []*Op{
		row[*GetRequest, *GetResponse](Read, "get", "Get"),
		write("put", "Put",
			func(r *PutRequest, _ Stamp) isCommand_Op {
				return mutationOp(MutationType_SET, r.GetColumnFamily(), r.GetKey(), r.GetValue(), nil)
			},
			func(v uint64) *PutResponse { return &PutResponse{Version: v} }),
		write("delete", "Delete",
			func(r *DeleteRequest, _ Stamp) isCommand_Op {
				return mutationOp(MutationType_DELETE, r.GetColumnFamily(), r.GetKey(), nil, nil)
			},
			func(v uint64) *DeleteResponse { return &DeleteResponse{Version: v} }),
		write("clear_range", "ClearRange",
			func(r *ClearRangeRequest, _ Stamp) isCommand_Op {
				return mutationOp(MutationType_CLEAR_RANGE, r.GetColumnFamily(), r.GetBegin(), nil, r.GetEnd())
			},
			func(v uint64) *ClearRangeResponse { return &ClearRangeResponse{Version: v} }),
		ranged(row[*ListKeysRequest, *ListKeysResponse](Read, "list_keys", "ListKeys")),
		ranged(row[*GetRangeRequest, *GetRangeResponse](Read, "get_range", "GetRange")),
		write("atomic_commit", "AtomicCommit",
			func(r *AtomicCommitRequest, _ Stamp) isCommand_Op {
				return &Command_AtomicCommit{AtomicCommit: r.GetCommit()}
			},
			func(v uint64) *AtomicCommitResponse { return &AtomicCommitResponse{Version: v} }),
		row[*GetReadVersionRequest, *GetReadVersionResponse](Read, "get_read_version", "GetReadVersion"),
		row[*SnapshotReadRequest, *SnapshotReadResponse](SnapshotRead, "snapshot_read", "SnapshotRead"),
		ranged(row[*SnapshotGetRangeRequest, *SnapshotGetRangeResponse](SnapshotRead, "snapshot_get_range", "SnapshotGetRange")),
		write("open_session", "OpenSession",
			func(r *OpenSessionRequest, s Stamp) isCommand_Op {
				return &Command_OpenSession{OpenSession: &OpenSession{Limits: s.SessionLimits, Owner: r.GetOwner()}}
			},
			func(v uint64) *OpenSessionResponse { return &OpenSessionResponse{ClientId: v} }),
		admin(row[*SetFaultInjectionRequest, *SetFaultInjectionResponse](Admin, "set_fault_injection", "SetFaultInjection"), always),
		admin(row[*StatusRequest, *StatusResponse](Admin, "status", "Status"),
			// Whole digests are computed once per applied index and shared;
			// range digests (verify's bisection) scan on every call.
			func(m proto.Message) bool { return m.(*StatusRequest).GetDigestRange() != nil }),
		row[*MemberListRequest, *MemberListResponse](Membership, "member_list", "MemberList"),
		admin(row[*MemberAddRequest, *MemberAddResponse](Membership, "member_add", "MemberAdd"), always),
		admin(row[*MemberRemoveRequest, *MemberRemoveResponse](Membership, "member_remove", "MemberRemove"), always),
		admin(row[*MemberReplaceRequest, *MemberReplaceResponse](Membership, "member_replace", "MemberReplace"), always),
		admin(row[*MoveLeaderRequest, *MoveLeaderResponse](Membership, "move_leader", "MoveLeader"), always),
		// A backup pins a view of a replica's data and scans all of it.
		ranged(admin(row[*BackupRequest, *BackupResponse](Admin, "backup", "Backup"), always)),
	}
})

var opsByRequest = sync.OnceValue(func() map[protoreflect.FullName]*Op {
	m := make(map[protoreflect.FullName]*Op, len(ops()))
	for _, o := range ops() {
		m[o.request.Descriptor().FullName()] = o
	}
	return m
})

// Ops returns the operation table, in the order of the KV service.
func Ops() []*Op { return ops() }

// OpOf returns the operation whose request req is, or nil when req is no
// request of the KV API (or a typed nil).
func OpOf(req proto.Message) *Op {
	if req == nil {
		return nil
	}
	m := req.ProtoReflect()
	if !m.IsValid() {
		return nil
	}
	return opsByRequest()[m.Descriptor().FullName()]
}

// NewRequest returns an empty request of the operation.
func (o *Op) NewRequest() proto.Message { return o.request.New().Interface() }

// Response returns the operation's response carrying err as its status
// (an OK status when err is nil).
func (o *Op) Response(err error) Statused {
	m := o.response.New()
	m.Set(m.Descriptor().Fields().ByName("status"), protoreflect.ValueOfMessage(StatusOf(err).ProtoReflect()))
	return m.Interface().(Statused)
}

// Stale reports whether req, a request of this operation, asks for a stale
// read (served by the local replica, without a ReadIndex round).
func (o *Op) Stale(req proto.Message) bool {
	if o.Kind != Read {
		return false
	}
	m := req.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("consistency")
	return fd != nil && Consistency(m.Get(fd).Enum()) == Consistency_STALE
}

// Privileged reports whether req, a request of this operation, is an admin
// operation: it breaks or reshapes the replicas (fault injection,
// membership changes, leader moves) or scans their data on every call
// (status with a digest range). A server serves those only to callers it
// allows (server.admin).
func (o *Op) Privileged(req proto.Message) bool {
	return o.privileged != nil && o.privileged(req)
}

// InBatch reports whether a Batch call carries the operation.
func (o *Op) InBatch() bool { return o.Kind != Admin && o.Kind != Membership }

// requestIDField is the request_id field of a write's request; nil when the
// operation carries none (reads, and OpenSession, which is not
// deduplicated).
func (o *Op) requestIDField() protoreflect.FieldDescriptor {
	if o.Kind != Write {
		return nil
	}
	return o.request.Descriptor().Fields().ByName("request_id")
}

// Deduplicated reports whether the operation's requests carry a request id.
func (o *Op) Deduplicated() bool { return o.requestIDField() != nil }

// RequestID returns the request id req carries (nil when it has none).
func (o *Op) RequestID(req proto.Message) *RequestId {
	fd := o.requestIDField()
	if fd == nil {
		return nil
	}
	m := req.ProtoReflect()
	if !m.Has(fd) {
		return nil
	}
	return m.Get(fd).Message().Interface().(*RequestId)
}

// SetRequestID gives req, a request of a deduplicated write, the request
// id id.
func (o *Op) SetRequestID(req proto.Message, id *RequestId) {
	if fd := o.requestIDField(); fd != nil {
		req.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(id.ProtoReflect()))
	}
}

// Stamp is what the proposer of a command adds to the request: the log
// time, and the session limits of its configuration (an OpenSession
// carries them to the state machine).
type Stamp struct {
	TimestampUnixNanos int64
	SessionLimits      *SessionLimits
}

// Command returns the replicated command of req, a write's request, with
// its request id and the proposer's stamp; nil for other kinds.
func (o *Op) Command(req proto.Message, s Stamp) *Command {
	if o.command == nil {
		return nil
	}
	return &Command{RequestId: o.RequestID(req), TimestampUnixNanos: s.TimestampUnixNanos, Op: o.command(req, s)}
}

// Result returns a write's response from its outcome: its commit version,
// or the error.
func (o *Op) Result(version uint64, err error) Statused {
	if err != nil || o.result == nil {
		return o.Response(err)
	}
	r := o.result(version)
	r.ProtoReflect().Set(r.ProtoReflect().Descriptor().Fields().ByName("status"), protoreflect.ValueOfMessage(StatusOf(nil).ProtoReflect()))
	return r
}
