package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/messages/thriftkv"
)

// thriftHandshakeTimeout bounds a Thrift client's TLS handshake.
const thriftHandshakeTimeout = 10 * time.Second

// acceptBackoff is the pause after a failed Accept.
const acceptBackoff = 50 * time.Millisecond

// thriftServer is the Thrift front end of the Core (server.thrift_listen,
// messages/kv.thrift): framed transport, strict binary protocol, one call at
// a time per connection. Each call's struct is converted to its protobuf
// request (kvclient.FromThrift, the one conversion), served by Core.Do —
// access checks, identity stamping and bounds included — and its response,
// status and all, converted back. A frame over messages.MaxRequestMessageBytes,
// a length or list count its frame cannot hold, or bytes that are no Thrift
// message close the connection.
type thriftServer struct {
	core      *Core
	log       *slog.Logger
	lis       net.Listener // TLS when the server has [tls]
	cfg       *thrift.TConfiguration
	processor *thriftkv.KVProcessor
	ctx       context.Context    // the calls' base context
	cancel    context.CancelFunc // cancels the calls in flight (shutdown timeout)

	mu      sync.Mutex
	conns   map[net.Conn]struct{} // connections being served
	closing bool

	wg sync.WaitGroup // the accept loop and one goroutine per connection
}

// startThrift serves core's Thrift front end on lis (wrapped in TLS with
// serverTLS when not nil) until stop; methods are kvclient.ThriftMethods.
func startThrift(core *Core, methods map[string]*kvclient.ThriftMethod, lis net.Listener, serverTLS *tls.Config, log *slog.Logger) *thriftServer {
	if serverTLS != nil {
		lis = tls.NewListener(lis, serverTLS)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &thriftServer{core: core, log: log, lis: lis, cfg: kvclient.ThriftConfiguration(messages.MaxRequestMessageBytes),
		ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	t.processor = thriftkv.NewKVProcessor(&thriftHandler{core: core, methods: methods})
	t.wg.Add(1)
	go t.accept()
	return t
}

// Addr is the address the Thrift front end listens on.
func (t *thriftServer) Addr() string { return t.lis.Addr().String() }

func (t *thriftServer) accept() {
	defer t.wg.Done()
	for {
		conn, err := t.lis.Accept()
		if err != nil {
			t.mu.Lock()
			closing := t.closing
			t.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: try again after a pause
			// rather than spin (stop closes the listener, which ends
			// the loop).
			t.log.Warn("thrift: accept", "err", err)
			time.Sleep(acceptBackoff)
			continue
		}
		t.mu.Lock()
		if t.closing {
			t.mu.Unlock()
			conn.Close()
			return
		}
		t.conns[conn] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.serve(conn)
	}
}

// serve answers the calls of one connection until it closes, breaks, or
// the server shuts down.
func (t *thriftServer) serve(conn net.Conn) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.conns, conn)
		t.mu.Unlock()
		conn.Close()
	}()
	identity := ""
	if tc, ok := conn.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(t.ctx, thriftHandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			t.log.Debug("thrift: TLS handshake", "remote", conn.RemoteAddr().String(), "err", err)
			return
		}
		identity = identityOf(tc.ConnectionState())
	}
	ctx := WithIdentity(t.ctx, identity)
	frames := &oneFrame{TFramedTransport: thrift.NewTFramedTransportConf(thrift.NewStreamTransportRW(conn), t.cfg)}
	prot := &boundedProtocol{TProtocol: thrift.NewTBinaryProtocolConf(frames, t.cfg), frame: frames}
	for {
		t.mu.Lock()
		closing := t.closing
		t.mu.Unlock()
		if closing {
			return
		}
		// A range read holds its room (server.max_range_reads) until its
		// reply is written, as over gRPC: Process writes it before it
		// returns.
		held := &sentHolder{}
		ok, err := t.processor.Process(context.WithValue(ctx, sentKey{}, held), prot, prot)
		held.release()
		if !ok {
			if err != nil && !errors.Is(err, net.ErrClosed) && !isEOF(err) {
				t.log.Debug("thrift: connection closed", "remote", conn.RemoteAddr().String(), "err", err)
			}
			return
		}
	}
}

// isEOF reports whether err is a connection the client closed between calls.
func isEOF(err error) bool {
	var te thrift.TTransportException
	return errors.As(err, &te) && te.TypeId() == thrift.END_OF_FILE
}

// stop closes the listener and every connection between calls, lets the
// calls in flight answer for up to timeout, then cancels them and closes
// their connections, and waits for every goroutine of the front end.
func (t *thriftServer) stop(timeout time.Duration) {
	t.mu.Lock()
	t.closing = true
	t.lis.Close()
	for conn := range t.conns {
		// A connection waiting for its next call stops now; one in a call
		// (its request read) answers it, then sees closing.
		conn.SetReadDeadline(time.Unix(1, 0))
	}
	t.mu.Unlock()
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		t.log.Warn("shutdown: thrift calls did not finish in time; cancelling them")
		t.cancel()
		t.mu.Lock()
		for conn := range t.conns {
			conn.Close()
		}
		t.mu.Unlock()
		<-done
	}
	t.cancel()
}

// oneFrame is the framed transport of a connection, holding each call to
// one frame: a message that runs past the end of its frame is an error,
// where the framed transport would read on into the next frames (and the
// frame limit would bound nothing).
type oneFrame struct {
	*thrift.TFramedTransport
	inMessage bool // a message is being read: no next frame
}

var errPastFrame = thrift.NewTTransportException(thrift.UNKNOWN_TRANSPORT_EXCEPTION, "a Thrift message runs past the end of its frame")

func (f *oneFrame) Read(p []byte) (int, error) {
	if f.inMessage && len(p) > 0 && f.RemainingBytes() == 0 {
		return 0, errPastFrame
	}
	return f.TFramedTransport.Read(p)
}

func (f *oneFrame) ReadByte() (byte, error) {
	if f.inMessage && f.RemainingBytes() == 0 {
		return 0, errPastFrame
	}
	return f.TFramedTransport.ReadByte()
}

// boundedProtocol reads each message from one frame (oneFrame), and refuses
// a list, set or map whose element count its frame cannot hold (each
// element takes at least minElementBytes) before the generated code
// allocates room for that many: a 20-byte frame claiming 9 million struct
// pointers would otherwise cost 72 MiB.
type boundedProtocol struct {
	thrift.TProtocol
	frame *oneFrame
}

func (p *boundedProtocol) ReadMessageBegin(ctx context.Context) (string, thrift.TMessageType, int32, error) {
	p.frame.inMessage = false // the message's first bytes read its frame
	name, typ, seq, err := p.TProtocol.ReadMessageBegin(ctx)
	p.frame.inMessage = true
	return name, typ, seq, err
}

func (p *boundedProtocol) ReadMessageEnd(ctx context.Context) error {
	p.frame.inMessage = false
	return p.TProtocol.ReadMessageEnd(ctx)
}

// minElementBytes is the least a Thrift binary element of type t can take.
func minElementBytes(t thrift.TType) uint64 {
	switch t {
	case thrift.I16:
		return 2
	case thrift.I32, thrift.STRING:
		return 4
	case thrift.I64, thrift.DOUBLE:
		return 8
	case thrift.LIST, thrift.SET:
		return 5
	case thrift.MAP:
		return 6
	}
	return 1 // BOOL, BYTE, STRUCT (its stop byte)
}

func (p *boundedProtocol) check(n int, minBytes uint64) error {
	if left := p.frame.RemainingBytes(); uint64(n)*minBytes > left {
		return thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT,
			errors.New("a collection of more elements than its frame can hold"))
	}
	return nil
}

func (p *boundedProtocol) ReadListBegin(ctx context.Context) (thrift.TType, int, error) {
	et, n, err := p.TProtocol.ReadListBegin(ctx)
	if err == nil {
		err = p.check(n, minElementBytes(et))
	}
	return et, n, err
}

func (p *boundedProtocol) ReadSetBegin(ctx context.Context) (thrift.TType, int, error) {
	et, n, err := p.TProtocol.ReadSetBegin(ctx)
	if err == nil {
		err = p.check(n, minElementBytes(et))
	}
	return et, n, err
}

func (p *boundedProtocol) ReadMapBegin(ctx context.Context) (thrift.TType, thrift.TType, int, error) {
	kt, vt, n, err := p.TProtocol.ReadMapBegin(ctx)
	if err == nil {
		err = p.check(n, minElementBytes(kt)+minElementBytes(vt))
	}
	return kt, vt, n, err
}

// thriftHandler implements the generated service: every method is
// serveThrift of its operation.
type thriftHandler struct {
	core    *Core
	methods map[string]*kvclient.ThriftMethod
}

var _ thriftkv.KV = (*thriftHandler)(nil)

// serveThrift serves req, the Thrift request of method rpc: converted to its
// protobuf request, served by Core.Do, its response (with the status, OK or
// the error) converted back. An error returned here is a broken invariant
// (the client gets Thrift's INTERNAL_ERROR exception).
func serveThrift[Resp any](ctx context.Context, h *thriftHandler, rpc string, req any) (Resp, error) {
	var zero Resp
	m := h.methods[rpc]
	preq := m.Op.NewRequest()
	var resp messages.Statused
	if err := kvclient.FromThrift(req, preq); err != nil {
		resp = m.Op.Response(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "%v", err))
	} else if r, err := h.core.Do(ctx, preq); err != nil {
		resp = m.Op.Response(err)
	} else {
		resp = r
	}
	tresp := m.NewResponse()
	if err := kvclient.ToThrift(resp, tresp); err != nil {
		return zero, err
	}
	return tresp.(Resp), nil
}

func (h *thriftHandler) Get(ctx context.Context, req *thriftkv.GetRequest) (*thriftkv.GetResponse, error) {
	return serveThrift[*thriftkv.GetResponse](ctx, h, "Get", req)
}

func (h *thriftHandler) Put(ctx context.Context, req *thriftkv.PutRequest) (*thriftkv.PutResponse, error) {
	return serveThrift[*thriftkv.PutResponse](ctx, h, "Put", req)
}

func (h *thriftHandler) Delete(ctx context.Context, req *thriftkv.DeleteRequest) (*thriftkv.DeleteResponse, error) {
	return serveThrift[*thriftkv.DeleteResponse](ctx, h, "Delete", req)
}

func (h *thriftHandler) ClearRange(ctx context.Context, req *thriftkv.ClearRangeRequest) (*thriftkv.ClearRangeResponse, error) {
	return serveThrift[*thriftkv.ClearRangeResponse](ctx, h, "ClearRange", req)
}

func (h *thriftHandler) ListKeys(ctx context.Context, req *thriftkv.ListKeysRequest) (*thriftkv.ListKeysResponse, error) {
	return serveThrift[*thriftkv.ListKeysResponse](ctx, h, "ListKeys", req)
}

func (h *thriftHandler) GetRange(ctx context.Context, req *thriftkv.GetRangeRequest) (*thriftkv.GetRangeResponse, error) {
	return serveThrift[*thriftkv.GetRangeResponse](ctx, h, "GetRange", req)
}

func (h *thriftHandler) AtomicCommit(ctx context.Context, req *thriftkv.AtomicCommitRequest) (*thriftkv.AtomicCommitResponse, error) {
	return serveThrift[*thriftkv.AtomicCommitResponse](ctx, h, "AtomicCommit", req)
}

func (h *thriftHandler) GetReadVersion(ctx context.Context, req *thriftkv.GetReadVersionRequest) (*thriftkv.GetReadVersionResponse, error) {
	return serveThrift[*thriftkv.GetReadVersionResponse](ctx, h, "GetReadVersion", req)
}

func (h *thriftHandler) SnapshotRead(ctx context.Context, req *thriftkv.SnapshotReadRequest) (*thriftkv.SnapshotReadResponse, error) {
	return serveThrift[*thriftkv.SnapshotReadResponse](ctx, h, "SnapshotRead", req)
}

func (h *thriftHandler) SnapshotGetRange(ctx context.Context, req *thriftkv.SnapshotGetRangeRequest) (*thriftkv.SnapshotGetRangeResponse, error) {
	return serveThrift[*thriftkv.SnapshotGetRangeResponse](ctx, h, "SnapshotGetRange", req)
}

func (h *thriftHandler) SetFaultInjection(ctx context.Context, req *thriftkv.SetFaultInjectionRequest) (*thriftkv.SetFaultInjectionResponse, error) {
	return serveThrift[*thriftkv.SetFaultInjectionResponse](ctx, h, "SetFaultInjection", req)
}

func (h *thriftHandler) Status(ctx context.Context, req *thriftkv.StatusRequest) (*thriftkv.StatusResponse, error) {
	return serveThrift[*thriftkv.StatusResponse](ctx, h, "Status", req)
}

func (h *thriftHandler) OpenSession(ctx context.Context, req *thriftkv.OpenSessionRequest) (*thriftkv.OpenSessionResponse, error) {
	return serveThrift[*thriftkv.OpenSessionResponse](ctx, h, "OpenSession", req)
}

func (h *thriftHandler) MemberList(ctx context.Context, req *thriftkv.MemberListRequest) (*thriftkv.MemberListResponse, error) {
	return serveThrift[*thriftkv.MemberListResponse](ctx, h, "MemberList", req)
}

func (h *thriftHandler) MemberAdd(ctx context.Context, req *thriftkv.MemberAddRequest) (*thriftkv.MemberAddResponse, error) {
	return serveThrift[*thriftkv.MemberAddResponse](ctx, h, "MemberAdd", req)
}

func (h *thriftHandler) MemberRemove(ctx context.Context, req *thriftkv.MemberRemoveRequest) (*thriftkv.MemberRemoveResponse, error) {
	return serveThrift[*thriftkv.MemberRemoveResponse](ctx, h, "MemberRemove", req)
}

func (h *thriftHandler) MemberReplace(ctx context.Context, req *thriftkv.MemberReplaceRequest) (*thriftkv.MemberReplaceResponse, error) {
	return serveThrift[*thriftkv.MemberReplaceResponse](ctx, h, "MemberReplace", req)
}

func (h *thriftHandler) MoveLeader(ctx context.Context, req *thriftkv.MoveLeaderRequest) (*thriftkv.MoveLeaderResponse, error) {
	return serveThrift[*thriftkv.MoveLeaderResponse](ctx, h, "MoveLeader", req)
}

func (h *thriftHandler) Backup(ctx context.Context, req *thriftkv.BackupRequest) (*thriftkv.BackupResponse, error) {
	return serveThrift[*thriftkv.BackupResponse](ctx, h, "Backup", req)
}
