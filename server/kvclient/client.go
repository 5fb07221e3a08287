// Package kvclient is a Go client of kvserver's gRPC API that sends calls
// over Batch streams: concurrent calls from many goroutines are gathered
// into few stream messages each way, which costs a fraction of one unary
// RPC per call. It does not retry; a call whose stream breaks fails with
// UNAVAILABLE (its outcome unknown for a write: retry it with the same
// request id).
package kvclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

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
}

// maxRecvMsgSize matches the server's largest response (server.MaxSendMsgSize).
const maxRecvMsgSize = 64 << 20

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
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)))
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
	call.Id = c.ids.Add(1)
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		if left <= 0 {
			return nil, messages.Errorf(messages.StatusCode_TIMEOUT, "deadline passed before the call was sent")
		}
		call.TimeoutMicros = max(1, left.Microseconds())
	}
	s := c.streams[c.next.Add(1)%uint64(len(c.streams))]
	r, err := s.do(ctx, call)
	if err != nil {
		return nil, err
	}
	return r, r.GetStatus().Err()
}

// Put sets a key.
func (c *Client) Put(ctx context.Context, req *messages.PutRequest) (*messages.PutResponse, error) {
	r, err := c.Do(ctx, &messages.Call{Request: &messages.Call_Put{Put: req}})
	return r.GetPut(), err
}

// Get reads a key.
func (c *Client) Get(ctx context.Context, req *messages.GetRequest) (*messages.GetResponse, error) {
	r, err := c.Do(ctx, &messages.Call{Request: &messages.Call_Get{Get: req}})
	return r.GetGet(), err
}

// Delete removes a key.
func (c *Client) Delete(ctx context.Context, req *messages.DeleteRequest) (*messages.DeleteResponse, error) {
	r, err := c.Do(ctx, &messages.Call{Request: &messages.Call_Delete{Delete: req}})
	return r.GetDelete(), err
}

// GetRange reads a range.
func (c *Client) GetRange(ctx context.Context, req *messages.GetRangeRequest) (*messages.GetRangeResponse, error) {
	r, err := c.Do(ctx, &messages.Call{Request: &messages.Call_GetRange{GetRange: req}})
	return r.GetGetRange(), err
}

// AtomicCommit commits a transaction.
func (c *Client) AtomicCommit(ctx context.Context, req *messages.AtomicCommitRequest) (*messages.AtomicCommitResponse, error) {
	r, err := c.Do(ctx, &messages.Call{Request: &messages.Call_AtomicCommit{AtomicCommit: req}})
	return r.GetAtomicCommit(), err
}

// GetReadVersion returns the latest committed version.
func (c *Client) GetReadVersion(ctx context.Context) (*messages.GetReadVersionResponse, error) {
	r, err := c.Do(ctx, &messages.Call{Request: &messages.Call_GetReadVersion{GetReadVersion: &messages.GetReadVersionRequest{}}})
	return r.GetGetReadVersion(), err
}

var errClosed = messages.Errorf(messages.StatusCode_UNAVAILABLE, "kvclient: closed")

// stream is one Batch stream with its sender and receiver goroutines; it
// reopens on the next call after it breaks.
type stream struct {
	kv       messages.KVClient
	maxCalls int

	mu      sync.Mutex
	closed  bool
	live    *liveStream // nil until the first call, and after a break
	pending map[uint64]chan *messages.Reply
}

// liveStream is one open gRPC stream; its receiving goroutine exits when it
// breaks or is closed, and done is closed then.
type liveStream struct {
	bs       messages.KV_BatchClient
	cancel   context.CancelFunc
	done     chan struct{}
	maxCalls int

	mu      sync.Mutex
	queue   []*messages.Call // calls waiting to be sent
	sending bool             // a caller is sending the queue
}

func (s *stream) do(ctx context.Context, call *messages.Call) (*messages.Reply, error) {
	ch := make(chan *messages.Reply, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	if s.live == nil {
		if err := s.open(); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	live := s.live
	s.pending[call.GetId()] = ch
	s.mu.Unlock()

	if err := live.enqueue(call); err != nil {
		s.broken(live)
	}
	select {
	case r := <-ch:
		if r == nil {
			return nil, messages.Errorf(messages.StatusCode_UNAVAILABLE, "kvclient: the stream broke; the outcome is unknown")
		}
		return r, nil
	case <-ctx.Done():
		s.forget(call.GetId())
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, messages.Errorf(messages.StatusCode_TIMEOUT, "no reply before the deadline; the outcome is unknown")
		}
		return nil, messages.Errorf(messages.StatusCode_CANCELLED, "%v", ctx.Err())
	}
}

// enqueue queues call and, unless another caller is already sending,
// sends everything queued — its own call and those that arrive meanwhile —
// gathered into as few messages as possible (flat combining: no goroutine
// hand-off when the stream is idle, batches when it is busy).
func (l *liveStream) enqueue(call *messages.Call) error {
	l.mu.Lock()
	l.queue = append(l.queue, call)
	if l.sending {
		l.mu.Unlock()
		return nil
	}
	l.sending = true
	for len(l.queue) > 0 {
		n := min(len(l.queue), l.maxCalls)
		req := &messages.BatchRequest{Calls: l.queue[:n:n]}
		l.queue = l.queue[n:]
		if len(l.queue) == 0 {
			l.queue = nil
		}
		l.mu.Unlock()
		err := l.bs.Send(req)
		l.mu.Lock()
		if err != nil {
			l.sending = false
			l.mu.Unlock()
			return err
		}
	}
	l.sending = false
	l.mu.Unlock()
	return nil
}

func (s *stream) forget(id uint64) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

// open starts a stream and its receiving goroutine; called with s.mu held.
func (s *stream) open() error {
	ctx, cancel := context.WithCancel(context.Background())
	bs, err := s.kv.Batch(ctx)
	if err != nil {
		cancel()
		return messages.FromGRPC(err)
	}
	live := &liveStream{bs: bs, cancel: cancel, done: make(chan struct{}), maxCalls: s.maxCalls}
	s.live = live
	if s.pending == nil {
		s.pending = map[uint64]chan *messages.Reply{}
	}
	go func() {
		defer close(live.done)
		s.receive(bs, live)
	}()
	return nil
}

// receive hands each reply to its caller.
func (s *stream) receive(bs messages.KV_BatchClient, live *liveStream) {
	for {
		resp, err := bs.Recv()
		if err != nil {
			s.broken(live)
			return
		}
		s.mu.Lock()
		for _, r := range resp.GetReplies() {
			if ch, ok := s.pending[r.GetId()]; ok {
				delete(s.pending, r.GetId())
				ch <- r
			}
		}
		s.mu.Unlock()
	}
}

// broken fails every call waiting on live and lets the next call reopen.
func (s *stream) broken(live *liveStream) {
	live.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live == live {
		s.live = nil
		for id, ch := range s.pending {
			ch <- nil
			delete(s.pending, id)
		}
	}
}

func (s *stream) close() {
	s.mu.Lock()
	s.closed = true
	live := s.live
	s.mu.Unlock()
	if live != nil {
		s.broken(live)
		<-live.done
	}
}
