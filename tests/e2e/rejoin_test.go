package e2e

import "testing"

// TestFollowerRestartKeepsTheLeader kills a follower with SIGKILL and starts
// it again, four times, while clients write through the other two: the
// restarted replica hears from the leader before its election timeout
// (raftnet dials it again as soon as it listens), so it never campaigns, and
// the leader keeps its term. With dragonboat's own TCP transport the
// leader's back-off toward a peer that failed (up to a second) outlasted the
// follower's election timeout about every other time, and the follower's
// campaign at a higher term unseated the leader on rejoining.
func TestFollowerRestartKeepsTheLeader(t *testing.T) {
	c := startCluster(t)
	lead, term := c.leader(0, c.nodes...)
	var rest []*node
	var follower *node
	for _, n := range c.nodes {
		if n != lead && follower == nil {
			follower = n
		} else {
			rest = append(rest, n)
		}
	}
	var writers []*writer
	for i := range 4 {
		writers = append(writers, &writer{id: i})
	}
	l := startLoad(writers, rest...)
	l.waitAcks(t, 100, waitTimeout)
	for i := range 4 {
		at := l.total.Load()
		follower.kill()
		c.restart(follower) // until it is ready: it caught up through the leader
		l.waitAcks(t, at+100, waitTimeout)
		t.Logf("restart %d of follower %d: ready, %d writes acknowledged meanwhile", i+1, follower.id, l.total.Load()-at)
	}
	acks := l.stop(t)
	now, term2 := c.leader(0, c.nodes...)
	// One election is tolerated: a loaded two-core machine can miss a
	// heartbeat; four restarts that each disrupted would show four.
	if term2 > term+1 {
		t.Fatalf("the leader changed from node %d at term %d to node %d at term %d over four restarts of a follower", lead.id, term, now.id, term2)
	}
	c.converged()
	c.checkAcks(acks)
}
