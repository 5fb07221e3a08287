package kvclient

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// Three kv.Transports to kvserver: a Client's Batch streams (Send), one
// unary RPC per attempt (Unary), and several endpoints with failover
// (Endpoints). A kv.Client over any of them is the Go API of a kvserver,
// with its session and retries.

var _ kv.Transport = (*Client)(nil)

// Send implements kv.Transport: the request is one Batch call.
func (c *Client) Send(req proto.Message, deadline time.Time, done func(messages.Statused, error)) {
	call, ok := messages.NewCall(0, req)
	if !ok {
		done(nil, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "%T is no Batch call", req))
		return
	}
	go func() { // the caller must not wait: the stream blocks until the reply
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		reply, err := c.Do(ctx, call)
		if err != nil {
			done(nil, err)
			return
		}
		done(reply.Outcome())
	}()
}

// Unary is a kv.Transport that sends each attempt as the unary RPC of its
// operation (messages.Op.RPC) on conn: no stream to set up, for short-lived
// programs such as kvctl.
type Unary struct {
	conn grpc.ClientConnInterface
}

// NewUnary returns the unary transport over conn.
func NewUnary(conn grpc.ClientConnInterface) *Unary { return &Unary{conn: conn} }

var _ kv.Transport = (*Unary)(nil)

// Send implements kv.Transport.
func (u *Unary) Send(req proto.Message, deadline time.Time, done func(messages.Statused, error)) {
	op := messages.OpOf(req)
	if op == nil {
		done(nil, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "%T is no request of the KV API", req))
		return
	}
	go func() {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		resp := op.Response(nil)
		if err := u.conn.Invoke(ctx, "/"+messages.KV_ServiceDesc.ServiceName+"/"+op.RPC, req, resp); err != nil {
			done(nil, messages.FromGRPC(err))
			return
		}
		done(resp, nil)
	}()
}

// Endpoints is a kv.Transport over the transports of several kvserver
// processes (a cluster's, or one process given twice): each attempt goes to
// the current one, and an attempt that fails retryably (UNAVAILABLE,
// TIMEOUT) makes the next one current, so the client's retry goes
// elsewhere. A snapshot read answered TRANSACTION_TOO_OLD is asked of the
// others within the same attempt before it is answered so: a process whose
// replica restarted or installed a snapshot since the version no longer
// holds the history another may still hold.
type Endpoints struct {
	ts      []kv.Transport
	current atomic.Uint64
}

// NewEndpoints returns the transport over ts, the first current.
func NewEndpoints(ts ...kv.Transport) *Endpoints { return &Endpoints{ts: ts} }

var _ kv.Transport = (*Endpoints)(nil)

// Send implements kv.Transport.
func (e *Endpoints) Send(req proto.Message, deadline time.Time, done func(messages.Statused, error)) {
	first := e.current.Load()
	snapshot := messages.OpOf(req) != nil && messages.OpOf(req).Kind == messages.SnapshotRead
	var try func(k uint64, tooOld messages.Statused)
	try = func(k uint64, tooOld messages.Statused) {
		i := (first + k) % uint64(len(e.ts))
		e.ts[i].Send(req, deadline, func(resp messages.Statused, err error) {
			if err == nil && resp != nil {
				err = resp.GetStatus().Err()
			}
			switch {
			case snapshot && messages.CodeOf(err) == messages.StatusCode_TRANSACTION_TOO_OLD && k+1 < uint64(len(e.ts)) && time.Now().Before(deadline):
				try(k+1, resp)
				return
			case messages.IsRetryable(err):
				e.current.CompareAndSwap(i, (i+1)%uint64(len(e.ts)))
				if tooOld != nil { // an earlier endpoint answered; this one could not
					done(tooOld, nil)
					return
				}
			}
			done(resp, err)
		})
	}
	try(0, nil)
}
