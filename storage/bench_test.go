package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actorkv/actorkv/messages"
)

// Benchmarks of the standalone engine: 16-byte keys, 128-byte values, the
// default configuration (SyncWrites on unless a name says nosync).
// docs/BENCHMARKS.md records the figures and the command.

const (
	benchKeys    = 10_000 // keys preloaded for the read benchmarks
	benchValueSz = 128
	// benchParallelism multiplies GOMAXPROCS into the goroutines of the
	// parallel benchmarks, so that group commit has writers to group.
	benchParallelism = 8
)

var benchValue = func() []byte {
	v := make([]byte, benchValueSz)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	return v
}()

// benchKey returns the 16-byte key number i.
func benchKey(i int) []byte { return fmt.Appendf(nil, "key-%012d", i) }

func benchEngine(b *testing.B, sync bool) *Engine {
	b.Helper()
	cfg := DefaultConfig(b.TempDir())
	cfg.SyncWrites = sync
	return openEngine(b, cfg)
}

// preload writes benchKeys keys in batches through ApplyBatch and flushes
// nothing: reads hit the memtable and the block cache, as in a warm server.
func preload(b *testing.B, e *Engine) {
	b.Helper()
	for lo := 0; lo < benchKeys; lo += 1000 {
		var es []Entry
		for i := lo; i < lo+1000; i++ {
			es = append(es, Entry{Index: e.AppliedIndex() + uint64(len(es)) + 1, Cmd: setCmd("", string(benchKey(i)), string(benchValue))})
		}
		mustApply(b, e, es)
	}
}

// reportOps adds the rate of operations (ops/s) to the benchmark's result.
func reportOps(b *testing.B, perOp float64, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)*perOp/s, unit)
	}
}

func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	for _, sync := range []bool{true, false} {
		name := "sync"
		if !sync {
			name = "nosync"
		}
		b.Run("seq/"+name, func(b *testing.B) {
			e := benchEngine(b, sync)
			b.SetBytes(16 + benchValueSz)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := db(e).Put(ctx, benchKey(i%benchKeys), benchValue); err != nil {
					b.Fatal(err)
				}
			}
			reportOps(b, 1, "ops/s")
		})
		b.Run("parallel/"+name, func(b *testing.B) {
			e := benchEngine(b, sync)
			var next atomic.Int64
			b.SetBytes(16 + benchValueSz)
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1))
					if _, err := db(e).Put(ctx, benchKey(i%benchKeys), benchValue); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportOps(b, 1, "ops/s")
		})
	}
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	e := benchEngine(b, false)
	preload(b, e)
	b.Run("seq", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, ok, err := e.Get(ctx, benchKey(rng.IntN(benchKeys))); err != nil || !ok {
				b.Fatalf("Get: %v, %v", ok, err)
			}
		}
		reportOps(b, 1, "ops/s")
	})
	b.Run("parallel", func(b *testing.B) {
		var seed atomic.Uint64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			rng := rand.New(rand.NewPCG(seed.Add(1), 2))
			for pb.Next() {
				if _, ok, err := e.Get(ctx, benchKey(rng.IntN(benchKeys))); err != nil || !ok {
					b.Errorf("Get: %v, %v", ok, err)
					return
				}
			}
		})
		reportOps(b, 1, "ops/s")
	})
}

func BenchmarkGetRange100(b *testing.B) {
	ctx := context.Background()
	e := benchEngine(b, false)
	preload(b, e)
	get := func(b testing.TB, rng *rand.Rand) {
		kvs, err := e.GetRange(ctx, benchKey(rng.IntN(benchKeys-100)), nil, 100, false)
		if err != nil || len(kvs) != 100 {
			b.Errorf("GetRange: %d entries, %v", len(kvs), err)
		}
	}
	b.Run("seq", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		b.ResetTimer()
		for i := 0; i < b.N && !b.Failed(); i++ {
			get(b, rng)
		}
		reportOps(b, 1, "ops/s")
		reportOps(b, 100, "entries/s")
	})
	b.Run("parallel", func(b *testing.B) {
		var seed atomic.Uint64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			rng := rand.New(rand.NewPCG(seed.Add(1), 2))
			for pb.Next() {
				get(b, rng)
			}
		})
		reportOps(b, 1, "ops/s")
		reportOps(b, 100, "entries/s")
	})
}

// commit10 runs one read-version + atomic commit of 10 SETs to keys
// base..base+9, with a read conflict range over them.
func commit10(ctx context.Context, e *Engine, base int) error {
	rv, err := e.GetReadVersion(ctx)
	if err != nil {
		return err
	}
	c := &messages.AtomicCommit{
		ReadVersion:        rv,
		ReadConflictRanges: []*messages.KeyRange{{Begin: benchKey(base), End: benchKey(base + 10)}},
		Mutations:          make([]*messages.Mutation, 10),
	}
	for j := range c.Mutations {
		c.Mutations[j] = &messages.Mutation{Type: messages.MutationType_SET, Key: benchKey(base + j), Value: benchValue}
	}
	_, err = db(e).AtomicCommit(ctx, c)
	return err
}

func BenchmarkAtomicCommit10(b *testing.B) {
	ctx := context.Background()
	for _, sync := range []bool{true, false} {
		name := "sync"
		if !sync {
			name = "nosync"
		}
		b.Run("seq/"+name, func(b *testing.B) {
			e := benchEngine(b, sync)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := commit10(ctx, e, (i*10)%benchKeys); err != nil {
					b.Fatal(err)
				}
			}
			reportOps(b, 1, "commits/s")
		})
		b.Run("parallel/"+name, func(b *testing.B) {
			// Each goroutine commits in its own key space, so no commit
			// conflicts; what is measured is the commit path, not retries.
			e := benchEngine(b, sync)
			var worker atomic.Int64
			var conflicts atomic.Int64
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				space := int(worker.Add(1)) * 1_000_000
				for i := 0; pb.Next(); i++ {
					err := commit10(ctx, e, space+(i*10)%benchKeys)
					if errors.Is(err, messages.ErrConflict) {
						conflicts.Add(1)
					} else if err != nil {
						b.Error(err)
						return
					}
				}
			})
			if n := conflicts.Load(); n > 0 {
				b.Fatalf("%d conflicts between disjoint commits", n)
			}
			reportOps(b, 1, "commits/s")
		})
	}
}

// BenchmarkApplyBatch64 measures the replicated apply path: batches of 64
// committed entries (a SET each, with a client request id and a log time),
// as the executor hands them over; no fsync, as in the replicated group.
func BenchmarkApplyBatch64(b *testing.B) {
	const batch, clients = 64, 16
	cfg := DefaultConfig(b.TempDir())
	cfg.SyncWrites = false
	e := openEngine(b, cfg)
	opens := make([]*messages.Command, clients)
	for i := range opens {
		opens[i] = openCmd(nil)
	}
	mustApply(b, e, entries(1, opens...)) // sessions 1..clients
	index := uint64(clients)
	seqs := make([]uint64, clients+1)
	b.SetBytes(batch * (16 + benchValueSz))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts := time.Now().UnixNano()
		es := make([]Entry, batch)
		for j := range es {
			index++
			client := 1 + index%clients
			seqs[client]++
			es[j] = Entry{Index: index, Cmd: &messages.Command{
				RequestId:          &messages.RequestId{ClientId: client, Seq: seqs[client], RespondedTo: seqs[client] - 1},
				TimestampUnixNanos: ts,
				Op: &messages.Command_Mutation{Mutation: &messages.Mutation{
					Type: messages.MutationType_SET, Key: benchKey(int(index % benchKeys)), Value: benchValue}},
			}}
		}
		res, err := e.ApplyBatch(es)
		if err != nil {
			b.Fatal(err)
		}
		if err := res[batch-1].GetStatus().Err(); err != nil {
			b.Fatal(err)
		}
	}
	reportOps(b, batch, "entries/s")
}

// BenchmarkSessionCost measures what a client session costs the state
// machine: the heap it holds and the bytes it adds to the machine
// checkpoint (which snapshots carry), for a session that made one write
// whose outcome it has not confirmed (one remembered result). It opens
// sessionsPerOp sessions per iteration, as the replicated group would.
func BenchmarkSessionCost(b *testing.B) {
	const sessionsPerOp = 10_000
	cfg := DefaultConfig(b.TempDir())
	cfg.SyncWrites = false
	cfg.Limits.MaxSessions = 1 << 30 // keep them all
	// No history beyond the latest write: the heap measured is the sessions'.
	cfg.RetentionWindow = time.Nanosecond
	e := openEngine(b, cfg)
	var index uint64
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ckpt0, _ := e.sm.encodeCheckpoint(0)
	opened := 0
	for b.Loop() {
		opens := make([]Entry, 0, sessionsPerOp)
		for range sessionsPerOp {
			index++
			opens = append(opens, Entry{Index: index, Cmd: withTS(openCmd(cfg.Limits.SessionLimits()), time.Now().UnixNano())})
		}
		mustApply(b, e, opens)
		writes := make([]Entry, 0, sessionsPerOp)
		for _, o := range opens {
			index++
			writes = append(writes, Entry{Index: index, Cmd: withTS(withID(setCmd("", "k", "v"), o.Index, 1, 0), time.Now().UnixNano())})
		}
		mustApply(b, e, writes)
		opened += sessionsPerOp
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	ckpt, _ := e.sm.encodeCheckpoint(0)
	if len(e.sm.sessions) != opened {
		b.Fatalf("%d sessions kept, want %d", len(e.sm.sessions), opened)
	}
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(opened), "heap-B/session")
	b.ReportMetric(float64(len(ckpt)-len(ckpt0))/float64(opened), "checkpoint-B/session")
	b.ReportMetric(0, "ns/op")
}
