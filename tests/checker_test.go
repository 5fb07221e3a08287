package tests

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// The checker is a test subject too: a deliberately broken system must
// fail it.

// staleReads is a broken client: it serves its "linearizable" reads from
// the local replica without a ReadIndex round, as a replica that answers
// before checking with the leader would.
type staleReads struct{ kv.Database }

func (s staleReads) Get(ctx context.Context, key []byte, opts ...kv.Option) ([]byte, bool, error) {
	return s.Database.Get(ctx, key, append(opts, kv.WithConsistency(messages.Consistency_STALE))...)
}

// TestCheckerCatchesStaleReads: with reads served by a replica cut off from
// the others, a read after an acknowledged write returns the older value;
// the history must not be found linearizable.
func TestCheckerCatchesStaleReads(t *testing.T) {
	c := actorkvtest.NewCluster(t, actorkvtest.WithConfig(func(cfg *actors.Config) { cfg.Local = 2 }))
	h := actorkvtest.NewHistory()
	db := h.Record(0, staleReads{c.Group().Client()})
	ctx := c.Context(time.Minute)
	if _, err := db.Put(ctx, []byte("k"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	c.EnsureSame(t) // replica 2 has v1
	c.Partition(2)
	if _, err := db.Put(ctx, []byte("k"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if v, _, err := db.Get(ctx, []byte("k")); err != nil || string(v) != "v1" {
		t.Fatalf("the stale read through the cut-off replica: %q, %v; want v1 (the test needs the stale value)", v, err)
	}
	c.Heal()
	res, err := actorkvtest.Linearizable(h, time.Minute, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if res.Linearizable || res.TimedOut {
		t.Fatalf("a read of v1 after v2 was acknowledged: checker said linearizable=%t timed out=%t", res.Linearizable, res.TimedOut)
	}
	if _, err := os.Stat(res.Visualization); err != nil {
		t.Fatalf("no visualization of the failing history: %v", err)
	}
}

// lyingPuts is a broken client: it acknowledges every second put without
// sending it, as a replica that answers before the write commits (and then
// loses it) would.
type lyingPuts struct {
	kv.Database
	n *int
}

func (l lyingPuts) Put(ctx context.Context, key, value []byte, opts ...kv.Option) (uint64, error) {
	*l.n++
	if *l.n%2 == 0 {
		return 1, nil
	}
	return l.Database.Put(ctx, key, value, opts...)
}

// TestCheckerCatchesLostWrites: an acknowledged put that never reached the
// log is missing from the final read; the history must not be found
// linearizable.
func TestCheckerCatchesLostWrites(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	h := actorkvtest.NewHistory()
	n := 0
	db := h.Record(0, lyingPuts{Database: c.Group().Client(), n: &n})
	ctx := c.Context(time.Minute)
	for _, v := range []string{"a", "b"} { // a is written, b only acknowledged
		if _, err := db.Put(ctx, []byte("k"), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := actorkvtest.FinalReads(ctx, h, 1, c.Client()); err != nil {
		t.Fatal(err)
	}
	res, err := actorkvtest.Linearizable(h, time.Minute, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if res.Linearizable || res.TimedOut {
		t.Fatalf("a final read of a after b was acknowledged: checker said linearizable=%t timed out=%t", res.Linearizable, res.TimedOut)
	}
}

// noConflictRanges is a broken client: its atomic commits drop their read
// conflict ranges, so two concurrent transfers can both commit on the same
// balances (lost updates), as a state machine that skipped its conflict
// check would.
type noConflictRanges struct{ kv.Database }

func (n noConflictRanges) AtomicCommit(ctx context.Context, c *messages.AtomicCommit, opts ...kv.Option) (uint64, error) {
	c = proto.Clone(c).(*messages.AtomicCommit)
	c.ReadConflictRanges = nil
	return n.Database.AtomicCommit(ctx, c, opts...)
}

// TestBankCatchesLostUpdates: without conflict checks, concurrent transfers
// that share an account create or destroy money; the bank's audits or its
// final read must say so.
func TestBankCatchesLostUpdates(t *testing.T) {
	c := actorkvtest.NewCluster(t)
	bank := actorkvtest.Bank{Accounts: 4, Initial: 1000, Seed: 1} // three or more: a pair written from one snapshot keeps its own sum
	if err := bank.Open(c.Context(time.Minute), c.Client()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	clients := []kv.Database{}
	for range 4 {
		clients = append(clients, noConflictRanges{c.Group().Client()})
	}
	res, err := bank.Run(ctx, clients...)
	if err == nil {
		err = bank.Final(c.Context(time.Minute), c.Client())
	}
	if err == nil {
		t.Fatalf("transfers without conflict checks kept the total (%+v): the bank check caught nothing", res)
	}
	t.Logf("caught: %v (%+v)", err, res)
}
