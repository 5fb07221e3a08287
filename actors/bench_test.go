package actors_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
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
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// The replicated write path benchmark: SET through the group's supervisor
// against the same load proposed straight to dragonboat, whose state machine
// applies it with the same storage.Engine.ApplyBatch and nothing else. The
// ratio of the two is what the actor layer (client, supervisor, router,
// replica, waiter, executor) costs.
const (
	benchClients   = 64  // operations in flight, one per client
	benchKeySize   = 16  // bytes
	benchValueSize = 128 // bytes
)

// BenchmarkGroupVsRaw runs both sides in one process, one after the other,
// and logs the ratio group/raw of their ops/s (medians when -count > 1).
func BenchmarkGroupVsRaw(b *testing.B) {
	var group, raw []float64
	b.Run("group", func(b *testing.B) { group = append(group, benchGroupSet(b)) })
	b.Run("raw", func(b *testing.B) { raw = append(raw, benchRawSet(b)) })
	if len(group) > 0 && len(raw) > 0 {
		g, r := median(group), median(raw)
		b.Logf("group %.0f ops/s, raw dragonboat %.0f ops/s: group/raw = %.3f (%d clients, %d-byte keys, %d-byte values)",
			g, r, g/r, benchClients, benchKeySize, benchValueSize)
	}
}

// benchGroupSet measures Client.Put through the group's supervisor, one
// client (so one exactly-once session) per goroutine.
func benchGroupSet(b *testing.B) float64 {
	cfg := actors.DefaultConfig(b.TempDir())
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := actors.Start(cfg)
	if err != nil {
		b.Fatalf("start group: %v", err)
	}
	defer g.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := g.WaitReady(ctx); err != nil {
		b.Fatalf("group not ready: %v", err)
	}
	if err := g.WaitLeader(ctx, 0); err != nil { // the primary, where the router sends writes
		b.Fatalf("primary does not lead: %v", err)
	}
	clients := make([]*actors.Client, benchClients)
	for i := range clients {
		clients[i] = g.Client()
	}
	return closedLoop(b, func(c int, key, value []byte) error {
		_, err := clients[c].Put(context.Background(), key, value)
		return err
	})
}

// benchRawSet measures the same SETs as messages.Command proposals made
// with SyncPropose on the leader's NodeHost.
func benchRawSet(b *testing.B) float64 {
	rg := startRawGroup(b, actors.DefaultConfig(b.TempDir()))
	defer rg.stop()
	type session struct{ id, seq uint64 }
	sessions := make([]session, benchClients)
	for i := range sessions {
		sessions[i].id = uint64(i) + 1
	}
	leader, cs := rg.nhs[0], rg.nhs[0].GetNoOPSession(rg.clusterID)
	return closedLoop(b, func(c int, key, value []byte) error {
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
	})
}

// closedLoop runs op for as many operations as b.Loop asks, from exactly
// benchClients goroutines that each start their next operation when the
// previous one returns. Each operation gets a fresh random key and a
// 128-byte value. It returns, and reports, completed operations per second.
func closedLoop(b *testing.B, op func(client int, key, value []byte) error) float64 {
	b.Helper()
	work := make(chan struct{}) // one token per operation
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures int
		firstErr error
	)
	for c := range benchClients {
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
				if err := op(c, key, value); err != nil {
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
	start := time.Now()
	for b.Loop() {
		work <- struct{}{}
	}
	close(work)
	wg.Wait() // the last (at most benchClients) operations finish
	elapsed := time.Since(start)
	if failures > 0 {
		b.Fatalf("%d of %d operations failed; first: %v", failures, b.N, firstErr)
	}
	opsPerSec := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(opsPerSec, "ops/s")
	return opsPerSec
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
}

// startRawGroup starts the raw side from the group's configuration cfg. The
// NodeHost, LogDB, engine-shard and Raft settings below mirror startNode in
// actors/replica/node.go, and the engine settings the replica's onStarted in
// actors/replica/replica.go: keep them in step.
func startRawGroup(b *testing.B, cfg actors.Config) *rawGroup {
	b.Helper()
	rg := &rawGroup{clusterID: cfg.ClusterID, proposalTimeout: cfg.ProposalTimeout}
	network := replica.NewNetwork()
	tag := make([]byte, 6)
	_, _ = rand.Read(tag)
	members := map[uint64]dragonboat.Target{}
	for id := range uint32(cfg.Replicas) {
		members[replica.NodeID(id)] = fmt.Sprintf("rawbench-%x-replica-%d", tag, id)
	}
	for _, name := range []string{"raft", "rsm", "transport", "dragonboat", "logdb", "raftpb", "config", "settings", "grpc", "netutil", "server", "tan"} {
		logger.GetLogger(name).SetLevel(logger.ERROR) // as the replicas do
	}
	events := newLeaderEvents()
	ok := false
	defer func() {
		if !ok {
			rg.stop()
		}
	}()
	for id := range uint32(cfg.Replicas) {
		dir := filepath.Join(cfg.BasePath, fmt.Sprintf("replica-%d", id))
		scfg := cfg.Storage
		scfg.Dir = filepath.Join(dir, "data")
		scfg.Replicated = true
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
			RTTMillisecond:    uint64(max(cfg.RTT.Milliseconds(), 1)),
			RaftAddress:       members[replica.NodeID(id)],
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
		machine := &rawMachine{engine: engine}
		err = nh.StartOnDiskCluster(members, false, func(uint64, uint64) sm.IOnDiskStateMachine { return machine }, config.Config{
			NodeID:             replica.NodeID(id),
			ClusterID:          cfg.ClusterID,
			ElectionRTT:        cfg.ElectionRTT,
			HeartbeatRTT:       cfg.HeartbeatRTT,
			CheckQuorum:        true,
			SnapshotEntries:    cfg.SnapshotEntries,
			CompactionOverhead: cfg.CompactionOverhead,
		})
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
	primary := replica.NodeID(0)
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
		attempt, cancelAttempt := context.WithTimeout(ctx, time.Duration(cfg.ElectionRTT)*cfg.RTT)
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
	ok = true
	return rg
}

// stop stops the NodeHosts, then closes the engines.
func (rg *rawGroup) stop() {
	for _, nh := range rg.nhs {
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
	engine *storage.Engine
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
