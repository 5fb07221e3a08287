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
