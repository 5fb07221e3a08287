package kvclient_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/server"
)

// BenchmarkBatch measures the network hot path as kvbench drives it: a
// kvserver on its default (three replicas in this process, Raft and
// RocksDB under a temporary directory) served over gRPC on 127.0.0.1, and
// 64 closed-loop callers sharing one kvclient (two Batch streams), with
// 16-byte keys and 128-byte values. Each b.N is one operation.
//
//	go test -run '^$' -bench Batch -benchtime 20000x ./kvclient/
func BenchmarkBatch(b *testing.B) {
	s := serve(b, server.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Backend().Ready(ctx); err != nil {
		b.Fatalf("server not ready: %v", err)
	}
	c, err := kvclient.Dial(s.GRPCAddr(), kvclient.Options{})
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	b.Cleanup(func() { c.Close() })
	const clients, keys = 64, 10_000
	key := func(i int) []byte { return fmt.Appendf(nil, "bench/key/%07d", i%keys) } // 16 bytes
	value := make([]byte, 128)
	for i := 0; i < keys; i += 100 {
		if _, err := kvclient.Call[*messages.PutResponse](ctx, c, &messages.PutRequest{Key: key(i), Value: value}); err != nil {
			b.Fatalf("preload: %v", err)
		}
	}
	ops := map[string]func(i int) error{
		"put": func(i int) error {
			_, err := kvclient.Call[*messages.PutResponse](context.Background(), c, &messages.PutRequest{Key: key(i), Value: value})
			return err
		},
		"get": func(i int) error {
			_, err := kvclient.Call[*messages.GetResponse](context.Background(), c, &messages.GetRequest{Key: key(i - i%100)})
			return err
		},
	}
	for _, name := range []string{"put", "get"} {
		b.Run(fmt.Sprintf("%s/clients=%d", name, clients), func(b *testing.B) {
			op := ops[name]
			work := make(chan int)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var firstErr error
			for range clients {
				wg.Go(func() {
					for i := range work {
						if err := op(i); err != nil {
							mu.Lock()
							firstErr = err
							mu.Unlock()
						}
					}
				})
			}
			start := time.Now()
			i := 0
			for b.Loop() {
				work <- i
				i++
			}
			close(work)
			wg.Wait()
			if firstErr != nil {
				b.Fatalf("operation failed: %v", firstErr)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
		})
	}
}
