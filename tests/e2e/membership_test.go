package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actorkv/actorkv/messages"
)

// memberList runs kvctl member list -w json over the endpoints.
func (c *cluster) memberList(endpoints string) []memberJSON {
	c.t.Helper()
	r := kvctl(c.t, "", "--endpoints", endpoints, "--timeout", "30s", "-w", "json", "member", "list")
	if r.code != 0 {
		c.t.Fatalf("kvctl member list: %v", r)
	}
	var out struct {
		Members []memberJSON `json:"members"`
	}
	mustJSON(c.t, r.stdout, &out)
	return out.Members
}

type memberJSON struct {
	ID          uint32 `json:"id"`
	NodeID      uint64 `json:"node_id"`
	RaftAddress string `json:"raft_address"`
	Leader      bool   `json:"leader"`
}

// ctl runs kvctl over the endpoints and expects success.
func (c *cluster) ctl(endpoints string, args ...string) string {
	c.t.Helper()
	r := kvctl(c.t, "", append([]string{"--endpoints", endpoints, "--timeout", "30s"}, args...)...)
	if r.code != 0 || r.stderr != "" {
		c.t.Fatalf("kvctl %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

// join adds a process for replica id to the cluster through kvctl member
// add, starts it with --join, and waits until it is ready.
func (c *cluster) join(id uint32, endpoints string) *node {
	c.t.Helper()
	n := &node{id: id, dir: filepath.Join(c.t.TempDir(), fmt.Sprintf("node-%d", id)), grpc: freePort(c.t), http: freePort(c.t),
		raft: freePort(c.t), joins: strings.Split(endpoints, ",")}
	out := c.ctl(endpoints, "member", "add", fmt.Sprint(id), n.raft)
	// An added node is of generation 1: node id + 1 + 65536.
	if !strings.HasPrefix(out, fmt.Sprintf("Member %d added as node %d at %s\n", id, id+1+65536, n.raft)) {
		c.t.Fatalf("kvctl member add: %q", out)
	}
	c.launch(n)
	if err := c.waitReady(n); err != nil {
		c.t.Fatalf("joining node %d: %v\n%s", id, err, n.proc.log.tail(6000))
	}
	n.kv = messages.NewKVClient(c.dial(n.grpc))
	c.nodes = append(c.nodes, n)
	return n
}

// TestMembership runs a cluster through membership changes under a write
// load, with kvctl as an operator would: it grows from three members to
// five (each new process joins with --join and catches up from the
// leader), hands the leadership to a new member, shrinks back to three by
// removing two (the leader among them; their processes exit 0), replaces a
// member whose data was lost by a new node on an empty directory (it
// catches up through a snapshot: the log is compacted every 50 entries),
// and restarts every process: the membership survives, the replicas
// converge to one digest, and no acknowledged write is lost.
func TestMembership(t *testing.T) {
	// A snapshot every 200 entries keeps 2,000 behind it: a new member that
	// starts on an empty directory once the log has moved on needs a
	// snapshot, and catches up from the log after it. (Keeping fewer entries
	// than are written while a snapshot is sent and installed — 10, say —
	// sends a lagging member one snapshot after another.)
	c := startClusterWith(t, "[raft]\nsnapshot_entries = 200\ncompaction_overhead = 2000\n")
	first := c.endpoints()
	var writers []*writer
	for i := range 4 {
		writers = append(writers, &writer{id: i})
	}
	l := startLoad(writers, c.nodes...)
	l.waitAcks(t, 100, waitTimeout)

	// Grow to five.
	n3 := c.join(3, first)
	l.waitAcks(t, l.total.Load()+100, waitTimeout)
	n4 := c.join(4, first)
	l.waitAcks(t, l.total.Load()+100, waitTimeout)
	ms := c.memberList(c.endpoints())
	if ids := memberIDs(ms); !slices.Equal(ids, []uint32{0, 1, 2, 3, 4}) {
		t.Fatalf("members after growing: %v", ms)
	}
	acks := l.stop(t)
	c.converged()
	c.checkAcks(acks)
	t.Logf("grew to five members; %d acknowledged writes on each replica", len(acks))
	l = startLoad(writers, c.nodes...)

	// The newest member takes the lead; then it and replica 3 leave.
	if out := c.ctl(c.endpoints(), "move-leader", "4"); !strings.HasPrefix(out, "Leader moved to replica 4 (term ") {
		t.Fatalf("kvctl move-leader 4: %q", out)
	}
	for _, n := range []*node{n4, n3} {
		if out := c.ctl(first, "member", "remove", fmt.Sprint(n.id)); out != fmt.Sprintf("Member %d removed\n", n.id) {
			t.Fatalf("kvctl member remove %d: %q", n.id, out)
		}
		if code := n.proc.wait(waitTimeout); code != 0 {
			t.Fatalf("node %d exited %d after its removal\n%s", n.id, code, n.proc.log.tail(4000))
		}
		if !strings.Contains(n.proc.log.String(), "was removed from the membership") {
			t.Fatalf("node %d exited without saying it was removed:\n%s", n.id, n.proc.log.tail(4000))
		}
		l.waitAcks(t, l.total.Load()+100, waitTimeout)
	}
	c.nodes = c.nodes[:3]
	if ids := memberIDs(c.memberList(first)); !slices.Equal(ids, []uint32{0, 1, 2}) {
		t.Fatalf("members after shrinking: %v", ids)
	}
	// Removing a replica that is no member changes nothing.
	c.ctl(first, "member", "remove", "4")
	t.Logf("shrank back to three; %d writes acknowledged", l.total.Load())

	// Replica 1 loses its data: it is replaced by a new node that starts on
	// an empty directory at the same address and joins.
	acks = l.stop(t)
	n1 := c.nodes[1]
	n1.kill()
	if err := os.RemoveAll(n1.dir); err != nil {
		t.Fatal(err)
	}
	rest := []*node{c.nodes[0], c.nodes[2]}
	l = startLoad(writers, rest...)
	// The log moves on past what the leader keeps.
	from := c.applied(c.nodes[0])
	eventually(t, waitTimeout, func() error {
		if got := c.applied(c.nodes[0]); got < from+2500 {
			return fmt.Errorf("applied index %d, want %d", got, from+2500)
		}
		return nil
	})
	// Its process, started on the empty directory to join before it was
	// replaced, is refused: node 2 ran, and must not come back empty.
	n1.joins, n1.raft = []string{c.nodes[0].grpc, c.nodes[2].grpc}, c.raft[1]
	c.launch(n1)
	if code := n1.proc.wait(waitTimeout); code != 1 || !strings.Contains(n1.proc.log.tail(600), "replace it first") {
		t.Fatalf("a process joining as replica 1's old node on an empty directory: exit %d\n%s", code, n1.proc.log.tail(2000))
	}
	out := c.ctl(first, "member", "replace", "1", c.raft[1])
	if !strings.HasPrefix(out, "Member 1 replaced: node 2 -> node 65538 at "+c.raft[1]+"\n") {
		t.Fatalf("kvctl member replace: %q", out)
	}
	c.restart(n1)
	l.waitAcks(t, l.total.Load()+100, waitTimeout)
	acks = l.stop(t)
	c.converged()
	c.checkAcks(acks)
	if !strings.Contains(n1.proc.log.String(), `msg="snapshot installed" replica=1`) {
		t.Fatalf("the replacement of replica 1 caught up without a snapshot:\n%s", n1.proc.log.tail(4000))
	}
	t.Logf("replica 1 replaced as node 65538 and caught up; %d acknowledged writes on each replica", len(acks))

	// Every process restarts: the membership is Raft's, and survives.
	for _, n := range c.nodes {
		if code := n.proc.terminate(30 * time.Second); code != 0 {
			t.Fatalf("node %d exited %d after SIGTERM", n.id, code)
		}
	}
	for _, n := range c.nodes {
		c.launch(n)
	}
	if err := c.waitReady(c.nodes...); err != nil {
		t.Fatalf("restart of every process: %v", err)
	}
	ms = c.memberList(c.endpoints())
	if ids := memberIDs(ms); !slices.Equal(ids, []uint32{0, 1, 2}) || ms[1].NodeID != 65538 || ms[1].RaftAddress != c.raft[1] {
		t.Fatalf("members after restarting every process: %+v", ms)
	}
	c.converged()
	c.checkAcks(acks)
}

// applied is n's applied index.
func (c *cluster) applied(n *node) uint64 {
	c.t.Helper()
	r, err := n.localStatus(false)
	if err != nil {
		c.t.Fatal(err)
	}
	return r.GetAppliedIndex()
}

func memberIDs(ms []memberJSON) []uint32 {
	ids := make([]uint32, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}
