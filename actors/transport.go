package actors

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// transport is the group as a kv.Transport: each attempt goes to the router
// with a reply address of its own — a small protoactor process with a
// timer, not a goroutine — and its answer is handed to done on the goroutine
// that delivered it.
type transport struct {
	root    *actor.RootContext
	target  *actor.PID
	serving *atomic.Int32 // replicas of this process that can serve (starting or up, or only up)
	// leaderless, when set, is since when (Unix nanoseconds; 0: a leader
	// is known) the group has known no leader; after patience, requests
	// that need the leader are answered ErrNoLeader at once.
	leaderless *atomic.Int64
	patience   time.Duration
}

var _ kv.Transport = transport{}

// Send implements kv.Transport.
func (t transport) Send(req proto.Message, deadline time.Time, done func(messages.Statused, error)) {
	if t.serving.Load() == 0 {
		if op := messages.OpOf(req); op == nil || op.Kind != messages.Admin { // status and fault injection still answer
			done(nil, kv.ErrNoReplica) // nothing to wait for here: another process may serve
			return
		}
	}
	if t.leaderless != nil {
		if since := t.leaderless.Load(); since != 0 && time.Since(time.Unix(0, since)) > t.patience && needsLeader(req) {
			done(nil, kv.ErrNoLeader) // cut off, or no majority: another process may serve
			return
		}
	}
	reg := t.root.ActorSystem().ProcessRegistry
	a := &attempt{registry: reg, done: done}
	pid, ok := reg.Add(a, "submit"+reg.NextId())
	if !ok {
		done(nil, messages.Errorf(messages.StatusCode_INTERNAL, "reply address %s is taken", pid.GetId()))
		return
	}
	a.pid = pid
	a.timer.Store(time.AfterFunc(time.Until(deadline), a.timedOut))
	t.root.RequestWithCustomSender(t.target, req, pid)
}

// needsLeader reports whether req is served only through the leader: a
// write, a linearizable read, a membership operation. Stale and snapshot
// reads of applied versions, status and fault injection are served by a
// replica alone.
func needsLeader(req proto.Message) bool {
	op := messages.OpOf(req)
	if op == nil {
		return false
	}
	switch op.Kind {
	case messages.Write, messages.Membership:
		return true
	case messages.Read:
		return !op.Stale(req)
	default:
		return false
	}
}

// futureError maps a protoactor request failure to a status error.
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

// attempt is the reply address of one attempt: the first of its answer and
// its timer ends it.
type attempt struct {
	registry *actor.ProcessRegistryValue
	pid      *actor.PID
	done     func(messages.Statused, error)
	timer    atomic.Pointer[time.Timer] // nil until set, if it fires first
	over     atomic.Bool
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
	a.registry.Remove(a.pid)
	return true
}

func (a *attempt) timedOut() {
	if a.end() {
		a.done(nil, futureError(actor.ErrTimeout))
	}
}

// SendUserMessage receives the answer.
func (a *attempt) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	if !a.end() {
		return
	}
	switch r := msg.(type) {
	case messages.Statused:
		a.done(r, nil)
	case *actor.DeadLetterResponse:
		a.done(nil, futureError(actor.ErrDeadLetter))
	default:
		a.done(nil, messages.Errorf(messages.StatusCode_INTERNAL, "answered with %T", msg))
	}
}

func (a *attempt) SendSystemMessage(*actor.PID, any) {}
func (a *attempt) Stop(*actor.PID)                   {}
