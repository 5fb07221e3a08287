package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/actorkv/actorkv/messages"
)

// TestPartitions runs the three-process cluster with each process on a host
// of its own (a network namespace), under a write load over every process,
// and partitions it: the leader is cut away from the other two (it answers
// UNAVAILABLE promptly; they elect a leader among themselves and serve),
// then healed; a follower is cut away and healed; a follower's link is
// thinned to 256 kbit/s. After each heal the replicas converge to one
// digest and hold every acknowledged write.
func TestPartitions(t *testing.T) {
	lab := newNetLab(t, 3)
	c := lab.cluster("")
	var writers []*writer
	for i := range 6 {
		writers = append(writers, &writer{id: i})
	}
	var acks []ack
	settle := func(l *load, phase string) {
		t.Helper()
		acks = l.stop(t) // every write acknowledged since the start
		c.converged()
		c.checkAcks(acks)
		t.Logf("%s: the replicas converged; %d acknowledged writes on each", phase, len(acks))
	}

	// The leader is cut away.
	l := startLoad(writers, c.nodes...)
	l.waitAcks(t, 200, waitTimeout)
	old, term := c.leader(0, c.nodes...)
	rest := others(c.nodes, old)
	cut := time.Now()
	lab.cut(old.id)
	leader, term := c.leader(term, rest...)
	elected := time.Since(cut)
	before := l.total.Load()
	l.waitAcks(t, before+200, waitTimeout)
	t.Logf("leader %d cut away: replica %d leads at term %d, %v after the cut; the majority serves", old.id, leader.id, term, elected.Round(time.Millisecond))
	answersUnavailable(t, old)
	if err := httpGetStatus(leader.http, "/readyz", http.StatusOK); err != nil {
		t.Fatalf("the majority's leader is not ready: %v", err)
	}
	lab.heal(old.id)
	l.waitAcks(t, l.total.Load()+200, waitTimeout)
	settle(l, "leader cut away and healed")

	// A follower is cut away: the other two go on.
	l = startLoad(writers, c.nodes...)
	leader, term = c.leader(0, c.nodes...)
	follower := others(c.nodes, leader)[0]
	lab.cut(follower.id)
	l.waitAcks(t, l.total.Load()+300, waitTimeout)
	answersUnavailable(t, follower)
	lab.heal(follower.id)
	l.waitAcks(t, l.total.Load()+200, waitTimeout)
	settle(l, fmt.Sprintf("follower %d cut away and healed", follower.id))
	_, after := c.leader(0, c.nodes...)
	t.Logf("follower %d cut away and healed: term %d -> %d", follower.id, term, after)

	// A follower's link is thin: it lags, and catches up once it is not.
	l = startLoad(writers, c.nodes...)
	leader, _ = c.leader(0, c.nodes...)
	follower = others(c.nodes, leader)[0]
	lab.thin(follower.id, "256kbit")
	l.waitAcks(t, l.total.Load()+300, waitTimeout)
	lab.unthin(follower.id)
	settle(l, fmt.Sprintf("follower %d on a 256 kbit/s link", follower.id))
}

// answersUnavailable checks that n, cut away from a majority, answers a
// linearizable read UNAVAILABLE within a second (several in a row, once it
// knows it has no leader: a replica cut away while it led keeps its lead
// until its election timeout tells it that no majority hears it), and that
// its /readyz answers 503.
func answersUnavailable(t *testing.T, n *node) {
	t.Helper()
	probe := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		_, err := n.kv.Get(ctx, &messages.GetRequest{Key: []byte("probe"), Consistency: messages.Consistency_LINEARIZABLE})
		took := time.Since(start)
		if grpcstatus.Code(err) != codes.Unavailable {
			return fmt.Errorf("node %d, cut away: a linearizable read answered %v after %v, want UNAVAILABLE", n.id, err, took)
		}
		if took > time.Second {
			return fmt.Errorf("node %d, cut away: a linearizable read answered UNAVAILABLE after %v", n.id, took)
		}
		return nil
	}
	eventually(t, waitTimeout, probe)
	for range 5 {
		if err := probe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := httpGetStatus(n.http, "/readyz", http.StatusServiceUnavailable); err != nil {
		t.Fatalf("node %d, cut away: /readyz: %v", n.id, err)
	}
}

// others are nodes but n.
func others(nodes []*node, n *node) []*node {
	var rest []*node
	for _, m := range nodes {
		if m != n {
			rest = append(rest, m)
		}
	}
	return rest
}
