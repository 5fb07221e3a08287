package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// checkExecutedOnce checks that every running replica executed request k
// exactly once, at index version.
func checkExecutedOnce(t testing.TB, c *actorkvtest.Cluster, k actorkvtest.RequestKey, version uint64) {
	t.Helper()
	rec := c.Recorder()
	for _, id := range c.Up() {
		if n := rec.Executions(id, k); n != 1 {
			t.Errorf("replica %d executed request %d/%d %d times (%d log entries carried it)", id, k.ClientID, k.Seq, n, rec.Occurrences(id, k))
			continue
		}
		if at, _ := rec.ExecutedAt(id, k); at != version {
			t.Errorf("replica %d executed request %d/%d at %d; the retry answered version %d", id, k.ClientID, k.Seq, at, version)
		}
	}
}

// TestRetryAfterTimeoutAppliesOnce slows every replica's storage so that a
// put with a 100 ms deadline times out while its entry is still being
// applied; the faults are cleared and the put is retried with the same
// request id: it answers the version the first attempt committed at, and
// every replica executed it exactly once.
func TestRetryAfterTimeoutAppliesOnce(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	client, err := c.Client().OpenSession(c.Context(time.Minute))
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	c.SlowStorage(300 * time.Millisecond)
	rid := &messages.RequestId{ClientId: client, Seq: 1}
	k := actorkvtest.RequestKey{ClientID: rid.GetClientId(), Seq: rid.GetSeq()}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = c.Client().Put(short, []byte("eo/k"), []byte("once"), kv.WithRequestID(rid))
	if !errors.Is(err, messages.ErrTimeout) {
		t.Fatalf("put with a 100 ms deadline on 300 ms storage: %v, want TIMEOUT", err)
	}
	c.SlowStorage(0)
	v, err := c.Client().Put(c.Context(time.Minute), []byte("eo/k"), []byte("once"), kv.WithRequestID(rid))
	if err != nil {
		t.Fatalf("retry with the same request id: %v", err)
	}
	c.EnsureSame(t)
	checkExecutedOnce(t, c, k, v)
	// The retry was answered from the session, not applied again: its
	// entry, if it reached the log, carried the first version.
	for _, a := range c.Recorder().Log(0) {
		if a.Request == k && a.Version != v {
			t.Fatalf("entry %d of the request answered version %d, want %d", a.Index, a.Version, v)
		}
	}
	t.Logf("request applied at %d; %d log entries carried it", v, c.Recorder().Occurrences(0, k))
}

// TestRetryAcrossPartitionAppliesOnce isolates the leader, so that a put sent
// to it cannot commit in time; after the partition heals, the put is retried
// with the same request id, and every replica executed it exactly once.
func TestRetryAcrossPartitionAppliesOnce(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	if _, err := c.Client().Put(c.Context(time.Minute), []byte("ep/warm"), []byte("v")); err != nil {
		t.Fatalf("put: %v", err)
	}
	client, err := c.Client().OpenSession(c.Context(time.Minute))
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	rid := &messages.RequestId{ClientId: client, Seq: 1}
	k := actorkvtest.RequestKey{ClientID: rid.GetClientId(), Seq: rid.GetSeq()}
	c.Partition(0)
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = c.Client().Put(short, []byte("ep/k"), []byte("once"), kv.WithRequestID(rid))
	if err != nil && !messages.IsRetryable(err) {
		t.Fatalf("put to the isolated leader: %v, want a retryable error (or success)", err)
	}
	t.Logf("first attempt, leader isolated: %v", err)
	c.Heal()
	v, err := c.Client().Put(c.Context(time.Minute), []byte("ep/k"), []byte("once"), kv.WithRequestID(rid))
	if err != nil {
		t.Fatalf("retry with the same request id: %v", err)
	}
	c.EnsureSame(t)
	checkExecutedOnce(t, c, k, v)
	got, found, err := c.Client().Get(c.Context(time.Minute), []byte("ep/k"))
	if err != nil || !found || string(got) != "once" {
		t.Fatalf("get: %q found=%v, %v", got, found, err)
	}
}
