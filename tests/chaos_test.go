package tests

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/kv"
)

// TestChaos is the README's chaos + linearizability test, as printed there.
func TestChaos(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	h := actorkvtest.NewHistory()                      // records every call and its outcome
	chaos := c.StartChaos(t, actorkvtest.ChaosSeed(1)) // crash, rebuild, partition, slow, fail disks, move the leader
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	actorkvtest.Workload{Seed: 1, Pace: time.Millisecond}.Run(ctx, h, c.Group().Client(), c.Group().Client())
	chaos.Stop()    // undoes every fault
	c.EnsureSame(t) // one applied index, one digest
	if err := errors.Join(chaos.Err(), actorkvtest.FinalReads(c.Context(time.Minute), h, 2, c.Client())); err != nil {
		t.Fatal(err) // a fault that failed, or a final read (lost writes show there)
	}
	actorkvtest.CheckLinearizable(t, h, time.Minute) // porcupine, per key; a timeout fails too
}

// TestChaosLinearizable: four clients get, put and delete five keys while
// the seeded chaos crashes, rebuilds, partitions and slows replicas, fails
// their disks and moves the leader; then every replica converges, a final
// read of every key joins the history, and porcupine must find the whole
// history linearizable — so no acknowledged write was lost, and no read
// saw a state the log never had. Several seeds; ACTORKV_CHAOS_SEED replays
// one.
func TestChaosLinearizable(t *testing.T) {
	for _, seed := range []uint64{2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			seed = actorkvtest.ChaosSeed(seed)
			c := actorkvtest.NewCluster(t, actorkvtest.WithSnapshots(200, 50))
			h := actorkvtest.NewHistory()
			chaos := c.StartChaos(t, seed)
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
			defer cancel()
			clients := []kv.Database{c.Group().Client(), c.Group().Client(), c.Group().Client(), c.Group().Client()}
			n := actorkvtest.Workload{Seed: seed, Pace: time.Millisecond}.Run(ctx, h, clients...)
			chaos.Stop()
			if err := chaos.Err(); err != nil {
				t.Fatal(err)
			}
			c.EnsureSame(t)
			if err := actorkvtest.FinalReads(c.Context(time.Minute), h, len(clients), c.Client()); err != nil {
				t.Fatal(err)
			}
			res := actorkvtest.CheckLinearizable(t, h, time.Minute)
			t.Logf("seed %d: %d operations, %d checked (%d of unknown outcome): linearizable\n%s", seed, n, res.Operations, res.Unknown, chaos.Schedule())
		})
	}
}

// TestChaosBank: transfers between accounts through atomic commits (read
// at a version, commit with both accounts as read conflict ranges) while
// the chaos runs; every audit at a snapshot version and the final read
// must find the money the accounts started with.
func TestChaosBank(t *testing.T) {
	seed := actorkvtest.ChaosSeed(4)
	c := actorkvtest.NewCluster(t, actorkvtest.WithSnapshots(200, 50))
	bank := actorkvtest.Bank{Accounts: 8, Initial: 100, Seed: seed}
	if err := bank.Open(c.Context(time.Minute), c.Client()); err != nil {
		t.Fatal(err)
	}
	chaos := c.StartChaos(t, seed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := bank.Run(ctx, c.Group().Client(), c.Group().Client(), c.Group().Client())
	chaos.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(chaos.Err(), bank.Final(c.Context(time.Minute), c.Client())); err != nil {
		t.Fatal(err)
	}
	c.EnsureSame(t)
	if res.Transfers == 0 || res.Audits == 0 {
		t.Fatalf("the bank did nothing to check: %+v", res)
	}
	t.Logf("seed %d: %+v", seed, res)
}
