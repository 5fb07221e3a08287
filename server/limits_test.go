package server

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// holdingBackend answers a request only when the test lets it go.
type holdingBackend struct {
	mu      sync.Mutex
	waiting []func()
	got     chan struct{} // a request arrived
}

func (b *holdingBackend) Submit(req proto.Message, _ time.Time, _ <-chan struct{}, done func(messages.Statused, error)) {
	op := messages.OpOf(req)
	b.mu.Lock()
	b.waiting = append(b.waiting, func() { done(op.Response(nil), nil) })
	b.mu.Unlock()
	b.got <- struct{}{}
}

// release answers every request held so far.
func (b *holdingBackend) release() {
	b.mu.Lock()
	w := b.waiting
	b.waiting = nil
	b.mu.Unlock()
	for _, f := range w {
		f()
	}
}

// TestCoreLimits: a call that finds no room waits — and gets it when a call
// in flight ends — or, when its deadline comes first, is refused
// RESOURCE_EXHAUSTED without reaching the backend; range reads have their
// own bound.
func TestCoreLimits(t *testing.T) {
	b := &holdingBackend{got: make(chan struct{}, 16)}
	core := NewCore(b, time.Minute, nil).WithLimits(Limits{InflightBytes: 10 << 20, RangeReads: 1})
	big := func() proto.Message {
		return &messages.PutRequest{Key: []byte("k"), Value: make([]byte, 6<<20)}
	}
	do := func(req proto.Message, d time.Duration) chan error {
		ch := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			_, err := core.Do(ctx, req)
			ch <- err
		}()
		return ch
	}
	first := do(big(), time.Minute)
	<-b.got
	// 6 MiB + 6 MiB is over 10: the second waits, and its deadline passes.
	if err := <-do(big(), 200*time.Millisecond); messages.CodeOf(err) != messages.StatusCode_RESOURCE_EXHAUSTED {
		t.Fatalf("a put with no room before its deadline: %v, want RESOURCE_EXHAUSTED", err)
	}
	select {
	case <-b.got:
		t.Fatal("a refused call reached the backend")
	default:
	}
	// A third waits until the first ends, then goes.
	third := do(big(), time.Minute)
	select {
	case <-b.got:
		t.Fatal("a call over the bound reached the backend while the first was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	b.release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-b.got
	b.release()
	if err := <-third; err != nil {
		t.Fatalf("the waiting put after room was made: %v", err)
	}

	// One range read at a time; point reads are not held by it.
	rng := do(&messages.GetRangeRequest{Begin: []byte("a"), End: []byte("z")}, time.Minute)
	<-b.got
	if err := <-do(&messages.ListKeysRequest{Prefix: []byte("a")}, 200*time.Millisecond); messages.CodeOf(err) != messages.StatusCode_RESOURCE_EXHAUSTED {
		t.Fatalf("a second range read: %v, want RESOURCE_EXHAUSTED", err)
	}
	get := do(&messages.GetRequest{Key: []byte("k")}, time.Minute)
	<-b.got
	b.release()
	if err := <-rng; err != nil {
		t.Fatal(err)
	}
	if err := <-get; err != nil {
		t.Fatal(err)
	}
}

// TestRangeReadHeldUntilSent: a Batch call's range read holds its room
// (server.max_range_reads) until its reply has been sent, not only until
// the backend answered: replies waiting for a slow reader count.
func TestRangeReadHeldUntilSent(t *testing.T) {
	b := &holdingBackend{got: make(chan struct{}, 16)}
	core := NewCore(b, time.Minute, nil).WithLimits(Limits{InflightBytes: 10 << 20, RangeReads: 1})
	start := func(req proto.Message, timeout time.Duration) chan func() {
		call, ok := messages.NewCall(1, req)
		if !ok {
			t.Fatalf("%T is no Batch call", req)
		}
		call.TimeoutMicros = timeout.Microseconds()
		ch := make(chan func(), 1)
		go core.Start(context.Background(), call, func(r *messages.Reply, sent func()) {
			if err := r.GetStatus().Err(); err != nil {
				t.Errorf("call: %v", err)
			}
			ch <- sent
		})
		return ch
	}
	rng := &messages.GetRangeRequest{Begin: []byte("a"), End: []byte("z")}
	first := start(rng, time.Minute)
	<-b.got
	b.release()
	sent := <-first // answered, not yet sent
	second := start(rng, time.Minute)
	select {
	case <-b.got:
		t.Fatal("a second range read reached the backend while the first's reply was not sent")
	case <-time.After(150 * time.Millisecond):
	}
	sent()
	sent() // once is enough: a second call gives nothing back twice
	<-b.got
	b.release()
	(<-second)()
	// A point read holds nothing after its answer.
	get := start(&messages.GetRequest{Key: []byte("k")}, time.Minute)
	<-b.got
	b.release()
	if sent := <-get; sent != nil {
		t.Fatal("a point read's reply holds room until sent")
	}
}
