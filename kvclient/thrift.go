package kvclient

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// ThriftConfiguration is the Thrift configuration of kvserver's Thrift
// front end and of ThriftClient: framed transport, strict binary protocol,
// and a frame (one call) of at most maxFrame bytes, which also bounds every
// string, binary and list length read from it.
func ThriftConfiguration(maxFrame int) *thrift.TConfiguration {
	return &thrift.TConfiguration{
		MaxFrameSize:       int32(maxFrame),
		MaxMessageSize:     int32(maxFrame),
		TBinaryStrictRead:  thrift.BoolPtr(true),
		TBinaryStrictWrite: thrift.BoolPtr(true),
	}
}

// ThriftOptions configure DialThrift.
type ThriftOptions struct {
	// TLS, when set, connects with TLS (see TLSConfig); nil: plaintext.
	TLS *tls.Config
	// MaxIdle bounds the connections kept open between calls (default 8).
	// A Thrift connection carries one call at a time: concurrent calls
	// open more, and those beyond MaxIdle are closed after their call.
	MaxIdle int
	// DialTimeout bounds opening a connection (default 5 s).
	DialTimeout time.Duration
}

// ThriftClient calls kvserver's Thrift front end (server.thrift_listen):
// one call per connection at a time, connections kept for reuse. Its Do is
// a kv.Requests (kv.Requests(c.Do) is a kv.Database over Thrift), and it is
// a kv.Transport (kv.NewClient over it adds sessions and retries). Safe for
// concurrent use.
type ThriftClient struct {
	addr string
	o    ThriftOptions
	cfg  *thrift.TConfiguration

	mu     sync.Mutex
	idle   []*thriftConn // connections between calls
	closed bool
}

// thriftConn is one connection and its Thrift client.
type thriftConn struct {
	conn   net.Conn
	frames *sizedFrames
	client *thrift.TStandardClient
}

// NewThriftClient returns a client of the Thrift front end at addr. It
// connects on first use.
func NewThriftClient(addr string, o ThriftOptions) *ThriftClient {
	if o.MaxIdle <= 0 {
		o.MaxIdle = 8
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	return &ThriftClient{addr: addr, o: o, cfg: ThriftConfiguration(messages.MaxResponseMessageBytes)}
}

var _ kv.Transport = (*ThriftClient)(nil)

// Send implements kv.Transport: one Thrift call, on a goroutine of its own
// (the caller must not wait), bounded by deadline.
func (c *ThriftClient) Send(req proto.Message, deadline time.Time, done func(messages.Statused, error)) {
	go func() {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		done(c.Do(ctx, req))
	}()
}

func (c *ThriftClient) dial(ctx context.Context) (*thriftConn, error) {
	d := &net.Dialer{Timeout: c.o.DialTimeout}
	var conn net.Conn
	var err error
	if c.o.TLS != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: c.o.TLS}).DialContext(ctx, "tcp", c.addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", c.addr)
	}
	if err != nil {
		return nil, messages.Errorf(messages.StatusCode_UNAVAILABLE, "kvclient: dial thrift %s: %v", c.addr, err)
	}
	frames := &sizedFrames{TTransport: thrift.NewTFramedTransportConf(thrift.NewStreamTransportRW(conn), c.cfg), max: messages.MaxRequestMessageBytes}
	prot := thrift.NewTBinaryProtocolConf(frames, c.cfg)
	return &thriftConn{conn: conn, frames: frames, client: thrift.NewTStandardClient(prot, prot)}, nil
}

// sizedFrames refuses to send a frame over max bytes (the server's limit,
// over which it would close the connection): the call fails TOO_LARGE
// before anything is sent, and its connection is dropped.
type sizedFrames struct {
	thrift.TTransport
	max     int
	pending int  // bytes written since the last flush
	over    bool // the last flush was refused
}

func (f *sizedFrames) Write(p []byte) (int, error) {
	f.pending += len(p)
	return f.TTransport.Write(p)
}

func (f *sizedFrames) Flush(ctx context.Context) error {
	n := f.pending
	f.pending = 0
	if n > f.max {
		f.over = true
		return messages.Errorf(messages.StatusCode_TOO_LARGE, "kvclient: a call of %d bytes is over kvserver's %d-byte Thrift frame limit; it was not sent", n, f.max)
	}
	return f.TTransport.Flush(ctx)
}

// take returns an idle connection, or a new one.
func (c *ThriftClient) take(ctx context.Context) (*thriftConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, messages.Errorf(messages.StatusCode_UNAVAILABLE, "kvclient: the Thrift client is closed")
	}
	if n := len(c.idle); n > 0 {
		tc := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return tc, nil
	}
	c.mu.Unlock()
	return c.dial(ctx)
}

// put keeps tc for the next call, or closes it (client closed, or enough
// idle connections).
func (c *ThriftClient) put(tc *thriftConn) {
	c.mu.Lock()
	if !c.closed && len(c.idle) < c.o.MaxIdle {
		c.idle = append(c.idle, tc)
		tc = nil
	}
	c.mu.Unlock()
	if tc != nil {
		tc.conn.Close()
	}
}

// Do sends req, a request of any operation (messages.Ops), and returns its
// response, or the error its status holds. The call is bounded by ctx: when
// it ends first, the connection is dropped and the call fails with
// TIMEOUT or CANCELLED — a write's outcome is then unknown. The server
// bounds the call by its own server.request_timeout (Thrift carries no
// deadline).
func (c *ThriftClient) Do(ctx context.Context, req proto.Message) (messages.Statused, error) {
	if err := ctx.Err(); err != nil {
		return nil, messages.Errorf(messages.CodeOf(err), "call not sent: %v", err)
	}
	op := messages.OpOf(req)
	if op == nil {
		return nil, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "%T is no request of the KV API", req)
	}
	m, err := ThriftMethodOf(op)
	if err != nil {
		return nil, err
	}
	treq := m.NewRequest()
	if err := ToThrift(req, treq); err != nil {
		return nil, messages.Errorf(messages.StatusCode_INTERNAL, "kvclient: %v", err)
	}
	tc, err := c.take(ctx)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline() // zero: none
	if err := tc.conn.SetDeadline(deadline); err != nil {
		tc.conn.Close()
		return nil, messages.Errorf(messages.StatusCode_UNAVAILABLE, "kvclient: thrift %s: %v", c.addr, err)
	}
	// Cancelling ctx interrupts the call's reads and writes.
	stop := context.AfterFunc(ctx, func() { tc.conn.SetDeadline(time.Unix(1, 0)) })
	result := m.NewResult()
	_, err = tc.client.Call(ctx, op.RPC, m.NewArgs(treq), result)
	interrupted := !stop()
	if err != nil {
		tc.conn.Close()
		switch {
		case tc.frames.over:
			var e *messages.Error
			if errors.As(err, &e) {
				return nil, e
			}
			return nil, messages.Errorf(messages.StatusCode_TOO_LARGE, "kvclient: %v", err)
		case interrupted || ctx.Err() != nil:
			return nil, messages.Errorf(messages.CodeOf(ctx.Err()), "kvclient: thrift %s %s: %v (outcome unknown)", c.addr, op.RPC, ctx.Err())
		}
		var refused thrift.TApplicationException
		if errors.As(err, &refused) && refused.TypeId() == thrift.PROTOCOL_ERROR {
			return nil, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "kvclient: thrift %s %s: the server could not read the call: %v", c.addr, op.RPC, err)
		}
		var timeout net.Error
		if errors.As(err, &timeout) && timeout.Timeout() {
			return nil, messages.Errorf(messages.StatusCode_TIMEOUT, "kvclient: thrift %s %s: %v (outcome unknown)", c.addr, op.RPC, err)
		}
		return nil, messages.Errorf(messages.StatusCode_UNAVAILABLE, "kvclient: thrift %s %s: %v", c.addr, op.RPC, err)
	}
	c.put(tc)
	tresp := m.Success(result)
	if tresp == nil {
		return nil, messages.Errorf(messages.StatusCode_INTERNAL, "kvclient: thrift %s %s: the answer holds no response", c.addr, op.RPC)
	}
	resp := op.Response(nil)
	proto.Reset(resp)
	if err := FromThrift(tresp, resp); err != nil {
		return nil, messages.Errorf(messages.StatusCode_INTERNAL, "kvclient: thrift %s %s: %v", c.addr, op.RPC, err)
	}
	if resp.GetStatus() == nil {
		return nil, messages.Errorf(messages.StatusCode_INTERNAL, "kvclient: thrift %s %s: the response carries no status", c.addr, op.RPC)
	}
	if err := resp.GetStatus().Err(); err != nil {
		return nil, err
	}
	return resp, nil
}

// Close closes the idle connections; calls in flight close theirs when they
// end, and later calls fail with UNAVAILABLE. It is idempotent.
func (c *ThriftClient) Close() error {
	c.mu.Lock()
	idle := c.idle
	c.idle, c.closed = nil, true
	c.mu.Unlock()
	for _, tc := range idle {
		tc.conn.Close()
	}
	return nil
}
