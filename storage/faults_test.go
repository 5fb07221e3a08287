package storage

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

func TestFaultInjection(t *testing.T) {
	ctx := context.Background()
	setFaults := func(t *testing.T, e *Engine, f *messages.FaultInjection) {
		t.Helper()
		if err := e.SetFaultInjection(ctx, f); err != nil {
			t.Fatalf("SetFaultInjection(%v): %v", f, err)
		}
	}

	t.Run("error rate 1", func(t *testing.T) {
		e := openEngine(t, testConfig(t.TempDir()))
		mustPut(t, e, "k", "v")
		digest := mustDigest(t, e)
		setFaults(t, e, &messages.FaultInjection{ErrorRate: 1})
		writes := map[string]func() error{
			"Put":    func() error { _, err := db(e).Put(ctx, []byte("k"), []byte("new")); return err },
			"Delete": func() error { _, err := db(e).Delete(ctx, []byte("k")); return err },
			"AtomicCommit": func() error {
				_, err := db(e).AtomicCommit(ctx, &messages.AtomicCommit{Mutations: []*messages.Mutation{{Type: messages.MutationType_SET, Key: []byte("k"), Value: []byte("new")}}})
				return err
			},
			"ApplyBatch": func() error { _, err := e.ApplyBatch(entries(e.AppliedIndex()+1, setCmd("", "k", "new"))); return err },
			"Get":        func() error { _, _, err := e.Get(ctx, []byte("k")); return err },
		}
		for name, op := range writes {
			err := op()
			if !errors.Is(err, ErrInjectedFault) || !errors.Is(err, messages.ErrInternal) {
				t.Fatalf("%s with error_rate 1: %v, want ErrInjectedFault (ErrInternal)", name, err)
			}
		}
		setFaults(t, e, &messages.FaultInjection{})
		if d := digestDiff(mustDigest(t, e), digest); d != "" {
			t.Fatalf("failed writes changed the data: %s", d)
		}
		if got, _ := mustGet(t, e, "k"); got != "v" {
			t.Fatalf("k = %q", got)
		}
		if v := mustPut(t, e, "k", "after"); v != digest.AppliedIndex+1 {
			t.Fatalf("first write after the faults got version %d, want %d", v, digest.AppliedIndex+1)
		}
	})

	t.Run("fail after writes", func(t *testing.T) {
		const n = 5
		e := openEngine(t, testConfig(t.TempDir()))
		mustPut(t, e, "before", "v") // not counted: the count starts when set
		setFaults(t, e, &messages.FaultInjection{FailAfterWrites: n})
		for i := range n {
			if _, err := db(e).Put(ctx, []byte{'k', byte('0' + i)}, []byte("v")); err != nil {
				t.Fatalf("write %d of the first %d: %v", i+1, n, err)
			}
		}
		for i := range 3 {
			if _, err := db(e).Put(ctx, []byte("late"), []byte("v")); !errors.Is(err, ErrInjectedFault) {
				t.Fatalf("write %d after %d: %v, want ErrInjectedFault", i+1, n, err)
			}
		}
		// Reads still work; the writes that failed left nothing.
		if _, ok := mustGet(t, e, "late"); ok {
			t.Fatal("a failed write is visible")
		}
		if got := e.AppliedIndex(); got != n+1 {
			t.Fatalf("AppliedIndex = %d, want %d", got, n+1)
		}
		// Setting the faults again resets the count.
		setFaults(t, e, &messages.FaultInjection{FailAfterWrites: 1})
		mustPut(t, e, "again", "v")
		if _, err := db(e).Put(ctx, []byte("again2"), []byte("v")); !errors.Is(err, ErrInjectedFault) {
			t.Fatalf("second write with fail_after_writes 1: %v", err)
		}
		setFaults(t, e, &messages.FaultInjection{})
		mustPut(t, e, "reset", "v")
	})

	t.Run("added latency", func(t *testing.T) {
		const latency = 30 * time.Millisecond
		e := openEngine(t, testConfig(t.TempDir()))
		mustPut(t, e, "k", "v")
		setFaults(t, e, &messages.FaultInjection{AddedLatency: durationpb.New(latency)})
		for name, op := range map[string]func(){
			"Put": func() { mustPut(t, e, "k", "v2") },
			"Get": func() { mustGet(t, e, "k") },
		} {
			start := time.Now()
			op()
			if d := time.Since(start); d < latency {
				t.Fatalf("%s took %v with %v of added latency", name, d, latency)
			}
		}
		setFaults(t, e, &messages.FaultInjection{})
		// Without the latency, some write of a few finishes well under it
		// (one, not all: the machine is shared).
		fast := false
		for range 5 {
			start := time.Now()
			mustPut(t, e, "k", "v3")
			if time.Since(start) < latency {
				fast = true
				break
			}
		}
		if !fast {
			t.Fatal("writes still slow after the latency was removed")
		}
	})

	t.Run("invalid configurations", func(t *testing.T) {
		e := openEngine(t, testConfig(t.TempDir()))
		for name, f := range map[string]*messages.FaultInjection{
			"error rate 1.5":            {ErrorRate: 1.5},
			"negative error rate":       {ErrorRate: -0.1},
			"NaN error rate":            {ErrorRate: math.NaN()},
			"infinite error rate":       {ErrorRate: math.Inf(1)},
			"negative latency":          {AddedLatency: durationpb.New(-time.Millisecond)},
			"latency over the ceiling":  {AddedLatency: durationpb.New(time.Hour)},
			"malformed latency":         {AddedLatency: &durationpb.Duration{Seconds: 1, Nanos: -5}},
			"nanos out of range":        {AddedLatency: &durationpb.Duration{Nanos: 2_000_000_000}},
			"error rate with bad delay": {ErrorRate: 0.5, AddedLatency: durationpb.New(-time.Second)},
		} {
			t.Run(name, func(t *testing.T) {
				if err := e.SetFaultInjection(ctx, f); !errors.Is(err, messages.ErrInvalidArgument) {
					t.Fatalf("SetFaultInjection(%v): %v, want ErrInvalidArgument", f, err)
				}
				if err := kv.ValidateFaults(f); !errors.Is(err, messages.ErrInvalidArgument) {
					t.Fatalf("kv.ValidateFaults(%v): %v", f, err)
				}
			})
		}
		// A refused configuration leaves the engine as it was (no faults).
		mustPut(t, e, "k", "v")
		if err := e.SetFaultInjection(ctx, nil); err != nil {
			t.Fatalf("SetFaultInjection(nil): %v", err)
		}
	})

	t.Run("error rate between 0 and 1", func(t *testing.T) {
		e := openEngine(t, testConfig(t.TempDir()))
		setFaults(t, e, &messages.FaultInjection{ErrorRate: 0.5})
		failed, ok := 0, 0
		for i := 0; i < 200 && (failed == 0 || ok == 0); i++ {
			if _, err := db(e).Put(ctx, []byte("k"), []byte("v")); err != nil {
				if !errors.Is(err, ErrInjectedFault) {
					t.Fatal(err)
				}
				failed++
			} else {
				ok++
			}
		}
		if failed == 0 || ok == 0 {
			t.Fatalf("error_rate 0.5: %d failed, %d succeeded", failed, ok)
		}
		setFaults(t, e, &messages.FaultInjection{})
		if got := e.AppliedIndex(); got != uint64(ok) {
			t.Fatalf("AppliedIndex %d after %d successful writes", got, ok)
		}
	})
}
