package actorkvtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// Bank is a serializability check for atomic commits: accounts hold
// balances; clients move money between two accounts with read-modify-write
// transactions (snapshot reads at a read version, then an atomic commit
// with both accounts as read conflict ranges), and auditors read every
// account at one version. Every audit and the final linearizable read must
// find the total the accounts started with: a lost, doubled or torn
// transfer, or a snapshot read of a state the log never had, shows as a
// different total.
type Bank struct {
	// Accounts and Initial: how many accounts, each starting with Initial.
	Accounts, Initial int
	// Seed draws the transfers.
	Seed uint64
	// Timeout bounds each operation; default 2 s.
	Timeout time.Duration
}

// BankResult counts what a Bank run did.
type BankResult struct {
	Transfers, Conflicts, Unknown, Audits int64
}

func (b Bank) key(i int) []byte { return []byte(fmt.Sprintf("bank/%04d", i)) }

// Open writes the accounts' starting balances through db.
func (b Bank) Open(ctx context.Context, db kv.Database) error {
	for i := range b.Accounts {
		if _, err := db.Put(ctx, b.key(i), []byte(strconv.Itoa(b.Initial))); err != nil {
			return fmt.Errorf("bank: open account %d: %w", i, err)
		}
	}
	return nil
}

// Run moves money with one client per database and audits with the first
// until ctx ends; it returns the first violation found (nil: none).
func (b Bank) Run(ctx context.Context, clients ...kv.Database) (BankResult, error) {
	timeout := b.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	var res BankResult
	var mu sync.Mutex
	var violation error
	found := func(err error) {
		mu.Lock()
		if violation == nil {
			violation = err
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for i, db := range clients {
		rng := rand.New(rand.NewPCG(b.Seed, uint64(i)))
		wg.Go(func() {
			for ctx.Err() == nil {
				octx, cancel := context.WithTimeout(ctx, timeout)
				if rng.IntN(5) == 0 {
					if err := b.audit(octx, db, &res); err != nil {
						found(err)
					}
				} else {
					b.transfer(octx, db, rng, &res)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	return res, violation
}

// transfer moves a random amount between two accounts in one transaction.
func (b Bank) transfer(ctx context.Context, db kv.Database, rng *rand.Rand, res *BankResult) {
	from, to := rng.IntN(b.Accounts), rng.IntN(b.Accounts-1)
	if to >= from {
		to++
	}
	amount := 1 + rng.IntN(10)
	rv, err := db.GetReadVersion(ctx)
	if err != nil {
		return
	}
	balance := func(i int) (int, bool) {
		v, ok, err := db.SnapshotRead(ctx, b.key(i), rv)
		if err != nil || !ok {
			return 0, false
		}
		n, err := strconv.Atoi(string(v))
		return n, err == nil
	}
	x, ok1 := balance(from)
	y, ok2 := balance(to)
	if !ok1 || !ok2 || x < amount {
		return
	}
	point := func(k []byte) *messages.KeyRange {
		return &messages.KeyRange{Begin: k, End: append(append([]byte{}, k...), 0)}
	}
	set := func(k []byte, n int) *messages.Mutation {
		return &messages.Mutation{Type: messages.MutationType_SET, Key: k, Value: []byte(strconv.Itoa(n))}
	}
	_, err = db.AtomicCommit(ctx, &messages.AtomicCommit{ReadVersion: rv,
		ReadConflictRanges: []*messages.KeyRange{point(b.key(from)), point(b.key(to))},
		Mutations:          []*messages.Mutation{set(b.key(from), x-amount), set(b.key(to), y+amount)}})
	switch {
	case err == nil:
		atomic.AddInt64(&res.Transfers, 1)
	case errors.Is(err, messages.ErrConflict):
		atomic.AddInt64(&res.Conflicts, 1)
	default:
		atomic.AddInt64(&res.Unknown, 1) // all or nothing either way
	}
}

// audit sums every account at one version.
func (b Bank) audit(ctx context.Context, db kv.Database, res *BankResult) error {
	rv, err := db.GetReadVersion(ctx)
	if err != nil {
		return nil
	}
	kvs, err := db.SnapshotGetRange(ctx, []byte("bank/"), []byte("bank0"), b.Accounts+1, false, rv)
	if err != nil {
		return nil // too old, or unavailable: nothing observed
	}
	atomic.AddInt64(&res.Audits, 1)
	return b.check(kvs, fmt.Sprintf("audit at version %d", rv))
}

// Final reads every account linearizably through db and checks the total.
func (b Bank) Final(ctx context.Context, db kv.Database) error {
	kvs, err := db.GetRange(ctx, []byte("bank/"), []byte("bank0"), b.Accounts+1, false)
	if err != nil {
		return fmt.Errorf("bank: final read: %w", err)
	}
	return b.check(kvs, "final read")
}

func (b Bank) check(kvs []*messages.KeyValue, what string) error {
	total := 0
	for _, e := range kvs {
		n, err := strconv.Atoi(string(e.GetValue()))
		if err != nil {
			return fmt.Errorf("bank: %s: account %s holds %q", what, e.GetKey(), e.GetValue())
		}
		total += n
	}
	if len(kvs) != b.Accounts || total != b.Accounts*b.Initial {
		return fmt.Errorf("bank: %s: %d accounts hold %d in all; want %d accounts holding %d", what, len(kvs), total, b.Accounts, b.Accounts*b.Initial)
	}
	return nil
}
