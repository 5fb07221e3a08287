package kv

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// Requests is Database's operations over a server of the requests of
// messages/kv.proto: each operation turns its arguments and options into
// its request, has the function serve it, and turns the response back. It
// is the one conversion between the Go API and the protocol. The function
// returns the response, or the error its status holds. A write carries the
// request id of WithRequestID, or none: the server gives it one (a Client
// does, from its session).
type Requests func(ctx context.Context, req proto.Message) (messages.Statused, error)

// Call sends req through do and returns its response as T (the
// operation's response type), or the error its status holds.
func Call[T messages.Statused](ctx context.Context, do Requests, req proto.Message) (T, error) {
	return answer[T](do(ctx, req))
}

// answer is resp as the response type T, or err.
func answer[T messages.Statused](resp messages.Statused, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	r, ok := resp.(T)
	if !ok {
		return zero, messages.Errorf(messages.StatusCode_INTERNAL, "answered %T, want %T", resp, zero)
	}
	return r, nil
}

// version returns the commit version of a write's answer.
func version[T interface {
	messages.Statused
	GetVersion() uint64
}](resp messages.Statused, err error) (uint64, error) {
	r, err := answer[T](resp, err)
	if err != nil {
		return 0, err
	}
	return r.GetVersion(), nil
}

// limit32 converts a Go limit to the protocol's int32 (the server checks the
// rest).
func limit32(limit int) (int32, error) {
	if limit < -1<<31 || limit > 1<<31-1 {
		return 0, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "limit %d is out of range", limit)
	}
	return int32(limit), nil
}

// Get implements Database.
func (do Requests) Get(ctx context.Context, key []byte, opts ...Option) ([]byte, bool, error) {
	o := ApplyOptions(opts)
	r, err := answer[*messages.GetResponse](do(ctx, &messages.GetRequest{ColumnFamily: o.ColumnFamily, Key: key, Consistency: o.Consistency}))
	return r.GetValue(), r.GetFound(), err
}

// Put implements Database.
func (do Requests) Put(ctx context.Context, key, value []byte, opts ...Option) (uint64, error) {
	o := ApplyOptions(opts)
	return version[*messages.PutResponse](do(ctx, &messages.PutRequest{ColumnFamily: o.ColumnFamily, Key: key, Value: value, RequestId: o.RequestID}))
}

// Delete implements Database.
func (do Requests) Delete(ctx context.Context, key []byte, opts ...Option) (uint64, error) {
	o := ApplyOptions(opts)
	return version[*messages.DeleteResponse](do(ctx, &messages.DeleteRequest{ColumnFamily: o.ColumnFamily, Key: key, RequestId: o.RequestID}))
}

// ClearRange implements Database.
func (do Requests) ClearRange(ctx context.Context, begin, end []byte, opts ...Option) (uint64, error) {
	o := ApplyOptions(opts)
	return version[*messages.ClearRangeResponse](do(ctx, &messages.ClearRangeRequest{ColumnFamily: o.ColumnFamily, Begin: begin, End: end, RequestId: o.RequestID}))
}

// ListKeys implements Database.
func (do Requests) ListKeys(ctx context.Context, prefix []byte, limit int, opts ...Option) ([][]byte, error) {
	o := ApplyOptions(opts)
	l, err := limit32(limit)
	if err != nil {
		return nil, err
	}
	r, err := answer[*messages.ListKeysResponse](do(ctx, &messages.ListKeysRequest{ColumnFamily: o.ColumnFamily, Prefix: prefix, Limit: l, Consistency: o.Consistency}))
	return r.GetKeys(), err
}

// GetRange implements Database.
func (do Requests) GetRange(ctx context.Context, begin, end []byte, limit int, reverse bool, opts ...Option) ([]*messages.KeyValue, error) {
	o := ApplyOptions(opts)
	l, err := limit32(limit)
	if err != nil {
		return nil, err
	}
	r, err := answer[*messages.GetRangeResponse](do(ctx, &messages.GetRangeRequest{ColumnFamily: o.ColumnFamily, Begin: begin, End: end, Limit: l, Reverse: reverse, Consistency: o.Consistency}))
	return r.GetKvs(), err
}

// AtomicCommit implements Database.
func (do Requests) AtomicCommit(ctx context.Context, commit *messages.AtomicCommit, opts ...Option) (uint64, error) {
	o := ApplyOptions(opts)
	if commit == nil {
		return 0, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "atomic commit is missing")
	}
	commit = DefaultFamily(commit, o.ColumnFamily)
	return version[*messages.AtomicCommitResponse](do(ctx, &messages.AtomicCommitRequest{Commit: commit, RequestId: o.RequestID}))
}

// GetReadVersion implements Database.
func (do Requests) GetReadVersion(ctx context.Context) (uint64, error) {
	return version[*messages.GetReadVersionResponse](do(ctx, &messages.GetReadVersionRequest{}))
}

// SnapshotRead implements Database.
func (do Requests) SnapshotRead(ctx context.Context, key []byte, version uint64, opts ...Option) ([]byte, bool, error) {
	o := ApplyOptions(opts)
	r, err := answer[*messages.SnapshotReadResponse](do(ctx, &messages.SnapshotReadRequest{ColumnFamily: o.ColumnFamily, Key: key, Version: version}))
	return r.GetValue(), r.GetFound(), err
}

// SnapshotGetRange implements Database.
func (do Requests) SnapshotGetRange(ctx context.Context, begin, end []byte, limit int, reverse bool, version uint64, opts ...Option) ([]*messages.KeyValue, error) {
	o := ApplyOptions(opts)
	l, err := limit32(limit)
	if err != nil {
		return nil, err
	}
	r, err := answer[*messages.SnapshotGetRangeResponse](do(ctx, &messages.SnapshotGetRangeRequest{ColumnFamily: o.ColumnFamily, Begin: begin, End: end, Limit: l, Reverse: reverse, Version: version}))
	return r.GetKvs(), err
}

// SetFaultInjection implements Database: it reaches the replicas
// named by WithReplicas (all when none).
func (do Requests) SetFaultInjection(ctx context.Context, faults *messages.FaultInjection, opts ...Option) error {
	o := ApplyOptions(opts)
	_, err := answer[*messages.SetFaultInjectionResponse](do(ctx, &messages.SetFaultInjectionRequest{Faults: faults, Replicas: o.Replicas}))
	return err
}

// OpenSession implements Database.
func (do Requests) OpenSession(ctx context.Context) (uint64, error) {
	r, err := answer[*messages.OpenSessionResponse](do(ctx, &messages.OpenSessionRequest{}))
	return r.GetClientId(), err
}
