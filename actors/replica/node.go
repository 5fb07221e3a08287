package replica

import (
	"fmt"
	"os"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/lni/dragonboat/v3"
	"github.com/lni/dragonboat/v3/client"
	"github.com/lni/dragonboat/v3/config"
	"github.com/lni/dragonboat/v3/logger"
	"github.com/lni/dragonboat/v3/raftio"
	sm "github.com/lni/dragonboat/v3/statemachine"

	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

var quietOnce sync.Once

// quietDragonboat lowers dragonboat's own logging to errors (its Raft layer
// logs every election as a warning); actorkv logs leadership changes and
// replica state through slog.
func quietDragonboat() {
	quietOnce.Do(func() {
		for _, name := range []string{"raft", "rsm", "transport", "dragonboat", "logdb", "raftpb", "config", "settings", "grpc", "netutil", "server", "tan"} {
			logger.GetLogger(name).SetLevel(logger.ERROR)
		}
	})
}

// node is the non-actor part of a replica: its NodeHost, state machine and
// the goroutines that wait for Raft and serve reads. The replica actor
// drives it; the group's WaitGroup owns its start and stop goroutines.
type node struct {
	cfg     Config
	engine  *storage.Engine
	nh      *dragonboat.NodeHost
	sm      *stateMachine
	session *client.Session

	writes *fifoWaiter // proposals, answered in completion order
	rounds *fifoWaiter // ReadIndex rounds, handed to reads when ready
	reads  *workerPool // executes reads
}

// listener bridges dragonboat's Raft events into actor messages to the
// replica; it never blocks dragonboat.
type listener struct {
	root    *actor.RootContext
	replica uint32
	pid     *actor.PID
}

func (l *listener) LeaderUpdated(info raftio.LeaderInfo) {
	l.root.Send(l.pid, &messages.LeaderChanged{
		ReplicaId: l.replica,
		LeaderId:  ReplicaID(max(info.LeaderID, 1)),
		HasLeader: info.LeaderID != 0,
		Term:      info.Term,
	})
}

// startNode creates the NodeHost and starts the replica's Raft node with a
// state machine that hands entries to executor. It blocks (on disk I/O), so
// the replica runs it on an owned goroutine.
func startNode(cfg Config, engine *storage.Engine, root *actor.RootContext, self, executor *actor.PID) (*node, error) {
	quietDragonboat()
	if cfg.WipeRaftLog {
		if err := os.RemoveAll(cfg.raftDir()); err != nil {
			return nil, fmt.Errorf("replica %d: wipe raft log: %w", cfg.ID, err)
		}
	}
	logdb := config.GetTinyMemLogDBConfig()
	logdb.Shards = 1 // one Raft group per NodeHost
	nhc := config.NodeHostConfig{
		NodeHostDir:       cfg.raftDir(),
		WALDir:            cfg.raftDir(),
		RTTMillisecond:    uint64(max(cfg.RTT.Milliseconds(), 1)),
		RaftAddress:       cfg.Members[cfg.ID],
		RaftEventListener: &listener{root: root, replica: cfg.ID, pid: self},
		Expert: config.ExpertConfig{
			LogDB: logdb,
			Engine: config.EngineConfig{
				ExecShards: 1, CommitShards: 1, ApplyShards: 1, SnapshotShards: 1, CloseShards: 1,
			},
		},
	}
	if cfg.Network != nil {
		nhc.Expert.TransportFactory = cfg.Network.Factory()
	}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		return nil, fmt.Errorf("replica %d: start NodeHost: %w", cfg.ID, err)
	}
	n := &node{cfg: cfg, engine: engine, nh: nh, session: nh.GetNoOPSession(cfg.ClusterID)}
	n.sm = newStateMachine(cfg.ID, engine, root, executor, self, cfg.ApplyTimeout)
	members := make(map[uint64]dragonboat.Target, len(cfg.Members))
	for id, addr := range cfg.Members {
		members[NodeID(id)] = addr
	}
	rc := config.Config{
		NodeID:             NodeID(cfg.ID),
		ClusterID:          cfg.ClusterID,
		ElectionRTT:        cfg.ElectionRTT,
		HeartbeatRTT:       cfg.HeartbeatRTT,
		CheckQuorum:        true,
		SnapshotEntries:    cfg.SnapshotEntries,
		CompactionOverhead: cfg.CompactionOverhead,
	}
	factory := func(uint64, uint64) sm.IOnDiskStateMachine { return n.sm }
	if err := nh.StartOnDiskCluster(members, false, factory, rc); err != nil {
		nh.Stop()
		return nil, fmt.Errorf("replica %d: start Raft node: %w", cfg.ID, err)
	}
	n.reads = newWorkerPool(root, cfg.ReadWorkers, cfg.MaxInFlight)
	n.rounds = newFIFOWaiter(root, cfg.MaxInFlight, n.reads.addWait)
	n.writes = newFIFOWaiter(root, cfg.MaxInFlight, nil)
	return n, nil
}

// halt stops the Raft node at once and releases a state machine update that
// waits for it (fail-stop). It does not block; close finishes the job.
func (n *node) halt() {
	_ = n.nh.StopCluster(n.cfg.ClusterID) // ErrClusterNotFound: already stopped
	n.sm.halt()
}

// close stops the NodeHost (which completes every request in flight), the
// waiters and readers, and then the engine. Call halt first.
func (n *node) close() {
	n.nh.Stop()
	n.writes.stop()
	n.rounds.stop()
	n.reads.stop()
}
