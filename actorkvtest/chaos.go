package actorkvtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// Fault is a kind of fault the chaos scheduler injects.
type Fault int

// The faults of Chaos. Each hits one replica (a follower or, now and then,
// the leader) for a while and is then undone.
const (
	// Crash stops a replica (its data stays) and restarts it.
	Crash Fault = iota
	// Rebuild stops a replica and restarts it from scratch as a new Raft
	// node (its log and data deleted), which catches up from the leader.
	Rebuild
	// Partition cuts a replica off from the others, then heals.
	Partition
	// SlowNetwork delays every Raft message to a replica.
	SlowNetwork
	// SlowDisk adds latency to every storage operation of a replica.
	SlowDisk
	// FailingDisk makes a replica's next storage write fail: it fail-stops,
	// and is restarted from its data.
	FailingDisk
	// MoveLeader hands the leadership to another replica.
	MoveLeader
	numFaults
)

func (f Fault) String() string {
	return [...]string{"crash", "rebuild", "partition", "slow-network", "slow-disk", "failing-disk", "move-leader"}[f]
}

// AllFaults are every fault Chaos knows.
func AllFaults() []Fault {
	out := make([]Fault, numFaults)
	for i := range out {
		out[i] = Fault(i)
	}
	return out
}

// Chaos injects faults into a Cluster while a workload runs, on a schedule
// drawn from its seed: which fault, which replica, for how long, and
// whether a slow disk on another replica overlaps it. At most one replica
// is down or cut off at a time, so a majority can always make progress.
// The same seed replays the same schedule (the system's own timing is not
// replayed). Its goroutine belongs to the Chaos: Stop ends it, undoes every
// fault and waits until every replica is back.
type Chaos struct {
	c      *Cluster
	seed   uint64
	rng    *rand.Rand
	faults []Fault
	start  time.Time

	mu   sync.Mutex
	log  []string
	errs []error

	stop, done chan struct{}
}

// ChaosSeed is the seed a test should use: ACTORKV_CHAOS_SEED when it is
// set (to replay a failure), else def.
func ChaosSeed(def uint64) uint64 {
	if s := os.Getenv("ACTORKV_CHAOS_SEED"); s != "" {
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			return v
		}
	}
	return def
}

// StartChaos starts injecting faults (all of them when none is named) into
// c, on the schedule of seed, until Stop. If t fails, the seed and the
// schedule carried out are logged.
func (c *Cluster) StartChaos(t testing.TB, seed uint64, faults ...Fault) *Chaos {
	if len(faults) == 0 {
		faults = AllFaults()
	}
	ch := &Chaos{c: c, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), faults: faults,
		start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() {
		ch.Stop()
		if t.Failed() {
			t.Logf("chaos seed %d (replay: ACTORKV_CHAOS_SEED=%d); what it did:\n%s", seed, seed, ch.Schedule())
		}
	})
	go ch.run()
	return ch
}

// Schedule is what the chaos did so far, one line per step.
func (ch *Chaos) Schedule() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return strings.Join(ch.log, "\n")
}

// Err is every fault that could not be injected or undone (nil: none).
func (ch *Chaos) Err() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if len(ch.errs) == 0 {
		return nil
	}
	return fmt.Errorf("chaos: %v", ch.errs)
}

// Stop ends the schedule, undoes the fault in progress and returns once
// every replica runs and no fault is left. It is idempotent.
func (ch *Chaos) Stop() {
	select {
	case <-ch.stop:
	default:
		close(ch.stop)
	}
	<-ch.done
}

func (ch *Chaos) note(format string, args ...any) {
	ch.mu.Lock()
	ch.log = append(ch.log, fmt.Sprintf("%8.3fs  ", time.Since(ch.start).Seconds())+fmt.Sprintf(format, args...))
	ch.mu.Unlock()
}

func (ch *Chaos) fail(err error) {
	if err == nil {
		return
	}
	ch.mu.Lock()
	ch.errs = append(ch.errs, err)
	ch.mu.Unlock()
	ch.note("ERROR %v", err)
}

// sleep waits d or until Stop; it reports whether to go on.
func (ch *Chaos) sleep(d time.Duration) bool {
	select {
	case <-ch.stop:
		return false
	case <-time.After(d):
		return true
	}
}

func (ch *Chaos) run() {
	defer close(ch.done)
	for {
		// The schedule's draws come first, all of them, so that a seed
		// gives the same schedule whatever the system does.
		f := ch.faults[ch.rng.IntN(len(ch.faults))]
		victim := uint32(ch.rng.IntN(Replicas))
		hitLeader := ch.rng.IntN(4) == 0
		hold := time.Duration(100+ch.rng.IntN(500)) * time.Millisecond
		gap := time.Duration(20+ch.rng.IntN(180)) * time.Millisecond
		overlap := ch.rng.IntN(4) == 0
		other := (victim + 1 + uint32(ch.rng.IntN(Replicas-1))) % Replicas
		if hitLeader {
			if l, _, ok := ch.c.Group().Leader(); ok {
				victim = l
				other = (l + 1) % Replicas
			}
		}
		undo := ch.inject(f, victim, other)
		if overlap && f != SlowDisk {
			ch.note("and a slow disk on replica %d", other)
			ch.fail(ch.faultsOf(other, &messages.FaultInjection{AddedLatency: durationpb.New(2 * time.Millisecond)}))
		}
		going := ch.sleep(hold)
		undo()
		if overlap && f != SlowDisk {
			ch.fail(ch.faultsOf(other, &messages.FaultInjection{}))
		}
		if !going || !ch.sleep(gap) {
			ch.c.Group().Network().Heal()
			return
		}
	}
}

// inject starts fault f on victim and returns what undoes it.
func (ch *Chaos) inject(f Fault, victim, other uint32) func() {
	g := ch.c.Group()
	ctx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), WaitTimeout)
	}
	restart := func(wipe bool) func() {
		return func() {
			c, cancel := ctx()
			defer cancel()
			ch.note("restart replica %d (wipe %t)", victim, wipe)
			ch.fail(g.StartReplica(c, victim, wipe))
		}
	}
	ch.note("%s on replica %d", f, victim)
	switch f {
	case Crash, Rebuild:
		c, cancel := ctx()
		defer cancel()
		if err := g.StopReplica(c, victim); err != nil {
			ch.fail(err)
			return func() {}
		}
		return restart(f == Rebuild)
	case Partition:
		g.Network().Isolate(g.RaftAddress(victim), ch.c.addresses())
		return func() { ch.note("heal"); g.Network().Heal() }
	case SlowNetwork:
		g.Network().Delay(g.RaftAddress(victim), 5*time.Millisecond)
		return func() {
			ch.note("network of replica %d back to normal", victim)
			g.Network().Delay(g.RaftAddress(victim), 0)
		}
	case SlowDisk:
		ch.fail(ch.faultsOf(victim, &messages.FaultInjection{AddedLatency: durationpb.New(3 * time.Millisecond)}))
		return func() {
			ch.note("disk of replica %d back to normal", victim)
			ch.fail(ch.faultsOf(victim, &messages.FaultInjection{}))
		}
	case FailingDisk:
		ch.fail(ch.faultsOf(victim, &messages.FaultInjection{FailAfterWrites: 1}))
		return func() {
			c, cancel := ctx()
			defer cancel()
			// It fail-stopped at its next write, or is about to: stop it
			// (if it still runs) and restart it from its data.
			_ = g.StopReplica(c, victim)
			restart(false)()
		}
	default: // MoveLeader
		c, cancel := ctx()
		defer cancel()
		ch.fail(g.TransferLeader(c, other))
		ch.note("asked replica %d to take the lead", other)
		return func() {}
	}
}

// faultsOf sets replica id's storage faults.
func (ch *Chaos) faultsOf(id uint32, f *messages.FaultInjection) error {
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	return ch.c.Group().Client().SetFaultInjection(ctx, f, kv.WithReplicas(id))
}
