package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/actorkv/actorkv/deploy/certs"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/server"
)

// startThriftServer starts a standalone kvserver with its Thrift front end
// on a free loopback port; edit, when not nil, changes the configuration.
func startThriftServer(t *testing.T, edit func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Deployment.Mode = server.ModeStandalone
	cfg.Database.BasePath = t.TempDir()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.Metrics = ""
	cfg.Server.ThriftListen = "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	s, err := server.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func wantCode(t *testing.T, err error, want messages.StatusCode, what string) {
	t.Helper()
	if got := messages.CodeOf(err); got != want {
		t.Errorf("%s: got %v (%v), want %v", what, got, err, want)
	}
}

// TestThriftBadInput: bad input over Thrift gets the documented codes, in
// the response's status, as over gRPC; the admin operations are refused
// without server.admin; a call over the frame limit is refused TOO_LARGE by
// the client before it is sent.
func TestThriftBadInput(t *testing.T) {
	s := startThriftServer(t, nil)
	c := kvclient.NewThriftClient(s.ThriftAddr(), kvclient.ThriftOptions{})
	defer c.Close()
	db := kv.Requests(c.Do)
	ctx := t.Context()

	_, err := db.Put(ctx, nil, []byte("v"))
	wantCode(t, err, messages.StatusCode_INVALID_ARGUMENT, "put with an empty key")
	_, err = db.Put(ctx, bytes.Repeat([]byte("k"), 10_001), []byte("v"))
	wantCode(t, err, messages.StatusCode_INVALID_ARGUMENT, "put with a key of 10,001 bytes")
	_, err = db.Put(ctx, []byte("k"), make([]byte, 1<<20+1))
	wantCode(t, err, messages.StatusCode_TOO_LARGE, "put of a value over 1 MiB")
	_, _, err = db.Get(ctx, []byte("k"), kv.WithColumnFamily("nope"))
	wantCode(t, err, messages.StatusCode_UNKNOWN_COLUMN_FAMILY, "get from an unknown column family")
	_, err = db.Put(ctx, []byte("k"), []byte("v"), kv.WithColumnFamily("\xff"))
	wantCode(t, err, messages.StatusCode_INVALID_ARGUMENT, "a column family name that is not UTF-8")
	_, err = db.ListKeys(ctx, nil, -1)
	wantCode(t, err, messages.StatusCode_INVALID_ARGUMENT, "list with a negative limit")
	_, err = db.GetRange(ctx, []byte("b"), []byte("a"), 0, false)
	wantCode(t, err, messages.StatusCode_INVALID_ARGUMENT, "inverted range")
	err = db.SetFaultInjection(ctx, &messages.FaultInjection{ErrorRate: 1})
	wantCode(t, err, messages.StatusCode_PERMISSION_DENIED, "fault injection without server.admin")
	_, err = c.Do(ctx, &messages.MoveLeaderRequest{ReplicaId: 1})
	wantCode(t, err, messages.StatusCode_PERMISSION_DENIED, "move-leader without server.admin")
	big := &messages.AtomicCommit{}
	for i := range 10 {
		big.Mutations = append(big.Mutations, &messages.Mutation{Type: messages.MutationType_SET, Key: []byte{byte('a' + i)}, Value: make([]byte, 1<<20)})
	}
	_, err = db.AtomicCommit(ctx, big)
	wantCode(t, err, messages.StatusCode_TOO_LARGE, "a commit over the frame limit")

	// Nothing was written, and good input is served on the same client.
	if keys, err := db.ListKeys(ctx, nil, 0); err != nil || len(keys) != 0 {
		t.Fatalf("after the bad input: keys %q, %v", keys, err)
	}
	if _, err := db.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatalf("put: %v", err)
	}
	if v, found, err := db.Get(ctx, []byte("k")); err != nil || !found || string(v) != "v" {
		t.Fatalf("get: %q %v %v", v, found, err)
	}
}

// frame is body with its length prefix.
func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// call writes the start of a Thrift call of method whose argument struct
// write begins, through a binary protocol, and returns the bytes.
func call(t *testing.T, method string, write func(ctx context.Context, p thrift.TProtocol) error) []byte {
	t.Helper()
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{TBinaryStrictWrite: thrift.BoolPtr(true)})
	ctx := context.Background()
	if err := p.WriteMessageBegin(ctx, method, thrift.CALL, 1); err != nil {
		t.Fatal(err)
	}
	if err := write(ctx, p); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestThriftHostileFrames sends frames no client would: a length prefix of
// 2 GiB, bytes that are no Thrift message, a struct cut short, and a list
// claiming 9 million elements in a few bytes. The server closes each
// connection without allocating what they claim, and goes on serving.
func TestThriftHostileFrames(t *testing.T) {
	s := startThriftServer(t, nil)
	c := kvclient.NewThriftClient(s.ThriftAddr(), kvclient.ThriftOptions{})
	defer c.Close()
	db := kv.Requests(c.Do)

	truncated := call(t, "Put", func(ctx context.Context, p thrift.TProtocol) error {
		if err := p.WriteStructBegin(ctx, "args"); err != nil {
			return err
		}
		if err := p.WriteFieldBegin(ctx, "req", thrift.STRUCT, 1); err != nil {
			return err
		}
		// key: a binary of 1,000 bytes, of which the frame holds 3.
		if err := p.WriteFieldBegin(ctx, "key", thrift.STRING, 2); err != nil {
			return err
		}
		return p.WriteI32(ctx, 1000)
	})
	truncated = append(truncated, "abc"...)
	hugeList := call(t, "AtomicCommit", func(ctx context.Context, p thrift.TProtocol) error {
		if err := p.WriteStructBegin(ctx, "args"); err != nil {
			return err
		}
		if err := p.WriteFieldBegin(ctx, "req", thrift.STRUCT, 1); err != nil {
			return err
		}
		if err := p.WriteFieldBegin(ctx, "commit", thrift.STRUCT, 1); err != nil {
			return err
		}
		if err := p.WriteFieldBegin(ctx, "mutations", thrift.LIST, 1); err != nil {
			return err
		}
		return p.WriteListBegin(ctx, thrift.STRUCT, 9_000_000)
	})
	// A list that claims what its frame holds, whose elements would come
	// in the next frames: a message must fit its frame.
	spanning := call(t, "SetFaultInjection", func(ctx context.Context, p thrift.TProtocol) error {
		if err := p.WriteStructBegin(ctx, "args"); err != nil {
			return err
		}
		if err := p.WriteFieldBegin(ctx, "req", thrift.STRUCT, 1); err != nil {
			return err
		}
		if err := p.WriteFieldBegin(ctx, "replicas", thrift.LIST, 2); err != nil {
			return err
		}
		return p.WriteListBegin(ctx, thrift.I32, 1)
	})
	// The list and its element in the first frame, the stops of the two
	// structs in the second.
	spanning = append(frame(append(spanning, 0, 0, 0, 1)), frame([]byte{thrift.STOP, thrift.STOP})...)
	for _, h := range []struct {
		name string
		data []byte
	}{
		{"length prefix of 2 GiB", binary.BigEndian.AppendUint32(nil, 1<<31-1)},
		{"length prefix just over the limit", append(binary.BigEndian.AppendUint32(nil, messages.MaxRequestMessageBytes+1), "x"...)},
		{"garbage", frame([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))},
		{"struct cut short", frame(truncated)},
		{"list of 9 million structs in a few bytes", frame(hugeList)},
		{"message past the end of its frame", spanning},
	} {
		t.Run(h.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			conn, err := net.Dial("tcp", s.ThriftAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(h.data); err != nil {
				t.Fatal(err)
			}
			// The server answers at most an exception, then closes.
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadAll(conn); err != nil {
				t.Fatalf("the server did not close the connection: %v", err)
			}
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
				t.Errorf("the process allocated %d MiB for the frame", grew>>20)
			}
			if _, err := db.Put(t.Context(), []byte("still"), []byte(h.name)); err != nil {
				t.Fatalf("put after the hostile frame: %v", err)
			}
		})
	}
}

// TestThriftTLSIdentity: with [tls], the Thrift front end serves TLS with
// the server's certificate, and a client certificate's subject is the
// caller's identity, for server.admins as over gRPC; with
// require_client_cert a client without one is refused.
func TestThriftTLSIdentity(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.NewCA("thrift test CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.WriteCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	node, err := ca.Node("node", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	nodeCert, nodeKey, err := node.Write(dir, "node")
	if err != nil {
		t.Fatal(err)
	}
	clientFiles := map[string][2]string{}
	for _, name := range []string{"admin", "alice"} {
		p, err := ca.Client(name)
		if err != nil {
			t.Fatal(err)
		}
		cert, key, err := p.Write(dir, "client-"+name)
		if err != nil {
			t.Fatal(err)
		}
		clientFiles[name] = [2]string{cert, key}
	}
	s := startThriftServer(t, func(c *server.Config) {
		c.TLS = server.TLS{CA: caFile, Cert: nodeCert, Key: nodeKey, RequireClientCert: true}
		c.Server.Admin = true
		c.Server.Admins = []string{"CN=admin"}
	})
	clientAs := func(name string) *kvclient.ThriftClient {
		cert, key := clientFiles[name][0], clientFiles[name][1]
		tc, err := kvclient.TLSConfig(caFile, cert, key, false)
		if err != nil {
			t.Fatal(err)
		}
		c := kvclient.NewThriftClient(s.ThriftAddr(), kvclient.ThriftOptions{TLS: tc})
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx := t.Context()
	noFaults := &messages.SetFaultInjectionRequest{Faults: &messages.FaultInjection{}}
	if _, err := clientAs("admin").Do(ctx, noFaults); err != nil {
		t.Fatalf("fault injection as CN=admin: %v", err)
	}
	alice := clientAs("alice")
	_, err = alice.Do(ctx, noFaults)
	wantCode(t, err, messages.StatusCode_PERMISSION_DENIED, "fault injection as CN=alice")
	if _, err := kv.Requests(alice.Do).Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatalf("put as CN=alice: %v", err)
	}
	anonymous, err := kvclient.TLSConfig(caFile, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	c := kvclient.NewThriftClient(s.ThriftAddr(), kvclient.ThriftOptions{TLS: anonymous})
	defer c.Close()
	_, err = kv.Requests(c.Do).Put(ctx, []byte("k"), []byte("v"))
	wantCode(t, err, messages.StatusCode_UNAVAILABLE, "put without a client certificate")
	plain := kvclient.NewThriftClient(s.ThriftAddr(), kvclient.ThriftOptions{})
	defer plain.Close()
	_, err = kv.Requests(plain.Do).Put(ctx, []byte("k"), []byte("v"))
	wantCode(t, err, messages.StatusCode_UNAVAILABLE, "put without TLS")
}

// TestThriftShutdown: Shutdown stops the Thrift front end — a connection
// between calls, one that sent half a frame, and the listener — and leaves
// no goroutine behind.
func TestThriftShutdown(t *testing.T) {
	base := runtime.NumGoroutine()
	cfg := server.DefaultConfig()
	cfg.Deployment.Mode = server.ModeStandalone
	cfg.Database.BasePath = t.TempDir()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.Metrics = ""
	cfg.Server.ThriftListen = "127.0.0.1:0"
	s, err := server.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c := kvclient.NewThriftClient(s.ThriftAddr(), kvclient.ThriftOptions{})
	if _, err := kv.Requests(c.Do).Put(t.Context(), []byte("k"), []byte("v")); err != nil {
		t.Fatalf("put: %v", err)
	}
	half, err := net.Dial("tcp", s.ThriftAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if _, err := half.Write(binary.BigEndian.AppendUint32(nil, 100)); err != nil {
		t.Fatal(err)
	}
	addr := s.ThriftAddr()
	done := make(chan struct{})
	go func() {
		s.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return within 30 s")
	}
	if _, err := kv.Requests(c.Do).Put(t.Context(), []byte("k"), []byte("v2")); messages.CodeOf(err) != messages.StatusCode_UNAVAILABLE {
		t.Errorf("put after shutdown: %v, want UNAVAILABLE", err)
	}
	c.Close()
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after shutdown", addr)
	}
	half.SetReadDeadline(time.Now().Add(10 * time.Second))
	var timeout net.Error
	if _, err := io.ReadAll(half); errors.As(err, &timeout) && timeout.Timeout() {
		t.Errorf("the half-sent connection was not closed: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base+2 { // runtime and testing goroutines that come and go
			return
		}
		if time.Now().After(deadline) {
			var dump bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
			t.Fatalf("%d goroutines 30 s after shutdown, %d before start:\n%s", n, base, dump.String())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}
