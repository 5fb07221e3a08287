package kvclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
)

// closingKV answers Get calls with their key as the value. On each of its
// first closings streams it asks the client to close the stream as soon as
// the first message arrives, as a server shutting down does, and answers
// the calls it received on it once the client has closed its side, so the
// other callers' calls pile up in the client meanwhile.
type closingKV struct {
	messages.UnimplementedKVServer
	closings int32
	streams  atomic.Int32
	received atomic.Int64 // calls
}

func (k *closingKV) Batch(bs messages.KV_BatchServer) error {
	closing := k.streams.Add(1) <= k.closings
	var held []*messages.Reply
	for {
		req, err := bs.Recv()
		if errors.Is(err, io.EOF) {
			if len(held) == 0 {
				return nil
			}
			return bs.Send(&messages.BatchResponse{Replies: held})
		}
		if err != nil {
			return err
		}
		var replies []*messages.Reply
		for _, c := range req.GetCalls() {
			k.received.Add(1)
			replies = append(replies, &messages.Reply{Id: c.GetId(), Response: &messages.Reply_Get{
				Get: &messages.GetResponse{Found: true, Value: c.GetGet().GetKey()}}})
		}
		if closing {
			if len(held) == 0 {
				if err := bs.Send(&messages.BatchResponse{Closing: true}); err != nil {
					return err
				}
			}
			held = append(held, replies...)
			continue
		}
		if err := bs.Send(&messages.BatchResponse{Replies: replies}); err != nil {
			return err
		}
	}
}

// TestCallsNotSentMoveToANewStream has the server close streams while many
// calls wait in the client's outbox: those were never sent, so they go out
// on a new stream instead of failing, and every caller gets its own reply.
func TestCallsNotSentMoveToANewStream(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	kv := &closingKV{closings: 3}
	srv := grpc.NewServer()
	messages.RegisterKVServer(srv, kv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	c, err := kvclient.Dial(lis.Addr().String(), kvclient.Options{Streams: 1, MaxCallsPerMessage: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	const callers, calls = 64, 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Go(func() {
			for i := range calls {
				key := fmt.Appendf(nil, "k-%d-%d", g, i)
				r, err := kvclient.Call[*messages.GetResponse](context.Background(), c, &messages.GetRequest{Key: key})
				if err != nil {
					errs <- fmt.Errorf("get %s: %w", key, err)
					return
				}
				if !bytes.Equal(r.GetValue(), key) {
					errs <- fmt.Errorf("get %s answered %q", key, r.GetValue())
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := kv.streams.Load(); n <= kv.closings {
		t.Fatalf("%d streams opened; the server closed %d", n, kv.closings)
	}
	if n := kv.received.Load(); n != callers*calls {
		t.Fatalf("the server received %d calls, want %d: each exactly once", n, callers*calls)
	}
}
