package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/lni/dragonboat/v3"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/actors/executor"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

type state int

const (
	starting state = iota
	running
	stopping
)

// storageOpened is the start goroutine's note to the replica that the
// storage is open: the replica spawns the executor and hands its PID back
// on executorC.
type storageOpened struct {
	engine *storage.Engine
}

// nodeStarted is the replica's note to itself that its Raft node started
// (or that the start failed).
type nodeStarted struct {
	node *node
	err  error
}

// errStartCancelled ends a start the replica stopped before it finished.
var errStartCancelled = errors.New("replica stopped while starting")

type replicaActor struct {
	cfg      Config
	owner    *sync.WaitGroup // the group's: waits for this replica's goroutines
	log      *slog.Logger
	state    state
	engine   *storage.Engine
	node     *node
	executor *actor.PID
	leader   *messages.LeaderChanged // the latest this replica observed
	startedC chan struct{}           // closed when the start goroutine is done; nil if none ran
	cancelC  chan struct{}           // closed when the replica stops: a start waiting for its executor gives up
	execC    chan *actor.PID         // the executor, handed to the start goroutine (capacity 1)
	failure  string                  // why the replica is failing, if it is

	nodeMu sync.Mutex      // guards node and opened: the start goroutine sets them
	opened *storage.Engine // the engine the start goroutine opened, closed by the stop path
}

// Props returns the props of replica cfg.ID. owner tracks the goroutines the
// replica starts for its start and stop, so the group can wait for them.
// When the replica has stopped and released its storage it sends
// *messages.ReplicaDown to its parent; when it is serving, *messages.ReplicaUp.
func Props(cfg Config, owner *sync.WaitGroup) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		log := cfg.Logger
		if log == nil {
			log = slog.Default()
		}
		return &replicaActor{cfg: cfg, owner: owner, log: log.With("replica", cfg.ID)}
	})
}

// HandleFailure is the replica's supervision strategy for its executor
// (protoactor asks the actor itself before its props): every failure is
// escalated to the replica's own supervisor, because a replica whose storage
// failed must stop, not retry. The reason is kept, so the replica's
// ReplicaDown says fail_stop.
func (r *replicaActor) HandleFailure(_ *actor.ActorSystem, s actor.Supervisor, _ *actor.PID, _ *actor.RestartStatistics, reason, msg any) {
	r.failure = fmt.Sprint(reason)
	s.EscalateFailure(reason, msg)
}

func (r *replicaActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		r.onStarted(ctx)
	case *storageOpened:
		r.onStorageOpened(ctx, msg)
	case *nodeStarted:
		r.onNodeStarted(ctx, msg)
	case *actor.Stopping:
		r.onStopping(ctx)
	case *actor.Stopped, *actor.Restarting, *actor.Terminated:
	case *messages.SetFaultInjectionRequest:
		r.onSetFaultInjection(ctx, msg)
	case *messages.ReplicaStatusRequest:
		r.onStatus(ctx, msg)
	case *messages.TransferLeader:
		r.onTransferLeader(ctx, msg)
	case *messages.ReplaceMember:
		r.onReplaceMember(ctx, msg)
	case *messages.LeaderChanged:
		r.onLeaderChanged(ctx, msg)
	case *messages.ReplicaDown:
		r.onStateMachineFailed(msg)
	case proto.Message:
		if op := messages.OpOf(msg); op != nil && op.Kind != messages.Admin {
			r.serve(ctx, op, msg)
			return
		}
		r.log.Warn("replica: unexpected message", "type", fmt.Sprintf("%T", msg))
	default:
		r.log.Warn("replica: unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

// onStarted starts the replica on an owned goroutine, which does all the
// disk I/O of a start: it decides the generation (and, to rebuild, wipes the
// old state: see prepareDisk), opens the storage, waits for the executor
// (storageOpened), then creates the NodeHost and starts the Raft node
// (nodeStarted).
func (r *replicaActor) onStarted(ctx actor.Context) {
	if err := r.cfg.validate(); err != nil {
		r.fail(ctx, err)
		return
	}
	self, root, cfg := ctx.Self(), ctx.ActorSystem().Root, r.cfg
	startedC, cancelC, execC := make(chan struct{}), make(chan struct{}), make(chan *actor.PID, 1)
	r.startedC, r.cancelC, r.execC = startedC, cancelC, execC
	r.owner.Add(1)
	go func() {
		defer r.owner.Done()
		defer close(startedC)
		n, err := r.start(cfg, root, self, cancelC, execC)
		root.Send(self, &nodeStarted{node: n, err: err})
	}()
}

// start is the start goroutine's work. What it opens it leaves in opened and
// node, so the stop path finds it even if the replica stopped before
// hearing of it.
func (r *replicaActor) start(cfg Config, root *actor.RootContext, self *actor.PID, cancelC <-chan struct{}, execC <-chan *actor.PID) (*node, error) {
	generation, err := prepareDisk(cfg)
	if err != nil {
		return nil, err
	}
	scfg := cfg.Storage
	scfg.Dir = cfg.dataDir()
	scfg.SyncWrites = false // the Raft log is the durable record
	engine, err := storage.Open(scfg)
	if err != nil {
		return nil, err
	}
	r.nodeMu.Lock()
	r.opened = engine
	r.nodeMu.Unlock()
	root.Send(self, &storageOpened{engine: engine})
	var exec *actor.PID
	select {
	case exec = <-execC:
	case <-cancelC:
		return nil, errStartCancelled
	}
	n, err := startNode(cfg, generation, engine, root, self, exec)
	if err != nil {
		return nil, err
	}
	r.nodeMu.Lock()
	r.node = n
	r.nodeMu.Unlock()
	return n, nil
}

// startedParts returns what the start goroutine opened.
func (r *replicaActor) startedParts() (*node, *storage.Engine) {
	r.nodeMu.Lock()
	defer r.nodeMu.Unlock()
	return r.node, r.opened
}

func (r *replicaActor) onStorageOpened(ctx actor.Context, msg *storageOpened) {
	if r.state != starting {
		return // stopping: the start goroutine sees cancelC
	}
	r.engine = msg.engine
	r.executor = ctx.Spawn(executor.Props(r.cfg.ID, msg.engine, r.cfg.Observer, r.log))
	r.execC <- r.executor // capacity 1, sent once
}

func (r *replicaActor) onNodeStarted(ctx actor.Context, msg *nodeStarted) {
	if r.state != starting {
		return
	}
	if msg.err != nil {
		r.fail(ctx, msg.err)
		return
	}
	r.state = running
	r.log.Info("replica running", "node", msg.node.nodeID, "generation", GenerationOf(msg.node.nodeID), "applied", r.engine.AppliedIndex())
	// With the sender, so the parent knows which incarnation.
	ctx.Request(ctx.Parent(), &messages.ReplicaUp{ReplicaId: r.cfg.ID, NodeId: msg.node.nodeID})
}

// fail stops the replica because it could not start.
func (r *replicaActor) fail(ctx actor.Context, err error) {
	r.failure = err.Error()
	r.log.Error("replica failed to start", "err", err)
	ctx.Stop(ctx.Self())
}

// onStateMachineFailed is the state machine telling the replica that its
// executor could not apply a batch: fail-stop, through the supervisor.
func (r *replicaActor) onStateMachineFailed(msg *messages.ReplicaDown) {
	r.failure = msg.GetReason()
	panic(&executor.FailStop{Replica: r.cfg.ID, Err: errors.New(msg.GetReason())})
}

// onStopping stops the Raft node at once (so nothing more is applied or made
// durable) and releases everything on an owned goroutine; the parent hears
// *messages.ReplicaDown when the storage is closed.
func (r *replicaActor) onStopping(ctx actor.Context) {
	if r.state == stopping {
		return
	}
	r.state = stopping
	parent, root, id := ctx.Parent(), ctx.ActorSystem().Root, r.cfg.ID
	reason := r.failure
	if n, _ := r.startedParts(); n != nil {
		n.halt()
	}
	if r.cancelC != nil {
		close(r.cancelC)
	}
	startedC := r.startedC
	r.owner.Add(1)
	go func() {
		defer r.owner.Done()
		if startedC != nil {
			<-startedC // a start in progress finishes first
		}
		n, engine := r.startedParts()
		if n != nil {
			n.halt()
			n.close()
		}
		if engine != nil {
			if err := engine.Close(); err != nil {
				r.log.Error("replica: close storage", "err", err)
			}
		}
		if parent != nil {
			root.Send(parent, &messages.ReplicaDown{ReplicaId: id, FailStop: reason != "", Reason: reason})
		}
	}()
}

var errNotRunning = messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica is not running")

// serve serves a request of the KV API as the operation table says:
// writes are proposed, reads served after a ReadIndex round unless stale,
// snapshot reads at once when this replica has applied their version.
func (r *replicaActor) serve(ctx actor.Context, op *messages.Op, req proto.Message) {
	switch op.Kind {
	case messages.Write:
		r.propose(ctx, op, req)
	case messages.SnapshotRead:
		r.read(ctx, op, req, r.snapshotLinearizable(req.(interface{ GetVersion() uint64 }).GetVersion()))
	default:
		r.read(ctx, op, req, !op.Stale(req))
	}
}

// propose validates and proposes a write without blocking; the write waiter
// answers the sender when the entry is applied here.
func (r *replicaActor) propose(ctx actor.Context, op *messages.Op, req proto.Message) {
	if r.state != running {
		ctx.Respond(op.Response(errNotRunning))
		return
	}
	cmd := op.Command(req, messages.Stamp{TimestampUnixNanos: time.Now().UnixNano(), SessionLimits: r.cfg.Storage.Limits.SessionLimits()})
	if err := r.engine.Validator().Command(cmd); err != nil {
		ctx.Respond(op.Response(err))
		return
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		ctx.Respond(op.Response(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "encode command: %v", err)))
		return
	}
	if r.node.writes.full() {
		ctx.Respond(op.Response(errOverloaded))
		return
	}
	rs, err := r.node.nh.Propose(r.node.session, data, r.cfg.Raft.ProposalTimeout)
	if err != nil {
		ctx.Respond(op.Response(raftError("propose", err)))
		return
	}
	// The actor is the waiter's only producer, so there is room.
	r.node.writes.add(pending{rs: rs, reply: ctx.Sender(), done: func(res dragonboat.RequestResult) proto.Message {
		return op.Result(writeOutcome(res))
	}})
}

// writeOutcome turns a proposal's result into its version or error.
func writeOutcome(res dragonboat.RequestResult) (uint64, error) {
	switch {
	case res.Completed():
		return decodeResult(res.GetResult())
	case res.Timeout():
		return 0, messages.Errorf(messages.StatusCode_TIMEOUT, "proposal timed out; its outcome is unknown: retry with the same request id")
	case res.Dropped():
		return 0, messages.Errorf(messages.StatusCode_UNAVAILABLE, "proposal dropped: no leader")
	case res.Terminated():
		return 0, messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica stopped; the outcome is unknown: retry with the same request id")
	default:
		return 0, messages.Errorf(messages.StatusCode_UNAVAILABLE, "proposal rejected or aborted")
	}
}

// raftError maps an error returned at once by dragonboat.
func raftError(op string, err error) error {
	switch {
	case errors.Is(err, dragonboat.ErrSystemBusy):
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "%s: raft busy: %v", op, err)
	case errors.Is(err, dragonboat.ErrTimeoutTooSmall), errors.Is(err, dragonboat.ErrPayloadTooBig):
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "%s: %v", op, err)
	default:
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "%s: %v", op, err)
	}
}

// read serves a read request from the engine, after a ReadIndex round when
// linearizable.
func (r *replicaActor) read(ctx actor.Context, op *messages.Op, req proto.Message, linearizable bool) {
	r.readWith(ctx, linearizable, func() proto.Message { return r.engine.Serve(context.Background(), req) },
		func(err error) proto.Message { return op.Response(err) })
}

// readWith serves a read: linearizable reads first complete a ReadIndex
// round, then every read runs on the read workers.
func (r *replicaActor) readWith(ctx actor.Context, linearizable bool, run func() proto.Message, fail func(error) proto.Message) {
	if r.state != running {
		ctx.Respond(fail(errNotRunning))
		return
	}
	if !linearizable {
		if !r.node.reads.add(pending{reply: ctx.Sender(), done: func(dragonboat.RequestResult) proto.Message { return run() }}) {
			ctx.Respond(fail(errOverloaded))
		}
		return
	}
	if r.node.rounds.full() {
		ctx.Respond(fail(errOverloaded))
		return
	}
	rs, err := r.node.nh.ReadIndex(r.cfg.ClusterID, r.cfg.Raft.ProposalTimeout)
	if err != nil {
		ctx.Respond(fail(raftError("read index", err)))
		return
	}
	r.node.rounds.add(pending{rs: rs, reply: ctx.Sender(), done: func(res dragonboat.RequestResult) proto.Message {
		if !res.Completed() {
			return fail(readIndexError(res))
		}
		return run()
	}})
}

func readIndexError(res dragonboat.RequestResult) error {
	switch {
	case res.Timeout():
		return messages.Errorf(messages.StatusCode_TIMEOUT, "read index round timed out")
	case res.Dropped():
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "read index dropped: no leader")
	default:
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "read index round did not complete")
	}
}

// snapshotLinearizable decides how a snapshot read at version is served: a
// version this replica has applied is served at once; a newer one only after
// a ReadIndex round, which brings this replica up to every version committed
// before the read started, so a version still beyond it was never committed
// (the engine answers INVALID_ARGUMENT).
func (r *replicaActor) snapshotLinearizable(version uint64) bool {
	return version > r.engine.AppliedIndex()
}

func (r *replicaActor) onSetFaultInjection(ctx actor.Context, msg *messages.SetFaultInjectionRequest) {
	if r.engine == nil || r.state == stopping {
		ctx.Respond(&messages.SetFaultInjectionResponse{Status: messages.StatusOf(errNotRunning)})
		return
	}
	err := r.engine.SetFaultInjection(context.Background(), msg.GetFaults())
	ctx.Respond(&messages.SetFaultInjectionResponse{Status: messages.StatusOf(err)})
}

func (r *replicaActor) onLeaderChanged(ctx actor.Context, msg *messages.LeaderChanged) {
	r.leader = msg
	if p := ctx.Parent(); p != nil {
		ctx.Send(p, msg)
	}
}

// onTransferLeader asks Raft to hand leadership to the target's current
// node: the one the message names, or else the one the membership this
// replica applied holds for the target replica.
func (r *replicaActor) onTransferLeader(ctx actor.Context, msg *messages.TransferLeader) {
	respond := func(err error) { ctx.Respond(&messages.ReplicaCommandResponse{Status: messages.StatusOf(err)}) }
	if r.state != running {
		respond(errNotRunning)
		return
	}
	target := msg.GetTargetNodeId()
	switch {
	case target != 0 && ReplicaID(target) != msg.GetTargetId():
		respond(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "leader transfer: node %d is not a node of replica %d", target, msg.GetTargetId()))
		return
	case target == 0:
		var ok bool
		if target, ok = r.node.memberNodeID(msg.GetTargetId()); !ok {
			respond(messages.Errorf(messages.StatusCode_UNAVAILABLE, "leader transfer: replica %d is not a member of the group as replica %d knows it", msg.GetTargetId(), r.cfg.ID))
			return
		}
	}
	err := r.node.nh.RequestLeaderTransfer(r.cfg.ClusterID, target)
	if err != nil {
		err = raftError("leader transfer", err)
	}
	respond(err)
}

// onReplaceMember runs the membership change of *messages.ReplaceMember on
// a goroutine the node owns (it blocks on three Raft rounds), which answers
// the sender.
func (r *replicaActor) onReplaceMember(ctx actor.Context, msg *messages.ReplaceMember) {
	fail := func(err error) { ctx.Respond(&messages.ReplaceMemberResponse{Status: messages.StatusOf(err)}) }
	switch {
	case r.state != running:
		fail(errNotRunning)
		return
	case msg.GetReplicaId() == r.cfg.ID:
		fail(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "replica %d cannot replace itself in the membership: ask a peer", r.cfg.ID))
		return
	case msg.GetReplicaId() >= MaxReplicas || msg.GetAddress() == "":
		fail(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "replace member: replica %d at %q: need a replica id below %d and an address", msg.GetReplicaId(), msg.GetAddress(), MaxReplicas))
		return
	}
	id, address := msg.GetReplicaId(), msg.GetAddress()
	n, reply, root := r.node, ctx.Sender(), ctx.ActorSystem().Root
	budget := 3 * r.cfg.Raft.ProposalTimeout
	if msg.GetTimeout() != nil {
		budget = msg.GetTimeout().AsDuration()
	}
	if !n.startReplacing(id) {
		fail(messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica %d is already being replaced in the membership; try again", id))
		return
	}
	r.log.Info("replacing a member", "member", id, "address", address)
	n.goOp(func() {
		defer n.doneReplacing(id)
		removed, added, err := n.replaceMember(id, address, budget)
		if err != nil {
			r.log.Warn("replacing a member failed", "member", id, "err", err)
		} else {
			r.log.Info("member replaced", "member", id, "removed_node", removed, "node", added)
		}
		if reply != nil {
			root.Send(reply, &messages.ReplaceMemberResponse{Status: messages.StatusOf(err), RemovedNodeId: removed, NodeId: added})
		}
	})
}

// onStatus answers *messages.ReplicaStatus; digests are computed on a read
// worker.
func (r *replicaActor) onStatus(ctx actor.Context, msg *messages.ReplicaStatusRequest) {
	st := &messages.ReplicaStatus{ReplicaId: r.cfg.ID, Running: r.state == running, Error: r.failure}
	if l := r.leader; l != nil {
		st.HasLeader, st.LeaderId, st.Term = l.GetHasLeader(), l.GetLeaderId(), l.GetTerm()
		st.IsLeader = l.GetHasLeader() && l.GetLeaderId() == r.cfg.ID
	}
	if r.engine == nil || r.state != running {
		ctx.Respond(st)
		return
	}
	st.AppliedIndex = r.engine.AppliedIndex()
	st.ProposalsInFlight = uint64(r.node.writes.len())
	st.InstallingSnapshot = r.engine.Installing()
	if !msg.GetWithDigests() {
		ctx.Respond(st)
		return
	}
	r.readWith(ctx, false, func() proto.Message {
		d, err := r.engine.Digest(context.Background())
		if err != nil {
			st.Error = err.Error()
			return st
		}
		st.AppliedIndex, st.Digests, st.Digest = d.AppliedIndex, d.Families, d.Combined
		return st
	}, func(err error) proto.Message { st.Error = err.Error(); return st })
}
