package server

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// grpcService is the gRPC adapter of the Core: every unary method of the KV
// service is one row of the operation table, served by Core.Do, its error
// converted to a gRPC status with the one-to-one code mapping; Batch
// streams go through Core.Start.
type grpcService struct {
	core    *Core
	drain   <-chan struct{} // closed when the server shuts down
	streams atomic.Int64    // Batch streams open
}

// RegisterKV registers the KV service of core on s. Closing drain tells the
// clients of its Batch streams to close them (BatchResponse.closing), so that
// a graceful stop does not wait out clients that would keep them open.
func RegisterKV(s *grpc.Server, core *Core, drain <-chan struct{}) {
	svc := &grpcService{core: core, drain: drain}
	desc := grpc.ServiceDesc{
		ServiceName: messages.KV_ServiceDesc.ServiceName,
		HandlerType: (*any)(nil),
		Metadata:    messages.KV_ServiceDesc.Metadata,
	}
	for _, op := range messages.Ops() {
		desc.Methods = append(desc.Methods, grpc.MethodDesc{MethodName: op.RPC, Handler: svc.unary(op)})
	}
	for _, sd := range messages.KV_ServiceDesc.Streams {
		sd.Handler = func(_ any, stream grpc.ServerStream) error {
			return svc.Batch(&grpc.GenericServerStream[messages.BatchRequest, messages.BatchResponse]{ServerStream: stream})
		}
		desc.Streams = append(desc.Streams, sd)
	}
	s.RegisterService(&desc, svc)
}

// unary is the handler of op's method: the request decoded, served by
// Core.Do, the response sent without a status (the gRPC status carries it).
func (s *grpcService) unary(op *messages.Op) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	method := "/" + messages.KV_ServiceDesc.ServiceName + "/" + op.RPC
	serve := func(ctx context.Context, req any) (any, error) {
		resp, err := s.core.Do(WithIdentity(ctx, peerIdentity(ctx)), req.(proto.Message))
		if err != nil {
			return nil, messages.ToGRPC(err)
		}
		m := resp.ProtoReflect()
		m.Clear(m.Descriptor().Fields().ByName("status"))
		return resp, nil
	}
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := op.NewRequest()
		if err := dec(req); err != nil {
			return nil, err
		}
		if interceptor == nil {
			return serve(ctx, req)
		}
		return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: method}, serve)
	}
}

// Batch serves a stream of batched calls: every call runs concurrently (at
// most maxBatchInFlight per stream), and replies go back as they complete,
// gathered into as few messages as the sender can. The stream ends when the
// client closes its side and every call has been answered. On shutdown the
// server tells the client (BatchResponse.closing), which closes its side.
func (s *grpcService) Batch(stream messages.KV_BatchServer) error {
	ctx := WithIdentity(stream.Context(), peerIdentity(stream.Context()))
	l := s.core.limits()
	if n := s.streams.Add(1); l.Streams > 0 && n > int64(l.Streams) {
		s.streams.Add(-1)
		return messages.ToGRPC(messages.Errorf(messages.StatusCode_RESOURCE_EXHAUSTED,
			"%d Batch streams are open, the most this server keeps (server.max_streams): retry after a pause", l.Streams))
	}
	defer s.streams.Add(-1)
	calls, streamBytes := maxBatchInFlight, int64(0)
	if l.StreamCalls > 0 {
		calls = l.StreamCalls
	}
	var held *semaphore.Weighted // the stream's request bytes in flight
	if l.StreamBytes > 0 {
		streamBytes, held = l.StreamBytes, semaphore.NewWeighted(l.StreamBytes)
	}
	// A call holds its slot until its reply is taken from replies, so
	// replies never holds more than the stream's calls and a call's done
	// never blocks (it may run on a replica's goroutine).
	slots := make(chan struct{}, calls)
	replies := make(chan outgoing, calls)
	sent := make(chan error, 1)
	go func() { sent <- sendReplies(stream, replies, slots, s.drain) }() // ends when replies is closed
	var inflight sync.WaitGroup
	var recvErr error
recv:
	for {
		req, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				recvErr = err
			}
			break
		}
		for _, call := range req.GetCalls() {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				recvErr = ctx.Err()
				break recv
			}
			// The stream stops reading while its calls in flight hold
			// its bytes: flow control slows the client.
			size := int64(0)
			if held != nil {
				size = min(streamBytes, max(1, int64(proto.Size(call))))
				if err := held.Acquire(ctx, size); err != nil {
					<-slots
					recvErr = err
					break recv
				}
			}
			inflight.Add(1)
			s.core.Start(ctx, call, func(r *messages.Reply, sent func()) {
				if held != nil {
					held.Release(size)
				}
				replies <- outgoing{r, sent}
				inflight.Done()
			})
		}
	}
	inflight.Wait()
	close(replies)
	if err := <-sent; err != nil {
		return err
	}
	return recvErr
}

// WindowSize is the HTTP/2 flow-control window of each stream and connection,
// on the server and in kvclient. Fixing it turns off gRPC's BDP estimation
// (its pings), and a window larger than the default 64 KiB means fewer
// window updates on a busy Batch stream: batched puts at 64 clients ran ~9 %
// faster in interleaved runs.
const WindowSize = 4 << 20

// maxBatchInFlight bounds the calls of one Batch stream in flight or with a
// reply not yet taken by the sender; at the bound the stream stops reading
// until the sender takes a reply.
const maxBatchInFlight = 4096

// maxRepliesPerMessage bounds the replies gathered into one BatchResponse.
const maxRepliesPerMessage = 512

// outgoing is a reply waiting to be sent, with what to call once it was
// handed to the stream (or dropped): a range read holds its room until
// then; nil for other calls.
type outgoing struct {
	r    *messages.Reply
	sent func()
}

// sendReplies sends replies as they come, gathering those already waiting
// into one message (freeing their calls' slots), and tells the client once
// when drain closes. After a send fails it keeps draining, so no call
// blocks.
func sendReplies(stream messages.KV_BatchServer, replies <-chan outgoing, slots <-chan struct{}, drain <-chan struct{}) error {
	var failed error
	for {
		var o outgoing
		select {
		case oo, ok := <-replies:
			if !ok {
				return failed
			}
			<-slots
			o = oo
		case <-drain:
			drain = nil // once
			if failed == nil {
				failed = stream.Send(&messages.BatchResponse{Closing: true})
			}
			continue
		}
		if failed != nil {
			giveBack(o.sent)
			continue
		}
		// Replies come in bursts (a Raft batch answers many calls at
		// once); let the goroutines already runnable add theirs first.
		runtime.Gosched()
		next := &o
		for next != nil && failed == nil {
			next, failed = sendGathered(stream, *next, replies, slots)
		}
		if next != nil { // taken, and not sent: the send failed
			giveBack(next.sent)
		}
	}
}

// sendGathered sends first with the replies already waiting, as many as
// fit in one message, and returns the reply taken that did not fit (nil:
// none). Every reply it sent (or failed to send) is marked sent.
func sendGathered(stream messages.KV_BatchServer, first outgoing, replies <-chan outgoing, slots <-chan struct{}) (*outgoing, error) {
	r, size := fit(first.r)
	batch := []*messages.Reply{r}
	var sent []func() // of the range reads among them (nil for other calls)
	if first.sent != nil {
		sent = append(sent, first.sent)
	}
	send := func() error {
		err := stream.Send(&messages.BatchResponse{Replies: batch})
		for _, f := range sent {
			f()
		}
		return err
	}
	for len(batch) < maxRepliesPerMessage {
		select {
		case o, ok := <-replies:
			if !ok {
				return nil, send()
			}
			<-slots
			r, n := fit(o.r)
			if size+n > messages.MaxResponseMessageBytes {
				o.r = r
				return &o, send()
			}
			batch = append(batch, r)
			if o.sent != nil {
				sent = append(sent, o.sent)
			}
			size += n
		default:
			return nil, send()
		}
	}
	return nil, send()
}

// fit returns r and its size in a BatchResponse; in place of a reply over
// the message limit, which would break the stream and every call on it, a
// TOO_LARGE reply of the same call.
func fit(r *messages.Reply) (*messages.Reply, int) {
	n := messages.InBatch(proto.Size(r))
	if n <= messages.MaxResponseMessageBytes {
		return r, n
	}
	r = &messages.Reply{Id: r.GetId(), Status: messages.StatusOf(messages.Errorf(messages.StatusCode_TOO_LARGE,
		"the response of %d bytes is over the %d-byte message limit: ask for fewer entries", n, messages.MaxResponseMessageBytes))}
	return r, messages.InBatch(proto.Size(r))
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
		grpc.MaxRecvMsgSize(messages.MaxRequestMessageBytes),
		grpc.InitialWindowSize(WindowSize),
		grpc.InitialConnWindowSize(WindowSize),
		grpc.MaxSendMsgSize(messages.MaxResponseMessageBytes),
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{check}, interceptors...)...),
	}
}
