package replica

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/lni/dragonboat/v3"
	"github.com/lni/dragonboat/v3/client"
	"github.com/lni/dragonboat/v3/config"
	"github.com/lni/dragonboat/v3/raftio"
	sm "github.com/lni/dragonboat/v3/statemachine"

	"github.com/actorkv/actorkv/actors/raftnet"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// node is the non-actor part of a replica: its NodeHost, state machine and
// the goroutines that wait for Raft and serve reads. The replica actor
// drives it; the group's WaitGroup owns its start and stop goroutines.
type node struct {
	cfg     Config
	nodeID  uint64 // NodeID(cfg.ID, generation): the replica in the Raft membership
	engine  *storage.Engine
	nh      *dragonboat.NodeHost
	sm      *stateMachine
	session *client.Session

	writes *fifoWaiter    // proposals, answered in completion order
	rounds *fifoWaiter    // ReadIndex rounds, handed to reads when ready
	reads  *workerPool    // executes reads
	ops    sync.WaitGroup // blocking Raft operations (membership changes) in flight; close waits

	leaderInfo *atomic.Pointer[raftio.LeaderInfo] // the latest leader this node saw (its listener's)
	counters   counters                           // totals for ReplicaStatus.counters
}

// listener bridges dragonboat's Raft events into actor messages to the
// replica; it never blocks dragonboat.
type listener struct {
	root    *actor.RootContext
	replica uint32
	pid     *actor.PID
	latest  *atomic.Pointer[raftio.LeaderInfo]
}

func (l *listener) LeaderUpdated(info raftio.LeaderInfo) {
	l.latest.Store(&info)
	l.root.Send(l.pid, &messages.LeaderChanged{
		ReplicaId: l.replica,
		LeaderId:  ReplicaID(max(info.LeaderID, 1)),
		HasLeader: info.LeaderID != 0,
		Term:      info.Term,
	})
}

// nodeUnloaded is the system listener's note that dragonboat unloaded the
// replica's Raft node: the replica stopped it, or the node applied its own
// removal from the membership.
type nodeUnloaded struct{}

// systemListener passes dragonboat's NodeUnloaded to the replica; it never
// blocks dragonboat.
type systemListener struct {
	root      *actor.RootContext
	pid       *actor.PID
	clusterID uint64
	replica   uint32
}

// snapshot tells the replica actor about a snapshot event of its cluster;
// the supervisor tells its watchers (the group publishes it for embedders).
func (l *systemListener) snapshot(kind messages.SnapshotEvent_Kind, info raftio.SnapshotInfo) {
	if info.ClusterID != l.clusterID {
		return
	}
	l.root.Send(l.pid, &messages.SnapshotEvent{ReplicaId: l.replica, Kind: kind, Index: info.Index, NodeId: info.NodeID, From: info.From})
}

func (l *systemListener) NodeUnloaded(info raftio.NodeInfo) {
	if info.ClusterID == l.clusterID {
		l.root.Send(l.pid, &nodeUnloaded{})
	}
}
func (*systemListener) NodeHostShuttingDown()                       {}
func (*systemListener) NodeReady(raftio.NodeInfo)                   {}
func (*systemListener) MembershipChanged(raftio.NodeInfo)           {}
func (*systemListener) ConnectionEstablished(raftio.ConnectionInfo) {}
func (*systemListener) ConnectionFailed(raftio.ConnectionInfo)      {}
func (*systemListener) SendSnapshotStarted(raftio.SnapshotInfo)     {}
func (l *systemListener) SendSnapshotCompleted(i raftio.SnapshotInfo) {
	l.snapshot(messages.SnapshotEvent_SENT, i)
}
func (l *systemListener) SendSnapshotAborted(i raftio.SnapshotInfo) {
	l.snapshot(messages.SnapshotEvent_SEND_ABORTED, i)
}
func (l *systemListener) SnapshotReceived(i raftio.SnapshotInfo) {
	l.snapshot(messages.SnapshotEvent_RECEIVED, i)
}
func (l *systemListener) SnapshotRecovered(i raftio.SnapshotInfo) {
	l.snapshot(messages.SnapshotEvent_INSTALLED, i)
}
func (l *systemListener) SnapshotCreated(i raftio.SnapshotInfo) {
	l.snapshot(messages.SnapshotEvent_CREATED, i)
}
func (*systemListener) SnapshotCompacted(raftio.SnapshotInfo) {}
func (*systemListener) LogCompacted(raftio.EntryInfo)         {}
func (*systemListener) LogDBCompacted(raftio.EntryInfo)       {}

// startNode creates the NodeHost and starts the replica's Raft node, as
// node NodeID(cfg.ID, d.generation), with a state machine that hands
// entries to executor. An initial member starts a new group with
// cfg.Members; a replica added by a membership change (d.join: a later
// generation, or a member added to a cluster) joins the group, and
// dragonboat takes the members from the leader. Either way a node that
// already has Raft state restarts from it. It blocks (on disk I/O),
// so the replica runs it on an owned goroutine.
func startNode(cfg Config, d disk, engine *storage.Engine, root *actor.RootContext, self, executor *actor.PID) (*node, error) {
	installRaftLogger()
	latest := new(atomic.Pointer[raftio.LeaderInfo])
	logdb := config.GetTinyMemLogDBConfig()
	logdb.Shards = 1                  // one Raft group per NodeHost
	logdb.MaxSaveBufferSize = 4 << 20 // the encoding buffer it keeps between writes
	nhc := config.NodeHostConfig{
		NodeHostDir:         cfg.raftDir(),
		WALDir:              cfg.raftDir(),
		RTTMillisecond:      cfg.Raft.RTTMillisecond(),
		RaftAddress:         cfg.Members[cfg.ID],
		ListenAddress:       cfg.Listen,
		RaftEventListener:   &listener{root: root, replica: cfg.ID, pid: self, latest: latest},
		SystemEventListener: &systemListener{root: root, pid: self, clusterID: cfg.ClusterID, replica: cfg.ID},
		Expert: config.ExpertConfig{
			LogDB: logdb,
			Engine: config.EngineConfig{
				ExecShards: 1, CommitShards: 1, ApplyShards: 1, SnapshotShards: 1, CloseShards: 1,
			},
		},
	}
	if cfg.Network != nil {
		nhc.Expert.TransportFactory = cfg.Network.Factory()
	} else {
		nhc.Expert.TransportFactory = raftnet.Factory{Logger: cfg.logger().With("component", "raftnet")}
		if t := cfg.TLS; t != nil {
			nhc.MutualTLS, nhc.CAFile, nhc.CertFile, nhc.KeyFile = true, t.CA, t.Cert, t.Key
		}
	}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		return nil, fmt.Errorf("replica %d: start NodeHost in %s: %w%s", cfg.ID, cfg.raftDir(), err, nodeHostHint(err, nhc.RaftAddress))
	}
	n := &node{cfg: cfg, nodeID: NodeID(cfg.ID, d.generation), engine: engine, nh: nh, session: nh.GetNoOPSession(cfg.ClusterID), leaderInfo: latest}
	n.sm = newStateMachine(cfg.ID, engine, root, executor, self, cfg.ApplyTimeout, &n.counters)
	members := map[uint64]dragonboat.Target{}
	join := d.join
	if !join {
		for id, addr := range cfg.Members {
			members[NodeID(id, 0)] = addr
		}
	}
	rc := cfg.Raft.Dragonboat(cfg.ClusterID, n.nodeID)
	factory := func(uint64, uint64) sm.IOnDiskStateMachine { return n.sm }
	if err := nh.StartOnDiskCluster(members, join, factory, rc); err != nil {
		nh.Stop()
		if errors.Is(err, dragonboat.ErrNodeRemoved) {
			return nil, fmt.Errorf("replica %d: start Raft node %d: it was removed from the cluster's membership and cannot serve again under this identity", cfg.ID, n.nodeID)
		}
		return nil, fmt.Errorf("replica %d: start Raft node: %w", cfg.ID, err)
	}
	n.reads = newWorkerPool(root, cfg.ReadWorkers, cfg.MaxInFlight)
	n.rounds = newFIFOWaiter(root, cfg.MaxInFlight, n.reads.addWait)
	n.writes = newFIFOWaiter(root, cfg.MaxInFlight, nil)
	return n, nil
}

// nodeHostHint explains the NodeHost start failures an operator meets
// (dragonboat keeps their errors in an internal package: matched by text).
func nodeHostHint(err error, address string) string {
	switch err.Error() {
	case "not the owner of the data directory":
		return fmt.Sprintf(" (the Raft directory was created under another Raft address than %s: "+
			"a member's Raft address cannot change; start it with its old address, or replace the member)", address)
	case "hostname changed":
		return " (the Raft directory was created on a host of another name)"
	case "failed to lock data directory":
		return " (another process uses it)"
	}
	return ""
}

// halt stops the Raft node at once and releases a state machine update that
// waits for it (fail-stop). It does not block; close finishes the job.
func (n *node) halt() {
	_ = n.nh.StopCluster(n.cfg.ClusterID) // ErrClusterNotFound: already stopped
	n.sm.halt()
}

// close stops the NodeHost (which completes every request in flight, so
// the blocking operations return), waits for those operations, and stops the
// waiters and readers. Call halt first.
func (n *node) close() {
	n.nh.Stop()
	n.ops.Wait()
	n.writes.stop()
	n.rounds.stop()
	n.reads.stop()
}

// goOp runs a blocking Raft operation on a goroutine the node owns: close
// waits for it (stopping the NodeHost makes it return). The replica actor
// calls it while it runs, never after it started stopping.
func (n *node) goOp(f func()) {
	n.ops.Add(1)
	go func() {
		defer n.ops.Done()
		f()
	}()
}
