package server

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// Observer is told about every request the core served: its operation name,
// outcome and duration (the server's Prometheus metrics implement it).
type Observer interface {
	Observe(op string, code messages.StatusCode, d time.Duration)
}

// Submitter serves a request of the KV API without a goroutine waiting
// for it: until deadline, or until cancel closes, it calls done once with
// the response or a status error; done must not block. A kv.Client is one.
type Submitter interface {
	Submit(req proto.Message, deadline time.Time, cancel <-chan struct{}, done func(messages.Statused, error))
}

// Core is the protocol-agnostic service layer — the original plan's
// KvServiceCore — over one Submitter: a kv.Client of the backend, which
// gives writes without a request id one of this process's session and
// retries retryable failures. Every front end takes one path through it:
// unary RPCs call Do, Batch calls Start, and both bound the request with
// the caller's deadline (or the core's default), submit it, and time it.
// It validates nothing: the group's router, or the standalone service,
// checks every request before anything is written.
type Core struct {
	backend Submitter
	timeout time.Duration
	obs     Observer
	access  Access
	lim     *limiter     // nil: no bounds
	flight  atomic.Int64 // calls admitted and not yet answered
}

// Access is who may run admin operations (messages.Op.Privileged): fault
// injection, membership changes, leader moves, status with digests.
type Access struct {
	// Admin allows admin operations at all (server.admin).
	Admin bool
	// Admins, when not empty, are the only identities allowed them (a
	// client certificate's subject, server.admins); empty: every caller,
	// when Admin is set.
	Admins []string
}

// allows reports whether the caller identity may run admin operations.
func (a Access) allows(identity string) bool {
	if !a.Admin {
		return false
	}
	if len(a.Admins) == 0 {
		return true
	}
	return identity != "" && slices.Contains(a.Admins, identity)
}

// identityKey is the context key of the caller's identity.
type identityKey struct{}

// WithIdentity returns ctx carrying the caller's authenticated identity: the
// subject of its verified client certificate (empty: anonymous).
func WithIdentity(ctx context.Context, identity string) context.Context {
	return context.WithValue(ctx, identityKey{}, identity)
}

// IdentityOf returns the caller identity ctx carries ("" when anonymous).
func IdentityOf(ctx context.Context) string {
	id, _ := ctx.Value(identityKey{}).(string)
	return id
}

// NewCore returns the core over backend. timeout bounds requests without a
// deadline; obs may be nil.
func NewCore(backend Submitter, timeout time.Duration, obs Observer) *Core {
	return &Core{backend: backend, timeout: timeout, obs: obs}
}

// WithLimits sets the bounds of what the core holds for its callers (see
// Limits; none by default) and returns c.
func (c *Core) WithLimits(l Limits) *Core {
	c.lim = newLimiter(l)
	return c
}

// deadline is a call's deadline: its own timeout when it has one (never
// past ctx's deadline), else ctx's deadline, else the core's default.
func (c *Core) deadline(ctx context.Context, start time.Time, timeout time.Duration) time.Time {
	deadline, ok := ctx.Deadline()
	if timeout > 0 {
		if d := start.Add(timeout); !ok || d.Before(deadline) {
			deadline, ok = d, true
		}
	}
	if !ok {
		deadline = start.Add(c.timeout)
	}
	return deadline
}

// InFlight is the number of calls admitted (past the bounds of Limits) and
// not yet answered.
func (c *Core) InFlight() int64 { return c.flight.Load() }

// limits are the core's bounds (zero: none).
func (c *Core) limits() Limits {
	if c.lim == nil {
		return Limits{}
	}
	return c.lim.l
}

// WithAccess sets who may run admin operations (none by default) and
// returns c.
func (c *Core) WithAccess(a Access) *Core {
	c.access = a
	return c
}

var _ Submitter = (*kv.Client)(nil)

// submit serves req, an operation op, under ctx and the call's own timeout
// (0: none), and calls done once, without a goroutine of its own: it checks
// the caller's rights, stamps its identity, waits (on the caller's
// goroutine, until the deadline) for room for the call, and hands it to the
// backend. done's sent, when not nil, must be called once the response has
// been handed to the connection (or dropped): a range read's room (its reply
// may be tens of MiB) is given back only then, so the replies a Batch stream
// holds behind a slow reader count too. It is nil for every other call.
func (c *Core) submit(ctx context.Context, op *messages.Op, req proto.Message, timeout time.Duration, done func(resp messages.Statused, err error, sent func())) {
	start := time.Now()
	finish := func(resp messages.Statused, err error, sent func()) {
		if c.obs != nil {
			c.obs.Observe(op.Name, messages.CodeOf(err), time.Since(start))
		}
		done(resp, err, sent)
	}
	deadline := c.deadline(ctx, start, timeout)
	if err := ctx.Err(); err != nil {
		finish(nil, messages.Errorf(messages.CodeOf(err), "%v", err), nil)
		return
	}
	identity := IdentityOf(ctx)
	if op.Privileged(req) && !c.access.allows(identity) {
		finish(nil, c.denied(op, identity), nil)
		return
	}
	// Sessions belong to the caller's identity: the server says whose
	// request ids these are, never the caller.
	if r, ok := req.(*messages.OpenSessionRequest); ok {
		r.Owner = identity
	} else if rid := op.RequestID(req); rid != nil {
		rid.Owner = identity
	}
	// Room for the call (see Limits): the caller waits here, which for a
	// Batch stream's reader means the stream stops reading.
	release, err := c.lim.admit(ctx, op, sizeOf(req), deadline)
	if err != nil {
		finish(nil, err, nil)
		return
	}
	c.flight.Add(1)
	c.backend.Submit(req, deadline, ctx.Done(), func(resp messages.Statused, err error) {
		c.flight.Add(-1)
		if !op.RangeRead() {
			release()
			finish(resp, err, nil)
			return
		}
		finish(resp, err, sync.OnceFunc(release)) // held until the reply is sent
	})
}

// giveBack calls sent, a call's "reply sent" callback, unless it is nil
// (nothing to give back).
func giveBack(sent func()) {
	if sent != nil {
		sent()
	}
}

// sentKey is the context key of a Thrift call's sentHolder.
type sentKey struct{}

// sentHolder keeps what a Thrift call gives back once its reply has been
// written to the connection. (A unary gRPC call gives it back when Do
// returns: gRPC queues a reply of any size on its stream at once, so
// waiting for its end would not bound more.)
type sentHolder struct {
	mu   sync.Mutex
	sent []func()
}

func (h *sentHolder) hold(f func()) {
	h.mu.Lock()
	h.sent = append(h.sent, f)
	h.mu.Unlock()
}

func (h *sentHolder) release() {
	h.mu.Lock()
	fs := h.sent
	h.sent = nil
	h.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// denied is the refusal of admin operation op to identity.
func (c *Core) denied(op *messages.Op, identity string) error {
	switch {
	case !c.access.Admin:
		return messages.Errorf(messages.StatusCode_PERMISSION_DENIED,
			"%s is an admin operation, and this server does not allow them (server.admin = false)", op.Name)
	case identity == "":
		return messages.Errorf(messages.StatusCode_PERMISSION_DENIED,
			"%s is an admin operation, allowed only to the identities in server.admins: connect with a client certificate", op.Name)
	default:
		return messages.Errorf(messages.StatusCode_PERMISSION_DENIED,
			"%s is an admin operation, and %q is not in server.admins", op.Name, identity)
	}
}

// Do serves one request of the KV API (any of messages.Ops) and returns its
// response, or the error its status holds: Start's path, waited for.
func (c *Core) Do(ctx context.Context, req proto.Message) (messages.Statused, error) {
	op := messages.OpOf(req)
	if op == nil {
		return nil, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "%T is no request of the KV API", req)
	}
	type answer struct {
		resp messages.Statused
		err  error
	}
	ch := make(chan answer, 1)
	c.submit(ctx, op, req, 0, func(resp messages.Statused, err error, sent func()) {
		if h, ok := ctx.Value(sentKey{}).(*sentHolder); ok && sent != nil {
			h.hold(sent) // a Thrift call: given back once its reply is written
		} else {
			giveBack(sent)
		}
		ch <- answer{resp, err}
	})
	a := <-ch
	if a.err == nil && a.resp != nil {
		a.err = a.resp.GetStatus().Err()
	}
	if a.err != nil {
		return nil, a.err
	}
	return a.resp, nil
}

// Start serves one call of a Batch stream and hands its reply to done,
// without a goroutine per call: done runs on the goroutine that delivered
// the answer, so it must not block. Before that it waits for room for the
// call (see Limits): the caller, a stream's reader, stops reading meanwhile.
// The caller calls done's sent, when not nil, once it has handed the reply
// to the stream (or dropped it).
func (c *Core) Start(ctx context.Context, call *messages.Call, done func(r *messages.Reply, sent func())) {
	name, req := call.Operation()
	op := messages.OpOf(req)
	if op == nil || !op.InBatch() {
		done(messages.NewReply(call.GetId(), name, nil, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "call %d names no operation", call.GetId())), nil)
		return
	}
	timeout := time.Duration(call.GetTimeoutMicros()) * time.Microsecond
	c.submit(ctx, op, req, timeout, func(resp messages.Statused, err error, sent func()) {
		if err == nil && resp != nil {
			err = resp.GetStatus().Err()
		}
		done(messages.NewReply(call.GetId(), op.Name, resp, err), sent)
	})
}
