package actors

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// scriptedGroup stands in for the group's router: it opens sessions with
// ids 101, 102, … and answers puts with the scripted errors, in order, then
// with success.
type scriptedGroup struct {
	mu       sync.Mutex
	sessions uint64
	puts     []*messages.PutRequest
	putErrs  []error
}

func (g *scriptedGroup) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *messages.OpenSessionRequest:
		g.mu.Lock()
		g.sessions++
		id := 100 + g.sessions
		g.mu.Unlock()
		ctx.Respond(&messages.OpenSessionResponse{Status: messages.StatusOf(nil), ClientId: id})
	case *messages.PutRequest:
		g.mu.Lock()
		g.puts = append(g.puts, proto.Clone(msg).(*messages.PutRequest))
		n := len(g.puts)
		var err error
		if n <= len(g.putErrs) {
			err = g.putErrs[n-1]
		}
		g.mu.Unlock()
		ctx.Respond(&messages.PutResponse{Status: messages.StatusOf(err), Version: uint64(10 * n)})
	}
}

func startScripted(t *testing.T, putErrs ...error) (*Client, *scriptedGroup) {
	t.Helper()
	sys := actor.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	g := &scriptedGroup{putErrs: putErrs}
	pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return g }))
	return NewClient(sys.Root, pid, time.Second), g
}

var errExpired = messages.Errorf(messages.StatusCode_SESSION_EXPIRED, "client session is unknown")

// TestClientReopensAForgottenSession: a write whose only attempt the state
// machine refused for its forgotten session was never applied, so the
// client sends it again under a new session.
func TestClientReopensAForgottenSession(t *testing.T) {
	c, g := startScripted(t, errExpired)
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
	c, g := startScripted(t, timeout, errExpired)
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
	c, g = startScripted(t, errExpired)
	_, err = c.Put(context.Background(), []byte("k"), []byte("v"), storage.WithRequestID(&messages.RequestId{ClientId: 5, Seq: 1}))
	if !errors.Is(err, messages.ErrSessionExpired) || len(g.puts) != 1 || g.sessions != 0 {
		t.Fatalf("put with the caller's request id: %v after %d puts, %d sessions; want ErrSessionExpired after 1, 0", err, len(g.puts), g.sessions)
	}
}
