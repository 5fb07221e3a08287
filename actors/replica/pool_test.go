package replica

import (
	"testing"
	"time"

	"github.com/lni/dragonboat/v3"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// TestFIFOWaiterDoesNotWaitBehindALostRequest checks that requests which
// completed are answered while an older one is still in flight — as after a
// leader failure, when proposals forwarded to the dead leader complete only
// at their timeout — and that the older one is answered when it completes.
func TestFIFOWaiterDoesNotWaitBehindALostRequest(t *testing.T) {
	answered := make(chan uint64, 8)
	w := newFIFOWaiter(nil, 4, func(p pending) {
		answered <- p.done(dragonboat.RequestResult{}).(*messages.PutResponse).GetVersion()
	})
	states := make([]*dragonboat.RequestState, 4)
	for i := range states {
		states[i] = &dragonboat.RequestState{CompletedC: make(chan dragonboat.RequestResult, 1)}
		if w.full() {
			t.Fatalf("full after %d of 4", i)
		}
		v := uint64(i)
		w.add(pending{rs: states[i], done: func(dragonboat.RequestResult) proto.Message { return &messages.PutResponse{Version: v} }})
	}
	if !w.full() || w.len() != 4 {
		t.Fatalf("4 in flight: full %t, len %d", w.full(), w.len())
	}
	next := func() uint64 {
		t.Helper()
		select {
		case v := <-answered:
			return v
		case <-time.After(10 * time.Second):
			t.Fatal("no answer within 10s")
			return 0
		}
	}

	// In order while the oldest completes first.
	states[0].CompletedC <- dragonboat.RequestResult{}
	if v := next(); v != 0 {
		t.Fatalf("answered %d first, want 0", v)
	}
	// Request 1 is lost for now; 3 and 2 complete and are answered anyway.
	states[3].CompletedC <- dragonboat.RequestResult{}
	states[2].CompletedC <- dragonboat.RequestResult{}
	if a, b := next(), next(); a+b != 5 || a == b {
		t.Fatalf("answered %d and %d, want 2 and 3", a, b)
	}
	if w.len() != 1 || w.full() {
		t.Fatalf("1 in flight: len %d, full %t", w.len(), w.full())
	}
	select {
	case v := <-answered:
		t.Fatalf("request %d answered before it completed", v)
	default:
	}
	states[1].CompletedC <- dragonboat.RequestResult{}
	if v := next(); v != 1 {
		t.Fatalf("answered %d, want 1", v)
	}
	if w.len() != 0 {
		t.Fatalf("len %d after every answer", w.len())
	}
	w.stop()
}
