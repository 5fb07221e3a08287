package tests

import (
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/actors"
)

// TestFailoverEndsCallsInFlight cuts the leader off while a writer runs,
// with proposals and client attempts allowed a minute each: the writes in
// flight on the old leader, which would otherwise wait out that minute, end
// as soon as it sees leadership move (their outcome unknown: the client
// retries them with their request ids), and the writer goes on through the
// new leader within seconds. After the heal, every acknowledged write is
// there, each applied once.
func TestFailoverEndsCallsInFlight(t *testing.T) {
	c := actorkvtest.NewCluster(t, actorkvtest.WithConfig(func(cfg *actors.Config) {
		cfg.Raft.ProposalTimeout = time.Minute
		cfg.RequestTimeout = time.Minute
	}))
	w := startWriter(c.Client(), "fo/")
	w.waitAcked(t, 50, "before the partition")
	old := c.Leader()
	c.Partition(old)
	cut := time.Now()
	before := w.acked.Load()
	// Well under the minute a stuck call would take.
	actorkvtest.Eventually(t, func() bool { return w.acked.Load() >= before+20 }, 20*time.Second,
		"writes resume through a new leader while the old one is cut off")
	t.Logf("writes resumed %v after replica %d was cut off", time.Since(cut).Round(time.Millisecond), old)
	c.Heal()
	keys := w.finish(t)
	c.EnsureSame(t)
	checkNoDuplicates(t, c)
	checkKeys(t, c, keys)
}
