package storage

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// faultState is the engine's injected faults (off by default). They are a
// replica's local failure, never part of the replicated state: in the
// replicated group a write that fails stops its replica.
type faultState struct {
	mu      sync.Mutex
	cfg     *messages.FaultInjection // nil: off
	writes  uint64                   // entries written since the faults were set
	latency time.Duration
	rng     *rand.Rand
}

func (f *faultState) set(cfg *messages.FaultInjection) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = 0
	f.latency = cfg.GetAddedLatency().AsDuration()
	if cfg.GetErrorRate() <= 0 && cfg.GetFailAfterWrites() == 0 && f.latency <= 0 {
		f.cfg = nil
		return
	}
	f.cfg = cfg
	if f.rng == nil {
		f.rng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))
	}
}

// beforeRead sleeps the added latency and fails at the error rate. The
// sleep ends early with the read's deadline: an injected delay must not make
// the engine answer after its caller gave up.
func (f *faultState) beforeRead(ctx context.Context) error {
	return f.before(ctx, 0)
}

// beforeWrite is beforeRead for a write of n entries, which also fails once
// fail_after_writes entries have been written. A write has no deadline: its
// batch is applied in full or not at all.
func (f *faultState) beforeWrite(n int) error {
	return f.before(context.Background(), n)
}

func (f *faultState) before(ctx context.Context, writes int) error {
	f.mu.Lock()
	if f.cfg == nil {
		f.mu.Unlock()
		return nil
	}
	latency := f.latency
	fail := f.cfg.GetErrorRate() > 0 && f.rng.Float64() < f.cfg.GetErrorRate()
	if after := f.cfg.GetFailAfterWrites(); writes > 0 && after > 0 {
		if f.writes+uint64(writes) > after {
			fail = true
		}
	}
	if !fail {
		f.writes += uint64(writes)
	}
	f.mu.Unlock()
	if latency > 0 {
		var cancelled <-chan struct{} // nil (never) without a context
		if ctx != nil {
			cancelled = ctx.Done()
		}
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-cancelled:
			t.Stop()
			return contextError(ctx.Err())
		}
	}
	if fail {
		return ErrInjectedFault
	}
	return nil
}

// SetFaultInjection implements Database: it replaces this engine's injected
// faults. An empty FaultInjection turns them off.
func (e *Engine) SetFaultInjection(ctx context.Context, faults *messages.FaultInjection, _ ...kv.Option) error {
	done, err := e.enter(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := kv.ValidateFaults(faults); err != nil {
		return err
	}
	e.faults.set(faults)
	return nil
}
