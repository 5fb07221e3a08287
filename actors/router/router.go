// Package router holds the router actor: the group's front door. It
// validates every request of the KV API (messages/kv.proto) before anything
// is proposed, and forwards it, with its original sender, to the replica that
// should serve it: writes, linearizable and snapshot reads to the current
// Raft leader's replica (replica 0, the primary, until a leader is known);
// stale reads to the local replica. The replica answers the sender directly,
// but for snapshot reads, which the router asks for itself: a replica that
// answers TRANSACTION_TOO_OLD may have lost the version's history in a
// restart, so the router tries the others before it answers so.
//
// It receives *messages.Routes (which replicas run) and
// *messages.LeaderChanged from the supervisor, fans SetFaultInjectionRequest
// out to the replicas it names, and answers StatusRequest by asking every
// replica for its *messages.ReplicaStatus.
//
// The router keeps no durable state; its supervisor restarts it on failure.
// When it starts (or restarts) it asks the supervisor for the routes (and the
// leader) by sending it an empty *messages.Routes.
package router

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// Config configures the router.
type Config struct {
	// Replicas are the ids of every replica of the group.
	Replicas []uint32
	// Primary is the replica writes go to before a leader is known.
	Primary uint32
	// Local is the replica that serves stale reads.
	Local uint32
	// Validator checks requests.
	Validator *kv.Validator
	// FixedMembership refuses membership changes (a group whose replicas
	// all run in this process).
	FixedMembership bool
	// Timeout bounds the replies the router gathers (status, fault injection).
	Timeout time.Duration
	// Logger receives the router's logs.
	Logger *slog.Logger
}

// Props returns the router's props.
func Props(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		log := cfg.Logger
		if log == nil {
			log = slog.Default()
		}
		return &routerActor{cfg: cfg, log: log, routes: map[uint32]*actor.PID{}}
	})
}

type routerActor struct {
	cfg    Config
	log    *slog.Logger
	routes map[uint32]*actor.PID // running replicas
	down   map[uint32]string     // why stopped replicas stopped
	leader *messages.LeaderChanged
}

func (r *routerActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		if p := ctx.Parent(); p != nil {
			ctx.Send(p, &messages.Routes{}) // a restarted router has no routes
		}
	case *actor.Stopping, *actor.Stopped, *actor.Restarting:
	case *messages.Routes:
		r.onRoutes(msg)
	case *messages.LeaderChanged:
		r.leader = msg
	case *messages.SetFaultInjectionRequest:
		r.onSetFaultInjection(ctx, msg)
	case *messages.StatusRequest:
		r.onStatus(ctx, msg)
	case *messages.BackupRequest:
		r.routeBackup(ctx, msg)
	case proto.Message:
		switch op := messages.OpOf(msg); {
		case op == nil || op.Kind == messages.Admin:
			r.log.Warn("router: unexpected message", "type", fmt.Sprintf("%T", msg))
		case op.Kind == messages.Membership:
			r.routeMembership(ctx, op, msg)
		case op.Kind == messages.SnapshotRead:
			r.routeSnapshot(ctx, msg)
		default:
			r.route(ctx, msg, op.Stale(msg))
		}
	default:
		r.log.Warn("router: unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (r *routerActor) onRoutes(msg *messages.Routes) {
	r.routes = map[uint32]*actor.PID{}
	for _, rt := range msg.GetReplicas() {
		r.routes[rt.GetReplicaId()] = actor.NewPID(rt.GetAddress(), rt.GetId())
	}
	r.down = map[uint32]string{}
	for _, d := range msg.GetDown() {
		r.down[d.GetReplicaId()] = d.GetReason()
	}
}

var errNoReplica = messages.Errorf(messages.StatusCode_UNAVAILABLE, "no replica is running")

// routeBackup sends a backup's first request to the leader's replica (as a
// linearizable read), and every later one to the replica that holds it.
func (r *routerActor) routeBackup(ctx actor.Context, msg *messages.BackupRequest) {
	if err := r.cfg.Validator.Request(msg); err != nil {
		ctx.Respond(&messages.BackupResponse{Status: messages.StatusOf(err)})
		return
	}
	pid := r.target(false)
	if msg.GetBackupId() != 0 {
		var ok bool
		if pid, ok = r.routes[msg.GetReplicaId()]; !ok {
			ctx.Respond(&messages.BackupResponse{Status: messages.StatusOf(messages.Errorf(messages.StatusCode_UNAVAILABLE,
				"replica %d, which holds backup %d, is not running here; start a new backup", msg.GetReplicaId(), msg.GetBackupId()))})
			return
		}
	}
	if pid == nil {
		ctx.Respond(&messages.BackupResponse{Status: messages.StatusOf(errNoReplica)})
		return
	}
	ctx.Forward(pid)
}

// target picks the replica for a request.
func (r *routerActor) target(stale bool) *actor.PID {
	if stale {
		if pid, ok := r.routes[r.cfg.Local]; ok {
			return pid
		}
	}
	if l := r.leader; l != nil && l.GetHasLeader() {
		if pid, ok := r.routes[l.GetLeaderId()]; ok {
			return pid
		}
	}
	if pid, ok := r.routes[r.cfg.Primary]; ok {
		return pid
	}
	ids := make([]uint32, 0, len(r.routes))
	for id := range r.routes {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil
	}
	return r.routes[slices.Min(ids)]
}

// route validates msg and forwards it with its sender; bad input is
// answered here and never reaches a replica.
func (r *routerActor) route(ctx actor.Context, msg proto.Message, stale bool) {
	if err := r.cfg.Validator.Request(msg); err != nil {
		ctx.Respond(messages.ErrorResponse(msg, err))
		return
	}
	pid := r.target(stale)
	if pid == nil {
		ctx.Respond(messages.ErrorResponse(msg, errNoReplica))
		return
	}
	ctx.Forward(pid)
}

// routeMembership sends a membership request to the leader's replica if it
// runs here, else to a running one (any member can read and change the
// membership: dragonboat forwards a change to the leader). An in-process
// group's membership is fixed: it is read and its leader moved, but no
// member is added, removed or replaced (StartReplica rebuilds a replica).
func (r *routerActor) routeMembership(ctx actor.Context, op *messages.Op, msg proto.Message) {
	if r.cfg.FixedMembership && op.Name != "member_list" && op.Name != "move_leader" {
		ctx.Respond(op.Response(messages.Errorf(messages.StatusCode_INVALID_ARGUMENT,
			"the membership of a group whose replicas all run in one process is fixed; a cluster (one replica per process) changes its membership")))
		return
	}
	pid := r.target(false)
	if pid == nil {
		ctx.Respond(op.Response(errNoReplica))
		return
	}
	ctx.Forward(pid)
}

// routeSnapshot validates a snapshot read and asks the leader's replica
// (as route would send it); a replica answering TRANSACTION_TOO_OLD may
// only have lost the version's history — it restarted or installed a
// snapshot since — so the read goes to the next running replica, and
// TRANSACTION_TOO_OLD is the answer only when every one gave it.
func (r *routerActor) routeSnapshot(ctx actor.Context, msg proto.Message) {
	if err := r.cfg.Validator.Request(msg); err != nil {
		ctx.Respond(messages.ErrorResponse(msg, err))
		return
	}
	pid := r.target(false)
	if pid == nil {
		ctx.Respond(messages.ErrorResponse(msg, errNoReplica))
		return
	}
	r.askSnapshot(ctx, msg, ctx.Sender(), pid, nil)
}

// askSnapshot asks pid for the snapshot read msg and answers sender, or
// asks a replica not yet tried when the answer is TRANSACTION_TOO_OLD.
func (r *routerActor) askSnapshot(ctx actor.Context, msg proto.Message, sender, pid *actor.PID, tried []*actor.PID) {
	tried = append(tried, pid)
	ctx.ReenterAfter(ctx.RequestFuture(pid, msg, r.cfg.Timeout), func(res any, err error) {
		st, ok := res.(messages.Statused)
		switch {
		case err != nil:
			reply(ctx, sender, messages.ErrorResponse(msg, messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica %s did not answer: %v", pid.GetId(), err)))
		case ok && st.GetStatus().GetCode() == messages.StatusCode_TRANSACTION_TOO_OLD:
			if next := r.untried(tried); next != nil {
				r.askSnapshot(ctx, msg, sender, next, tried)
				return
			}
			reply(ctx, sender, st)
		case ok:
			reply(ctx, sender, st)
		default:
			reply(ctx, sender, messages.ErrorResponse(msg, messages.Errorf(messages.StatusCode_INTERNAL, "replica answered %T", res)))
		}
	})
}

// untried returns a running replica not in tried, the lowest id first; nil
// when none is left.
func (r *routerActor) untried(tried []*actor.PID) *actor.PID {
	ids := make([]uint32, 0, len(r.routes))
	for id := range r.routes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		pid := r.routes[id]
		if !slices.ContainsFunc(tried, pid.Equal) {
			return pid
		}
	}
	return nil
}

// gather asks each replica of ids for msg and calls done, in the actor, with
// the replies (nil where a replica is not running or did not answer).
func (r *routerActor) gather(ctx actor.Context, ids []uint32, msg proto.Message, done func(replies []any)) {
	replies := make([]any, len(ids))
	left := len(ids)
	if left == 0 {
		done(replies)
		return
	}
	for i, id := range ids {
		pid, ok := r.routes[id]
		if !ok {
			if left--; left == 0 {
				done(replies)
			}
			continue
		}
		ctx.ReenterAfter(ctx.RequestFuture(pid, msg, r.cfg.Timeout), func(res any, err error) {
			if err == nil {
				replies[i] = res
			}
			if left--; left == 0 {
				done(replies)
			}
		})
	}
}

func (r *routerActor) onSetFaultInjection(ctx actor.Context, msg *messages.SetFaultInjectionRequest) {
	if err := r.cfg.Validator.Request(msg); err != nil {
		ctx.Respond(&messages.SetFaultInjectionResponse{Status: messages.StatusOf(err)})
		return
	}
	ids := msg.GetReplicas()
	if len(ids) == 0 {
		// Every replica that runs: a stopped one has no faults (they
		// belong to one engine instance) and cannot take any.
		for _, id := range r.cfg.Replicas {
			if _, ok := r.routes[id]; ok {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			ctx.Respond(&messages.SetFaultInjectionResponse{Status: messages.StatusOf(errNoReplica)})
			return
		}
	}
	for _, id := range ids {
		if !slices.Contains(r.cfg.Replicas, id) {
			ctx.Respond(&messages.SetFaultInjectionResponse{Status: messages.StatusOf(
				messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "replica %d is not in the group %v", id, r.cfg.Replicas))})
			return
		}
	}
	sender := ctx.Sender()
	r.gather(ctx, ids, msg, func(replies []any) {
		var err error
		for i, rep := range replies {
			resp, ok := rep.(*messages.SetFaultInjectionResponse)
			switch {
			case !ok:
				err = messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica %d is not running", ids[i])
			case resp.GetStatus().Err() != nil:
				err = resp.GetStatus().Err()
			}
			if err != nil {
				break
			}
		}
		reply(ctx, sender, &messages.SetFaultInjectionResponse{Status: messages.StatusOf(err)})
	})
}

func (r *routerActor) onStatus(ctx actor.Context, msg *messages.StatusRequest) {
	sender := ctx.Sender()
	ids := r.cfg.Replicas
	r.gather(ctx, ids, &messages.ReplicaStatusRequest{WithDigests: msg.GetWithDigests(), DigestRange: msg.GetDigestRange(), WithSizes: msg.GetWithSizes()}, func(replies []any) {
		resp := &messages.StatusResponse{Status: messages.StatusOf(nil), Mode: "replicated"}
		for i, rep := range replies {
			st, ok := rep.(*messages.ReplicaStatus)
			if !ok {
				st = &messages.ReplicaStatus{ReplicaId: ids[i], Error: "not running"}
				if reason := r.down[ids[i]]; reason != "" {
					st.Error = "not running: " + reason
				}
			}
			resp.Replicas = append(resp.Replicas, st)
		}
		if l := r.leader; l != nil {
			resp.HasLeader, resp.LeaderId, resp.Term = l.GetHasLeader(), l.GetLeaderId(), l.GetTerm()
		}
		reply(ctx, sender, resp)
	})
}

// reply answers a request whose continuation runs after the request's own
// turn; a request sent without a sender is answered to no one.
func reply(ctx actor.Context, sender *actor.PID, msg proto.Message) {
	if sender != nil {
		ctx.Send(sender, msg)
	}
}
