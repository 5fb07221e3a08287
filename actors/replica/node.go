package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

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
	nodeID  uint64 // NodeID(cfg.ID, generation): the replica in the Raft membership
	engine  *storage.Engine
	nh      *dragonboat.NodeHost
	sm      *stateMachine
	session *client.Session

	writes *fifoWaiter    // proposals, answered in completion order
	rounds *fifoWaiter    // ReadIndex rounds, handed to reads when ready
	reads  *workerPool    // executes reads
	ops    sync.WaitGroup // blocking Raft operations (membership changes) in flight; close waits

	replacingMu sync.Mutex
	replacing   map[uint32]bool // replicas a membership change is replacing now (one at a time each)
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

// startNode creates the NodeHost and starts the replica's Raft node, as
// node NodeID(cfg.ID, generation), with a state machine that hands entries
// to executor. A replica of generation 0 is one of the group's initial
// members; a later generation was added to the group by a membership change
// and joins it (dragonboat takes the members from the leader). Either way a
// node that already has Raft state restarts from it. It blocks (on disk I/O),
// so the replica runs it on an owned goroutine.
func startNode(cfg Config, generation uint32, engine *storage.Engine, root *actor.RootContext, self, executor *actor.PID) (*node, error) {
	quietDragonboat()
	logdb := config.GetTinyMemLogDBConfig()
	logdb.Shards = 1                  // one Raft group per NodeHost
	logdb.MaxSaveBufferSize = 4 << 20 // the encoding buffer it keeps between writes
	nhc := config.NodeHostConfig{
		NodeHostDir:       cfg.raftDir(),
		WALDir:            cfg.raftDir(),
		RTTMillisecond:    uint64(max(cfg.Raft.RTT.Milliseconds(), 1)),
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
	n := &node{cfg: cfg, nodeID: NodeID(cfg.ID, generation), engine: engine, nh: nh, session: nh.GetNoOPSession(cfg.ClusterID)}
	n.sm = newStateMachine(cfg.ID, engine, root, executor, self, cfg.ApplyTimeout)
	members := map[uint64]dragonboat.Target{}
	join := generation > 0
	if !join {
		for id, addr := range cfg.Members {
			members[NodeID(id, 0)] = addr
		}
	}
	rc := config.Config{
		NodeID:             n.nodeID,
		ClusterID:          cfg.ClusterID,
		ElectionRTT:        cfg.Raft.ElectionRTT,
		HeartbeatRTT:       cfg.Raft.HeartbeatRTT,
		CheckQuorum:        true,
		SnapshotEntries:    cfg.Raft.SnapshotEntries,
		CompactionOverhead: cfg.Raft.CompactionOverhead,
	}
	factory := func(uint64, uint64) sm.IOnDiskStateMachine { return n.sm }
	if err := nh.StartOnDiskCluster(members, join, factory, rc); err != nil {
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

// startReplacing claims the replacement of replica id for one ReplaceMember;
// false if one is already under way.
func (n *node) startReplacing(id uint32) bool {
	n.replacingMu.Lock()
	defer n.replacingMu.Unlock()
	if n.replacing[id] {
		return false
	}
	if n.replacing == nil {
		n.replacing = map[uint32]bool{}
	}
	n.replacing[id] = true
	return true
}

func (n *node) doneReplacing(id uint32) {
	n.replacingMu.Lock()
	defer n.replacingMu.Unlock()
	delete(n.replacing, id)
}

// replaceMember does the work of *messages.ReplaceMember: it replaces the
// node replica id is a member as with id's node of the generation after the
// highest it ever had (current or removed: dragonboat never takes a removed
// node id back) at address, and returns the node deleted (0 if none was a
// member) and the node added. It blocks until done or until budget has
// passed, so it runs through goOp.
//
// Each step starts from a linearizable read of the membership, and a step
// whose outcome is unknown (a timeout, a request dropped in an election)
// is simply followed by the next read: a deletion or addition that commits
// late shows up there. Every change is ordered after the read it was
// decided on (its config change id), so a change that raced it makes it
// fail rather than act on a stale view; and dragonboat rejects a second
// node at the same address, so a replica never ends up with two nodes.
func (n *node) replaceMember(id uint32, address string, budget time.Duration) (removed, added uint64, err error) {
	deadline := time.Now().Add(budget)
	// One attempt: long enough for a round through an election, short
	// enough to try again within the budget.
	attempt := min(n.cfg.Raft.ProposalTimeout, 10*n.cfg.Raft.ElectionTimeout())
	call := func(f func(ctx context.Context) error) error {
		left := time.Until(deadline)
		if left <= 0 {
			return dragonboat.ErrTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), min(attempt, left))
		defer cancel()
		return f(ctx)
	}
	// A pause after a transient failure, which may come back at once (a
	// request dropped for want of a leader): a heartbeat.
	pause := n.cfg.Raft.HeartbeatInterval()
	var tried uint64 // the node this call asked to add, which may yet commit
	var last error   // the latest transient failure: try again after a pause
	for time.Now().Before(deadline) {
		if last != nil && !n.sleep(min(pause, time.Until(deadline))) {
			return removed, 0, messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica stopped while replacing replica %d: %v", id, last)
		}
		var m *dragonboat.Membership
		err := call(func(ctx context.Context) (err error) {
			m, err = n.nh.SyncGetClusterMembership(ctx, n.cfg.ClusterID)
			return err
		})
		if err != nil {
			if last = membershipError("read the membership", err); transient(err) {
				continue
			}
			return removed, 0, last
		}
		last = nil
		current, next := replicaNodes(m, id)
		if tried != 0 && slices.Contains(current, tried) {
			return removed, tried, nil
		}
		if len(current) > 0 {
			node := current[0]
			if node == n.nodeID {
				return removed, 0, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "replica %d cannot replace its own node %d", id, node)
			}
			err := call(func(ctx context.Context) error {
				return n.nh.SyncRequestDeleteNode(ctx, n.cfg.ClusterID, node, m.ConfigChangeID)
			})
			switch {
			case err == nil:
				removed = node // read the membership again before the addition
			case transient(err):
				last = membershipError(fmt.Sprintf("delete node %d (replica %d)", node, id), err)
			default:
				return removed, 0, membershipError(fmt.Sprintf("delete node %d (replica %d)", node, id), err)
			}
			continue
		}
		node := NodeID(id, next)
		if _, gone := m.Removed[tried]; tried != 0 && !gone {
			node = tried // still pending, perhaps: ask for the same node again
		}
		tried = node
		err = call(func(ctx context.Context) error {
			return n.nh.SyncRequestAddNode(ctx, n.cfg.ClusterID, node, address, m.ConfigChangeID)
		})
		switch {
		case err == nil:
			return removed, node, nil
		case transient(err):
			last = membershipError(fmt.Sprintf("add node %d (replica %d) at %s", node, id, address), err)
		default:
			return removed, 0, membershipError(fmt.Sprintf("add node %d (replica %d) at %s", node, id, address), err)
		}
	}
	if last == nil {
		last = messages.Errorf(messages.StatusCode_TIMEOUT, "no time left")
	}
	return removed, 0, fmt.Errorf("replace replica %d within %v: %w", id, budget, last)
}

// sleep waits for d, or until the node halts; it reports whether the node
// still runs.
func (n *node) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.sm.haltC:
		return false
	}
}

// replicaNodes returns the nodes replica id is a member as in m (voting or
// not), lowest first, and the generation its next node gets: the one after
// the highest it ever had.
func replicaNodes(m *dragonboat.Membership, id uint32) (current []uint64, next uint32) {
	for _, set := range []map[uint64]string{m.Nodes, m.Observers, m.Witnesses} {
		for node := range set {
			if ReplicaID(node) == id {
				current = append(current, node)
				next = max(next, GenerationOf(node)+1)
			}
		}
	}
	for node := range m.Removed {
		if ReplicaID(node) == id {
			next = max(next, GenerationOf(node)+1)
		}
	}
	slices.Sort(current)
	return current, next
}

// transient reports whether a membership round may succeed if tried again
// now: it timed out, was dropped or rejected (an election, a racing change),
// or Raft was busy. A stopped node is not transient.
func transient(err error) bool {
	for _, e := range []error{dragonboat.ErrTimeout, dragonboat.ErrClusterNotReady, dragonboat.ErrClusterNotInitialized,
		dragonboat.ErrSystemBusy, dragonboat.ErrRejected, dragonboat.ErrAborted} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// membershipError maps the failure of a membership round.
func membershipError(op string, err error) error {
	switch {
	case errors.Is(err, dragonboat.ErrTimeout):
		return messages.Errorf(messages.StatusCode_TIMEOUT, "%s: %v: it may still commit", op, err)
	case errors.Is(err, dragonboat.ErrRejected):
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "%s: rejected (another membership change came first): %v", op, err)
	default:
		return raftError(op, err)
	}
}

// memberNodeID returns the node replica id is a voting member as, in the
// membership this node has applied (not linearizable: good enough to name a
// leader transfer's target).
func (n *node) memberNodeID(id uint32) (uint64, bool) {
	info := n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
	if info == nil {
		return 0, false // the NodeHost is closed
	}
	var found uint64
	for _, ci := range info.ClusterInfoList {
		if ci.ClusterID != n.cfg.ClusterID {
			continue
		}
		for node := range ci.Nodes {
			if ReplicaID(node) == id {
				found = max(found, node)
			}
		}
	}
	return found, found != 0
}
