package messages

import (
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The request and response oneofs of a Batch call name their fields after
// the operations (get, put, clear_range, …); Call and Reply share the field
// numbers, so an operation's request and response sit in fields of the same
// name. (Looked up once, after the package's descriptors are built.)
var (
	callRequests = sync.OnceValue(func() protoreflect.OneofDescriptor {
		return (&Call{}).ProtoReflect().Descriptor().Oneofs().ByName("request")
	})
	replyResponses = sync.OnceValue(func() protoreflect.OneofDescriptor {
		return (&Reply{}).ProtoReflect().Descriptor().Oneofs().ByName("response")
	})
)

// NewCall returns call id carrying req, or false when req is no request a
// Batch call can carry.
func NewCall(id uint64, req proto.Message) (*Call, bool) {
	if req == nil || !req.ProtoReflect().IsValid() {
		return nil, false
	}
	name := req.ProtoReflect().Descriptor().FullName()
	fields := callRequests().Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.Message().FullName() == name {
			c := &Call{Id: id}
			c.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(req.ProtoReflect()))
			return c, true
		}
	}
	return nil, false
}

// Operation returns the operation name (the oneof field's, e.g.
// "clear_range") and the request of c; a nil request when it names none.
func (c *Call) Operation() (string, proto.Message) {
	m := c.ProtoReflect()
	fd := m.WhichOneof(callRequests())
	if fd == nil {
		return "", nil
	}
	req := m.Get(fd).Message()
	if !req.IsValid() { // a typed nil
		return "", nil
	}
	return string(fd.Name()), req.Interface()
}

// NewReply builds the reply of call id, operation op, from its response or
// error: the status goes on the reply, none inside the response.
func NewReply(id uint64, op string, resp Statused, err error) *Reply {
	r := &Reply{Id: id, Status: StatusOf(err)}
	if err != nil || resp == nil {
		return r
	}
	m := resp.ProtoReflect()
	fd := replyResponses().Fields().ByName(protoreflect.Name(op))
	if fd == nil || fd.Message().FullName() != m.Descriptor().FullName() {
		r.Status = StatusOf(Errorf(StatusCode_INTERNAL, "%s answered with %T", op, resp))
		return r
	}
	if st := m.Descriptor().Fields().ByName("status"); st != nil {
		m.Clear(st)
	}
	r.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(m))
	return r
}

// Outcome returns the response r carries (nil when none) and the error its
// status holds.
func (r *Reply) Outcome() (Statused, error) {
	if err := r.GetStatus().Err(); err != nil {
		return nil, err
	}
	m := r.ProtoReflect()
	fd := m.WhichOneof(replyResponses())
	if fd == nil {
		return nil, nil
	}
	resp, _ := m.Get(fd).Message().Interface().(Statused)
	return resp, nil
}

// InBatch returns the bytes a Call or Reply of n bytes takes in a
// BatchRequest or BatchResponse: its field tag, length and body.
func InBatch(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }
