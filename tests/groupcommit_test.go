package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/messages"
)

// TestGroupCommitAppliesEachWriteOnce submits hundreds of puts at once
// through one client, with one proposal in flight per replica so that the
// writes behind it are gathered into shared entries, and crashes the leader
// half-way: every put is acknowledged, entries of several writes were
// applied, and every running replica executed each write exactly once, at
// the version its answer carried (its entry's index).
func TestGroupCommitAppliesEachWriteOnce(t *testing.T) {
	c := actorkvtest.NewCluster(t, actorkvtest.WithConfig(func(cfg *actors.Config) {
		cfg.Raft.MaxProposalsInFlight = 1
	}))
	cl := c.Group().Client()
	const n = 400
	type answer struct {
		i    int
		resp messages.Statused
		err  error
	}
	answers := make(chan answer, n)
	reqs := make([]*messages.PutRequest, n)
	deadline := time.Now().Add(actorkvtest.WaitTimeout)
	for i := range n {
		if i == n/2 {
			c.Crash(c.Leader())
		}
		reqs[i] = &messages.PutRequest{Key: fmt.Appendf(nil, "gc/%03d", i), Value: []byte("v")}
		cl.Submit(reqs[i], deadline, nil, func(resp messages.Statused, err error) { answers <- answer{i, resp, err} })
	}
	versions := make([]uint64, n)
	for range n {
		a := <-answers // Submit answers by the deadline
		if a.err != nil {
			t.Fatalf("put %d: %v", a.i, a.err)
		}
		versions[a.i] = a.resp.(*messages.PutResponse).GetVersion()
	}
	c.EnsureSame(t)
	rec := c.Recorder()
	shared := map[uint64]int{}
	for _, a := range rec.Log(c.Up()[0]) {
		shared[a.Index]++
	}
	entries, most := 0, 0
	for _, k := range shared {
		if k > 1 {
			entries++
		}
		most = max(most, k)
	}
	if entries == 0 {
		t.Fatal("no entry carried several writes: the test did not exercise group commit")
	}
	for i, req := range reqs {
		k := actorkvtest.RequestKey{ClientID: req.GetRequestId().GetClientId(), Seq: req.GetRequestId().GetSeq()}
		for _, id := range c.Up() {
			if got := rec.Executions(id, k); got != 1 {
				t.Errorf("replica %d executed put %d %d times", id, i, got)
			}
			if at, _ := rec.ExecutedAt(id, k); at != versions[i] {
				t.Errorf("replica %d executed put %d at %d; it was answered version %d", id, i, at, versions[i])
			}
		}
	}
	t.Logf("%d writes; %d entries carried several, at most %d; %d retries", n, entries, most, cl.Retries())
}
