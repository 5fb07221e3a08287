package tests

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/actors/replica"
	"github.com/actorkv/actorkv/messages"
)

// checkGeneration checks that replica id came up as the node of generation
// and that its directory records that generation.
func checkGeneration(t testing.TB, c *actorkvtest.Cluster, id, generation uint32) {
	t.Helper()
	want := replica.NodeID(id, generation)
	if got := actorkvtest.ReplicaStatus(c.Status(false), id).GetNodeId(); got != want {
		t.Fatalf("replica %d is node %d, want %d (generation %d)", id, got, want, generation)
	}
	stored, err := replica.ReadGeneration(filepath.Join(c.Config().BasePath, fmt.Sprintf("replica-%d", id)))
	if err != nil || stored != generation {
		t.Fatalf("replica %d's directory records generation %d (%v), want %d", id, stored, err, generation)
	}
}

// TestRebuildReplicaTwice rebuilds replica 2 twice in a row, without log
// compaction, so each time the new member gets the whole log from the
// leader: it comes back as the node of generation 1, then 2, every
// acknowledged write is there, and the replicas end with equal digests.
func TestRebuildReplicaTwice(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	checkGeneration(t, c, 2, 0)
	putAll(t, c, "t1/", 300, 4, false)
	for gen := uint32(1); gen <= 2; gen++ {
		c.Crash(2)
		putAll(t, c, fmt.Sprintf("t%d/", gen+1), 300, 4, false)
		c.Restart(2, true)
		same := c.EnsureSame(t)
		checkGeneration(t, c, 2, gen)
		t.Logf("generation %d converged at %d", gen, same.GetAppliedIndex())
	}
	ctx := c.Context(time.Minute)
	for _, p := range []string{"t1/", "t2/", "t3/"} {
		kvs, err := c.Client().GetRange(ctx, []byte(p), []byte(p[:len(p)-1]+"0"), 0, false)
		if err != nil || len(kvs) != 300 {
			t.Fatalf("range %s: %d keys (want 300), %v", p, len(kvs), err)
		}
	}
	// Replica 2 serves stale reads from its own rebuilt storage too.
	st := actorkvtest.ReplicaStatus(c.Status(true), 2)
	if !st.GetRunning() || st.GetAppliedIndex() == 0 {
		t.Fatalf("replica 2 after two rebuilds:\n%s", actorkvtest.DescribeStatus(c.Status(true)))
	}
}

// TestRestartGroupAfterRebuild rebuilds replica 2 (through a snapshot),
// then restarts the whole group from disk: replica 2 keeps its new node id,
// the data and digests are those of before, and the group keeps committing.
func TestRestartGroupAfterRebuild(t *testing.T) {
	dir := t.TempDir()
	rec := actorkvtest.NewApplyRecorder()
	c := actorkvtest.NewCluster(t, actorkvtest.WithDir(dir), actorkvtest.WithRecorder(rec), actorkvtest.WithSnapshots(200, 50))
	putAll(t, c, "g/a/", 300, 4, false)
	c.Crash(2)
	putAll(t, c, "g/b/", 1000, 8, false)
	c.Restart(2, true)
	putAll(t, c, "g/c/", 100, 4, false)
	before := c.EnsureSame(t)
	checkGeneration(t, c, 2, 1)

	c.Reboot()
	after := c.EnsureSame(t)
	if after.GetAppliedIndex() != before.GetAppliedIndex() || !bytes.Equal(after.GetDigest(), before.GetDigest()) {
		t.Fatalf("after the restart: applied %d digest %x; before: applied %d digest %x",
			after.GetAppliedIndex(), after.GetDigest(), before.GetAppliedIndex(), before.GetDigest())
	}
	checkGeneration(t, c, 2, 1)
	checkGeneration(t, c, 0, 0)
	ctx := c.Context(time.Minute)
	kvs, err := c.Client().GetRange(ctx, []byte("g/"), []byte("g0"), 0, false)
	if err != nil || len(kvs) != 1400 {
		t.Fatalf("range after the restart: %d keys (want 1,400), %v", len(kvs), err)
	}
	putAll(t, c, "g/d/", 100, 4, false)
	c.EnsureSame(t)
	for id := range uint32(actorkvtest.Replicas) {
		if id == 2 {
			continue // rebuilt: it applied entries again after its snapshot
		}
		if d := rec.Duplicates(id); d != "" {
			t.Errorf("replica %d across the rebuild and the restart: %s", id, d)
		}
	}
}

// TestRebuildLeaderUnderWrites crashes the leader (replica 0) while two
// writers run, and rebuilds it while they keep writing: the membership
// change commits among the live entries, the writers' retries carry them
// over the failover, no acknowledged write is lost, and the rebuilt replica
// converges with the others.
func TestRebuildLeaderUnderWrites(t *testing.T) {
	c := actorkvtest.NewCluster(t, actorkvtest.WithSnapshots(300, 50))
	w1 := startWriter(c.Group().Client(), "rw/1/")
	w2 := startWriter(c.Group().Client(), "rw/2/")
	w1.waitAcked(t, 50, "before the crash")
	c.Crash(0)
	leader := c.WaitNewLeader(0)
	w1.waitAcked(t, 400, fmt.Sprintf("with replica %d leading", leader))
	c.Restart(0, true) // the writers keep going meanwhile
	w2.waitAcked(t, 100, "after the rebuild")
	keys := append(w1.finish(t), w2.finish(t)...)
	c.EnsureSame(t)
	checkGeneration(t, c, 0, 1)
	checkNoDuplicates(t, c, 0) // replica 0 was rebuilt: its new node applied the log anew
	checkKeys(t, c, keys)
	t.Logf("%d writes acknowledged across the crash and rebuild of the leader", len(keys))
}

// TestLeaderAfterRebuild moves the lead to a rebuilt replica: the group's
// leader (from LeaderChanged, which carries dragonboat node ids mapped back
// to replica ids) is replica 2 under its new node id, every replica agrees,
// and writes go through it; cut off, it loses the lead to another replica.
func TestLeaderAfterRebuild(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	putAll(t, c, "l/a/", 100, 4, false)
	c.Crash(2)
	putAll(t, c, "l/b/", 100, 4, false)
	c.Restart(2, true)
	c.EnsureSame(t)
	c.TransferLeader(2)
	if l, _, ok := c.Group().Leader(); !ok || l != 2 {
		t.Fatalf("the group's leader is %d (known %v), want 2", l, ok)
	}
	actorkvtest.Eventually(t, func() bool {
		st := c.Status(false)
		for id := range uint32(actorkvtest.Replicas) {
			r := actorkvtest.ReplicaStatus(st, id)
			if !r.GetHasLeader() || r.GetLeaderId() != 2 || r.GetIsLeader() != (id == 2) {
				return false
			}
		}
		return true
	}, actorkvtest.WaitTimeout, "every replica reports replica 2 as the leader")
	putAll(t, c, "l/c/", 200, 4, false)
	c.EnsureSame(t)

	c.Partition(2)
	if l := c.WaitNewLeader(2); l == 2 || l >= actorkvtest.Replicas {
		t.Fatalf("new leader %d", l)
	}
	putAll(t, c, "l/d/", 100, 4, true)
	c.Heal()
	c.TransferLeader(0) // the supervisor names replica 0 by its node id, of generation 0
	c.EnsureSame(t)
}

// TestRebuildRefusals checks that a running replica is not rebuilt, and that
// a group running one replica per process cannot rebuild its own (the
// membership change needs a running member in the process): both answer
// INVALID_ARGUMENT, and the replica still starts from its data afterwards.
func TestRebuildRefusals(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	ctx := c.Context(time.Minute)
	err := c.Group().StartReplica(ctx, 1, true)
	if !errors.Is(err, messages.ErrInvalidArgument) || !strings.Contains(err.Error(), "running") {
		t.Fatalf("rebuilding a running replica: %v, want INVALID_ARGUMENT", err)
	}
	c.Stop()

	cfg := actors.DefaultConfig(t.TempDir())
	cfg.InProcess = false
	cfg.Addresses = freeAddresses(t, 3)
	cfg.Local = 1
	cfg.Logger = c.Config().Logger
	g, err := actors.Start(cfg)
	if err != nil {
		t.Fatalf("start a one-replica process: %v", err)
	}
	defer g.Stop()
	if err := g.StopReplica(ctx, 1); err != nil {
		t.Fatalf("stop the local replica: %v", err)
	}
	err = g.StartReplica(ctx, 1, true)
	if !errors.Is(err, messages.ErrInvalidArgument) || !strings.Contains(err.Error(), "no other replica") {
		t.Fatalf("rebuilding the only replica of the process: %v, want INVALID_ARGUMENT", err)
	}
	if err := g.StartReplica(ctx, 1, false); err != nil {
		t.Fatalf("start the local replica from its data after the refusal: %v", err)
	}
	st, err := g.Status(ctx, false)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if n := actorkvtest.ReplicaStatus(st, 1).GetNodeId(); n != replica.NodeID(1, 0) {
		t.Fatalf("replica 1 runs as node %d, want %d: the refusal changed nothing", n, replica.NodeID(1, 0))
	}
}

// freeAddresses returns n loopback addresses whose ports were free a moment
// ago.
func freeAddresses(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		out = append(out, l.Addr().String())
		_ = l.Close()
	}
	return out
}
