package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/kvclient"
)

// TestClusterChaosLinearizable runs the register workload against the
// three-process cluster through gRPC — each client a kv.Client over every
// endpoint, with kvctl's retry policy — while a seeded schedule kills a
// process with SIGKILL (the leader's, one time in three) and restarts it
// on its data, one at a time. Then the replicas converge, a final read of
// every key joins the history, and porcupine must find it linearizable.
func TestClusterChaosLinearizable(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			seed = actorkvtest.ChaosSeed(seed)
			c := startCluster(t)
			client := func() kv.Database {
				ts := make([]kv.Transport, len(c.nodes))
				for i, n := range c.nodes {
					ts[i] = kvclient.NewUnary(c.dial(n.grpc))
				}
				return kv.NewClient(kvclient.NewEndpoints(ts...), time.Second)
			}
			h := actorkvtest.NewHistory()
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			done := make(chan int, 1)
			go func() {
				done <- actorkvtest.Workload{Seed: seed, Pace: 2 * time.Millisecond}.Run(ctx, h, client(), client(), client())
			}()
			rng := rand.New(rand.NewPCG(seed, 7))
			var schedule []string
			for ctx.Err() == nil {
				victim := c.nodes[rng.IntN(len(c.nodes))]
				leaderFirst := rng.IntN(3) == 0
				down := time.Duration(200+rng.IntN(600)) * time.Millisecond
				up := time.Duration(300+rng.IntN(700)) * time.Millisecond
				if leaderFirst {
					victim, _ = c.leader(0, c.nodes...)
				}
				schedule = append(schedule, fmt.Sprintf("kill -9 node %d, down %v", victim.id, down))
				victim.kill()
				time.Sleep(down) // the schedule's own pacing, not a synchronisation
				c.restart(victim)
				time.Sleep(up)
			}
			n := <-done
			c.converged()
			if err := actorkvtest.FinalReads(context.Background(), h, 3, client()); err != nil {
				t.Fatal(err)
			}
			res := actorkvtest.CheckLinearizable(t, h, time.Minute)
			t.Logf("seed %d: %d operations, %d checked (%d of unknown outcome): linearizable; schedule: %v", seed, n, res.Operations, res.Unknown, schedule)
		})
	}
}
