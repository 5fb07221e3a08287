// Package supervisor holds the supervisor actor: the root of a replica group.
// It spawns the router and the replicas, keeps the router's routes and
// leader up to date, and starts and stops replicas on request.
//
// Messages it handles:
//   - every request of the KV API (messages/kv.proto) and StatusRequest:
//     forwarded to the router, so the supervisor's PID is the group's address;
//   - *messages.ReplicaUp / *messages.ReplicaDown from replicas: their state;
//   - *messages.LeaderChanged from replicas: forwarded to the router when
//     newer than what it knows (see newerLeader); until the primary (replica 0) has led once, it asks the
//     leader to hand over to it, again every HandoverRetry (a transfer can
//     fail silently), so the primary leads at start;
//   - *messages.StopReplica / *messages.StartReplica: answered with
//     *messages.ReplicaCommandResponse once the replica is down / serving.
//     StartReplica with wipe_raft_log rebuilds a stopped replica from
//     scratch: the supervisor asks a running replica of this process (the
//     leader's, if it runs here) to replace the replica's node in the Raft
//     membership (*messages.ReplaceMember, answered with
//     *messages.ReplaceMemberResponse), then spawns the replica under the
//     new node's generation with replica.Config.WipeRaftLog. With no other
//     replica running here it answers UNAVAILABLE, or INVALID_ARGUMENT when
//     this process runs only that replica (one replica per process): the
//     membership of a group can only be changed through a running member;
//   - *messages.TransferLeader from outside the group: sent on to the
//     leader's replica (or any running one, which forwards it), with the
//     target's node id filled in; that replica answers the sender;
//   - an empty *messages.Routes from the router, which (re)started: answered
//     with the routes and the leader.
//
// Supervision strategy (Strategy): the router is stateless and is restarted
// on failure (at most 10 times in 10 s, then stopped). A replica is stopped
// on any failure and never restarted by the strategy: a fail-stop (its
// storage failed, reason *executor.FailStop) must not be retried silently,
// and any other panic leaves state that an operator or test should look at.
// A stopped replica keeps its data and rejoins with StartReplica.
package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/actors/executor"
	"github.com/actorkv/actorkv/actors/replica"
	"github.com/actorkv/actorkv/actors/router"
	"github.com/actorkv/actorkv/messages"
)

// Config configures a group's supervisor.
type Config struct {
	// Replicas configures each replica this process runs, by id.
	Replicas map[uint32]replica.Config
	// Router configures the router.
	Router router.Config
	// Primary is the replica that should lead after the first election.
	Primary uint32
	// HandoverRetry is how long the supervisor waits for the primary to take
	// the lead before asking the leader again (about an election timeout);
	// 0 means 500 ms.
	HandoverRetry time.Duration
	// MembershipTimeout bounds the membership change that precedes the
	// rebuild of a replica (at least three Raft rounds, retried through
	// elections): the peer that makes it gives up after it, and the
	// supervisor waits a little longer for its answer; 0 means 15 s.
	MembershipTimeout time.Duration
	// Owner waits for the goroutines replicas start and stop with.
	Owner *sync.WaitGroup
	// Watchers are told, by message, every ReplicaStarting, ReplicaUp,
	// ReplicaDown and LeaderChanged the supervisor accepts, and every
	// replica's SnapshotEvent: what it knows of the group is theirs to
	// follow, not to keep beside it.
	Watchers []*actor.PID
	// Logger receives the supervisor's logs.
	Logger *slog.Logger
}

type supervisorActor struct {
	cfg         Config
	log         *slog.Logger
	router      *actor.PID
	m           *members
	handoverDue scheduler.CancelFunc // the pending handover retry, if any
}

// handoverRetry is the supervisor's timer to ask for the primary handover
// again.
type handoverRetry struct{}

// Props returns the supervisor's props.
func Props(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		log := cfg.Logger
		if log == nil {
			log = slog.Default()
		}
		ids := make([]uint32, 0, len(cfg.Replicas))
		for id := range cfg.Replicas {
			ids = append(ids, id)
		}
		return &supervisorActor{cfg: cfg, log: log, m: newMembers(cfg.Primary, ids)}
	}, actor.WithSupervisor(Strategy()))
}

// Strategy returns the supervision strategy of the group (see the package
// documentation): restart the router, stop a failed replica.
func Strategy() actor.SupervisorStrategy {
	return &groupStrategy{restart: actor.NewOneForOneStrategy(10, 10*time.Second, func(any) actor.Directive {
		return actor.RestartDirective
	})}
}

type groupStrategy struct {
	restart actor.SupervisorStrategy
}

// RouterName is the name of the router among the supervisor's children.
const RouterName = "router"

// RouterPID is the PID of the router of the supervisor at sup: its child
// named RouterName, the same across the router's restarts, so requests can
// go straight to it. (The supervisor checks, when it spawns the router, that
// protoactor named the child so.)
func RouterPID(sup *actor.PID) *actor.PID {
	return actor.NewPID(sup.GetAddress(), sup.GetId()+"/"+RouterName)
}

func (g *groupStrategy) HandleFailure(sys *actor.ActorSystem, s actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, msg any) {
	if isRouter(child) {
		g.restart.HandleFailure(sys, s, child, rs, reason, msg)
		return
	}
	var fs *executor.FailStop
	if err, ok := reason.(error); ok && errors.As(err, &fs) {
		sys.Logger().Error("replica failed; stopping it", "replica", fs.Replica, "reason", fmt.Sprint(fs.Err))
	} else {
		sys.Logger().Error("replica failed; stopping it", "actor", child.GetId(), "reason", fmt.Sprint(reason))
	}
	s.StopChildren(child)
}

func isRouter(pid *actor.PID) bool { return strings.HasSuffix(pid.GetId(), "/"+RouterName) }

func (s *supervisorActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		s.onStarted(ctx)
	case *actor.Stopping:
		if s.handoverDue != nil {
			s.handoverDue()
		}
	case *actor.Stopped, *actor.Restarting:
	case *actor.Terminated:
		if s.m.terminated(msg.GetWho()) {
			s.sendRoutes(ctx)
		}
	case *messages.ReplicaUp:
		s.onReplicaUp(ctx, msg)
	case *messages.ReplicaDown:
		s.onReplicaDown(ctx, msg)
	case *messages.LeaderChanged:
		s.onLeaderChanged(ctx, msg)
	case *messages.SnapshotEvent:
		s.tell(ctx, msg)
	case *messages.StopReplica:
		s.onStopReplica(ctx, msg)
	case *messages.StartReplica:
		s.onStartReplica(ctx, msg)
	case *messages.TransferLeader:
		s.onTransferLeader(ctx, msg)
	case *messages.Routes: // the router (re)started and has no routes
		s.sendRoutes(ctx)
	case *handoverRetry:
		s.handoverDue = nil
		s.handOver(ctx)
	case *messages.ReplicaCommandResponse: // the answer to TransferLeader
		if err := msg.GetStatus().Err(); err != nil {
			s.log.Warn("leader transfer to the primary failed", "err", err)
		}
	case proto.Message:
		if messages.OpOf(msg) != nil { // a request of the KV API
			ctx.Forward(s.router)
			return
		}
		s.log.Warn("supervisor: unexpected message", "type", fmt.Sprintf("%T", msg))
	default:
		s.log.Warn("supervisor: unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (s *supervisorActor) onStarted(ctx actor.Context) {
	pid, err := ctx.SpawnNamed(router.Props(s.cfg.Router), RouterName)
	if err != nil {
		panic(fmt.Sprintf("supervisor: spawn router: %v", err))
	}
	if want := RouterPID(ctx.Self()); !pid.Equal(want) {
		panic(fmt.Sprintf("supervisor: the router is %s, not %s as RouterPID says", pid, want))
	}
	s.router = pid
	for _, id := range s.m.ids() {
		s.spawnReplica(ctx, id, 0)
	}
}

// spawnReplica starts replica id from its data, or, with a generation above
// 0, rebuilds it from scratch under that generation (its node must already
// be in the membership).
func (s *supervisorActor) spawnReplica(ctx actor.Context, id uint32, rebuildAs uint32) {
	cfg := s.cfg.Replicas[id]
	if rebuildAs > 0 {
		cfg.WipeRaftLog, cfg.Generation, cfg.Join = true, rebuildAs, false
	}
	s.m.spawned(id, ctx.Spawn(replica.Props(cfg, s.cfg.Owner)))
	s.tell(ctx, &messages.ReplicaStarting{ReplicaId: id})
}

// tell sends an accepted event to the watchers.
func (s *supervisorActor) tell(ctx actor.Context, msg proto.Message) {
	for _, w := range s.cfg.Watchers {
		ctx.Send(w, msg)
	}
}

// sendRoutes tells the router which replicas serve, and the leader.
func (s *supervisorActor) sendRoutes(ctx actor.Context) {
	ctx.Send(s.router, s.m.routes())
	if s.m.leader != nil {
		ctx.Send(s.router, s.m.leader)
	}
}

func (s *supervisorActor) answer(ctx actor.Context, sl *slot, err error) {
	for _, w := range sl.waiters {
		ctx.Send(w, &messages.ReplicaCommandResponse{Status: messages.StatusOf(err)})
	}
	sl.waiters = nil
}

func (s *supervisorActor) onReplicaUp(ctx actor.Context, msg *messages.ReplicaUp) {
	sl, ok := s.m.up(msg.GetReplicaId(), ctx.Sender(), msg.GetNodeId())
	if !ok {
		return // a replica stopped meanwhile
	}
	s.log.Info("replica up", "replica", msg.GetReplicaId(), "node", msg.GetNodeId())
	s.sendRoutes(ctx)
	s.answer(ctx, sl, nil)
	s.tell(ctx, msg)
	s.handOver(ctx)
}

func (s *supervisorActor) onReplicaDown(ctx actor.Context, msg *messages.ReplicaDown) {
	sl, wasStarting := s.m.down(msg.GetReplicaId(), msg.GetReason())
	if sl == nil {
		return
	}
	switch {
	case msg.GetRemoved():
		s.log.Warn("replica down: removed from the membership", "replica", msg.GetReplicaId())
	case msg.GetFailStop():
		s.log.Error("replica down (fail-stop)", "replica", msg.GetReplicaId(), "reason", msg.GetReason())
	default:
		s.log.Info("replica down", "replica", msg.GetReplicaId())
	}
	s.sendRoutes(ctx)
	var err error
	if wasStarting {
		err = messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica %d failed to start: %s", msg.GetReplicaId(), msg.GetReason())
	}
	s.answer(ctx, sl, err)
	s.tell(ctx, msg)
}

func (s *supervisorActor) onLeaderChanged(ctx actor.Context, msg *messages.LeaderChanged) {
	s.log.Debug("leader change observed", "by", msg.GetReplicaId(), "leader", msg.GetLeaderId(), "has_leader", msg.GetHasLeader(), "term", msg.GetTerm())
	if !s.m.observe(msg) {
		return // not newer than what the router knows
	}
	if msg.GetHasLeader() {
		s.log.Info("leader elected", "leader", msg.GetLeaderId(), "term", msg.GetTerm())
	} else {
		s.log.Info("no leader known", "by", msg.GetReplicaId(), "term", msg.GetTerm())
	}
	ctx.Send(s.router, msg)
	s.tell(ctx, msg)
	s.handOver(ctx)
}

// handOver asks the leader to hand leadership over to the primary, until the
// primary has led once. A transfer can fail silently (dragonboat's target
// skips the election while it has committed entries it has not applied), so
// while the primary is up and does not lead, it asks again every
// HandoverRetry.
func (s *supervisorActor) handOver(ctx actor.Context) {
	leader, primary := s.m.handover()
	if s.m.handedOver && s.handoverDue != nil {
		s.handoverDue()
		s.handoverDue = nil
	}
	if leader == nil || s.handoverDue != nil {
		return // nothing to ask (onReplicaUp calls again), or a retry is due
	}
	ctx.Request(leader.pid, &messages.TransferLeader{TargetId: s.cfg.Primary, TargetNodeId: primary.nodeID})
	retry := s.cfg.HandoverRetry
	if retry <= 0 {
		retry = 500 * time.Millisecond
	}
	s.handoverDue = scheduler.NewTimerScheduler(ctx.ActorSystem().Root).SendOnce(retry, ctx.Self(), &handoverRetry{})
}

func (s *supervisorActor) onStopReplica(ctx actor.Context, msg *messages.StopReplica) {
	id := msg.GetReplicaId()
	d, err := s.m.stop(id)
	switch d {
	case answerNow:
		ctx.Respond(&messages.ReplicaCommandResponse{Status: messages.StatusOf(err)})
	case stopIt:
		sl := s.m.slots[id]
		sl.waiters = append(sl.waiters, ctx.Sender())
		s.sendRoutes(ctx)
		ctx.Stop(sl.pid)
	case waitForDown:
		sl := s.m.slots[id]
		sl.waiters = append(sl.waiters, ctx.Sender())
	}
}

func (s *supervisorActor) onStartReplica(ctx actor.Context, msg *messages.StartReplica) {
	id := msg.GetReplicaId()
	d, err := s.m.start(id, msg.GetWipeRaftLog())
	switch d {
	case answerNow:
		ctx.Respond(&messages.ReplicaCommandResponse{Status: messages.StatusOf(err)})
	case startIt:
		s.spawnReplica(ctx, id, 0)
		sl := s.m.slots[id]
		sl.waiters = append(sl.waiters, ctx.Sender())
	case rebuildIt:
		sl := s.m.slots[id]
		sl.waiters = append(sl.waiters, ctx.Sender())
		s.rebuild(ctx, id, sl)
	}
}

// rebuild replaces stopped replica id's node in the Raft membership, through
// a running peer, and then spawns it under the new node's generation: a
// replica without its log must rejoin as a new member, or the leader's
// progress for its old node commits beyond its empty log. The membership
// change blocks on Raft, so the peer runs it on a goroutine of its own and
// the supervisor waits for the answer without blocking (ReenterAfter).
func (s *supervisorActor) rebuild(ctx actor.Context, id uint32, sl *slot) {
	peer := s.m.peer(id)
	timeout := s.cfg.MembershipTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	address := s.cfg.Replicas[id].Members[id]
	s.log.Info("rebuilding replica: replacing its node in the membership", "replica", id, "old_node", sl.nodeID)
	req := &messages.ReplaceMember{ReplicaId: id, Address: address, Timeout: durationpb.New(timeout)}
	timeout += max(timeout/4, time.Second) // the peer answers, even a failure, within its own timeout
	f := ctx.RequestFuture(peer.pid, req, timeout)
	ctx.ReenterAfter(f, func(res any, err error) {
		if s.m.slots[id] != sl || sl.state != rebuilding {
			return
		}
		node, err := replacedNode(id, res, err, timeout)
		if err != nil {
			sl.state = down
			s.log.Warn("rebuilding replica failed", "replica", id, "err", err)
			s.answer(ctx, sl, err)
			return
		}
		sl.nodeID = node
		s.log.Info("rebuilding replica as a new member", "replica", id, "node", node, "generation", replica.GenerationOf(node))
		s.spawnReplica(ctx, id, replica.GenerationOf(node))
	})
}

// replacedNode reads the answer to ReplaceMember for replica id: the node it
// added.
func replacedNode(id uint32, res any, err error, timeout time.Duration) (uint64, error) {
	if err != nil {
		return 0, messages.Errorf(messages.StatusCode_TIMEOUT,
			"rebuild replica %d: no answer to the membership change within %v (%v): its outcome is unknown; start it with a wipe again", id, timeout, err)
	}
	r, ok := res.(*messages.ReplaceMemberResponse)
	if !ok {
		return 0, messages.Errorf(messages.StatusCode_INTERNAL, "rebuild replica %d: the membership change was answered with %T", id, res)
	}
	if err := r.GetStatus().Err(); err != nil {
		return 0, messages.Errorf(messages.CodeOf(err), "rebuild replica %d: %v", id, err)
	}
	if node := r.GetNodeId(); node == 0 || replica.ReplicaID(node) != id || replica.GenerationOf(node) == 0 {
		return 0, messages.Errorf(messages.StatusCode_INTERNAL, "rebuild replica %d: the membership change added node %d", id, node)
	}
	return r.GetNodeId(), nil
}

// onTransferLeader sends a leader transfer asked from outside the group to
// the leader's replica, or any running one (a follower forwards it to the
// leader), filling in the target's node id when known; that replica answers
// the sender.
func (s *supervisorActor) onTransferLeader(ctx actor.Context, msg *messages.TransferLeader) {
	target := msg.GetTargetId()
	via, node := s.m.transferVia(target)
	if via == nil {
		ctx.Respond(&messages.ReplicaCommandResponse{Status: messages.StatusOf(
			messages.Errorf(messages.StatusCode_UNAVAILABLE, "leader transfer to replica %d: no replica runs in this process", target))})
		return
	}
	req := &messages.TransferLeader{TargetId: target, TargetNodeId: msg.GetTargetNodeId()}
	if req.TargetNodeId == 0 {
		req.TargetNodeId = node
	}
	ctx.RequestWithCustomSender(via.pid, req, ctx.Sender())
}
