package storage

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/messages"
)

// TestInjectedLatencyHonoursTheDeadline: a read slowed by injected latency
// ends with the caller's deadline (TIMEOUT) instead of answering after the
// caller gave up; without a deadline it waits the latency out.
func TestInjectedLatencyHonoursTheDeadline(t *testing.T) {
	e := openEngine(t, testConfig(t.TempDir()))
	mustPut(t, e, "k", "v")
	ctx := context.Background()
	if err := e.SetFaultInjection(ctx, &messages.FaultInjection{AddedLatency: durationpb.New(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	reads := map[string]func(context.Context) error{
		"Get": func(ctx context.Context) error { _, _, err := e.Get(ctx, []byte("k")); return err },
		"GetRange": func(ctx context.Context) error {
			_, err := e.GetRange(ctx, nil, nil, 0, false)
			return err
		},
		"GetReadVersion": func(ctx context.Context) error { _, err := e.GetReadVersion(ctx); return err },
	}
	for name, read := range reads {
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		start := time.Now()
		err := read(short)
		cancel()
		wantCode(t, err, messages.StatusCode_TIMEOUT, name+" with a 50ms deadline on 2s storage")
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s took %v: the deadline did not cut the injected latency", name, d)
		}
	}
	if err := e.SetFaultInjection(ctx, &messages.FaultInjection{AddedLatency: durationpb.New(20 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if v, ok := mustGet(t, e, "k"); !ok || v != "v" {
		t.Fatalf("get under latency: %q %t", v, ok)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("get took %v, under the injected 20ms", d)
	}
}
