package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/actorkv/actorkv/messages"
)

// callTimeout bounds one operation.
const callTimeout = 10 * time.Second

// worker is one closed-loop client; it records the latencies of the
// operations it completes while the run measures.
type worker struct {
	rng  *rand.Rand
	lats [numOps][]time.Duration
	errs map[string]int
}

func run(ctx context.Context, o options, mix [numOps]int, stdout, stderr io.Writer) error {
	var profile *os.File
	if o.cpuProfile != "" { // before anything starts, so a bad path fails fast
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		profile = f
	}
	t, err := openTarget(ctx, o)
	if err != nil {
		return err
	}
	defer t.close()
	keys := makeKeys(o.keys, o.keySize)
	if o.preload {
		if err := preload(ctx, t, keys, o.valueSize, stderr); err != nil {
			return err
		}
	}

	var measuring atomic.Bool
	gaps := &gapTracker{threshold: o.gaps}
	var completed atomic.Int64 // operations answered while measuring (progress)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := make([]*worker, o.concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))), errs: map[string]int{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx, t, o, mix, keys, &measuring, &completed, gaps)
		}()
	}

	if o.warmup > 0 {
		select {
		case <-time.After(o.warmup):
		case <-ctx.Done():
		}
	}
	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	gaps.begin(start)
	measuring.Store(true)
	tick := time.NewTicker(time.Second)
	end := time.NewTimer(o.duration)
	last := int64(0)
loop:
	for {
		select {
		case <-tick.C:
			if !o.quiet {
				n := completed.Load()
				fmt.Fprintf(stderr, "%5.0fs  %8d ops/s  (total %d)\n", time.Since(start).Seconds(), n-last, n)
				last = n
			}
		case <-end.C:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	tick.Stop()
	measuring.Store(false)
	elapsed := time.Since(start)
	cancel()
	wg.Wait()

	rep := buildReport(o, workers, elapsed)
	if o.gaps > 0 {
		rep.Gaps, rep.MaxGap = gaps.report(start.Add(elapsed))
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.print(stdout)
	return nil
}

func (w *worker) loop(ctx context.Context, t target, o options, mix [numOps]int, keys [][]byte, measuring *atomic.Bool, completed *atomic.Int64, gaps *gapTracker) {
	total := 0
	for _, n := range mix {
		total += n
	}
	value := make([]byte, o.valueSize)
	for i := range value {
		value[i] = byte('a' + w.rng.IntN(26))
	}
	muts := make([]*messages.Mutation, o.commitOps)
	for ctx.Err() == nil {
		pick, p := w.rng.IntN(total), op(0)
		for ; pick >= mix[p]; p++ {
			pick -= mix[p]
		}
		key := keys[w.rng.IntN(len(keys))]
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		start := time.Now()
		var err error
		switch p {
		case opPut:
			err = t.put(cctx, key, value)
		case opGet:
			err = t.get(cctx, key)
		case opCommit:
			for i := range muts {
				muts[i] = &messages.Mutation{Type: messages.MutationType_SET, Key: keys[w.rng.IntN(len(keys))], Value: value}
			}
			err = t.commit(cctx, muts)
		case opRange:
			err = t.getRange(cctx, key, o.rangeLimit)
		}
		lat := time.Since(start)
		cancel()
		if !measuring.Load() || ctx.Err() != nil {
			continue
		}
		completed.Add(1)
		if err != nil {
			w.errs[p.String()+" "+messages.CodeOf(err).String()]++
			continue
		}
		w.lats[p] = append(w.lats[p], lat)
		gaps.ack(start.Add(lat))
	}
}

// gapTracker finds the intervals in which no operation was acknowledged:
// each longer than threshold (0: it does nothing).
type gapTracker struct {
	threshold time.Duration
	mu        sync.Mutex
	start     time.Time // of the measurement
	last      time.Time // the latest acknowledgement (or the start)
	gaps      []gap
}

// gap is one interval without an acknowledged operation.
type gap struct {
	At float64 `json:"at_seconds"` // its start, from the start of the measurement
	Ms float64 `json:"ms"`
}

func (g *gapTracker) begin(t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.start, g.last = t, t
}

// ack records an acknowledgement at t.
func (g *gapTracker) ack(t time.Time) {
	if g.threshold == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.Before(g.last) {
		return // a slower worker's answer that came before the latest
	}
	g.note(t)
	g.last = t
}

func (g *gapTracker) note(t time.Time) {
	if d := t.Sub(g.last); d > g.threshold {
		g.gaps = append(g.gaps, gap{At: g.last.Sub(g.start).Seconds(), Ms: float64(d) / float64(time.Millisecond)})
	}
}

// report returns the gaps, the interval up to end included, and the
// longest.
func (g *gapTracker) report(end time.Time) ([]gap, float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.note(end)
	longest := 0.0
	for _, x := range g.gaps {
		longest = max(longest, x.Ms)
	}
	return g.gaps, longest
}

// makeKeys returns n distinct keys of size bytes: zero-padded decimals.
func makeKeys(n, size int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "%0*d", size, i)
	}
	return keys
}

// preload writes every key, 100 per atomic commit, from 16 workers.
func preload(ctx context.Context, t target, keys [][]byte, valueSize int, stderr io.Writer) error {
	value := make([]byte, valueSize)
	start := time.Now()
	const perCommit, workers = 100, 16
	next := atomic.Int64{}
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(perCommit)) - perCommit
				if lo >= len(keys) {
					return
				}
				var muts []*messages.Mutation
				for _, k := range keys[lo:min(lo+perCommit, len(keys))] {
					muts = append(muts, &messages.Mutation{Type: messages.MutationType_SET, Key: k, Value: value})
				}
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				err := t.commit(cctx, muts)
				cancel()
				if err != nil {
					errc <- fmt.Errorf("preload: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	var errs []error
	for e := range errc {
		errs = append(errs, e)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "preloaded %d keys in %v\n", len(keys), time.Since(start).Round(time.Millisecond))
	return nil
}

// report is the result of a run.
type report struct {
	Target      string         `json:"target"`
	Concurrency int            `json:"concurrency"`
	Duration    float64        `json:"duration_seconds"`
	KeySize     int            `json:"key_size"`
	ValueSize   int            `json:"value_size"`
	Keys        int            `json:"keys"`
	Mix         string         `json:"mix"`
	Consistency string         `json:"consistency"`
	OpsPerSec   float64        `json:"ops_per_sec"`
	Ops         []opReport     `json:"ops"`
	Errors      map[string]int `json:"errors"`
	// Gaps (with --gaps) are the intervals without an acknowledged
	// operation longer than the threshold; MaxGap the longest, in ms.
	Gaps   []gap   `json:"gaps,omitempty"`
	MaxGap float64 `json:"max_gap_ms,omitempty"`
}

type opReport struct {
	Op        string  `json:"op"`
	Count     int     `json:"count"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50       float64 `json:"p50_ms"`
	P95       float64 `json:"p95_ms"`
	P99       float64 `json:"p99_ms"`
	Max       float64 `json:"max_ms"`
}

func buildReport(o options, workers []*worker, elapsed time.Duration) report {
	rep := report{
		Target: o.target, Concurrency: o.concurrency, Duration: elapsed.Seconds(),
		KeySize: o.keySize, ValueSize: o.valueSize, Keys: o.keys, Mix: o.mix, Consistency: o.consistency,
		Errors: map[string]int{},
	}
	total := 0
	for p := range numOps {
		var all []time.Duration
		for _, w := range workers {
			all = append(all, w.lats[p]...)
		}
		if len(all) == 0 {
			continue
		}
		slices.Sort(all)
		pct := func(q float64) float64 {
			return float64(all[min(len(all)-1, int(q*float64(len(all))))]) / float64(time.Millisecond)
		}
		total += len(all)
		rep.Ops = append(rep.Ops, opReport{
			Op: p.String(), Count: len(all), OpsPerSec: float64(len(all)) / elapsed.Seconds(),
			P50: pct(0.50), P95: pct(0.95), P99: pct(0.99), Max: float64(all[len(all)-1]) / float64(time.Millisecond),
		})
	}
	for _, w := range workers {
		for k, n := range w.errs {
			rep.Errors[k] += n
		}
	}
	rep.OpsPerSec = float64(total) / elapsed.Seconds()
	return rep
}

func (r report) print(out io.Writer) {
	fmt.Fprintf(out, "target %s, %d clients, %.1fs, keys %d x %dB, values %dB, mix %s, %s reads\n",
		r.Target, r.Concurrency, r.Duration, r.Keys, r.KeySize, r.ValueSize, r.Mix, r.Consistency)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "op\tcount\tops/s\tp50 ms\tp95 ms\tp99 ms\tmax ms\t")
	for _, o := range r.Ops {
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", o.Op, o.Count, o.OpsPerSec, o.P50, o.P95, o.P99, o.Max)
	}
	fmt.Fprintf(w, "total\t\t%.0f\t\t\t\t\t\n", r.OpsPerSec)
	w.Flush()
	if len(r.Gaps) > 0 {
		fmt.Fprintf(out, "intervals without an acknowledged operation (longest %.0f ms):\n", r.MaxGap)
		for _, g := range r.Gaps {
			fmt.Fprintf(out, "  at %7.2fs: %6.0f ms\n", g.At, g.Ms)
		}
	}
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprintln(out, "errors:")
		for _, k := range keys {
			fmt.Fprintf(out, "  %s: %d\n", k, r.Errors[k])
		}
	}
}
