package kvclient

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/apache/thrift/lib/go/thrift"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/messages/thriftkv"
)

// ThriftMethod is one method of the Thrift KV service (messages/kv.thrift):
// the operation it serves and its generated argument and result structs.
// Its structs mirror the operation's protobuf messages field for field (the
// same numbers), so ToThrift and FromThrift convert any of them: the one
// conversion between the two protocols, used by the server's Thrift front
// end and by ThriftClient alike.
type ThriftMethod struct {
	Op *messages.Op
	// args and result are the generated KV<RPC>Args and KV<RPC>Result
	// struct types; Req is args' request field, Success result's response.
	args, result reflect.Type
}

// NewArgs returns the method's empty argument struct holding req.
func (m *ThriftMethod) NewArgs(req any) thrift.TStruct {
	a := reflect.New(m.args)
	a.Elem().FieldByName("Req").Set(reflect.ValueOf(req))
	return a.Interface().(thrift.TStruct)
}

// NewResult returns the method's empty result struct.
func (m *ThriftMethod) NewResult() thrift.TStruct {
	return reflect.New(m.result).Interface().(thrift.TStruct)
}

// Success is the response a result struct holds (nil when none).
func (m *ThriftMethod) Success(result thrift.TStruct) any {
	v := reflect.ValueOf(result).Elem().FieldByName("Success")
	if v.IsNil() {
		return nil
	}
	return v.Interface()
}

// NewRequest returns an empty request struct of the method.
func (m *ThriftMethod) NewRequest() any { return reflect.New(m.RequestType().Elem()).Interface() }

// NewResponse returns an empty response struct of the method.
func (m *ThriftMethod) NewResponse() any { return reflect.New(m.ResponseType().Elem()).Interface() }

// RequestType and ResponseType are the generated structs of the method's
// request and response (pointer types, *thriftkv.GetRequest).
func (m *ThriftMethod) RequestType() reflect.Type {
	f, _ := m.args.FieldByName("Req")
	return f.Type
}

// ResponseType: see RequestType.
func (m *ThriftMethod) ResponseType() reflect.Type {
	f, _ := m.result.FieldByName("Success")
	return f.Type
}

// thriftMethodStructs lists each method's generated argument and result
// structs by its name (messages.Op.RPC).
var thriftMethodStructs = map[string][2]any{
	"Get":               {thriftkv.KVGetArgs{}, thriftkv.KVGetResult{}},
	"Put":               {thriftkv.KVPutArgs{}, thriftkv.KVPutResult{}},
	"Delete":            {thriftkv.KVDeleteArgs{}, thriftkv.KVDeleteResult{}},
	"ClearRange":        {thriftkv.KVClearRangeArgs{}, thriftkv.KVClearRangeResult{}},
	"ListKeys":          {thriftkv.KVListKeysArgs{}, thriftkv.KVListKeysResult{}},
	"GetRange":          {thriftkv.KVGetRangeArgs{}, thriftkv.KVGetRangeResult{}},
	"AtomicCommit":      {thriftkv.KVAtomicCommitArgs{}, thriftkv.KVAtomicCommitResult{}},
	"GetReadVersion":    {thriftkv.KVGetReadVersionArgs{}, thriftkv.KVGetReadVersionResult{}},
	"SnapshotRead":      {thriftkv.KVSnapshotReadArgs{}, thriftkv.KVSnapshotReadResult{}},
	"SnapshotGetRange":  {thriftkv.KVSnapshotGetRangeArgs{}, thriftkv.KVSnapshotGetRangeResult{}},
	"SetFaultInjection": {thriftkv.KVSetFaultInjectionArgs{}, thriftkv.KVSetFaultInjectionResult{}},
	"Status":            {thriftkv.KVStatusArgs{}, thriftkv.KVStatusResult{}},
	"OpenSession":       {thriftkv.KVOpenSessionArgs{}, thriftkv.KVOpenSessionResult{}},
	"MemberList":        {thriftkv.KVMemberListArgs{}, thriftkv.KVMemberListResult{}},
	"MemberAdd":         {thriftkv.KVMemberAddArgs{}, thriftkv.KVMemberAddResult{}},
	"MemberRemove":      {thriftkv.KVMemberRemoveArgs{}, thriftkv.KVMemberRemoveResult{}},
	"MemberReplace":     {thriftkv.KVMemberReplaceArgs{}, thriftkv.KVMemberReplaceResult{}},
	"MoveLeader":        {thriftkv.KVMoveLeaderArgs{}, thriftkv.KVMoveLeaderResult{}},
	"Backup":            {thriftkv.KVBackupArgs{}, thriftkv.KVBackupResult{}},
}

// thriftMethods is the Thrift method of every operation, by its name, and
// what is wrong with the table (nil: nothing; then every protobuf field of
// every operation has its Thrift twin, and the other way round).
var thriftMethods = sync.OnceValues(func() (map[string]*ThriftMethod, error) {
	methods := make(map[string]*ThriftMethod, len(messages.Ops()))
	for _, op := range messages.Ops() {
		s, ok := thriftMethodStructs[op.RPC]
		if !ok {
			return nil, fmt.Errorf("thrift: operation %s has no Thrift method", op.RPC)
		}
		m := &ThriftMethod{Op: op, args: reflect.TypeOf(s[0]), result: reflect.TypeOf(s[1])}
		if err := sameShape(op.NewRequest().ProtoReflect().Descriptor(), m.RequestType().Elem()); err != nil {
			return nil, err
		}
		if err := sameShape(op.Response(nil).ProtoReflect().Descriptor(), m.ResponseType().Elem()); err != nil {
			return nil, err
		}
		methods[op.RPC] = m
	}
	if len(methods) != len(thriftMethodStructs) {
		return nil, fmt.Errorf("thrift: %d methods for %d operations", len(thriftMethodStructs), len(methods))
	}
	return methods, nil
})

// ThriftMethods returns the Thrift method of every operation (of
// messages.Ops), by its name, or why the IDL and the protobuf messages do
// not match.
func ThriftMethods() (map[string]*ThriftMethod, error) { return thriftMethods() }

// ThriftMethodOf returns the Thrift method of op.
func ThriftMethodOf(op *messages.Op) (*ThriftMethod, error) {
	methods, err := thriftMethods()
	if err != nil {
		return nil, messages.Errorf(messages.StatusCode_INTERNAL, "%v", err)
	}
	return methods[op.RPC], nil
}

const durationName = "google.protobuf.Duration"

// thriftFieldIndex maps a generated struct's Thrift field ids to the
// indexes of their Go fields (from the `thrift:"name,id"` tags).
var thriftFieldIndex sync.Map // reflect.Type -> map[protoreflect.FieldNumber]int

func fieldsOf(t reflect.Type) map[protoreflect.FieldNumber]int {
	if m, ok := thriftFieldIndex.Load(t); ok {
		return m.(map[protoreflect.FieldNumber]int)
	}
	m := map[protoreflect.FieldNumber]int{}
	for i := range t.NumField() {
		parts := strings.Split(t.Field(i).Tag.Get("thrift"), ",")
		if len(parts) < 2 {
			continue
		}
		if id, err := strconv.Atoi(parts[1]); err == nil {
			m[protoreflect.FieldNumber(id)] = i
		}
	}
	thriftFieldIndex.Store(t, m)
	return m
}

// scalarKind is the Go kind a Thrift field of a protobuf scalar kind has
// (behind its pointer when optional): uint64 and uint32 travel as i64 and
// i32 holding the same bits, enums as their generated int64 types.
func scalarKind(k protoreflect.Kind) reflect.Kind {
	switch k {
	case protoreflect.BoolKind:
		return reflect.Bool
	case protoreflect.StringKind:
		return reflect.String
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind, protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return reflect.Int32
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind, protoreflect.EnumKind:
		return reflect.Int64
	case protoreflect.DoubleKind:
		return reflect.Float64
	}
	return reflect.Invalid
}

// sameShape reports how the generated struct t differs from md: each
// protobuf field needs a Thrift field of its number and of the matching
// type, and each Thrift field a protobuf field.
func sameShape(md protoreflect.MessageDescriptor, t reflect.Type) error {
	fields := fieldsOf(t)
	if len(fields) != md.Fields().Len() {
		return fmt.Errorf("thrift: %s has %d fields, its Thrift struct %s %d", md.FullName(), md.Fields().Len(), t.Name(), len(fields))
	}
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		idx, ok := fields[fd.Number()]
		if !ok {
			return fmt.Errorf("thrift: %s has no field %d (%s)", t.Name(), fd.Number(), fd.Name())
		}
		ft := t.Field(idx).Type
		if fd.IsList() {
			if ft.Kind() != reflect.Slice || (fd.Kind() == protoreflect.BytesKind && ft.Elem().Kind() != reflect.Slice) {
				return fmt.Errorf("thrift: %s.%s is no list of the type of %s", t.Name(), t.Field(idx).Name, fd.FullName())
			}
			ft = ft.Elem()
		}
		if err := sameFieldShape(fd, ft, t.Name()+"."+t.Field(idx).Name); err != nil {
			return err
		}
	}
	return nil
}

func sameFieldShape(fd protoreflect.FieldDescriptor, ft reflect.Type, name string) error {
	switch {
	case fd.Kind() == protoreflect.BytesKind:
		if ft.Kind() != reflect.Slice || ft.Elem().Kind() != reflect.Uint8 {
			return fmt.Errorf("thrift: %s is not binary, as %s", name, fd.FullName())
		}
	case fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == durationName:
		if ft.Kind() != reflect.Pointer || ft.Elem().Kind() != reflect.Int64 {
			return fmt.Errorf("thrift: %s is not i64 nanoseconds, as %s", name, fd.FullName())
		}
	case fd.Kind() == protoreflect.MessageKind:
		if ft.Kind() != reflect.Pointer || ft.Elem().Kind() != reflect.Struct {
			return fmt.Errorf("thrift: %s is not a struct, as %s", name, fd.FullName())
		}
		return sameShape(fd.Message(), ft.Elem())
	default:
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if want := scalarKind(fd.Kind()); want == reflect.Invalid || ft.Kind() != want {
			return fmt.Errorf("thrift: %s is %v, and %s is %v", name, ft.Kind(), fd.FullName(), fd.Kind())
		}
	}
	return nil
}

// ToThrift converts m to dst, a pointer to the generated Thrift struct of
// its type (a field of a type that does not match is an error).
func ToThrift(m proto.Message, dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("thrift: %T is no pointer to a Thrift struct", dst)
	}
	return toThrift(m.ProtoReflect(), v.Elem())
}

func toThrift(m protoreflect.Message, dst reflect.Value) error {
	fields := fieldsOf(dst.Type())
	fds := m.Descriptor().Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		idx, ok := fields[fd.Number()]
		if !ok {
			return fmt.Errorf("thrift: %s has no field %d (%s)", dst.Type().Name(), fd.Number(), fd.Name())
		}
		if !m.Has(fd) {
			continue
		}
		f := dst.Field(idx)
		if !fd.IsList() {
			if err := valueToThrift(fd, m.Get(fd), f); err != nil {
				return err
			}
			continue
		}
		l := m.Get(fd).List()
		if f.Kind() != reflect.Slice {
			return fmt.Errorf("thrift: %s.%s is no list", dst.Type().Name(), dst.Type().Field(idx).Name)
		}
		s := reflect.MakeSlice(f.Type(), l.Len(), l.Len())
		for j := range l.Len() {
			if err := valueToThrift(fd, l.Get(j), s.Index(j)); err != nil {
				return err
			}
		}
		f.Set(s)
	}
	return nil
}

// valueToThrift sets dst, a field (or list element) of a generated struct,
// to v, a value of fd.
func valueToThrift(fd protoreflect.FieldDescriptor, v protoreflect.Value, dst reflect.Value) error {
	switch fd.Kind() {
	case protoreflect.BytesKind:
		if dst.Kind() != reflect.Slice || dst.Type().Elem().Kind() != reflect.Uint8 {
			return fmt.Errorf("thrift: the field of %s is not binary", fd.FullName())
		}
		dst.SetBytes(v.Bytes())
		return nil
	case protoreflect.MessageKind:
		if fd.Message().FullName() == durationName {
			d := v.Message().Interface().(*durationpb.Duration).AsDuration()
			return setScalar(fd, dst, reflect.ValueOf(int64(d)))
		}
		if dst.Kind() != reflect.Pointer || dst.Type().Elem().Kind() != reflect.Struct {
			return fmt.Errorf("thrift: the field of %s is no struct", fd.FullName())
		}
		p := reflect.New(dst.Type().Elem())
		if err := toThrift(v.Message(), p.Elem()); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	}
	var x any
	switch fd.Kind() {
	case protoreflect.BoolKind:
		x = v.Bool()
	case protoreflect.StringKind:
		x = v.String()
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		x = int32(v.Int())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		x = int32(uint32(v.Uint()))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		x = v.Int()
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		x = int64(v.Uint())
	case protoreflect.EnumKind:
		x = int64(v.Enum())
	case protoreflect.DoubleKind:
		x = v.Float()
	default:
		return fmt.Errorf("thrift: %s: %v has no Thrift type", fd.FullName(), fd.Kind())
	}
	return setScalar(fd, dst, reflect.ValueOf(x))
}

// setScalar sets dst (a scalar or a pointer to one) to x, of the same kind.
func setScalar(fd protoreflect.FieldDescriptor, dst, x reflect.Value) error {
	t := dst.Type()
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != x.Kind() {
		return fmt.Errorf("thrift: the field of %s is %v, not %v", fd.FullName(), t.Kind(), x.Kind())
	}
	if dst.Kind() != reflect.Pointer {
		dst.Set(x.Convert(t))
		return nil
	}
	p := reflect.New(t)
	p.Elem().Set(x.Convert(t))
	dst.Set(p)
	return nil
}

// FromThrift converts src, a generated Thrift struct (or a pointer to one;
// nil is the empty message), into m, of the matching type. A value that
// does not fit its protobuf field (an enum beyond 32 bits, a string that is
// not UTF-8) is an INVALID_ARGUMENT error.
func FromThrift(src any, m proto.Message) error {
	v := reflect.ValueOf(src)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return fmt.Errorf("thrift: %T is no Thrift struct", src)
	}
	return fromThrift(v, m.ProtoReflect())
}

func fromThrift(src reflect.Value, m protoreflect.Message) error {
	fields := fieldsOf(src.Type())
	fds := m.Descriptor().Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		idx, ok := fields[fd.Number()]
		if !ok {
			return fmt.Errorf("thrift: %s has no field %d (%s)", src.Type().Name(), fd.Number(), fd.Name())
		}
		f := src.Field(idx)
		if fd.IsList() {
			if f.Kind() != reflect.Slice {
				return fmt.Errorf("thrift: %s.%s is no list", src.Type().Name(), src.Type().Field(idx).Name)
			}
			if f.Len() == 0 {
				continue
			}
			l := m.Mutable(fd).List()
			for j := range f.Len() {
				v, err := valueFromThrift(fd, f.Index(j), l.NewElement)
				if err != nil {
					return err
				}
				l.Append(v)
			}
			continue
		}
		if (f.Kind() == reflect.Pointer || f.Kind() == reflect.Slice) && f.IsNil() {
			continue
		}
		v, err := valueFromThrift(fd, f, func() protoreflect.Value { return m.NewField(fd) })
		if err != nil {
			return err
		}
		m.Set(fd, v)
	}
	return nil
}

// valueFromThrift is the value of fd that f, a field (or list element) of
// a generated struct, holds; newMessage gives an empty message of fd's.
func valueFromThrift(fd protoreflect.FieldDescriptor, f reflect.Value, newMessage func() protoreflect.Value) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.BytesKind:
		if f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Uint8 {
			return protoreflect.Value{}, fmt.Errorf("thrift: the field of %s is not binary", fd.FullName())
		}
		return protoreflect.ValueOfBytes(f.Bytes()), nil
	case protoreflect.MessageKind:
		if fd.Message().FullName() == durationName {
			if f.Kind() != reflect.Pointer || f.Elem().Kind() != reflect.Int64 {
				return protoreflect.Value{}, fmt.Errorf("thrift: the field of %s is not i64 nanoseconds", fd.FullName())
			}
			return protoreflect.ValueOfMessage(durationpb.New(time.Duration(f.Elem().Int())).ProtoReflect()), nil
		}
		v := newMessage()
		if f.Kind() != reflect.Pointer || f.Type().Elem().Kind() != reflect.Struct {
			return protoreflect.Value{}, fmt.Errorf("thrift: the field of %s is no struct", fd.FullName())
		}
		if f.IsNil() { // a list element sent as nothing: the empty message
			return v, nil
		}
		return v, fromThrift(f.Elem(), v.Message())
	}
	if f.Kind() == reflect.Pointer {
		f = f.Elem()
	}
	if want := scalarKind(fd.Kind()); want == reflect.Invalid || f.Kind() != want {
		return protoreflect.Value{}, fmt.Errorf("thrift: the field of %s is %v", fd.FullName(), f.Kind())
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(f.Bool()), nil
	case protoreflect.StringKind:
		if !utf8.ValidString(f.String()) { // a Thrift string is any bytes; protobuf's is UTF-8
			return protoreflect.Value{}, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "%s is not valid UTF-8", fd.Name())
		}
		return protoreflect.ValueOfString(f.String()), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(f.Int())), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(int32(f.Int()))), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(f.Int()), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(f.Int())), nil
	case protoreflect.EnumKind:
		n := f.Int()
		if n != int64(int32(n)) {
			return protoreflect.Value{}, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "%s: %d is no value of %s", fd.Name(), n, fd.Enum().FullName())
		}
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), nil
	default: // DoubleKind: scalarKind admits no other
		return protoreflect.ValueOfFloat64(f.Float()), nil
	}
}
