// Package kvclient is a Go client of kvserver's gRPC API that sends calls
// over Batch streams: concurrent calls from many goroutines are gathered
// into few stream messages each way, which costs a fraction of one unary
// RPC per call. It resends only what is safe: a call still waiting to be
// sent when its stream ends (the server closing it on shutdown, or the
// connection breaking) goes out on a new stream, while a call already sent
// on a stream that broke fails with UNAVAILABLE (its outcome unknown for a
// write: retry it with the same request id).
//
// ThriftClient (thrift.go) calls kvserver's Thrift front end instead, one
// call per pooled connection; ToThrift and FromThrift (thriftconv.go) are
// the one conversion between the protobuf messages and the Thrift structs
// of messages/kv.thrift, which the server uses too.
package kvclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// Client sends calls to one kvserver over Streams Batch streams (one per
// gRPC connection), round robin.
type Client struct {
	conns   []*grpc.ClientConn
	streams []*stream
	next    atomic.Uint64
	ids     atomic.Uint64
}

// Options configure Dial.
type Options struct {
	// Streams is the number of connections, each with its own Batch stream
	// (default 2).
	Streams int
	// MaxCallsPerMessage bounds the calls gathered into one BatchRequest
	// (default 512).
	MaxCallsPerMessage int
	// TLS, when set, connects with TLS (see TLSConfig); nil: plaintext.
	TLS *tls.Config
}

// windowSize matches the server's HTTP/2 flow-control window (server.WindowSize).
const windowSize = 4 << 20

// A BatchRequest over messages.MaxRequestMessageBytes would break the
// stream, failing every call on it: no call over it is sent, and calls are
// gathered into messages under it.

// outgoing is a call on its way, with its size in a BatchRequest.
type outgoing struct {
	call *messages.Call
	size int
}

// Dial connects to the kvserver at addr. Streams open lazily, on first use.
func Dial(addr string, o Options) (*Client, error) {
	if o.Streams <= 0 {
		o.Streams = 2
	}
	if o.MaxCallsPerMessage <= 0 {
		o.MaxCallsPerMessage = 512
	}
	c := &Client{}
	for range o.Streams {
		conn, err := grpc.NewClient(addr,
			Credentials(o.TLS),
			grpc.WithInitialWindowSize(windowSize), grpc.WithInitialConnWindowSize(windowSize),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(messages.MaxResponseMessageBytes)))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("kvclient: dial %s: %w", addr, err)
		}
		c.conns = append(c.conns, conn)
		c.streams = append(c.streams, &stream{kv: messages.NewKVClient(conn), maxCalls: o.MaxCallsPerMessage})
	}
	return c, nil
}

// Close closes every stream and connection; calls in flight fail.
func (c *Client) Close() error {
	for _, s := range c.streams {
		s.close()
	}
	for _, conn := range c.conns {
		conn.Close()
	}
	return nil
}

// Do sends one call (its id is set here) and waits for the reply. The
// call's timeout_micros is taken from ctx's deadline when it has one.
func (c *Client) Do(ctx context.Context, call *messages.Call) (*messages.Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, messages.Errorf(messages.CodeOf(err), "call not sent: %v", err)
	}
	call.Id = c.ids.Add(1)
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		if left <= 0 {
			return nil, messages.Errorf(messages.StatusCode_TIMEOUT, "deadline passed before the call was sent")
		}
		call.TimeoutMicros = max(1, left.Microseconds())
	}
	size := messages.InBatch(proto.Size(call))
	if size > messages.MaxRequestMessageBytes {
		return nil, messages.Errorf(messages.StatusCode_TOO_LARGE, "kvclient: a call of %d bytes is over kvserver's %d-byte message limit; it was not sent", size, messages.MaxRequestMessageBytes)
	}
	s := c.streams[c.next.Add(1)%uint64(len(c.streams))]
	r, err := s.do(ctx, outgoing{call: call, size: size})
	if err != nil {
		return nil, err
	}
	return r, r.GetStatus().Err()
}

// Call sends req, a request a Batch call carries, and returns its response
// of type T (the operation's, messages.Ops), or the error its status holds.
func Call[T messages.Statused](ctx context.Context, c *Client, req proto.Message) (T, error) {
	var zero T
	call, ok := messages.NewCall(0, req)
	if !ok {
		return zero, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "%T is no Batch call", req)
	}
	r, err := c.Do(ctx, call)
	if err != nil {
		return zero, err
	}
	resp, err := r.Outcome()
	if err != nil {
		return zero, err
	}
	out, ok := resp.(T)
	if !ok {
		return zero, messages.Errorf(messages.StatusCode_INTERNAL, "answered %T, want %T", resp, zero)
	}
	return out, nil
}

var errClosed = messages.Errorf(messages.StatusCode_UNAVAILABLE, "kvclient: closed")

// stream is one connection's Batch stream; it opens lazily and reopens on
// the next call after it broke or the server asked to close it.
type stream struct {
	kv       messages.KVClient
	maxCalls int

	mu     sync.Mutex
	closed bool
	live   *liveStream              // nil until the first call, and after a break
	lives  map[*liveStream]struct{} // every stream whose goroutines run
	all    sync.WaitGroup
}

// liveStream is one open gRPC stream with its sender and receiver
// goroutines, and the calls registered on it that wait for a reply.
type liveStream struct {
	cancel  context.CancelFunc
	outbox  chan outgoing
	closing chan struct{} // closed when the server asked to close the stream
	done    chan struct{} // closed when both goroutines have exited

	mu      sync.Mutex
	ended   bool // broken or closing: no new calls
	pending map[uint64]*waiter
	// answered: a reply came on the stream. refused: the server ended it
	// RESOURCE_EXHAUSTED before any (server.max_streams): it read none of
	// its calls, so they failed with that, nothing done.
	answered bool
	refused  error
}

// waiter is a registered call's caller. A call that was never handed to
// gRPC cannot have reached the server, so when its stream ends the caller
// sends it again on a new stream; one that was may have run, and its caller
// learns that the outcome is unknown.
type waiter struct {
	reply chan *messages.Reply // the reply; nil: the stream broke after sending; notSent
	sent  bool                 // handed to gRPC; guarded by liveStream.mu
}

// notSent answers a waiter whose call never left its stream.
var notSent = &messages.Reply{}

// maxStreamsPerCall bounds the streams one call is registered on, should
// each end (the server closing it, or the connection breaking) before
// sending the call.
const maxStreamsPerCall = 8

func (s *stream) do(ctx context.Context, call outgoing) (*messages.Reply, error) {
	for range maxStreamsPerCall {
		r, err := s.try(ctx, call)
		if r != notSent {
			return r, err
		}
	}
	return nil, messages.Errorf(messages.StatusCode_UNAVAILABLE, "kvclient: %d streams ended before the call could be sent; it was not sent", maxStreamsPerCall)
}

// try registers call on the current stream and waits for its reply; it
// returns notSent when the stream ended without sending it.
func (s *stream) try(ctx context.Context, out outgoing) (*messages.Reply, error) {
	w := &waiter{reply: make(chan *messages.Reply, 1)}
	live, err := s.current()
	if err != nil {
		return nil, err
	}
	id := out.call.GetId()
	if !live.register(id, w) {
		return notSent, nil // closing: the next try opens a new stream
	}
	notSentErr := func() error {
		live.forget(id)
		return messages.Errorf(messages.CodeOf(ctx.Err()), "call not sent: %v", ctx.Err())
	}
	if ctx.Err() != nil { // select below picks any ready case
		return nil, notSentErr()
	}
	select {
	case live.outbox <- out:
	case <-live.done:
	case <-ctx.Done():
		return nil, notSentErr()
	}
	select {
	case r := <-w.reply:
		if r == nil {
			live.mu.Lock()
			refused := live.refused
			live.mu.Unlock()
			if refused != nil {
				return nil, refused
			}
			return nil, messages.Errorf(messages.StatusCode_UNAVAILABLE, "kvclient: the stream broke; the outcome is unknown")
		}
		return r, nil
	case <-ctx.Done():
		live.forget(id)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, messages.Errorf(messages.StatusCode_TIMEOUT, "no reply before the deadline; the outcome is unknown")
		}
		return nil, messages.Errorf(messages.StatusCode_CANCELLED, "%v", ctx.Err())
	}
}

// current returns the open stream, opening one if needed.
func (s *stream) current() (*liveStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if s.live == nil {
		ctx, cancel := context.WithCancel(context.Background())
		bs, err := s.kv.Batch(ctx)
		if err != nil {
			cancel()
			return nil, messages.FromGRPC(err)
		}
		live := &liveStream{
			cancel:  cancel,
			outbox:  make(chan outgoing, 4096),
			closing: make(chan struct{}),
			done:    make(chan struct{}),
			pending: map[uint64]*waiter{},
		}
		s.live = live
		if s.lives == nil {
			s.lives = map[*liveStream]struct{}{}
		}
		s.lives[live] = struct{}{}
		var both sync.WaitGroup
		both.Add(2)
		s.all.Add(1)
		go func() { defer both.Done(); s.send(bs, live) }()
		go func() { defer both.Done(); s.receive(bs, live) }()
		go func() { // closes done once both have exited; owned through s.all
			defer s.all.Done()
			both.Wait()
			close(live.done)
			s.mu.Lock()
			delete(s.lives, live)
			s.mu.Unlock()
		}()
	}
	return s.live, nil
}

func (l *liveStream) register(id uint64, w *waiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return false
	}
	l.pending[id] = w
	return true
}

// markSent records that calls are being handed to gRPC.
func (l *liveStream) markSent(calls []*messages.Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range calls {
		if w, ok := l.pending[c.GetId()]; ok {
			w.sent = true
		}
	}
}

// end stops l taking calls and answers every waiting call it never sent
// with notSent, and, when broken, every call it sent with nil.
func (l *liveStream) end(broken bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended = true
	for id, w := range l.pending {
		switch {
		case !w.sent:
			w.reply <- notSent
		case broken:
			w.reply <- nil
		default:
			continue // sent: its reply may still come
		}
		delete(l.pending, id)
	}
}

func (l *liveStream) forget(id uint64) {
	l.mu.Lock()
	delete(l.pending, id)
	l.mu.Unlock()
}

// send gathers the calls waiting in the outbox into one message at a time.
// When the server asks to close the stream it closes its side, hands the
// calls it did not send back to their callers, and exits.
func (s *stream) send(bs messages.KV_BatchClient, live *liveStream) {
	var next *outgoing // taken from the outbox, for the next message
	for {
		var out outgoing
		if next != nil {
			out, next = *next, nil
		} else {
			select {
			case out = <-live.outbox:
			case <-live.closing:
				_ = bs.CloseSend()
				live.end(false)
				return
			case <-bs.Context().Done():
				return
			}
			// Calls come in bursts (a reply message wakes many
			// callers); let the callers already runnable add theirs
			// first.
			runtime.Gosched()
		}
		req := &messages.BatchRequest{Calls: []*messages.Call{out.call}}
		size := out.size
	gather:
		for len(req.Calls) < s.maxCalls {
			select {
			case o := <-live.outbox:
				if size+o.size > messages.MaxRequestMessageBytes {
					next = &o
					break gather
				}
				req.Calls = append(req.Calls, o.call)
				size += o.size
			default:
				break gather
			}
		}
		live.markSent(req.Calls)
		if err := bs.Send(req); err != nil {
			s.broken(live)
			return
		}
	}
}

// receive hands each reply to its caller, until the stream ends.
func (s *stream) receive(bs messages.KV_BatchClient, live *liveStream) {
	for {
		resp, err := bs.Recv()
		if err != nil {
			live.mu.Lock()
			if e := messages.FromGRPC(err); !live.answered && messages.CodeOf(e) == messages.StatusCode_RESOURCE_EXHAUSTED {
				live.refused = e
			}
			live.mu.Unlock()
			s.broken(live) // also the normal end of a stream the server closed
			return
		}
		live.mu.Lock()
		live.answered = true
		for _, r := range resp.GetReplies() {
			if w, ok := live.pending[r.GetId()]; ok {
				delete(live.pending, r.GetId())
				w.reply <- r
			}
		}
		if resp.GetClosing() && !live.ended {
			live.ended = true
			close(live.closing)
		}
		live.mu.Unlock()
		if resp.GetClosing() {
			s.retire(live)
		}
	}
}

// retire makes the next call open a new stream.
func (s *stream) retire(live *liveStream) {
	s.mu.Lock()
	if s.live == live {
		s.live = nil
	}
	s.mu.Unlock()
}

// broken ends live: every call it sent that waits on it fails
// (UNAVAILABLE, outcome unknown), those it did not send go to a new stream,
// and the next call opens one.
func (s *stream) broken(live *liveStream) {
	s.retire(live)
	live.cancel()
	live.end(true)
}

func (s *stream) close() {
	s.mu.Lock()
	s.closed = true
	lives := make([]*liveStream, 0, len(s.lives))
	for l := range s.lives {
		lives = append(lives, l)
	}
	s.mu.Unlock()
	for _, l := range lives {
		s.broken(l)
	}
	s.all.Wait()
}
