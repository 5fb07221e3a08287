package actorkvtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/actorkv/actorkv/kv"
)

// Workload is a simple register workload for the checkers: each client
// gets, puts (a value no other put writes) and deletes keys drawn from a
// small set, so that operations on a key overlap often.
type Workload struct {
	// Keys is the number of keys ("k0", "k1", ...); default 10.
	Keys int
	// Timeout bounds each operation; default 2 s.
	Timeout time.Duration
	// Seed draws the operations.
	Seed uint64
	// Pace is a client's pause between two operations (0: none); a slower
	// workload makes a shorter history, quicker to check.
	Pace time.Duration
}

// Run runs one client per database in clients, recorded in h as clients
// 0, 1, ..., until ctx ends, and returns how many operations were made.
func (w Workload) Run(ctx context.Context, h *History, clients ...kv.Database) int {
	keys, timeout := w.Keys, w.Timeout
	if keys <= 0 {
		keys = 10
	}
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i, db := range clients {
		r := h.Record(i, db)
		rng := rand.New(rand.NewPCG(w.Seed, uint64(i)))
		wg.Go(func() {
			n := 0
			for ctx.Err() == nil {
				key := []byte(fmt.Sprintf("k%d", rng.IntN(keys)))
				octx, cancel := context.WithTimeout(ctx, timeout)
				switch p := rng.IntN(10); {
				case p < 5:
					_, _, _ = r.Get(octx, key)
				case p < 9:
					_, _ = r.Put(octx, key, []byte(fmt.Sprintf("c%d-%d", i, n)))
				default:
					_, _ = r.Delete(octx, key)
				}
				cancel()
				n++
				if w.Pace > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(w.Pace):
					}
				}
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	return total
}
