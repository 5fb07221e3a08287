package kvclient_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/messages/thriftkv"
)

// fill sets every field of m, recursively, to a value that is not its
// default and differs between fields: unsigned fields get their top bit
// set (they travel as signed Thrift integers), lists two elements.
func fill(m protoreflect.Message, seed int) {
	fds := m.Descriptor().Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		n := seed*100 + int(fd.Number())
		var newMessage func() protoreflect.Value
		if fd.IsList() {
			newMessage = m.Mutable(fd).List().NewElement
		} else {
			newMessage = func() protoreflect.Value { return m.NewField(fd) }
		}
		value := func(k int) protoreflect.Value {
			switch fd.Kind() {
			case protoreflect.BoolKind:
				return protoreflect.ValueOfBool(true)
			case protoreflect.StringKind:
				return protoreflect.ValueOfString(fmt.Sprintf("s%d.%d", n, k))
			case protoreflect.BytesKind:
				return protoreflect.ValueOfBytes([]byte(fmt.Sprintf("b%d.%d", n, k)))
			case protoreflect.Int32Kind:
				return protoreflect.ValueOfInt32(int32(-n - k))
			case protoreflect.Uint32Kind:
				return protoreflect.ValueOfUint32(1<<31 + uint32(n+k))
			case protoreflect.Int64Kind:
				return protoreflect.ValueOfInt64(int64(-n - k))
			case protoreflect.Uint64Kind:
				return protoreflect.ValueOfUint64(1<<63 + uint64(n+k))
			case protoreflect.DoubleKind:
				return protoreflect.ValueOfFloat64(float64(n) + 0.25)
			case protoreflect.EnumKind:
				vals := fd.Enum().Values()
				return protoreflect.ValueOfEnum(vals.Get(vals.Len() - 1).Number())
			case protoreflect.MessageKind:
				if fd.Message().FullName() == "google.protobuf.Duration" {
					return protoreflect.ValueOfMessage(durationpb.New(time.Duration(n)*time.Millisecond + 7).ProtoReflect())
				}
				child := newMessage().Message()
				if seed < 3 {
					fill(child, seed+1)
				}
				return protoreflect.ValueOfMessage(child)
			}
			panic(fmt.Sprintf("fill: %s: kind %v", fd.FullName(), fd.Kind()))
		}
		if fd.IsList() {
			l := m.Mutable(fd).List()
			for k := range 2 {
				l.Append(value(k))
			}
			continue
		}
		m.Set(fd, value(0))
	}
}

// TestThriftConversionRoundTrips converts the request and the response of
// every operation, every field set, to their Thrift structs and back: what
// comes back is what went in, so the IDL carries every field of the
// protobuf messages (a field added to kv.proto and not to kv.thrift fails
// here, and ThriftMethods says which).
func TestThriftConversionRoundTrips(t *testing.T) {
	methods, err := kvclient.ThriftMethods()
	if err != nil {
		t.Fatalf("the Thrift IDL does not match the protobuf messages: %v", err)
	}
	if len(methods) != len(messages.Ops()) {
		t.Fatalf("%d Thrift methods for %d operations", len(methods), len(messages.Ops()))
	}
	for _, op := range messages.Ops() {
		m := methods[op.RPC]
		for _, c := range []struct {
			in      proto.Message
			thrift  any
			newback func() proto.Message
		}{
			{op.NewRequest(), m.NewRequest(), op.NewRequest},
			{op.Response(nil), m.NewResponse(), func() proto.Message { r := op.Response(nil); proto.Reset(r); return r }},
		} {
			fill(c.in.ProtoReflect(), 0)
			if err := kvclient.ToThrift(c.in, c.thrift); err != nil {
				t.Fatalf("%s: to Thrift: %v", op.RPC, err)
			}
			back := c.newback()
			if err := kvclient.FromThrift(c.thrift, back); err != nil {
				t.Fatalf("%s: from Thrift: %v", op.RPC, err)
			}
			if !proto.Equal(c.in, back) {
				t.Errorf("%s: round trip changed the message:\n in: %v\nout: %v", op.RPC, c.in, back)
			}
		}
	}
}

// TestThriftConversionChecks: a nil Thrift struct is the empty message; a
// struct of another shape, or no struct at all, is refused.
func TestThriftConversionChecks(t *testing.T) {
	got := &messages.GetRequest{Key: []byte("stale")}
	proto.Reset(got)
	if err := kvclient.FromThrift((*thriftkv.GetRequest)(nil), got); err != nil || !proto.Equal(got, &messages.GetRequest{}) {
		t.Errorf("nil struct: %v, %v", got, err)
	}
	// PutRequest's field 3 is binary; GetRequest's is an enum.
	if err := kvclient.FromThrift(&thriftkv.PutRequest{Value: []byte("v")}, &messages.GetRequest{}); err == nil {
		t.Error("a PutRequest struct converted to a GetRequest")
	}
	if err := kvclient.ToThrift(&messages.GetRequest{Consistency: messages.Consistency_STALE}, &thriftkv.PutRequest{}); err == nil {
		t.Error("a GetRequest converted to a PutRequest struct")
	}
	if err := kvclient.ToThrift(&messages.GetRequest{}, thriftkv.GetRequest{}); err == nil {
		t.Error("converted into a struct value, not a pointer")
	}
}
