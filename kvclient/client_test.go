package kvclient_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/server"
)

// startServer serves a standalone engine on a free port.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Deployment.Mode = server.ModeStandalone
	cfg.Database.SyncWrites = false
	return serve(t, cfg)
}

// serve starts a kvserver of cfg with its data in a temporary directory and
// its gRPC API on a free port, without metrics; it stops when tb ends.
func serve(tb testing.TB, cfg server.Config) *server.Server {
	tb.Helper()
	cfg.Database.BasePath = tb.TempDir()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.Metrics = ""
	cfg.Server.Admin = true // the tests inject faults
	s, err := server.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("start server: %v", err)
	}
	tb.Cleanup(s.Shutdown)
	return s
}

func dial(t *testing.T, s *server.Server) *kvclient.Client {
	t.Helper()
	c, err := kvclient.Dial(s.GRPCAddr(), kvclient.Options{Streams: 2, MaxCallsPerMessage: 8})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestConcurrentCalls sends many calls from many goroutines over two
// streams (gathered at most 8 per message) and checks every reply reached
// its own caller.
func TestConcurrentCalls(t *testing.T) {
	c := dial(t, startServer(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const workers, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := fmt.Appendf(nil, "w%02d/%03d", w, i)
				val := fmt.Appendf(nil, "value of %s", key)
				put, err := kvclient.Call[*messages.PutResponse](ctx, c, &messages.PutRequest{Key: key, Value: val})
				if err != nil || put.GetVersion() == 0 {
					errs <- fmt.Errorf("put %s: %v (version %d)", key, err, put.GetVersion())
					return
				}
				got, err := kvclient.Call[*messages.GetResponse](ctx, c, &messages.GetRequest{Key: key})
				if err != nil || !got.GetFound() || string(got.GetValue()) != string(val) {
					errs <- fmt.Errorf("get %s: %q found=%v, %v", key, got.GetValue(), got.GetFound(), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rng, err := kvclient.Call[*messages.GetRangeResponse](ctx, c, &messages.GetRangeRequest{Begin: []byte("w"), Limit: 10_000})
	if err != nil || len(rng.GetKvs()) != workers*each {
		t.Fatalf("range: %d entries, %v; want %d", len(rng.GetKvs()), err, workers*each)
	}
}

// TestErrorsArriveAsStatuses checks that a call's failure reaches its caller
// as the documented status error, without breaking the stream.
func TestErrorsArriveAsStatuses(t *testing.T) {
	c := dial(t, startServer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cases := []struct {
		name string
		call *messages.Call
		want error
	}{
		{"empty key", &messages.Call{Request: &messages.Call_Put{Put: &messages.PutRequest{Value: []byte("v")}}}, messages.ErrInvalidArgument},
		{"value over the limit", &messages.Call{Request: &messages.Call_Put{Put: &messages.PutRequest{Key: []byte("k"), Value: make([]byte, 1<<20+1)}}}, messages.ErrTooLarge},
		{"unknown column family", &messages.Call{Request: &messages.Call_Get{Get: &messages.GetRequest{ColumnFamily: "nope", Key: []byte("k")}}}, messages.ErrUnknownColumnFamily},
		{"no operation", &messages.Call{}, messages.ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.Do(ctx, tc.call)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if r.GetId() != tc.call.GetId() || r.GetStatus().GetCode() != messages.CodeOf(tc.want) {
				t.Fatalf("reply %v to call %d", r, tc.call.GetId())
			}
		})
	}
	if _, err := kvclient.Call[*messages.PutResponse](ctx, c, &messages.PutRequest{Key: []byte("after"), Value: []byte("ok")}); err != nil {
		t.Fatalf("the stream does not serve after failed calls: %v", err)
	}
}

// TestDeadlineAndBrokenStream checks a call whose deadline passes (TIMEOUT)
// and calls in flight when the server goes away (UNAVAILABLE), and that a
// closed client refuses calls.
func TestDeadlineAndBrokenStream(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := context.Background()
	if _, err := s.Core().Do(ctx, &messages.SetFaultInjectionRequest{Faults: &messages.FaultInjection{
		AddedLatency: durationpb.New(300 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := kvclient.Call[*messages.GetResponse](short, c, &messages.GetRequest{Key: []byte("k")}); !errors.Is(err, messages.ErrTimeout) {
		t.Fatalf("get past its deadline: %v, want TIMEOUT", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := kvclient.Call[*messages.GetResponse](ctx, c, &messages.GetRequest{Key: []byte("k")})
		done <- err
	}()
	s.Shutdown()
	select {
	case err := <-done:
		// The server finishes in-flight calls on a graceful shutdown, or the
		// stream breaks: either an answer or UNAVAILABLE, never a hang.
		if err != nil && !errors.Is(err, messages.ErrUnavailable) {
			t.Fatalf("call in flight during shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a call in flight during shutdown never returned")
	}
	c.Close()
	if _, err := kvclient.Call[*messages.GetResponse](ctx, c, &messages.GetRequest{Key: []byte("k")}); !errors.Is(err, messages.ErrUnavailable) {
		t.Fatalf("call on a closed client: %v, want UNAVAILABLE", err)
	}
}
