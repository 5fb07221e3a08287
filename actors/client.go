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
	Requests // over c.call

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
	c := &Client{root: root, target: target, attempt: attempt, id: newClientID()}
	c.Requests = c.call
	return c
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

// requestID returns a new request id of this client with a function to
// call once the request is answered.
func (c *Client) requestID() (*messages.RequestId, func()) {
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

// Close implements storage.Database. It closes this client only; the group
// keeps running until Group.Stop.
func (c *Client) Close() error {
	c.closed.Store(true)
	return nil
}
