// Package raftnet is actorkv's Raft transport between the NodeHosts of a
// cluster: dragonboat's messages and snapshot chunks over TCP, one
// connection per direction and kind, framed with a CRC-32C checksum.
//
// It exists for one behaviour dragonboat's built-in TCP transport lacks: a
// connection to a peer that is down, or whose end broke, is dialled again
// every RedialEvery for up to RedialFor before the attempt fails. Dragonboat puts a circuit
// breaker in front of every peer that backs off up to a second after a
// failed attempt; with its own transport a leader would often reconnect to
// a follower that restarted only after the follower's election timeout
// (half a second by default) had passed, and the follower, having heard
// from no leader, would campaign at a higher term and unseat the leader on
// rejoining. Here the leader's attempt is usually already dialling when the
// follower's listener comes back, and its heartbeats arrive in time.
//
// Wire format: a connection opens with an 8-byte preamble, "akvraft" and a
// kind byte ('m' for message batches, 's' for snapshot chunks). Then
// frames: a 4-byte big-endian payload length, a 4-byte CRC-32C of the
// payload, and the payload, a marshalled raftpb.MessageBatch or
// raftpb.Chunk. On a snapshot connection a frame of length 0 ends the
// stream: the receiver answers with one byte once it has handed every chunk
// over, so the sender knows they arrived before it reports the snapshot
// sent.
//
// With NodeHostConfig.MutualTLS (dragonboat's CAFile, CertFile, KeyFile),
// every connection is mutual TLS: each end presents a certificate signed by
// the CA and checks the other's; the dialler checks the peer's certificate
// against the host of its Raft address. A connection whose handshake fails
// is refused, and the refusal logged (once per peer per half minute).
package raftnet

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/lni/dragonboat/v3/config"
	"github.com/lni/dragonboat/v3/raftio"
	pb "github.com/lni/dragonboat/v3/raftpb"
)

// Name is the transport's name, as dragonboat reports it.
const Name = "actorkv-raftnet"

// Defaults of Factory's fields.
const (
	DefaultRedialEvery = 25 * time.Millisecond
	DefaultRedialFor   = 10 * time.Second
)

const (
	preambleLen = 8
	headerLen   = 8
	// maxFrame bounds a frame's payload: dragonboat's message batches stay
	// under 64 MiB and its snapshot chunks under 2 MiB.
	maxFrame = 256 << 20
	// dialTimeout bounds one dial; writeTimeout one frame's write (a peer
	// whose socket buffer stays full that long is treated as gone);
	// ackTimeout the wait for the end-of-snapshot acknowledgement;
	// keepAlive probes idle connections so a vanished host is noticed.
	dialTimeout  = 2 * time.Second
	writeTimeout = 10 * time.Second
	ackTimeout   = 30 * time.Second
	keepAlive    = 10 * time.Second
)

const (
	kindMessages = 'm'
	kindChunks   = 's'
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	// ErrBadFrame is returned by a receiver for a frame it cannot accept.
	ErrBadFrame = errors.New("raftnet: bad frame")
)

func preamble(kind byte) []byte { return append([]byte("akvraft"), kind) }

// Factory makes the transport for dragonboat
// (NodeHostConfig.Expert.TransportFactory).
type Factory struct {
	// RedialEvery is the pause between dials to a peer that refuses them;
	// 0 means DefaultRedialEvery.
	RedialEvery time.Duration
	// RedialFor is how long a connection attempt keeps dialling before it
	// fails (and dragonboat's breaker backs off); 0 means DefaultRedialFor.
	RedialFor time.Duration
	// Logger receives the transport's own lines (rejected connections);
	// nil uses slog.Default().
	Logger *slog.Logger
}

var _ config.TransportFactory = Factory{}

// Create implements config.TransportFactory.
func (f Factory) Create(nhc config.NodeHostConfig, messages raftio.MessageHandler, chunks raftio.ChunkHandler) raftio.ITransport {
	if f.RedialEvery <= 0 {
		f.RedialEvery = DefaultRedialEvery
	}
	if f.RedialFor <= 0 {
		f.RedialFor = DefaultRedialFor
	}
	if f.Logger == nil {
		f.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{f: f, nhc: nhc, addr: nhc.GetListenAddress(), messages: messages, chunks: chunks,
		ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}, refusals: map[string]time.Time{}, dialTLS: map[string]*tls.Config{}}
	if nhc.MutualTLS {
		t.serverTLS, t.tlsErr = nhc.GetServerTLSConfig()
	}
	return t
}

// Validate implements config.TransportFactory: a host:port address.
func (Factory) Validate(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p > 0 && p < 65536
}

// Transport is one NodeHost's end: its listener, the connections it
// accepted and the goroutines that serve them.
type Transport struct {
	f         Factory
	nhc       config.NodeHostConfig
	serverTLS *tls.Config // nil: plain TCP
	tlsErr    error       // loading the TLS files failed: Start fails
	addr      string
	messages  raftio.MessageHandler
	chunks    raftio.ChunkHandler

	ctx    context.Context // cancelled by Stop: ends dialling
	cancel context.CancelFunc
	ln     net.Listener
	wg     sync.WaitGroup // the accept loop and the serving goroutines

	mu       sync.Mutex
	conns    map[net.Conn]struct{} // accepted and open
	stopped  bool
	refusals map[string]time.Time   // host -> when a refused handshake was last logged
	dialTLS  map[string]*tls.Config // target -> its client TLS configuration, loaded once
}

var _ raftio.ITransport = (*Transport)(nil)

// Name implements raftio.ITransport.
func (t *Transport) Name() string { return Name }

// Start listens on the NodeHost's Raft address and serves what arrives.
func (t *Transport) Start() error {
	if t.tlsErr != nil {
		return fmt.Errorf("raftnet: TLS certificates: %w", t.tlsErr)
	}
	ln, err := net.Listen("tcp", t.addr)
	if err != nil {
		return err
	}
	t.ln = ln
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				t.f.Logger.Error("raftnet: accept", "address", t.addr, "err", err)
				return
			}
			if !t.track(conn) {
				conn.Close()
				return
			}
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				defer t.untrack(conn)
				if err := t.serve(conn); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					t.f.Logger.Debug("raftnet: connection closed", "from", conn.RemoteAddr().String(), "err", err)
				}
			}()
		}
	}()
	return nil
}

func (t *Transport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Transport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.Close()
}

// Stop closes the listener and every accepted connection, ends dialling,
// and waits for the serving goroutines. Outgoing connections belong to
// dragonboat, which closes them.
func (t *Transport) Stop() {
	t.cancel()
	t.mu.Lock()
	t.stopped = true
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	if t.ln != nil {
		t.ln.Close()
	}
	t.wg.Wait()
}

// serve reads one accepted connection until it ends.
func (t *Transport) serve(conn net.Conn) error {
	_ = conn.SetReadDeadline(time.Now().Add(dialTimeout))
	if t.serverTLS != nil {
		tc := tls.Server(conn, t.serverTLS)
		if err := tc.Handshake(); err != nil {
			t.refused(conn.RemoteAddr().String(), "accepted", err)
			return ErrBadFrame
		}
		conn = tc
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	var pre [preambleLen]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return err
	}
	_ = conn.SetReadDeadline(time.Time{})
	kind := pre[preambleLen-1]
	if string(pre[:preambleLen-1]) != "akvraft" || (kind != kindMessages && kind != kindChunks) {
		t.f.Logger.Warn("raftnet: refused a connection that is not actorkv Raft traffic", "from", conn.RemoteAddr().String())
		return ErrBadFrame
	}
	var buf []byte
	for {
		payload, err := readFrame(r, &buf)
		if err != nil {
			return err
		}
		if payload == nil { // the end of a snapshot stream
			if kind != kindChunks {
				return ErrBadFrame
			}
			_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			_, err := conn.Write([]byte{1})
			return err
		}
		if kind == kindMessages {
			var b pb.MessageBatch
			if err := b.Unmarshal(payload); err != nil {
				return fmt.Errorf("%w: %v", ErrBadFrame, err)
			}
			t.messages(b)
			continue
		}
		var c pb.Chunk
		if err := c.Unmarshal(payload); err != nil {
			return fmt.Errorf("%w: %v", ErrBadFrame, err)
		}
		if !t.chunks(c) {
			return fmt.Errorf("snapshot chunk %d of cluster %d rejected", c.ChunkId, c.ClusterId)
		}
	}
}

// readFrame reads one frame into *buf (grown as needed) and returns its
// payload; nil for an end frame.
func readFrame(r io.Reader, buf *[]byte) ([]byte, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n == 0 {
		return nil, nil
	}
	if n > maxFrame {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrBadFrame, n, maxFrame)
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	p := (*buf)[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	if crc32.Checksum(p, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrBadFrame)
	}
	return p, nil
}

// marshaler is what raftpb's message types are.
type marshaler interface {
	Size() int
	MarshalTo([]byte) (int, error)
}

// writeFrame writes m as one frame.
func writeFrame(conn net.Conn, m marshaler) error {
	size := m.Size()
	if size == 0 || size > maxFrame {
		return fmt.Errorf("%w: a %d-byte message", ErrBadFrame, size)
	}
	b := make([]byte, headerLen+size)
	if _, err := m.MarshalTo(b[headerLen:]); err != nil {
		return err
	}
	binary.BigEndian.PutUint32(b[:4], uint32(size))
	binary.BigEndian.PutUint32(b[4:8], crc32.Checksum(b[headerLen:], castagnoli))
	if err := conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	_, err := conn.Write(b)
	return err
}

// dial connects to target and sends the preamble of kind. A peer that
// refuses or does not answer is dialled again every RedialEvery until
// RedialFor has passed (or ctx or the transport ends).
func (t *Transport) dial(ctx context.Context, target string, kind byte) (net.Conn, error) {
	giveUp := time.Now().Add(t.f.RedialFor)
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: keepAlive}
	for {
		conn, err := d.DialContext(ctx, "tcp", target)
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(true)
			}
			if t.nhc.MutualTLS {
				// A failed handshake is a certificate that does not fit,
				// not a peer that is down: no redial.
				if conn, err = t.handshake(ctx, conn, target); err != nil {
					return nil, err
				}
			}
			_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err = conn.Write(preamble(kind)); err == nil {
				return conn, nil
			}
			conn.Close()
		}
		if time.Now().After(giveUp) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-t.ctx.Done():
			return nil, err
		case <-time.After(t.f.RedialEvery):
		}
	}
}

// handshake runs the client side of mutual TLS on conn to target.
func (t *Transport) handshake(ctx context.Context, conn net.Conn, target string) (net.Conn, error) {
	cfg, err := t.clientTLS(target)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("raftnet: TLS certificates: %w", err)
	}
	tc := tls.Client(conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		t.refused(target, "dialled", err)
		return nil, fmt.Errorf("raftnet: TLS handshake with %s: %w", target, err)
	}
	return tc, nil
}

// clientTLS is the client TLS configuration for target, read from the
// certificate files on the first dial to it.
func (t *Transport) clientTLS(target string) (*tls.Config, error) {
	t.mu.Lock()
	cfg, ok := t.dialTLS[target]
	t.mu.Unlock()
	if ok {
		return cfg, nil
	}
	cfg, err := t.nhc.GetClientTLSConfig(target)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.dialTLS[target] = cfg
	t.mu.Unlock()
	return cfg, nil
}

// refused logs a connection refused for its TLS handshake, at most once per
// peer host every half minute: a peer that redials does not flood the log.
func (t *Transport) refused(peer, how string, err error) {
	host, _, _ := net.SplitHostPort(peer)
	t.mu.Lock()
	last, seen := t.refusals[host]
	log := !seen || time.Since(last) > 30*time.Second
	if log {
		t.refusals[host] = time.Now()
	}
	t.mu.Unlock()
	if log {
		t.f.Logger.Warn("raftnet: TLS handshake failed; connection refused", "peer", peer, "connection", how, "err", err)
	}
}

// GetConnection implements raftio.ITransport.
func (t *Transport) GetConnection(ctx context.Context, target string) (raftio.IConnection, error) {
	conn, err := t.dial(ctx, target, kindMessages)
	if err != nil {
		return nil, err
	}
	return &connection{t: t, target: target, conn: conn}, nil
}

// GetSnapshotConnection implements raftio.ITransport.
func (t *Transport) GetSnapshotConnection(ctx context.Context, target string) (raftio.ISnapshotConnection, error) {
	conn, err := t.dial(ctx, target, kindChunks)
	if err != nil {
		return nil, err
	}
	return &snapshotConnection{conn: conn}, nil
}

// connection sends message batches to one peer. When the peer's end
// breaks (it was killed, and may be restarting), the connection dials it
// again, as dial does, and sends the batch on the new connection; only when
// that fails for RedialFor does the error reach dragonboat, whose breaker
// then backs off. A peer that restarts is so reconnected as soon as it
// listens, and the leader's heartbeats reach it before its election
// timeout. A batch may arrive twice or not at all; Raft copes with both.
type connection struct {
	t      *Transport
	target string
	conn   net.Conn // nil while broken
}

// SendMessageBatch implements raftio.IConnection.
func (c *connection) SendMessageBatch(b pb.MessageBatch) error {
	var giveUp time.Time
	for {
		if c.conn == nil {
			conn, err := c.t.dial(c.t.ctx, c.target, kindMessages)
			if err != nil {
				return err
			}
			c.conn = conn
		}
		err := writeFrame(c.conn, &b)
		if err == nil {
			return nil
		}
		c.conn.Close()
		c.conn = nil
		if errors.Is(err, ErrBadFrame) || c.t.ctx.Err() != nil {
			return err
		}
		if giveUp.IsZero() {
			giveUp = time.Now().Add(c.t.f.RedialFor)
		} else if time.Now().After(giveUp) {
			return err
		}
	}
}

// Close implements raftio.IConnection.
func (c *connection) Close() {
	if c.conn != nil {
		c.conn.Close()
	}
}

// snapshotConnection sends one snapshot's chunks.
type snapshotConnection struct{ conn net.Conn }

func (c *snapshotConnection) SendChunk(ch pb.Chunk) error { return writeFrame(c.conn, &ch) }

// Close ends the stream and waits (up to ackTimeout) until the receiver has
// handed every chunk over.
func (c *snapshotConnection) Close() {
	defer c.conn.Close()
	if err := c.conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return
	}
	if _, err := c.conn.Write(make([]byte, headerLen)); err != nil {
		return
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(ackTimeout))
	var ack [1]byte
	_, _ = io.ReadFull(c.conn, ack[:])
}
