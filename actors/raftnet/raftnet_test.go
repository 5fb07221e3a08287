package raftnet

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lni/dragonboat/v3/config"
	pb "github.com/lni/dragonboat/v3/raftpb"
)

// sink records what a transport received.
type sink struct {
	mu      sync.Mutex
	batches []pb.MessageBatch
	chunks  []pb.Chunk
	reject  bool // refuse chunks
	changed chan struct{}
}

func newSink() *sink { return &sink{changed: make(chan struct{}, 1024)} }

func (s *sink) message(b pb.MessageBatch) {
	s.mu.Lock()
	s.batches = append(s.batches, b)
	s.mu.Unlock()
	s.changed <- struct{}{}
}

func (s *sink) chunk(c pb.Chunk) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reject {
		return false
	}
	s.chunks = append(s.chunks, c)
	s.changed <- struct{}{}
	return true
}

// waitFor waits (up to 10 s) until cond holds, checked on every receipt.
func (s *sink) waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatal("not received within 10s")
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs a transport on addr (a free one if empty) into s.
func start(t *testing.T, f Factory, addr string, s *sink) *Transport {
	t.Helper()
	if addr == "" {
		addr = freeAddr(t)
	}
	tr := f.Create(config.NodeHostConfig{RaftAddress: addr}, s.message, s.chunk).(*Transport)
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Stop)
	return tr
}

func batch(n int) pb.MessageBatch {
	b := pb.MessageBatch{DeploymentId: 7, SourceAddress: "a:1", BinVer: 210}
	for i := range n {
		b.Requests = append(b.Requests, pb.Message{Type: pb.Replicate, To: 2, From: 1, ClusterId: 1, Term: 3, LogIndex: uint64(i),
			Entries: []pb.Entry{{Term: 3, Index: uint64(i + 1), Cmd: []byte("payload")}}})
	}
	return b
}

func TestMessagesArriveInOrder(t *testing.T) {
	recv := newSink()
	b := start(t, Factory{}, "", recv)
	a := start(t, Factory{}, "", newSink())
	conn, err := a.GetConnection(context.Background(), b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 50 {
		if err := conn.SendMessageBatch(batch(i + 1)); err != nil {
			t.Fatal(err)
		}
	}
	recv.waitFor(t, func() bool { return len(recv.batches) == 50 })
	for i, got := range recv.batches {
		if len(got.Requests) != i+1 || got.DeploymentId != 7 || string(got.Requests[i].Entries[0].Cmd) != "payload" {
			t.Fatalf("batch %d arrived as %+v", i, got)
		}
	}
}

func TestSnapshotChunksArriveBeforeCloseReturns(t *testing.T) {
	recv := newSink()
	b := start(t, Factory{}, "", recv)
	a := start(t, Factory{}, "", newSink())
	conn, err := a.GetSnapshotConnection(context.Background(), b.addr)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	for i := range 5 {
		if err := conn.SendChunk(pb.Chunk{ClusterId: 1, NodeId: 2, ChunkId: uint64(i), ChunkCount: 5, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close() // waits for the receiver's acknowledgement
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.chunks) != 5 {
		t.Fatalf("%d chunks handed over when Close returned, want 5", len(recv.chunks))
	}
	for i, c := range recv.chunks {
		if c.ChunkId != uint64(i) || len(c.Data) != len(data) {
			t.Fatalf("chunk %d arrived as id %d with %d bytes", i, c.ChunkId, len(c.Data))
		}
	}
}

// TestRedialsUntilThePeerListens is the reason for the package: a
// connection attempt to a peer that is down keeps dialling, so it succeeds
// as soon as the peer listens again instead of failing into dragonboat's
// breaker back-off.
func TestRedialsUntilThePeerListens(t *testing.T) {
	a := start(t, Factory{RedialFor: 20 * time.Second}, "", newSink())
	addr := freeAddr(t) // nobody listens there yet
	type result struct{ err error }
	done := make(chan result, 1)
	go func() {
		conn, err := a.GetConnection(context.Background(), addr)
		if err == nil {
			conn.Close()
		}
		done <- result{err}
	}()
	time.Sleep(300 * time.Millisecond) // the peer is down for a while
	select {
	case r := <-done:
		t.Fatalf("the attempt ended while nobody listened: %v", r.err)
	default:
	}
	start(t, Factory{}, addr, newSink())
	if r := <-done; r.err != nil {
		t.Fatalf("no connection once the peer listened: %v", r.err)
	}
}

func TestGivesUpAfterRedialFor(t *testing.T) {
	a := start(t, Factory{RedialFor: 100 * time.Millisecond}, "", newSink())
	if _, err := a.GetConnection(context.Background(), freeAddr(t)); err == nil {
		t.Fatal("connected to nobody")
	}
}

func TestStopEndsDialling(t *testing.T) {
	a := Factory{RedialFor: time.Hour}.Create(config.NodeHostConfig{RaftAddress: freeAddr(t)}, newSink().message, newSink().chunk).(*Transport)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.GetConnection(context.Background(), freeAddr(t))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	a.Stop()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("connected to nobody")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not end a connection attempt")
	}
}

// TestBadInputClosesTheConnection sends what is not actorkv Raft traffic:
// the transport drops the connection, hands nothing over, and goes on
// serving others.
func TestBadInputClosesTheConnection(t *testing.T) {
	recv := newSink()
	b := start(t, Factory{}, "", recv)
	header := func(n uint32, crc uint32) []byte {
		h := make([]byte, headerLen)
		binary.BigEndian.PutUint32(h, n)
		binary.BigEndian.PutUint32(h[4:], crc)
		return h
	}
	good := batch(1)
	payload, _ := good.Marshal()
	cases := map[string][][]byte{
		"http":               {[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		"unknown kind":       {[]byte("akvraftx")},
		"bad checksum":       {preamble(kindMessages), header(uint32(len(payload)), 12345), payload},
		"oversized frame":    {preamble(kindMessages), header(maxFrame+1, 0)},
		"garbage payload":    {preamble(kindMessages), header(4, 0xdeadbeef), []byte{0xff, 0xff, 0xff, 0xff}},
		"end of messages":    {preamble(kindMessages), header(0, 0)},
		"truncated preamble": {[]byte("akv")},
	}
	for name, parts := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", b.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, p := range parts {
				if _, err := c.Write(p); err != nil {
					t.Fatal(err)
				}
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadAll(c); err != nil && !errors.Is(err, net.ErrClosed) {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("the transport kept the connection open")
				}
			}
		})
	}
	recv.mu.Lock()
	n := len(recv.batches)
	recv.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d batches handed over from bad input", n)
	}
	a := start(t, Factory{}, "", newSink())
	conn, err := a.GetConnection(context.Background(), b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SendMessageBatch(good); err != nil {
		t.Fatal(err)
	}
	recv.waitFor(t, func() bool { return len(recv.batches) == 1 })
}

func TestRejectedChunkClosesTheStream(t *testing.T) {
	recv := newSink()
	recv.reject = true
	b := start(t, Factory{}, "", recv)
	a := start(t, Factory{}, "", newSink())
	conn, err := a.GetSnapshotConnection(context.Background(), b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var err2 error
	for i := range 100 { // the receiver closes; a later write fails
		if err2 = conn.SendChunk(pb.Chunk{ClusterId: 1, ChunkId: uint64(i), Data: make([]byte, 64<<10)}); err2 != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err2 == nil {
		t.Fatal("sending went on after the receiver refused a chunk")
	}
}

func TestValidate(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:6001": true, "node-1.example:6001": true, "[::1]:6001": true,
		"127.0.0.1": false, ":6001": false, "127.0.0.1:0": false, "127.0.0.1:70000": false, "": false,
	} {
		if got := (Factory{}).Validate(addr); got != want {
			t.Errorf("Validate(%q) = %t, want %t", addr, got, want)
		}
	}
}
