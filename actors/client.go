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
// it. Writes carry a request id (this client's session and a sequence
// number; the session is opened through the log on the first write), and a
// call retries retryable failures (UNAVAILABLE, TIMEOUT) with the same id
// until its context's deadline, so a retry is applied at most once and
// answers with the first outcome. When the state machine has forgotten the
// session (SESSION_EXPIRED), a write whose only attempt it refused is sent
// again under a new session; one with earlier attempts fails with
// ErrSessionExpired, its outcome unknown.
type Client struct {
	Requests // over c.call

	root    *actor.RootContext
	target  *actor.PID
	attempt time.Duration // bound on one attempt
	closed  atomic.Bool
	retries atomic.Uint64 // attempts after the first, over all calls

	sessMu  sync.Mutex
	sess    *clientSession                // the session writes are stamped with; nil until opened, or once forgotten
	opening bool                          // an OpenSession is in flight
	waiting []func(*clientSession, error) // writes waiting for it
}

// NewClient returns a client of the group (or router) at target. attempt
// bounds each attempt of a call; a call without a deadline gets
// defaultCallTimeout.
func NewClient(root *actor.RootContext, target *actor.PID, attempt time.Duration) *Client {
	c := &Client{root: root, target: target, attempt: attempt}
	c.Requests = c.call
	return c
}

// defaultCallTimeout bounds a call whose context has no deadline.
const defaultCallTimeout = 30 * time.Second

var _ storage.Database = (*Client)(nil)

// SessionID is the client id this client's writes carry now (0 until its
// first write opened a session).
func (c *Client) SessionID() uint64 {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if c.sess == nil {
		return 0
	}
	return c.sess.id
}

// Retries counts the attempts this client made after a call's first: each
// follows a retryable failure (UNAVAILABLE, or TIMEOUT with the same request
// id).
func (c *Client) Retries() uint64 { return c.retries.Load() }

// clientSession is one session of a Client: its client id, and the seqs
// handed out under it.
type clientSession struct {
	id   uint64
	seqs seqTracker
}

// requestID returns the next request id of the session, with a function to
// call once the request is answered.
func (cs *clientSession) requestID() (*messages.RequestId, func()) {
	seq, responded := cs.seqs.start()
	return &messages.RequestId{ClientId: cs.id, Seq: seq, RespondedTo: responded}, func() { cs.seqs.finish(seq) }
}

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

// session calls ready with the client's session, opening one (through the
// log, at most one OpenSession at a time) when it has none; without
// blocking: ready runs now or on the goroutine that delivered the answer.
// A failed opening is passed on (retryable or not), so each waiting write
// decides for itself.
func (c *Client) session(deadline time.Time, cancel <-chan struct{}, ready func(*clientSession, error)) {
	c.sessMu.Lock()
	if cs := c.sess; cs != nil {
		c.sessMu.Unlock()
		ready(cs, nil)
		return
	}
	c.waiting = append(c.waiting, ready)
	if c.opening {
		c.sessMu.Unlock()
		return
	}
	c.opening = true
	c.sessMu.Unlock()
	c.submit(&messages.OpenSessionRequest{}, deadline, cancel, c.opened)
}

// opened takes the answer to the client's OpenSession.
func (c *Client) opened(resp messages.Statused, err error) {
	var cs *clientSession
	if err == nil {
		if id := resp.(*messages.OpenSessionResponse).GetClientId(); id != 0 {
			cs = &clientSession{id: id}
		} else {
			err = messages.Errorf(messages.StatusCode_INTERNAL, "a session was opened with client id 0")
		}
	}
	c.sessMu.Lock()
	c.opening = false
	if cs != nil {
		c.sess = cs
	}
	waiting := c.waiting
	c.waiting = nil
	c.sessMu.Unlock()
	for _, ready := range waiting {
		ready(cs, err)
	}
}

// forget drops session cs, which the state machine no longer knows, so the
// next write opens a new one.
func (c *Client) forget(cs *clientSession) {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if c.sess == cs {
		c.sess = nil
	}
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
