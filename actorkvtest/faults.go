package actorkvtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/linxGnu/grocksdb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// The faults a Cluster injects — crashes, restarts, partitions, slow
// links and storage — and its leader.

// Leader waits until the group knows a leader and returns it.
func (c *Cluster) Leader() uint32 {
	c.t.Helper()
	var id uint32
	Eventually(c.t, func() bool {
		var ok bool
		id, _, ok = c.Group().Leader()
		return ok
	}, WaitTimeout, "the group knows a leader")
	return id
}

// WaitLeader waits until the group knows replica id as its leader.
func (c *Cluster) WaitLeader(id uint32) {
	c.t.Helper()
	ctx, cancel := c.waitCtx()
	defer cancel()
	if err := c.Group().WaitLeader(ctx, id); err != nil {
		c.t.Fatalf("cluster: %v", err)
	}
}

// WaitNewLeader waits until the group knows a leader other than old and
// returns it.
func (c *Cluster) WaitNewLeader(old uint32) uint32 {
	c.t.Helper()
	var id uint32
	Eventually(c.t, func() bool {
		l, _, ok := c.Group().Leader()
		id = l
		return ok && l != old
	}, WaitTimeout, fmt.Sprintf("a leader other than replica %d", old))
	return id
}

// Crash stops replica id (StopReplica: its Raft node halts at once, its data
// stays on disk) and waits until its storage is closed. EnsureSame leaves it
// out until Restart.
func (c *Cluster) Crash(id uint32) {
	c.t.Helper()
	ctx, cancel := c.waitCtx()
	defer cancel()
	if err := c.Group().StopReplica(ctx, id); err != nil {
		c.t.Fatalf("cluster: crash replica %d: %v", id, err)
	}
	c.mu.Lock()
	c.down[id] = true
	c.mu.Unlock()
}

// Restart starts a stopped replica from its data; with wipeRaftLog it is
// rebuilt from scratch: replaced in the Raft membership by a node of its
// next generation, its Raft log and data deleted, it catches up from the
// leader (through a snapshot once the leader's log is compacted; see
// Group.StartReplica). It returns once the replica serves (not once it has
// caught up: see EnsureSame).
func (c *Cluster) Restart(id uint32, wipeRaftLog bool) {
	c.t.Helper()
	ctx, cancel := c.waitCtx()
	defer cancel()
	if err := c.Group().StartReplica(ctx, id, wipeRaftLog); err != nil {
		c.t.Fatalf("cluster: restart replica %d: %v", id, err)
	}
	c.mu.Lock()
	delete(c.down, id)
	c.mu.Unlock()
}

func (c *Cluster) addresses() []string {
	g := c.Group()
	out := make([]string, Replicas)
	for id := range uint32(Replicas) {
		out[id] = g.RaftAddress(id)
	}
	return out
}

// TransferLeader asks the group to hand leadership to replica id until the
// group knows id as its leader: a transfer fails silently while the target
// lags, so it asks again after each wait of twenty election timeouts.
func (c *Cluster) TransferLeader(id uint32) {
	c.t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*c.cfg.Raft.ElectionTimeout())
		err := c.Group().TransferLeader(ctx, id)
		if err == nil {
			err = c.Group().WaitLeader(ctx, id)
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster: replica %d did not take the lead: %v", id, err)
		}
	}
}

// Partition cuts replica id off from every other replica (both ways); its
// actor still runs and answers the router.
func (c *Cluster) Partition(id uint32) {
	g := c.Group()
	g.Network().Isolate(g.RaftAddress(id), c.addresses())
}

// Heal restores every link and removes every network delay.
func (c *Cluster) Heal() { c.Group().Network().Heal() }

// SlowNetwork delays every Raft message sent to replica id by d (0 removes
// the delay).
func (c *Cluster) SlowNetwork(id uint32, d time.Duration) {
	g := c.Group()
	g.Network().Delay(g.RaftAddress(id), d)
}

// SlowStorage adds latency d to every storage operation of the replicas ids
// (all when none); d 0 removes every injected fault there. Faults belong to
// one engine instance: a restarted replica has none.
func (c *Cluster) SlowStorage(d time.Duration, ids ...uint32) {
	c.t.Helper()
	f := &messages.FaultInjection{}
	if d > 0 {
		f.AddedLatency = durationpb.New(d)
	}
	c.InjectFaults(f, ids...)
}

// InjectFaults sets the injected storage faults of the replicas ids (all
// when none).
func (c *Cluster) InjectFaults(f *messages.FaultInjection, ids ...uint32) {
	c.t.Helper()
	ctx, cancel := c.waitCtx()
	defer cancel()
	if err := c.Client().SetFaultInjection(ctx, f, kv.WithReplicas(ids...)); err != nil {
		c.t.Fatalf("cluster: inject faults %v into replicas %v: %v", f, ids, err)
	}
}

// OverwriteOnDisk sets key to value in column family cf of the RocksDB at
// path (a replica's base_path/replica-N/data, with its replica stopped), as
// a disk fault or an operator's mistake would, behind Raft's back: the
// replica then differs from the others at the same applied index, which
// EnsureSame and kvctl verify report down to the key.
func OverwriteOnDisk(t testing.TB, path, cf, key, value string) {
	t.Helper()
	opts := grocksdb.NewDefaultOptions()
	defer opts.Destroy()
	names, err := grocksdb.ListColumnFamilies(opts, path)
	if err != nil {
		t.Fatal(err)
	}
	cfOpts := make([]*grocksdb.Options, len(names))
	for i := range names {
		cfOpts[i] = opts
	}
	db, handles, err := grocksdb.OpenDbColumnFamilies(opts, path, names, cfOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wo := grocksdb.NewDefaultWriteOptions()
	defer wo.Destroy()
	wo.SetSync(true)
	found := false
	for i, n := range names {
		defer handles[i].Destroy()
		if n == cf {
			found = true
			if err := db.PutCF(wo, handles[i], []byte(key), []byte(value)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !found {
		t.Fatalf("no column family %q in %s (%v)", cf, path, names)
	}
}
