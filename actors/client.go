package actors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// Client is the group's Go facade, a storage.Database: each call is a
// protobuf request to the group's PID, answered by the replica that serves
// it. Writes carry a request id (this client's id and a sequence number), and
// a call retries retryable failures (UNAVAILABLE, TIMEOUT) with the same id
// until its context's deadline, so a retry is applied at most once and
// answers with the first outcome.
type Client struct {
	root    *actor.RootContext
	target  *actor.PID
	attempt time.Duration // bound on one attempt
	id      uint64
	seqs    seqTracker
	closed  atomic.Bool
	retries atomic.Uint64 // attempts after the first, over all calls
}

// NewClient returns a client of the group (or router) at target. attempt
// bounds each attempt of a call; a call without a deadline gets
// defaultCallTimeout.
func NewClient(root *actor.RootContext, target *actor.PID, attempt time.Duration) *Client {
	return &Client{root: root, target: target, attempt: attempt, id: newClientID()}
}

// defaultCallTimeout bounds a call whose context has no deadline.
const defaultCallTimeout = 30 * time.Second

var _ storage.Database = (*Client)(nil)

// ID is the client id carried by this client's writes.
func (c *Client) ID() uint64 { return c.id }

// Retries counts the attempts this client made after a call's first: each
// follows a retryable failure (UNAVAILABLE, or TIMEOUT with the same request
// id).
func (c *Client) Retries() uint64 { return c.retries.Load() }

// seqTracker hands out sequence numbers and knows the highest one below
// which every request has been answered (responded_to).
type seqTracker struct {
	mu   sync.Mutex
	next uint64
	low  uint64          // every seq <= low is answered
	done map[uint64]bool // answered seqs above low
}

func (t *seqTracker) start() (seq, respondedTo uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	return t.next, t.low
}

func (t *seqTracker) finish(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done == nil {
		t.done = map[uint64]bool{}
	}
	t.done[seq] = true
	for t.done[t.low+1] {
		delete(t.done, t.low+1)
		t.low++
	}
}

// requestID returns the caller's request id, or a new one of this client
// with a function to call once the request is answered.
func (c *Client) requestID(o storage.Options) (*messages.RequestId, func()) {
	if o.RequestID != nil {
		return o.RequestID, func() {}
	}
	seq, responded := c.seqs.start()
	return &messages.RequestId{ClientId: c.id, Seq: seq, RespondedTo: responded}, func() { c.seqs.finish(seq) }
}

var errClientClosed = messages.Errorf(messages.StatusCode_UNAVAILABLE, "client is closed")

// futureError maps a protoactor future failure to a status error.
func futureError(err error) error {
	switch {
	case errors.Is(err, actor.ErrTimeout):
		return messages.Errorf(messages.StatusCode_TIMEOUT, "no answer in time; a write's outcome is unknown: retry with the same request id")
	case errors.Is(err, actor.ErrDeadLetter):
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "the group's actor is gone")
	default:
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "%v", err)
	}
}

// call sends req and returns the answer, retrying retryable failures with
// backoff until ctx is done. When it gives up it returns the last failure,
// except that once any attempt ended with its outcome unknown (TIMEOUT) the
// call's outcome is unknown too. It is Submit, waited for.
func (c *Client) call(ctx context.Context, req proto.Message) (messages.Statused, error) {
	if c.closed.Load() {
		return nil, errClientClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, messages.Errorf(messages.CodeOf(err), "%v", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultCallTimeout)
	}
	type answer struct {
		resp messages.Statused
		err  error
	}
	ch := make(chan answer, 1)
	c.Submit(req, deadline, ctx.Done(), func(resp messages.Statused, err error) { ch <- answer{resp, err} })
	a := <-ch
	return a.resp, a.err
}

// write sends a write request built around its request id.
func (c *Client) write(ctx context.Context, o storage.Options, build func(*messages.RequestId) proto.Message) (uint64, error) {
	rid, done := c.requestID(o)
	defer done()
	resp, err := c.call(ctx, build(rid))
	if err != nil {
		return 0, err
	}
	return resp.(interface{ GetVersion() uint64 }).GetVersion(), nil
}

// Get implements storage.Database.
func (c *Client) Get(ctx context.Context, key []byte, opts ...storage.Option) ([]byte, bool, error) {
	o := storage.ApplyOptions(opts)
	resp, err := c.call(ctx, &messages.GetRequest{ColumnFamily: o.ColumnFamily, Key: key, Consistency: o.Consistency})
	if err != nil {
		return nil, false, err
	}
	r := resp.(*messages.GetResponse)
	return r.GetValue(), r.GetFound(), nil
}

// Put implements storage.Database.
func (c *Client) Put(ctx context.Context, key, value []byte, opts ...storage.Option) (uint64, error) {
	o := storage.ApplyOptions(opts)
	return c.write(ctx, o, func(rid *messages.RequestId) proto.Message {
		return &messages.PutRequest{ColumnFamily: o.ColumnFamily, Key: key, Value: value, RequestId: rid}
	})
}

// Delete implements storage.Database.
func (c *Client) Delete(ctx context.Context, key []byte, opts ...storage.Option) (uint64, error) {
	o := storage.ApplyOptions(opts)
	return c.write(ctx, o, func(rid *messages.RequestId) proto.Message {
		return &messages.DeleteRequest{ColumnFamily: o.ColumnFamily, Key: key, RequestId: rid}
	})
}

// ClearRange implements storage.Database.
func (c *Client) ClearRange(ctx context.Context, begin, end []byte, opts ...storage.Option) (uint64, error) {
	o := storage.ApplyOptions(opts)
	return c.write(ctx, o, func(rid *messages.RequestId) proto.Message {
		return &messages.ClearRangeRequest{ColumnFamily: o.ColumnFamily, Begin: begin, End: end, RequestId: rid}
	})
}

// ListKeys implements storage.Database.
func (c *Client) ListKeys(ctx context.Context, prefix []byte, limit int, opts ...storage.Option) ([][]byte, error) {
	o := storage.ApplyOptions(opts)
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	resp, err := c.call(ctx, &messages.ListKeysRequest{ColumnFamily: o.ColumnFamily, Prefix: prefix, Limit: int32(limit), Consistency: o.Consistency})
	if err != nil {
		return nil, err
	}
	return resp.(*messages.ListKeysResponse).GetKeys(), nil
}

// checkLimit rejects limits that do not fit the wire's int32 (the router
// checks the rest).
func checkLimit(limit int) error {
	if limit < -1<<31 || limit > 1<<31-1 {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "limit %d is out of range", limit)
	}
	return nil
}

// GetRange implements storage.Database.
func (c *Client) GetRange(ctx context.Context, begin, end []byte, limit int, reverse bool, opts ...storage.Option) ([]*messages.KeyValue, error) {
	o := storage.ApplyOptions(opts)
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	resp, err := c.call(ctx, &messages.GetRangeRequest{ColumnFamily: o.ColumnFamily, Begin: begin, End: end, Limit: int32(limit), Reverse: reverse, Consistency: o.Consistency})
	if err != nil {
		return nil, err
	}
	return resp.(*messages.GetRangeResponse).GetKvs(), nil
}

// AtomicCommit implements storage.Database.
func (c *Client) AtomicCommit(ctx context.Context, commit *messages.AtomicCommit, opts ...storage.Option) (uint64, error) {
	o := storage.ApplyOptions(opts)
	if commit == nil {
		return 0, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "atomic commit is missing")
	}
	commit = storage.DefaultFamily(commit, o.ColumnFamily)
	return c.write(ctx, o, func(rid *messages.RequestId) proto.Message {
		return &messages.AtomicCommitRequest{Commit: commit, RequestId: rid}
	})
}

// GetReadVersion implements storage.Database.
func (c *Client) GetReadVersion(ctx context.Context) (uint64, error) {
	resp, err := c.call(ctx, &messages.GetReadVersionRequest{})
	if err != nil {
		return 0, err
	}
	return resp.(*messages.GetReadVersionResponse).GetVersion(), nil
}

// SnapshotRead implements storage.Database.
func (c *Client) SnapshotRead(ctx context.Context, key []byte, version uint64, opts ...storage.Option) ([]byte, bool, error) {
	o := storage.ApplyOptions(opts)
	resp, err := c.call(ctx, &messages.SnapshotReadRequest{ColumnFamily: o.ColumnFamily, Key: key, Version: version})
	if err != nil {
		return nil, false, err
	}
	r := resp.(*messages.SnapshotReadResponse)
	return r.GetValue(), r.GetFound(), nil
}

// SnapshotGetRange implements storage.Database.
func (c *Client) SnapshotGetRange(ctx context.Context, begin, end []byte, limit int, reverse bool, version uint64, opts ...storage.Option) ([]*messages.KeyValue, error) {
	o := storage.ApplyOptions(opts)
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	resp, err := c.call(ctx, &messages.SnapshotGetRangeRequest{ColumnFamily: o.ColumnFamily, Begin: begin, End: end, Limit: int32(limit), Reverse: reverse, Version: version})
	if err != nil {
		return nil, err
	}
	return resp.(*messages.SnapshotGetRangeResponse).GetKvs(), nil
}

// SetFaultInjection implements storage.Database: it reaches the replicas
// named by storage.WithReplicas (all when none).
func (c *Client) SetFaultInjection(ctx context.Context, faults *messages.FaultInjection, opts ...storage.Option) error {
	o := storage.ApplyOptions(opts)
	_, err := c.call(ctx, &messages.SetFaultInjectionRequest{Faults: faults, Replicas: o.Replicas})
	return err
}

// Close implements storage.Database. It closes this client only; the group
// keeps running until Group.Stop.
func (c *Client) Close() error {
	c.closed.Store(true)
	return nil
}
