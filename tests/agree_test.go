package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// outcomeCounter counts, per replica, the applied commands whose outcome was
// CONFLICT, and every applied index, from the executors' observer.
type outcomeCounter struct {
	mu        sync.Mutex
	conflicts map[uint32]int
	applied   map[uint32]map[uint64]int
}

func newOutcomeCounter() *outcomeCounter {
	return &outcomeCounter{conflicts: map[uint32]int{}, applied: map[uint32]map[uint64]int{}}
}

func (c *outcomeCounter) observe(replica uint32, entries []storage.Entry, results []*messages.CommandResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applied[replica] == nil {
		c.applied[replica] = map[uint64]int{}
	}
	for i, r := range results {
		c.applied[replica][entries[i].Index]++
		rs := []*messages.CommandResult{r}
		if entries[i].Cmd.GetBatch() != nil { // an entry of several commands
			rs = r.GetBatch()
		}
		for _, r := range rs {
			if r.GetStatus().GetCode() == messages.StatusCode_CONFLICT {
				c.conflicts[replica]++
			}
		}
	}
}

// TestFollowersAgreeAfterMixedWorkload runs puts, deletes, clear-ranges and
// conflicting and non-conflicting atomic commits from many clients, then
// checks that all three replicas reach the same applied index with equal
// digests, that every replica decided CONFLICT for exactly as many commits as
// clients were told CONFLICT, and that no entry was applied twice.
func TestFollowersAgreeAfterMixedWorkload(t *testing.T) {
	counter := newOutcomeCounter()
	cfg := actors.DefaultConfig(t.TempDir())
	cfg.Raft.RTT = 5 * time.Millisecond
	cfg.Raft.ElectionRTT = 20
	cfg.Observer = counter.observe
	g, err := actors.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := errors.Join(g.WaitReady(ctx), g.WaitStarted(ctx)); err != nil {
		t.Fatal(err)
	}

	const (
		clients   = 16
		opsEach   = 120
		counters  = 4 // hot keys read-modify-written by commits
		plainKeys = 64
	)
	var conflictAnswers, commitOK atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := g.Client()
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			for i := range opsEach {
				key := fmt.Appendf(nil, "k/%03d", rng.IntN(plainKeys))
				var err error
				switch op := rng.IntN(10); {
				case op < 3:
					_, err = db.Put(ctx, key, fmt.Appendf(nil, "c%d-%d", c, i))
				case op < 4:
					_, err = db.Delete(ctx, key)
				case op < 5:
					lo := rng.IntN(plainKeys)
					_, err = db.ClearRange(ctx, fmt.Appendf(nil, "k/%03d", lo), fmt.Appendf(nil, "k/%03d", lo+2))
				case op < 8:
					// read-modify-write of a hot counter: conflicts when
					// another client committed to it after our read version
					ck := fmt.Appendf(nil, "counter/%d", rng.IntN(counters))
					var rv uint64
					if rv, err = db.GetReadVersion(ctx); err != nil {
						break
					}
					var cur []byte
					if cur, _, err = db.SnapshotRead(ctx, ck, rv); err != nil {
						break
					}
					_, err = db.AtomicCommit(ctx, &messages.AtomicCommit{
						ReadVersion:        rv,
						ReadConflictRanges: []*messages.KeyRange{{Begin: ck, End: append(append([]byte(nil), ck...), 0)}},
						Mutations:          []*messages.Mutation{{Type: messages.MutationType_SET, Key: ck, Value: append(cur, 'x')}},
					})
				default:
					// a blind multi-key commit: never conflicts
					_, err = db.AtomicCommit(ctx, &messages.AtomicCommit{Mutations: []*messages.Mutation{
						{Type: messages.MutationType_SET, Key: key, Value: []byte("blind")},
						{Type: messages.MutationType_DELETE, Key: fmt.Appendf(nil, "k/%03d", rng.IntN(plainKeys))},
					}})
					if err == nil {
						commitOK.Add(1)
					}
				}
				switch {
				case errors.Is(err, messages.ErrConflict):
					conflictAnswers.Add(1)
				case err != nil:
					errs <- fmt.Errorf("client %d op %d: %w", c, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if conflictAnswers.Load() == 0 {
		t.Fatalf("the workload produced no conflicts; it does not test the conflict path")
	}

	// All replicas converge on the same index and contents.
	var st *messages.StatusResponse
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err = g.Status(ctx, true)
		if err == nil && converged(st) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not converge: %v (err %v)", st, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
	}

	counter.mu.Lock()
	defer counter.mu.Unlock()
	for id := range uint32(3) {
		if got := counter.conflicts[id]; got != int(conflictAnswers.Load()) {
			t.Errorf("replica %d decided CONFLICT %d times; clients were told CONFLICT %d times", id, got, conflictAnswers.Load())
		}
		for idx, n := range counter.applied[id] {
			if n != 1 {
				t.Errorf("replica %d applied index %d %d times", id, idx, n)
			}
		}
	}
	t.Logf("applied index %d, %d conflicts, %d blind commits, digests equal", st.GetReplicas()[0].GetAppliedIndex(), conflictAnswers.Load(), commitOK.Load())
}

// converged reports whether every replica runs at one applied index with one
// digest.
func converged(st *messages.StatusResponse) bool {
	rs := st.GetReplicas()
	if len(rs) != 3 {
		return false
	}
	for _, r := range rs {
		if !r.GetRunning() || r.GetAppliedIndex() != rs[0].GetAppliedIndex() || string(r.GetDigest()) != string(rs[0].GetDigest()) {
			return false
		}
	}
	return true
}
