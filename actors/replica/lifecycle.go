package replica

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actorkv/actorkv/actors/executor"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// A replica's lifecycle. Starting does disk I/O (the generation, RocksDB,
// the NodeHost), so an owned start goroutine does it and reports by
// message: storageOpened (the replica spawns its executor and hands its PID
// back), then nodeStarted. What the goroutine opened it hands over once, on
// its parts channel, when it ends; the stop path takes it from there, so a
// replica that stops while it starts releases everything, and no state is
// shared under a lock. A storage failure while applying is signalled once,
// by the state machine (applyFailed), and fail-stops the replica.

// start is the start goroutine's handle.
type start struct {
	cancelC chan struct{}   // closed when the replica stops: a start waiting for its executor gives up
	execC   chan *actor.PID // the executor, handed to the start goroutine (capacity 1)
	parts   chan startParts // what the goroutine opened, sent once when it ends (capacity 1)
}

// startParts is what a start opened (nil where it got no further).
type startParts struct {
	node   *node
	engine *storage.Engine
}

// storageOpened is the start goroutine's note to the replica that the
// storage is open: the replica spawns the executor and hands its PID back.
type storageOpened struct {
	engine *storage.Engine
}

// nodeStarted is the start goroutine's note that the Raft node started (or
// that the start failed).
type nodeStarted struct {
	node *node
	err  error
}

// applyFailed is the state machine's note that the executor could not
// apply a batch: the replica must fail-stop.
type applyFailed struct {
	reason string
}

// errStartCancelled ends a start the replica stopped before it finished.
var errStartCancelled = errors.New("replica stopped while starting")

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
	st := &start{cancelC: make(chan struct{}), execC: make(chan *actor.PID, 1), parts: make(chan startParts, 1)}
	r.start = st
	r.owner.Add(1)
	go func() {
		defer r.owner.Done()
		p, err := st.run(cfg, root, self)
		st.parts <- p
		root.Send(self, &nodeStarted{node: p.node, err: err})
	}()
}

// run is the start goroutine's work; it returns what it opened, also on
// failure.
func (st *start) run(cfg Config, root *actor.RootContext, self *actor.PID) (startParts, error) {
	var p startParts
	d, err := prepareDisk(cfg)
	if err != nil {
		return p, err
	}
	scfg := cfg.Storage
	scfg.Dir = cfg.dataDir()
	scfg.SyncWrites = false // the Raft log is the durable record
	if p.engine, err = storage.Open(scfg); err != nil {
		return p, err
	}
	root.Send(self, &storageOpened{engine: p.engine})
	var exec *actor.PID
	select {
	case exec = <-st.execC:
	case <-st.cancelC:
		return p, errStartCancelled
	}
	if p.node, err = startNode(cfg, d, p.engine, root, self, exec); err != nil {
		return p, err
	}
	return p, recordIdentity(cfg)
}

func (r *replicaActor) onStorageOpened(ctx actor.Context, msg *storageOpened) {
	if r.state != starting {
		return // stopping: the start goroutine sees cancelC
	}
	r.engine = msg.engine
	r.executor = ctx.Spawn(executor.Props(r.cfg.ID, msg.engine, r.cfg.Observer, r.cfg.logger().With("component", "executor", "replica", r.cfg.ID)))
	r.start.execC <- r.executor // capacity 1, sent once
}

func (r *replicaActor) onNodeStarted(ctx actor.Context, msg *nodeStarted) {
	if r.state != starting {
		return
	}
	if msg.err != nil {
		r.fail(ctx, msg.err)
		return
	}
	r.node = msg.node
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

// onNodeUnloaded stops a running replica whose Raft node dragonboat
// unloaded: it applied its own removal from the membership, and will never
// serve again under its node id.
func (r *replicaActor) onNodeUnloaded(ctx actor.Context) {
	if r.state != running {
		return // the replica stops it itself
	}
	r.removed = true
	r.failure = fmt.Sprintf("replica %d (node %d) was removed from the membership", r.cfg.ID, r.node.nodeID)
	r.log.Warn("replica removed from the membership; stopping", "node", r.node.nodeID)
	ctx.Stop(ctx.Self())
}

// onApplyFailed fail-stops the replica: its storage failed to apply a
// committed batch, which must never be skipped or retried silently. The
// panic goes to the group's supervisor, whose strategy stops the replica.
func (r *replicaActor) onApplyFailed(msg *applyFailed) {
	r.failure = msg.reason
	panic(&executor.FailStop{Replica: r.cfg.ID, Err: errors.New(msg.reason)})
}

// onStopping stops the Raft node at once, if it runs (so nothing more is
// applied or made durable), and releases everything on an owned goroutine,
// which takes what the start opened once the start is over; the parent
// hears *messages.ReplicaDown when the storage is closed.
func (r *replicaActor) onStopping(ctx actor.Context) {
	if r.state == stopping {
		return
	}
	r.state = stopping
	r.failWrites(ctx, errNotRunning) // gathered, never proposed
	parent, root, id, reason, removed := ctx.Parent(), ctx.ActorSystem().Root, r.cfg.ID, r.failure, r.removed
	if r.node != nil {
		r.node.halt()
	}
	st := r.start
	if st != nil {
		close(st.cancelC)
	}
	r.owner.Add(1)
	go func() {
		defer r.owner.Done()
		if st != nil {
			p := <-st.parts // a start in progress finishes first
			if p.node != nil {
				p.node.halt()
				p.node.close()
			}
			if p.engine != nil {
				if err := p.engine.Close(); err != nil {
					r.log.Error("replica: close storage", "err", err)
				}
			}
		}
		if parent != nil {
			root.Send(parent, &messages.ReplicaDown{ReplicaId: id, FailStop: reason != "" && !removed, Reason: reason, Removed: removed})
		}
	}()
}
