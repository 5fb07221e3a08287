package kvclient_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/server"
)

// commitOf returns an atomic commit of n SETs of 1 MiB values under prefix.
func commitOf(prefix string, n int) *messages.AtomicCommitRequest {
	c := &messages.AtomicCommit{}
	for i := range n {
		c.Mutations = append(c.Mutations, &messages.Mutation{Type: messages.MutationType_SET,
			Key: fmt.Appendf(nil, "%s/%d", prefix, i), Value: bytes.Repeat([]byte{byte('a' + i)}, 1<<20)})
	}
	return &messages.AtomicCommitRequest{Commit: c}
}

// TestLargeCallsKeepTheStream: a call over the server's message limit is
// refused with TOO_LARGE and never sent (it would break the stream and every
// call on it); legal calls that together exceed the limit go in separate
// messages, so all of them succeed on one stream.
func TestLargeCallsKeepTheStream(t *testing.T) {
	s := startServer(t)
	c, err := kvclient.Dial(s.GRPCAddr(), kvclient.Options{Streams: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := kvclient.Call[*messages.PutResponse](ctx, c, &messages.PutRequest{Key: []byte("before"), Value: []byte("v")}); err != nil {
		t.Fatalf("put: %v", err)
	}
	// 9 MiB of values: over both the 8 MiB commit limit and the message limit.
	if _, err := kvclient.Call[*messages.AtomicCommitResponse](ctx, c, commitOf("big", 9)); messages.CodeOf(err) != messages.StatusCode_TOO_LARGE {
		t.Fatalf("9 MiB commit: %v (code %v), want TOO_LARGE", err, messages.CodeOf(err))
	}
	// Four commits of 5 MiB at once: any two together are over the limit.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = kvclient.Call[*messages.AtomicCommitResponse](ctx, c, commitOf(fmt.Sprintf("c%d", i), 5))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("5 MiB commit %d: %v", i, err)
		}
	}
	got, err := kvclient.Call[*messages.GetRangeResponse](ctx, c, &messages.GetRangeRequest{Begin: []byte("c"), End: []byte("d"), Limit: 100})
	if err != nil || len(got.GetKvs()) != 20 {
		t.Fatalf("range over the commits: %d entries, %v; want 20", len(got.GetKvs()), err)
	}
	if got, err := kvclient.Call[*messages.GetResponse](ctx, c, &messages.GetRequest{Key: []byte("big/0")}); err != nil || got.GetFound() {
		t.Fatalf("the refused commit wrote: found=%v, %v", got.GetFound(), err)
	}
}

// TestLargeResponseKeepsTheStream: a range whose response is over the
// server's message limit is answered TOO_LARGE in place of the response
// (sent, it would break the stream and fail every call on it), and the
// stream goes on serving. The engine's own bound on a range
// (limits.max_range_bytes, 32 MiB by default) is raised here so that the
// reply reaches the stream's sender.
func TestLargeResponseKeepsTheStream(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.Deployment.Mode = server.ModeStandalone
	cfg.Database.SyncWrites = false
	cfg.Limits.MaxRangeBytes = 128 << 20
	c := dial(t, serve(t, cfg))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 14 { // 70 MiB: over the 64 MiB limit
		if _, err := kvclient.Call[*messages.AtomicCommitResponse](ctx, c, commitOf(fmt.Sprintf("r%02d", i), 5)); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if _, err := kvclient.Call[*messages.GetRangeResponse](ctx, c, &messages.GetRangeRequest{Begin: []byte("r"), End: []byte("s"), Limit: 100}); messages.CodeOf(err) != messages.StatusCode_TOO_LARGE {
		t.Fatalf("70 MiB range: %v (code %v), want TOO_LARGE", err, messages.CodeOf(err))
	}
	got, err := kvclient.Call[*messages.GetRangeResponse](ctx, c, &messages.GetRangeRequest{Begin: []byte("r"), End: []byte("s"), Limit: 50})
	if err != nil || len(got.GetKvs()) != 50 {
		t.Fatalf("50 MiB range after it: %d entries, %v", len(got.GetKvs()), err)
	}
}

// TestCancelledCallIsNotSent: a call whose context is already cancelled
// fails with CANCELLED and never reaches the server.
func TestCancelledCallIsNotSent(t *testing.T) {
	c := dial(t, startServer(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 50 {
		if _, err := kvclient.Call[*messages.PutResponse](ctx, c, &messages.PutRequest{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")}); messages.CodeOf(err) != messages.StatusCode_CANCELLED {
			t.Fatalf("put %d: %v (code %v), want CANCELLED", i, err, messages.CodeOf(err))
		}
	}
	live, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	got, err := kvclient.Call[*messages.GetRangeResponse](live, c, &messages.GetRangeRequest{Begin: []byte("k"), End: []byte("l"), Limit: 100})
	if err != nil || len(got.GetKvs()) != 0 {
		t.Fatalf("cancelled puts wrote %d keys (%v)", len(got.GetKvs()), err)
	}
}

// TestStreamsOverTheBoundAreRefused: a Batch stream beyond server.max_streams
// is refused, and its calls fail RESOURCE_EXHAUSTED — not UNAVAILABLE with
// an unknown outcome: the server read none of them, and none was applied.
func TestStreamsOverTheBoundAreRefused(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.Deployment.Mode = server.ModeStandalone
	cfg.Database.SyncWrites = false
	cfg.Server.MaxStreams = 1
	s := serve(t, cfg)
	first, err := kvclient.Dial(s.GRPCAddr(), kvclient.Options{Streams: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := kvclient.Call[*messages.PutResponse](ctx, first, &messages.PutRequest{Key: []byte("first"), Value: []byte("v")}); err != nil {
		t.Fatalf("put on the one stream allowed: %v", err)
	}
	second, err := kvclient.Dial(s.GRPCAddr(), kvclient.Options{Streams: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_, err = kvclient.Call[*messages.PutResponse](ctx, second, &messages.PutRequest{Key: []byte("second"), Value: []byte("v")})
	if messages.CodeOf(err) != messages.StatusCode_RESOURCE_EXHAUSTED || !strings.Contains(err.Error(), "max_streams") {
		t.Fatalf("put on a stream over server.max_streams: %v (code %v), want RESOURCE_EXHAUSTED naming max_streams", err, messages.CodeOf(err))
	}
	got, err := kvclient.Call[*messages.GetResponse](ctx, first, &messages.GetRequest{Key: []byte("second")})
	if err != nil || got.GetFound() {
		t.Fatalf("the refused put was applied: found=%v, %v", got.GetFound(), err)
	}
}
