package kvclient

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// endpoint is a fake kvserver: it answers every request with err, or with
// a found value naming it.
type endpoint struct {
	name string
	err  error
	mu   sync.Mutex
	got  int
}

func (e *endpoint) Send(req proto.Message, _ time.Time, done func(messages.Statused, error)) {
	e.mu.Lock()
	e.got++
	e.mu.Unlock()
	if e.err != nil {
		done(nil, e.err)
		return
	}
	switch req.(type) {
	case *messages.SnapshotReadRequest:
		done(&messages.SnapshotReadResponse{Status: messages.StatusOf(nil), Found: true, Value: []byte(e.name)}, nil)
	default:
		done(&messages.GetResponse{Status: messages.StatusOf(nil), Found: true, Value: []byte(e.name)}, nil)
	}
}

// TestEndpointsFailOver: an endpoint answering UNAVAILABLE passes the
// client's next attempt to the next endpoint, which stays current.
func TestEndpointsFailOver(t *testing.T) {
	down := &endpoint{name: "a", err: messages.Errorf(messages.StatusCode_UNAVAILABLE, "connection refused")}
	up := &endpoint{name: "b"}
	c := kv.NewClient(NewEndpoints(down, up), time.Second)
	for range 3 {
		v, found, err := c.Get(context.Background(), []byte("k"))
		if err != nil || !found || string(v) != "b" {
			t.Fatalf("get: %q, %v, %v; want b's answer", v, found, err)
		}
	}
	if down.got != 1 || up.got != 3 {
		t.Fatalf("down endpoint asked %d times, up %d: want 1 and 3", down.got, up.got)
	}
}

// TestEndpointsAskEveryOneForASnapshot: a snapshot read answered
// TRANSACTION_TOO_OLD goes to the next endpoint within the attempt; it is
// TOO_OLD only when every endpoint that answered said so.
func TestEndpointsAskEveryOneForASnapshot(t *testing.T) {
	tooOld := messages.Errorf(messages.StatusCode_TRANSACTION_TOO_OLD, "history gone here")
	restarted, holds := &endpoint{name: "a", err: tooOld}, &endpoint{name: "b"}
	c := kv.NewClient(NewEndpoints(restarted, holds), time.Second)
	v, _, err := c.SnapshotRead(context.Background(), []byte("k"), 5)
	if err != nil || string(v) != "b" {
		t.Fatalf("snapshot read: %q, %v; want b's answer", v, err)
	}
	c = kv.NewClient(NewEndpoints(restarted, &endpoint{name: "c", err: tooOld}), time.Second)
	if _, _, err := c.SnapshotRead(context.Background(), []byte("k"), 5); !errors.Is(err, messages.ErrTransactionTooOld) {
		t.Fatalf("snapshot read with every endpoint too old: %v", err)
	}
	// A plain read answered TOO_OLD is not asked elsewhere.
	other := &endpoint{name: "d"}
	c = kv.NewClient(NewEndpoints(&endpoint{name: "e", err: tooOld}, other), time.Second)
	if _, _, err := c.Get(context.Background(), []byte("k")); !errors.Is(err, messages.ErrTransactionTooOld) || other.got != 0 {
		t.Fatalf("get answered TOO_OLD: %v, asked elsewhere %d times", err, other.got)
	}
}
