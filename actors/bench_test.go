package actors_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lni/dragonboat/v3"
	"github.com/lni/dragonboat/v3/config"
	"github.com/lni/dragonboat/v3/logger"
	"github.com/lni/dragonboat/v3/raftio"
	sm "github.com/lni/dragonboat/v3/statemachine"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/actors/replica"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// The replicated write path benchmark: SET through the group's supervisor
// against the same load proposed straight to dragonboat, whose state machine
// applies it with the same storage.Engine.ApplyBatch and nothing else. The
// ratio of the two is what the actor layer (client, supervisor, router,
// replica, waiter, executor) costs.
var benchClients = flag.Int("bench.clients", 64, "BenchmarkGroupVsRaw: operations in flight, one per client")

const (
	benchKeySize   = 16  // bytes
	benchValueSize = 128 // bytes
	// benchRounds alternate the two sides, so that a shared, noisy machine
	// drifts over both alike; each round's ratio compares neighbours in time.
	benchRounds = 3
)

// BenchmarkGroupVsRaw starts both sides once, in one process, then measures
// them in turn, benchRounds times, each for -benchtime. Each side reports
// ops/s and the process CPU time it used per operation (cpu-us/op: every
// goroutine and RocksDB thread, both sides' idle heartbeats included), which
// a busy shared machine disturbs less than throughput. The raw side's line of
// each round reports the ratios group/raw of that round's ops/s and
// cpu-group/raw of its CPU per operation, and logs the median of the rounds'
// ratios so far. entries/apply is the mean size of the batches the replicas'
// state machines applied: how well Raft batched the load.
func BenchmarkGroupVsRaw(b *testing.B) {
	groupSide := startBenchGroup(b)
	rawSide := startRawGroup(b, actors.DefaultConfig(b.TempDir())).side()
	var ratios, cpuRatios []float64
	for round := 1; round <= benchRounds; round++ {
		b.Run(fmt.Sprintf("round=%d", round), func(b *testing.B) {
			var group loopResult
			b.Run("group", func(b *testing.B) { group = closedLoop(b, groupSide) })
			b.Run("raw", func(b *testing.B) {
				raw := closedLoop(b, rawSide)
				if group.opsPerSec == 0 {
					return
				}
				ratio, cpuRatio := group.opsPerSec/raw.opsPerSec, group.cpuPerOp/raw.cpuPerOp
				ratios, cpuRatios = append(ratios, ratio), append(cpuRatios, cpuRatio)
				b.ReportMetric(ratio, "group/raw")
				b.ReportMetric(cpuRatio, "cpu-group/raw")
				b.Logf("round %d: group %.0f ops/s %.0f cpu-us/op, raw dragonboat %.0f ops/s %.0f cpu-us/op: group/raw %.3f, cpu-group/raw %.3f; medians of %d rounds: group/raw %.3f, cpu-group/raw %.3f",
					round, group.opsPerSec, group.cpuPerOp, raw.opsPerSec, raw.cpuPerOp, ratio, cpuRatio,
					len(ratios), median(ratios), median(cpuRatios))
			})
		})
	}
}

// benchSide is one side of the comparison.
type benchSide struct {
	// op is one SET of client c (0..benchClients-1), called by that
	// client's goroutine only.
	op      func(c int, key, value []byte) error
	applies *applyStats // of every replica
}

// applyStats counts the batches the state machines applied.
type applyStats struct {
	batches, entries atomic.Int64
}

func (s *applyStats) add(entries int) {
	s.batches.Add(1)
	s.entries.Add(int64(entries))
}

// startBenchGroup starts the group, in its default configuration; its
// operation is Client.Put through the group's supervisor, with one client
// (so one exactly-once session) per goroutine. The group stops when b's
// cleanups run.
func startBenchGroup(b *testing.B) *benchSide {
	b.Helper()
	side := &benchSide{applies: &applyStats{}}
	cfg := actors.DefaultConfig(b.TempDir())
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.Observer = func(_ uint32, entries []storage.Entry, _ []*messages.CommandResult) {
		side.applies.add(len(entries))
	}
	g, err := actors.Start(cfg)
	if err != nil {
		b.Fatalf("start group: %v", err)
	}
	b.Cleanup(g.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := errors.Join(g.WaitReady(ctx), g.WaitStarted(ctx)); err != nil {
		b.Fatalf("group not ready: %v", err)
	}
	// The supervisor hands leadership to the primary after the first
	// election; should that not happen, the router follows whoever leads.
	handover, cancelHandover := context.WithTimeout(ctx, 10*time.Second)
	if err := g.WaitLeader(handover, 0); err != nil {
		id, _, _ := g.Leader()
		b.Logf("replica 0 did not take over (%v); replica %d leads", err, id)
	}
	cancelHandover()
	clients := make([]*kv.Client, *benchClients)
	for i := range clients {
		clients[i] = g.Client()
	}
	side.op = func(c int, key, value []byte) error {
		_, err := clients[c].Put(context.Background(), key, value)
		return err
	}
	return side
}

// side returns the raw side, whose operation is the SET the replica would
// propose, as a messages.Command with the client's request id, proposed with
// SyncPropose on the leader's NodeHost.
func (rg *rawGroup) side() *benchSide {
	type session struct{ id, seq uint64 }
	leader := rg.nhs[0]
	cs := leader.GetNoOPSession(rg.clusterID)
	sessions := make([]session, *benchClients) // each used by one goroutine
	for i := range sessions {
		// Open the client's session through the log, as the replica would:
		// its id is the index of the entry.
		data, err := proto.Marshal(&messages.Command{TimestampUnixNanos: time.Now().UnixNano(),
			Op: &messages.Command_OpenSession{OpenSession: &messages.OpenSession{}}})
		if err != nil {
			panic(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), rg.proposalTimeout)
		res, err := leader.SyncPropose(ctx, cs, data)
		cancel()
		if err != nil || res.Data != nil || res.Value == 0 {
			panic(fmt.Sprintf("open a session on the raw side: %v (result %v)", err, res))
		}
		sessions[i].id = res.Value
	}
	op := func(c int, key, value []byte) error {
		s := &sessions[c]
		s.seq++
		cmd := &messages.Command{
			RequestId:          &messages.RequestId{ClientId: s.id, Seq: s.seq, RespondedTo: s.seq - 1},
			TimestampUnixNanos: time.Now().UnixNano(),
			Op: &messages.Command_Mutation{Mutation: &messages.Mutation{
				Type: messages.MutationType_SET, Key: key, Value: value,
			}},
		}
		data, err := proto.Marshal(cmd)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), rg.proposalTimeout)
		defer cancel()
		res, err := leader.SyncPropose(ctx, cs, data)
		if err != nil {
			return err
		}
		if res.Data != nil {
			st := &messages.Status{}
			if err := proto.Unmarshal(res.Data, st); err != nil {
				return err
			}
			return st.Err()
		}
		return nil
	}
	return &benchSide{op: op, applies: rg.applies}
}

// loopResult is what closedLoop measured.
type loopResult struct {
	opsPerSec float64 // completed operations per second of wall time
	cpuPerOp  float64 // process CPU (user+system) microseconds per operation
}

// closedLoop runs op for as many operations as b.Loop asks, from exactly
// -bench.clients goroutines that each start their next operation when the
// previous one returns. Each operation gets a fresh random 16-byte key and a
// 128-byte value. It reports, and returns, ops/s and cpu-us/op, and reports
// entries/apply.
func closedLoop(b *testing.B, side *benchSide) loopResult {
	b.Helper()
	work := make(chan struct{}) // one token per operation
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures int
		firstErr error
	)
	for c := range *benchClients {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			value := make([]byte, benchValueSize)
			for i := range value {
				value[i] = byte(rng.Uint32())
			}
			raw := make([]byte, benchKeySize/2)
			for range work {
				for i := range raw {
					raw[i] = byte(rng.Uint32())
				}
				key := []byte(hex.EncodeToString(raw))
				value[0]++ // unique enough per write; same size
				if err := side.op(c, key, value); err != nil {
					mu.Lock()
					failures++
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	batches0, entries0 := side.applies.batches.Load(), side.applies.entries.Load()
	cpu0 := processCPU(b)
	start := time.Now()
	for b.Loop() {
		work <- struct{}{}
	}
	close(work)
	wg.Wait() // the last (at most -bench.clients) operations finish
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	batches, entries := side.applies.batches.Load()-batches0, side.applies.entries.Load()-entries0
	if failures > 0 {
		b.Fatalf("%d of %d operations failed; first: %v", failures, b.N, firstErr)
	}
	r := loopResult{
		opsPerSec: float64(b.N) / elapsed.Seconds(),
		cpuPerOp:  float64(cpu.Microseconds()) / float64(b.N),
	}
	b.ReportMetric(r.opsPerSec, "ops/s")
	b.ReportMetric(r.cpuPerOp, "cpu-us/op")
	if batches > 0 {
		b.ReportMetric(float64(entries)/float64(batches), "entries/apply")
	}
	return r
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// rawGroup is three NodeHosts set up as the group sets up its replicas, each
// with a rawMachine on its own engine, and node 1 (replica 0) leading.
type rawGroup struct {
	clusterID       uint64
	proposalTimeout time.Duration
	nhs             []*dragonboat.NodeHost // by replica id
	engines         []*storage.Engine
	applies         *applyStats // of every replica
}

// startRawGroup starts the raw side from the group's configuration cfg; it
// stops when b's cleanups run. The
// NodeHost, LogDB, engine-shard and Raft settings below mirror startNode in
// actors/replica/node.go, and the engine settings the replica's onStarted in
// actors/replica/replica.go: keep them in step.
func startRawGroup(b *testing.B, cfg actors.Config) *rawGroup {
	b.Helper()
	rg := &rawGroup{clusterID: cfg.ClusterID, proposalTimeout: cfg.Raft.ProposalTimeout, applies: &applyStats{}}
	network := replica.NewNetwork()
	tag := make([]byte, 6)
	_, _ = rand.Read(tag)
	members := map[uint64]dragonboat.Target{}
	for id := range uint32(cfg.Replicas) {
		members[replica.NodeID(id, 0)] = fmt.Sprintf("rawbench-%x-replica-%d", tag, id)
	}
	for _, name := range []string{"raft", "rsm", "transport", "dragonboat", "logdb", "raftpb", "config", "settings", "grpc", "netutil", "server", "tan"} {
		logger.GetLogger(name).SetLevel(logger.ERROR) // as the replicas do
	}
	events := newLeaderEvents()
	b.Cleanup(rg.stop)
	for id := range uint32(cfg.Replicas) {
		dir := filepath.Join(cfg.BasePath, fmt.Sprintf("replica-%d", id))
		scfg := cfg.Storage
		scfg.Dir = filepath.Join(dir, "data")
		scfg.SyncWrites = false
		engine, err := storage.Open(scfg)
		if err != nil {
			b.Fatalf("raw replica %d: open engine: %v", id, err)
		}
		rg.engines = append(rg.engines, engine)

		logdb := config.GetTinyMemLogDBConfig()
		logdb.Shards = 1
		raftDir := filepath.Join(dir, "raft")
		nh, err := dragonboat.NewNodeHost(config.NodeHostConfig{
			NodeHostDir:       raftDir,
			WALDir:            raftDir,
			RTTMillisecond:    cfg.Raft.RTTMillisecond(),
			RaftAddress:       members[replica.NodeID(id, 0)],
			RaftEventListener: events,
			Expert: config.ExpertConfig{
				LogDB: logdb,
				Engine: config.EngineConfig{
					ExecShards: 1, CommitShards: 1, ApplyShards: 1, SnapshotShards: 1, CloseShards: 1,
				},
				TransportFactory: network.Factory(),
			},
		})
		if err != nil {
			b.Fatalf("raw replica %d: start NodeHost: %v", id, err)
		}
		rg.nhs = append(rg.nhs, nh)
		machine := &rawMachine{engine: engine, applies: rg.applies}
		err = nh.StartOnDiskCluster(members, false, func(uint64, uint64) sm.IOnDiskStateMachine { return machine }, cfg.Raft.Dragonboat(cfg.ClusterID, replica.NodeID(id, 0)))
		if err != nil {
			b.Fatalf("raw replica %d: start Raft node: %v", id, err)
		}
	}
	// As the group's supervisor does, hand leadership to replica 0 after the
	// first election, and wait until replica 0 knows it leads. A transfer
	// asked for too early after an election is dropped, so ask again until
	// it happens.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	primary := replica.NodeID(0, 0)
	for {
		leader, err := events.wait(ctx, func(views map[uint64]raftio.LeaderInfo) (uint64, bool) {
			var newest raftio.LeaderInfo
			for _, v := range views {
				if v.Term > newest.Term || (v.Term == newest.Term && v.LeaderID != 0) {
					newest = v
				}
			}
			return newest.LeaderID, newest.LeaderID != 0
		})
		if err != nil {
			b.Fatalf("raw group: no leader: %v; views %v", err, events.snapshot())
		}
		if leader != primary {
			// ErrSystemBusy and friends: the next round asks again.
			_ = rg.nhs[replica.ReplicaID(leader)].RequestLeaderTransfer(cfg.ClusterID, primary)
		}
		attempt, cancelAttempt := context.WithTimeout(ctx, time.Duration(cfg.Raft.ElectionRTT)*cfg.Raft.RTT)
		_, err = events.wait(attempt, func(views map[uint64]raftio.LeaderInfo) (uint64, bool) {
			return primary, views[primary].LeaderID == primary
		})
		cancelAttempt()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("raw group: replica 0 does not lead: %v; views %v", ctx.Err(), events.snapshot())
		}
	}
	return rg
}

// stop stops the NodeHosts, then closes the engines.
func (rg *rawGroup) stop() {
	for _, nh := range slices.Backward(rg.nhs) { // followers first
		nh.Stop()
	}
	for _, e := range rg.engines {
		_ = e.Close()
	}
}

// leaderEvents keeps each node's latest view of the leader.
type leaderEvents struct {
	mu      sync.Mutex
	views   map[uint64]raftio.LeaderInfo // by reporting node id
	changed chan struct{}                // closed and replaced on every event
}

func newLeaderEvents() *leaderEvents {
	return &leaderEvents{views: map[uint64]raftio.LeaderInfo{}, changed: make(chan struct{})}
}

// LeaderUpdated implements raftio.IRaftEventListener.
func (l *leaderEvents) LeaderUpdated(info raftio.LeaderInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.views[info.NodeID] = info
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *leaderEvents) snapshot() map[uint64]raftio.LeaderInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.views)
}

// wait blocks until cond, checked after every event, holds.
func (l *leaderEvents) wait(ctx context.Context, cond func(map[uint64]raftio.LeaderInfo) (uint64, bool)) (uint64, error) {
	for {
		l.mu.Lock()
		v, ok := cond(l.views)
		ch := l.changed
		l.mu.Unlock()
		if ok {
			return v, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// rawMachine is the minimal IOnDiskStateMachine over storage.Engine: Update
// decodes each entry's messages.Command and applies the batch with
// Engine.ApplyBatch on dragonboat's apply goroutine, with no actor between.
// Results are encoded as the replica's state machine encodes them (Value:
// the commit version; Data: the Status of a failure).
type rawMachine struct {
	engine  *storage.Engine
	applies *applyStats
}

func (m *rawMachine) Open(<-chan struct{}) (uint64, error) { return m.engine.AppliedIndex(), nil }

func (m *rawMachine) Update(ents []sm.Entry) ([]sm.Entry, error) {
	batch := make([]storage.Entry, len(ents))
	for i, e := range ents {
		cmd := &messages.Command{}
		if err := proto.Unmarshal(e.Cmd, cmd); err != nil {
			return nil, fmt.Errorf("raw machine: entry %d: %w", e.Index, err)
		}
		batch[i] = storage.Entry{Index: e.Index, Cmd: cmd}
	}
	results, err := m.engine.ApplyBatch(batch)
	if err != nil {
		return nil, err
	}
	m.applies.add(len(batch))
	for i, r := range results {
		if err := r.GetStatus().Err(); err != nil {
			data, merr := proto.Marshal(r.GetStatus())
			if merr != nil {
				return nil, merr
			}
			ents[i].Result = sm.Result{Data: data}
			continue
		}
		ents[i].Result = sm.Result{Value: r.GetVersion()}
	}
	return ents, nil
}

func (m *rawMachine) Lookup(any) (any, error) { return nil, errors.New("raw machine: no lookups") }

func (m *rawMachine) Sync() error { return m.engine.Sync() }

func (m *rawMachine) PrepareSnapshot() (any, error) { return m.engine.PrepareSnapshot() }

func (m *rawMachine) SaveSnapshot(ctx any, w io.Writer, stop <-chan struct{}) error {
	return rawSnapshotError(m.engine.SaveSnapshot(ctx.(*storage.SnapshotView), w, stop))
}

func (m *rawMachine) RecoverFromSnapshot(r io.Reader, stop <-chan struct{}) error {
	return rawSnapshotError(m.engine.RecoverSnapshot(r, stop))
}

func (m *rawMachine) Close() error { return nil }

func rawSnapshotError(err error) error {
	if errors.Is(err, storage.ErrSnapshotStopped) {
		return sm.ErrSnapshotStopped
	}
	return err
}

var _ sm.IOnDiskStateMachine = (*rawMachine)(nil)
