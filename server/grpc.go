package server

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// Message size limits of the gRPC API: the largest request is an atomic
// commit of 8 MiB (DESIGN.md), plus room for its framing; responses carry up
// to 10,000 range entries.
const (
	MaxRecvMsgSize = 9 << 20
	MaxSendMsgSize = 64 << 20
)

// grpcService is the gRPC adapter of the Core: one line per method, errors
// converted to gRPC statuses with the one-to-one code mapping.
type grpcService struct {
	messages.UnimplementedKVServer
	core  *Core
	drain <-chan struct{} // closed when the server shuts down
}

// RegisterKV registers the KV service of core on s. Closing drain ends its
// Batch streams once their calls in flight are answered, so that a graceful
// stop does not wait for clients to close them.
func RegisterKV(s *grpc.Server, core *Core, drain <-chan struct{}) {
	messages.RegisterKVServer(s, &grpcService{core: core, drain: drain})
}

func out[T any](resp T, err error) (T, error) { return resp, messages.ToGRPC(err) }

func (s *grpcService) Get(ctx context.Context, r *messages.GetRequest) (*messages.GetResponse, error) {
	return out(s.core.Get(ctx, r))
}

func (s *grpcService) Put(ctx context.Context, r *messages.PutRequest) (*messages.PutResponse, error) {
	return out(s.core.Put(ctx, r))
}

func (s *grpcService) Delete(ctx context.Context, r *messages.DeleteRequest) (*messages.DeleteResponse, error) {
	return out(s.core.Delete(ctx, r))
}

func (s *grpcService) ClearRange(ctx context.Context, r *messages.ClearRangeRequest) (*messages.ClearRangeResponse, error) {
	return out(s.core.ClearRange(ctx, r))
}

func (s *grpcService) ListKeys(ctx context.Context, r *messages.ListKeysRequest) (*messages.ListKeysResponse, error) {
	return out(s.core.ListKeys(ctx, r))
}

func (s *grpcService) GetRange(ctx context.Context, r *messages.GetRangeRequest) (*messages.GetRangeResponse, error) {
	return out(s.core.GetRange(ctx, r))
}

func (s *grpcService) AtomicCommit(ctx context.Context, r *messages.AtomicCommitRequest) (*messages.AtomicCommitResponse, error) {
	return out(s.core.AtomicCommit(ctx, r))
}

func (s *grpcService) GetReadVersion(ctx context.Context, r *messages.GetReadVersionRequest) (*messages.GetReadVersionResponse, error) {
	return out(s.core.GetReadVersion(ctx, r))
}

func (s *grpcService) SnapshotRead(ctx context.Context, r *messages.SnapshotReadRequest) (*messages.SnapshotReadResponse, error) {
	return out(s.core.SnapshotRead(ctx, r))
}

func (s *grpcService) SnapshotGetRange(ctx context.Context, r *messages.SnapshotGetRangeRequest) (*messages.SnapshotGetRangeResponse, error) {
	return out(s.core.SnapshotGetRange(ctx, r))
}

func (s *grpcService) SetFaultInjection(ctx context.Context, r *messages.SetFaultInjectionRequest) (*messages.SetFaultInjectionResponse, error) {
	return out(s.core.SetFaultInjection(ctx, r))
}

func (s *grpcService) Status(ctx context.Context, r *messages.StatusRequest) (*messages.StatusResponse, error) {
	return out(s.core.Status(ctx, r))
}

// Batch serves a stream of batched calls: every call runs concurrently (at
// most maxBatchInFlight per stream), and replies go back as they complete,
// gathered into as few messages as possible. The stream ends when the client
// closes its side and every call has been answered.
func (s *grpcService) Batch(stream messages.KV_BatchServer) error {
	ctx := stream.Context()
	out := &replySender{stream: stream}
	// The receiving goroutine ends with the stream: when the client closes
	// its side, or when gRPC cancels the stream after this handler returns.
	reqs := make(chan *messages.BatchRequest)
	ended := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				ended <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				ended <- ctx.Err()
				return
			}
		}
	}()
	slots := make(chan struct{}, maxBatchInFlight)
	var calls sync.WaitGroup
	var recvErr error
serve:
	for {
		var req *messages.BatchRequest
		select {
		case req = <-reqs:
		case err := <-ended:
			if !errors.Is(err, io.EOF) {
				recvErr = err
			}
			break serve
		case <-s.drain:
			break serve // shutting down: answer what was received, then end the stream
		}
		for _, call := range req.GetCalls() {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				recvErr = ctx.Err()
				break serve
			}
			calls.Add(1)
			go func() {
				defer calls.Done()
				out.send(s.core.Call(ctx, call))
				<-slots
			}()
		}
	}
	calls.Wait() // every reply is sent (or the stream failed) once all have returned
	if err := out.err(); err != nil {
		return err
	}
	return recvErr
}

// maxBatchInFlight bounds the calls of one Batch stream served at once; the
// stream stops reading until one finishes.
const maxBatchInFlight = 4096

// maxRepliesPerMessage bounds the replies gathered into one BatchResponse.
const maxRepliesPerMessage = 512

// replySender sends a Batch stream's replies by flat combining: the call
// that finds no send in progress sends its reply and every reply queued
// meanwhile; the others only queue theirs. An idle stream answers without a
// goroutine hand-off, a busy one in few messages.
type replySender struct {
	stream  messages.KV_BatchServer
	mu      sync.Mutex
	queue   []*messages.Reply
	sending bool
	failed  error // the first send failure; later replies are dropped
}

func (r *replySender) send(reply *messages.Reply) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed != nil {
		return
	}
	r.queue = append(r.queue, reply)
	if r.sending {
		return
	}
	r.sending = true
	for len(r.queue) > 0 && r.failed == nil {
		n := min(len(r.queue), maxRepliesPerMessage)
		msg := &messages.BatchResponse{Replies: r.queue[:n:n]}
		r.queue = r.queue[n:]
		r.mu.Unlock()
		err := r.stream.Send(msg)
		r.mu.Lock()
		r.failed = err
	}
	r.queue = nil
	r.sending = false
}

func (r *replySender) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// strictCodec is the server's protobuf codec. gRPC answers a request that
// cannot be decoded with INTERNAL; the API promises INVALID_ARGUMENT for
// malformed protobuf. So the codec accepts the bytes, remembers the decode
// error for that request message, and the unary interceptor answers with it.
type strictCodec struct {
	inner     encoding.CodecV2
	malformed *sync.Map // request message -> decode error
}

func (c strictCodec) Marshal(v any) (mem.BufferSlice, error) { return c.inner.Marshal(v) }

func (c strictCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if err := c.inner.Unmarshal(data, v); err != nil {
		if m, ok := v.(proto.Message); ok {
			proto.Reset(m)
		}
		c.malformed.Store(v, err)
	}
	return nil
}

func (c strictCodec) Name() string { return c.inner.Name() }

// strictStream fails a stream whose message could not be decoded, with
// INVALID_ARGUMENT, as the unary check does for a call.
type strictStream struct {
	grpc.ServerStream
	malformed *sync.Map
}

func (s *strictStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err, ok := s.malformed.LoadAndDelete(m); ok {
		return grpcstatus.Errorf(codes.InvalidArgument, "invalid argument: malformed protobuf message: %v", err)
	}
	return nil
}

// ServerOptions returns the gRPC server options of the KV API: message size
// limits and malformed-request handling. Extra interceptors run after the
// malformed check.
func ServerOptions(interceptors ...grpc.UnaryServerInterceptor) []grpc.ServerOption {
	malformed := &sync.Map{}
	check := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err, ok := malformed.LoadAndDelete(req); ok {
			return nil, grpcstatus.Errorf(codes.InvalidArgument, "invalid argument: malformed protobuf request: %v", err)
		}
		return h(ctx, req)
	}
	checkStream := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, &strictStream{ServerStream: ss, malformed: malformed})
	}
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(strictCodec{inner: encoding.GetCodecV2("proto"), malformed: malformed}),
		grpc.ChainStreamInterceptor(checkStream),
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.MaxSendMsgSize(MaxSendMsgSize),
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{check}, interceptors...)...),
	}
}
