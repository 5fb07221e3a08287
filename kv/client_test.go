package kv

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// scripted is a Transport that opens sessions with ids 101, 102, … and
// answers puts with the scripted errors, in order, then with success.
type scripted struct {
	mu       sync.Mutex
	sessions uint64
	puts     []*messages.PutRequest
	putErrs  []error
}

func (s *scripted) Send(req proto.Message, _ time.Time, done func(messages.Statused, error)) {
	resp, err := s.answer(req)
	done(resp, err) // synchronously, as a transport may: the client must cope
}

func (s *scripted) answer(req proto.Message) (messages.Statused, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r := req.(type) {
	case *messages.OpenSessionRequest:
		s.sessions++
		return &messages.OpenSessionResponse{Status: messages.StatusOf(nil), ClientId: 100 + s.sessions}, nil
	case *messages.PutRequest:
		s.puts = append(s.puts, proto.Clone(r).(*messages.PutRequest))
		n := len(s.puts)
		if n <= len(s.putErrs) {
			return nil, s.putErrs[n-1]
		}
		return &messages.PutResponse{Status: messages.StatusOf(nil), Version: uint64(10 * n)}, nil
	}
	return nil, messages.Errorf(messages.StatusCode_INTERNAL, "unexpected %T", req)
}

var errExpired = messages.Errorf(messages.StatusCode_SESSION_EXPIRED, "client session is unknown")

// TestClientReopensAForgottenSession: a write whose only attempt the state
// machine refused for its forgotten session was never applied, so the
// client sends it again under a new session.
func TestClientReopensAForgottenSession(t *testing.T) {
	g := &scripted{putErrs: []error{errExpired}}
	c := NewClient(g, time.Second)
	v, err := c.Put(context.Background(), []byte("k"), []byte("v"))
	if err != nil || v != 20 {
		t.Fatalf("put: %d, %v; want version 20 from the second attempt", v, err)
	}
	if len(g.puts) != 2 || g.sessions != 2 {
		t.Fatalf("%d puts under %d sessions, want 2 and 2", len(g.puts), g.sessions)
	}
	first, second := g.puts[0].GetRequestId(), g.puts[1].GetRequestId()
	if first.GetClientId() != 101 || second.GetClientId() != 102 || second.GetSeq() != 1 {
		t.Fatalf("request ids %v then %v: want session 101, then seq 1 of session 102", first, second)
	}
	if c.SessionID() != 102 {
		t.Fatalf("the client's session is %d, want 102", c.SessionID())
	}
	// The next write uses the new session, its next seq.
	if _, err := c.Put(context.Background(), []byte("k"), []byte("w")); err != nil {
		t.Fatal(err)
	}
	if rid := g.puts[2].GetRequestId(); rid.GetClientId() != 102 || rid.GetSeq() != 2 || rid.GetRespondedTo() != 1 {
		t.Fatalf("next request id %v, want seq 2 of session 102, responded to 1", rid)
	}
}

// TestClientReportsAnUnknownOutcome: a write with an earlier attempt whose
// outcome is unknown (TIMEOUT) may have been applied before its session was
// forgotten, so SESSION_EXPIRED ends it, unknown, and it is not sent again.
func TestClientReportsAnUnknownOutcome(t *testing.T) {
	timeout := messages.Errorf(messages.StatusCode_TIMEOUT, "proposal timed out")
	g := &scripted{putErrs: []error{timeout, errExpired}}
	c := NewClient(g, time.Second)
	_, err := c.Put(context.Background(), []byte("k"), []byte("v"))
	if !errors.Is(err, messages.ErrSessionExpired) || messages.IsRetryable(err) {
		t.Fatalf("put: %v; want ErrSessionExpired, not retryable", err)
	}
	if len(g.puts) != 2 || g.sessions != 1 {
		t.Fatalf("%d puts under %d sessions, want 2 under 1", len(g.puts), g.sessions)
	}
	if !proto.Equal(g.puts[0].GetRequestId(), g.puts[1].GetRequestId()) {
		t.Fatalf("the retry changed the request id: %v then %v", g.puts[0].GetRequestId(), g.puts[1].GetRequestId())
	}
	// A request id the caller chose is the caller's to manage: not reopened.
	g = &scripted{putErrs: []error{errExpired}}
	c = NewClient(g, time.Second)
	_, err = c.Put(context.Background(), []byte("k"), []byte("v"), WithRequestID(&messages.RequestId{ClientId: 5, Seq: 1}))
	if !errors.Is(err, messages.ErrSessionExpired) || len(g.puts) != 1 || g.sessions != 0 {
		t.Fatalf("put with the caller's request id: %v after %d puts, %d sessions; want ErrSessionExpired after 1, 0", err, len(g.puts), g.sessions)
	}
}

// TestClientRetriesUntilTheDeadline: retryable failures are retried with
// the same request id; after a TIMEOUT the give-up error is TIMEOUT (the
// outcome unknown), not the later UNAVAILABLE.
func TestClientRetriesUntilTheDeadline(t *testing.T) {
	var errs []error
	errs = append(errs, messages.Errorf(messages.StatusCode_TIMEOUT, "lost"))
	for range 1000 {
		errs = append(errs, messages.Errorf(messages.StatusCode_UNAVAILABLE, "no leader"))
	}
	g := &scripted{putErrs: errs}
	c := NewClient(g, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Put(ctx, []byte("k"), []byte("v"))
	if !errors.Is(err, messages.ErrTimeout) {
		t.Fatalf("put: %v, want TIMEOUT (an attempt's outcome was unknown)", err)
	}
	if len(g.puts) < 3 || c.Retries() == 0 {
		t.Fatalf("%d attempts, %d retries: want several", len(g.puts), c.Retries())
	}
	for _, p := range g.puts[1:] {
		if !proto.Equal(p.GetRequestId(), g.puts[0].GetRequestId()) {
			t.Fatalf("a retry changed the request id")
		}
	}
}
