package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// Submit sends req — a request of messages/kv.proto that the router serves
// (get, put, delete, clear-range, list-keys, get-range, atomic commit,
// open-session, get-read-version, snapshot read and range) — to the group
// without waiting, and calls done exactly once with the response or a status
// error, as the blocking methods would answer: a retryable failure is tried
// again (a write with the same request id, so it is applied at most once)
// until deadline, or until cancel is closed (nil: never) — then done gets the
// most telling error so far. A write without a request id gets the next one
// of the client's session (opened on first use), set on req; req must not
// change while the call is in flight. If the state machine has forgotten
// that session (SESSION_EXPIRED) and refused the write's only attempt, the
// write was never applied and goes again under a new session; after more
// attempts its outcome is unknown, and done gets ErrSessionExpired.
//
// done runs on the goroutine that delivered the answer (a replica's waiter,
// an actor, a timer): it must return quickly and never block. Submit costs
// no goroutine per call, so a server can keep thousands in flight; the
// gRPC Batch stream serves its calls this way.
func (c *Client) Submit(req proto.Message, deadline time.Time, cancel <-chan struct{}, done func(messages.Statused, error)) {
	s := c.submission(req, deadline, cancel, done)
	if op := messages.OpOf(req); op != nil && op.Deduplicated() && op.RequestID(req).GetClientId() == 0 {
		s.stamp = op
	}
	s.try()
}

// submit is Submit without request ids: req is sent as it is.
func (c *Client) submit(req proto.Message, deadline time.Time, cancel <-chan struct{}, done func(messages.Statused, error)) {
	c.submission(req, deadline, cancel, done).try()
}

func (c *Client) submission(req proto.Message, deadline time.Time, cancel <-chan struct{}, done func(messages.Statused, error)) *submission {
	return &submission{c: c, req: req, deadline: deadline, cancel: cancel, done: done, release: func() {}, backoff: 5 * time.Millisecond}
}

// submission is one Submit call across its attempts.
type submission struct {
	c        *Client
	req      proto.Message
	deadline time.Time
	cancel   <-chan struct{}
	done     func(messages.Statused, error)
	release  func() // marks the request id answered
	backoff  time.Duration
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

// send sends one attempt.
func (s *submission) send() {
	left := time.Until(s.deadline)
	if left <= 0 || s.cancelled() {
		s.giveUp()
		return
	}
	s.sent++
	reg := s.c.root.ActorSystem().ProcessRegistry
	a := &attempt{s: s}
	pid, ok := reg.Add(a, "submit"+reg.NextId())
	if !ok {
		s.finish(nil, messages.Errorf(messages.StatusCode_INTERNAL, "reply address %s is taken", pid.GetId()))
		return
	}
	a.pid = pid
	a.timer.Store(time.AfterFunc(min(left, s.c.attempt), a.timedOut))
	s.c.root.RequestWithCustomSender(s.c.target, s.req, pid)
}

// answered handles an attempt's outcome: res is the reply, or err says why
// there is none.
func (s *submission) answered(res any, err error) {
	var resp messages.Statused
	switch r := res.(type) {
	case nil:
		err = futureError(err)
	case *actor.DeadLetterResponse:
		err = futureError(actor.ErrDeadLetter)
	case messages.Statused:
		resp, err = r, r.GetStatus().Err()
	default:
		err = messages.Errorf(messages.StatusCode_INTERNAL, "answered with %T", res)
	}
	if messages.CodeOf(err) == messages.StatusCode_SESSION_EXPIRED && s.sess != nil {
		s.sessionExpired(err)
		return
	}
	if err == nil || !messages.IsRetryable(err) {
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
	if !messages.IsRetryable(err) {
		s.finish(nil, err)
		return
	}
	s.last = err
	wait := min(s.backoff, time.Until(s.deadline))
	if wait <= 0 {
		s.giveUp()
		return
	}
	s.backoff = min(2*s.backoff, 200*time.Millisecond)
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
	s.done(resp, err)
}

// attempt is the reply address of one try: the first of its answer and its
// timer ends it.
type attempt struct {
	s     *submission
	pid   *actor.PID
	timer atomic.Pointer[time.Timer] // nil until set, if it fires first
	over  atomic.Bool
}

var _ actor.Process = (*attempt)(nil)

// end claims the attempt's outcome; only the first caller gets true.
func (a *attempt) end() bool {
	if !a.over.CompareAndSwap(false, true) {
		return false
	}
	if t := a.timer.Load(); t != nil {
		t.Stop()
	}
	a.s.c.root.ActorSystem().ProcessRegistry.Remove(a.pid)
	return true
}

func (a *attempt) timedOut() {
	if a.end() {
		a.s.answered(nil, actor.ErrTimeout)
	}
}

// SendUserMessage receives the answer.
func (a *attempt) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	if a.end() {
		a.s.answered(msg, nil)
	}
}

func (a *attempt) SendSystemMessage(*actor.PID, any) {}
func (a *attempt) Stop(*actor.PID)                   {}
