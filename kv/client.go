package kv

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// Transport sends one attempt of a request of the KV API (messages.Ops)
// and calls done exactly once, with the response or a status error, without
// blocking the caller. An attempt that has no answer by deadline ends with
// TIMEOUT (its outcome unknown for a write). done may run on any goroutine
// (an actor's, a stream's receiver, a timer's): it must return quickly and
// never block. The replicated group (actors.Group.Transport), the standalone
// service (storage.Standalone) and a kvserver over gRPC (kvclient) are
// transports; a Client adds request ids and retries.
type Transport interface {
	Send(req proto.Message, deadline time.Time, done func(messages.Statused, error))
}

// Client is the one request-id and retry policy of actorkv, over any
// Transport; it is a Database (Requests over Do). Writes carry a request id
// of the client's session, opened through the log (OpenSession) on the
// first write. A call retries retryable failures (UNAVAILABLE, TIMEOUT) with
// backoff and the same request id until its deadline, so a retry is
// applied at most once and answers with the first outcome; when it gives up
// after an attempt whose outcome is unknown, the call's outcome is unknown
// (TIMEOUT). When the state machine has forgotten the session
// (SESSION_EXPIRED), a write whose only attempt it refused was never
// applied and goes again under a new session; one with earlier attempts
// fails with ErrSessionExpired, its outcome unknown. A write whose request
// id the caller chose (WithRequestID) keeps it, whatever happens.
type Client struct {
	Requests // over Do

	transport Transport
	attempt   time.Duration // bound on one attempt
	owner     string        // the identity its sessions belong to (RequestId.owner)
	closed    atomic.Bool
	retries   atomic.Uint64 // attempts after the first, over all calls

	sessMu  sync.Mutex
	sess    *clientSession                // the session writes are stamped with; nil until opened, or once forgotten
	opening bool                          // an OpenSession is in flight
	waiting []func(*clientSession, error) // writes waiting for it
}

// NewClient returns a client over t. attempt bounds each attempt of a call;
// a call without a deadline gets DefaultCallTimeout.
func NewClient(t Transport, attempt time.Duration) *Client {
	c := &Client{transport: t, attempt: attempt}
	c.Requests = c.Do
	return c
}

// WithOwner sets the identity the client's sessions belong to
// (RequestId.owner; "" by default) and returns c. Call it before the first
// write. A server gives its own client an owner no caller can have, so no
// caller can use the server's request ids.
func (c *Client) WithOwner(owner string) *Client {
	c.owner = owner
	return c
}

// DefaultCallTimeout bounds a call whose context has no deadline.
const DefaultCallTimeout = 30 * time.Second

var _ Database = (*Client)(nil)

// The backoff between attempts: from minBackoff, doubling, to maxBackoff.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = 200 * time.Millisecond
)

// Backoff is the pause before retry n (from 1) of actorkv's retry policy:
// 5 ms, doubling, at most 200 ms. Retryable says which failures it retries.
func Backoff(n int) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// Retryable reports whether the retry policy tries a request again after
// err: a retryable status (UNAVAILABLE, TIMEOUT) from a transport that can
// still serve (not ErrClosed, not ErrNoReplica).
func Retryable(err error) bool {
	return messages.IsRetryable(err) && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNoReplica) && !errors.Is(err, ErrNoLeader)
}

var errClientClosed = messages.Errorf(messages.StatusCode_UNAVAILABLE, "client is closed")

// ErrClosed is what a transport that was closed answers (the standalone
// service after Close, say): UNAVAILABLE, but a Client does not retry it,
// since the transport will not come back.
var ErrClosed = &messages.Error{Code: messages.StatusCode_UNAVAILABLE, Message: "unavailable: closed"}

// ErrNoReplica is what a group answers while none of its replicas in this
// process is starting or running (each failed to start, fail-stopped or was
// stopped): UNAVAILABLE at once, and a Client in this process does not
// retry it, since nothing here will serve until someone starts a replica;
// a client of several processes moves on to the next.
var ErrNoReplica = &messages.Error{Code: messages.StatusCode_UNAVAILABLE, Message: "unavailable: no replica of this process is running"}

// ErrNoLeader is what a server in front of a group answers to a request
// that needs the leader (a write, a linearizable read, a membership
// operation) once its replicas have known no leader for a while (two
// election timeouts): they are cut off from a majority, or a majority is
// down. UNAVAILABLE at once, and a Client in that process does not retry
// it; a client of several processes moves on to the next, which may be on
// the majority's side.
var ErrNoLeader = &messages.Error{Code: messages.StatusCode_UNAVAILABLE, Message: "unavailable: this process knows no leader (cut off from a majority, or a majority is down)"}

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

// Do sends req and returns the answer, as Submit does, waited for; a
// context without a deadline gets DefaultCallTimeout.
func (c *Client) Do(ctx context.Context, req proto.Message) (messages.Statused, error) {
	if c.closed.Load() {
		return nil, errClientClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, messages.Errorf(messages.CodeOf(err), "%v", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultCallTimeout)
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

// Submit sends req — any request of messages.Ops — without waiting, and
// calls done exactly once with the response or a status error, as Do would
// answer: a retryable failure is tried again until deadline, or until
// cancel is closed (nil: never); then done gets the most telling error so
// far. A deduplicated write without a request id gets the next one of the
// client's session, set on req; req must not change while the call is in
// flight.
//
// done runs on the goroutine that delivered the answer: it must return
// quickly and never block. Submit costs no goroutine per call, so a server
// can keep thousands in flight (kvserver's Batch streams do).
func (c *Client) Submit(req proto.Message, deadline time.Time, cancel <-chan struct{}, done func(messages.Statused, error)) {
	s := &submission{c: c, req: req, deadline: deadline, cancel: cancel, done: done, release: func() {}}
	if op := messages.OpOf(req); op != nil && op.Deduplicated() && op.RequestID(req).GetClientId() == 0 {
		s.stamp = op
	}
	s.try()
}

// Close implements Database. It closes this client only: calls in flight
// end, and later ones fail with UNAVAILABLE.
func (c *Client) Close() error {
	c.closed.Store(true)
	return nil
}

// clientSession is one session of a Client: its client id, and the seqs
// handed out under it.
type clientSession struct {
	id    uint64
	owner string
	seqs  seqTracker
}

// requestID returns the next request id of the session, with a function to
// call once the request is answered.
func (cs *clientSession) requestID() (*messages.RequestId, func()) {
	seq, responded := cs.seqs.start()
	return &messages.RequestId{ClientId: cs.id, Seq: seq, RespondedTo: responded, Owner: cs.owner}, func() { cs.seqs.finish(seq) }
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
	c.Submit(&messages.OpenSessionRequest{Owner: c.owner}, deadline, cancel, c.opened)
}

// opened takes the answer to the client's OpenSession.
func (c *Client) opened(resp messages.Statused, err error) {
	var cs *clientSession
	if err == nil {
		if id := resp.(*messages.OpenSessionResponse).GetClientId(); id != 0 {
			cs = &clientSession{id: id, owner: c.owner}
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

// submission is one Submit call across its attempts.
type submission struct {
	c        *Client
	req      proto.Message
	deadline time.Time
	cancel   <-chan struct{}
	done     func(messages.Statused, error)
	release  func() // marks the request id answered
	retry    int    // retries so far
	// stamp is req's operation when the client gives req its request id
	// (nil: req keeps its own, or carries none); sess is the session it was
	// given under, and sent counts the attempts sent under it.
	stamp *messages.Op
	sess  *clientSession
	sent  int
	// last is the latest retryable error; unknown the latest timeout, after
	// which a write's outcome is unknown.
	last, unknown error
}

// try starts an attempt — after giving req a request id of the client's
// session, if it needs one — or gives up when the deadline has passed,
// cancel is closed or the client was closed.
func (s *submission) try() {
	if s.c.closed.Load() {
		s.finish(nil, errClientClosed)
		return
	}
	if time.Until(s.deadline) <= 0 || s.cancelled() {
		s.giveUp()
		return
	}
	if s.stamp != nil && s.sess == nil {
		s.c.session(s.deadline, s.cancel, func(cs *clientSession, err error) {
			if err != nil {
				s.failed(err)
				return
			}
			s.sess = cs
			var rid *messages.RequestId
			rid, s.release = cs.requestID()
			s.stamp.SetRequestID(s.req, rid)
			s.send()
		})
		return
	}
	s.send()
}

// send sends one attempt, bounded by the client's attempt time — but for
// a membership operation, which retries Raft rounds itself and may take
// several: its attempt has the call's whole deadline.
func (s *submission) send() {
	left := time.Until(s.deadline)
	if left <= 0 || s.cancelled() {
		s.giveUp()
		return
	}
	s.sent++
	if op := messages.OpOf(s.req); op == nil || op.Kind != messages.Membership {
		left = min(left, s.c.attempt)
	}
	s.c.transport.Send(s.req, time.Now().Add(left), s.answered)
}

// answered handles an attempt's outcome.
func (s *submission) answered(resp messages.Statused, err error) {
	if err == nil && resp != nil {
		err = resp.GetStatus().Err()
	}
	if messages.CodeOf(err) == messages.StatusCode_SESSION_EXPIRED && s.sess != nil {
		s.sessionExpired(err)
		return
	}
	if err == nil || !Retryable(err) {
		s.finish(resp, err)
		return
	}
	if messages.CodeOf(err) == messages.StatusCode_TIMEOUT {
		s.unknown = err
	}
	s.failed(err)
}

// sessionExpired handles SESSION_EXPIRED for a write the client stamped:
// the state machine has forgotten its session. If the refused attempt was
// the only one sent under it, the write was never applied: it goes again
// under a new session. Otherwise an earlier attempt may have been applied
// before the session was forgotten, and nothing can tell: the outcome is
// unknown.
func (s *submission) sessionExpired(err error) {
	s.c.forget(s.sess)
	if s.sent > 1 {
		s.finish(nil, messages.Errorf(messages.StatusCode_SESSION_EXPIRED,
			"the write's outcome is unknown: an earlier attempt may have been applied before its session was forgotten (%v)", err))
		return
	}
	s.release()
	s.release, s.sess, s.sent = func() {}, nil, 0
	s.try()
}

// failed retries after a retryable failure err, after a pause, or gives up
// when a non-retryable one ends the call.
func (s *submission) failed(err error) {
	if !Retryable(err) {
		s.finish(nil, err)
		return
	}
	s.last = err
	s.retry++
	wait := min(Backoff(s.retry), time.Until(s.deadline))
	if wait <= 0 {
		s.giveUp()
		return
	}
	s.c.retries.Add(1)
	time.AfterFunc(wait, s.try)
}

func (s *submission) cancelled() bool {
	select {
	case <-s.cancel:
		return true
	default:
		return false
	}
}

// giveUp ends the submission at its deadline (or cancel) with the most
// telling error: the latest timeout if any attempt's outcome is unknown,
// else the latest failure.
func (s *submission) giveUp() {
	switch {
	case s.unknown != nil:
		s.finish(nil, s.unknown)
	case s.last != nil:
		s.finish(nil, s.last)
	default:
		s.finish(nil, messages.Errorf(messages.StatusCode_TIMEOUT, "deadline passed before an answer"))
	}
}

func (s *submission) finish(resp messages.Statused, err error) {
	s.release()
	if err != nil {
		resp = nil
	}
	s.done(resp, err)
}
