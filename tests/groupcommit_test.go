package tests

import (
	"testing"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/actors"
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
	reqs, versions := submitAcrossCrash(t, c, cl, n, "gc")
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
	checkEachExecutedOnce(t, c, reqs, versions)
	t.Logf("%d writes; %d entries carried several, at most %d; %d retries", n, entries, most, cl.Retries())
}
