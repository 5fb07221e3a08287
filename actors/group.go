package actors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/actors/executor"
	"github.com/actorkv/actorkv/actors/replica"
	"github.com/actorkv/actorkv/actors/router"
	"github.com/actorkv/actorkv/actors/supervisor"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// Config configures a replica group.
type Config struct {
	// BasePath is the group's directory; replica N lives in BasePath/replica-N.
	BasePath string
	// ClusterID is the Raft cluster id of the group.
	ClusterID uint64
	// Replicas is the number of replicas (ids 0..Replicas-1); replica 0 is
	// the primary, which leads after the first election.
	Replicas int
	// InProcess runs every replica in this process over an in-memory
	// transport (the embedded default). Otherwise this process runs replica
	// Local only, and Raft goes over TCP to Addresses.
	InProcess bool
	// Addresses are the Raft addresses (host:port) of the replicas, by id,
	// when not InProcess.
	Addresses []string
	// Local is the replica that serves stale reads, and the one this process
	// runs when not InProcess.
	Local uint32
	// RaftAddress is the Raft address of this process's replica when not
	// InProcess; "" means Addresses[Local].
	RaftAddress string
	// RaftListen is where this process's replica's Raft transport listens
	// when not InProcess; "" means its Raft address.
	RaftListen string
	// JoinNode, when not InProcess, starts this process's replica as node
	// JoinNode of a running cluster, whose membership added it (kvctl
	// member add or replace), rather than as one of the initial members in
	// Addresses (which may then be empty). A replica that started before
	// restarts as it first started, and JoinNode is ignored.
	JoinNode uint64
	// TLS, when not InProcess and set, makes Raft between the processes
	// mutual TLS.
	TLS *replica.TLSFiles
	// Storage configures each replica's engine (Dir is set per replica).
	Storage storage.Config
	// Raft tunes consensus (every replica's).
	Raft replica.RaftConfig
	// ApplyTimeout bounds one executor batch before the replica fail-stops.
	ApplyTimeout time.Duration
	// RequestTimeout bounds one attempt of a Client call; calls retry
	// retryable failures until their context's deadline.
	RequestTimeout time.Duration
	// ReadWorkers serve reads on each replica.
	ReadWorkers int
	// MaxInFlight bounds each replica's requests waiting for Raft.
	MaxInFlight int
	// System is the actor system to spawn the group in; nil creates one
	// that Stop shuts down.
	System *actor.ActorSystem
	// Observer, if set, sees every batch every replica applies (tests).
	Observer executor.Observer
	// Logger receives the group's logs; nil uses slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the embedded default: three replicas in this
// process under basePath.
func DefaultConfig(basePath string) Config {
	return Config{
		BasePath:       basePath,
		ClusterID:      1,
		Replicas:       3,
		InProcess:      true,
		Storage:        storage.DefaultConfig(""),
		Raft:           replica.DefaultRaftConfig(),
		ApplyTimeout:   time.Minute,
		RequestTimeout: 5 * time.Second,
		ReadWorkers:    max(2, runtime.GOMAXPROCS(0)),
		MaxInFlight:    16384,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "group config: "+format, args...)
	}
	switch {
	case c.BasePath == "":
		return bad("base_path is empty")
	case c.ClusterID == 0:
		return bad("cluster_id must be positive")
	case c.Replicas < 1 || c.Replicas > replica.MaxReplicas:
		return bad("replicas must be between 1 and %d, got %d", replica.MaxReplicas, c.Replicas)
	case !c.InProcess && c.JoinNode == 0 && len(c.Addresses) != c.Replicas:
		return bad("replica_endpoints has %d addresses for %d replicas", len(c.Addresses), c.Replicas)
	case c.JoinNode == 0 && int(c.Local) >= c.Replicas:
		return bad("instance_id %d is not a replica id (0..%d)", c.Local, c.Replicas-1)
	case c.JoinNode != 0 && (c.InProcess || replica.ReplicaID(c.JoinNode) != c.Local):
		return bad("join node %d: a replica of this process (instance_id %d) joins a cluster (in_process = false)", c.JoinNode, c.Local)
	case !c.InProcess && c.RaftAddress == "" && int(c.Local) >= len(c.Addresses):
		return bad("replica %d has no Raft address", c.Local)
	case c.ApplyTimeout <= 0:
		return bad("apply_timeout must be positive")
	case c.RequestTimeout <= 0:
		return bad("request_timeout must be positive")
	case c.ReadWorkers <= 0:
		return bad("read_workers must be positive")
	case c.MaxInFlight <= 0:
		return bad("max_in_flight must be positive")
	}
	if err := c.Raft.Validate(); err != nil {
		return err
	}
	s := c.Storage
	s.Dir = c.BasePath
	if err := s.Validate(); err != nil {
		return fmt.Errorf("group config: %w", err)
	}
	return nil
}

// Group is a running replica group: its supervisor actor and what the
// supervisor spawned. Its methods are the Go handle on the group's messages.
type Group struct {
	cfg       Config
	system    *actor.ActorSystem
	ownSystem bool
	pid       *actor.PID // the supervisor
	watcher   *actor.PID // told the supervisor's events
	network   *replica.Network
	addresses map[uint32]string
	owner     sync.WaitGroup // replicas' start and stop goroutines

	mu      sync.Mutex
	leader  *messages.LeaderChanged
	states  map[uint32]replicaState // this process's replicas, as the supervisor told
	wasUp   map[uint32]bool         // replicas that have served since Start
	changed chan struct{}           // closed and replaced on every event
	// serving counts this process's replicas that are starting or up: with
	// none, the transport answers ErrNoReplica at once; running counts those
	// that are up (see ServingTransport).
	serving, running atomic.Int32
	// leaderless is since when (Unix nanoseconds) the group has known no
	// leader, 0 while it knows one (see ServingTransport).
	leaderless atomic.Int64
	// ended receives the first end of a replica of this process that needs
	// an operator: it could not start (before it ever served since Start),
	// or it was removed from the membership (ErrRemoved).
	ended chan error

	events   *publisher // the events for embedders, off the supervisor's goroutine
	stopOnce sync.Once
}

// Start spawns the group's supervisor, which spawns the router and replicas.
// It returns at once; WaitReady waits for a leader.
func Start(cfg Config) (*Group, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Group{cfg: cfg, system: cfg.System, states: map[uint32]replicaState{}, wasUp: map[uint32]bool{},
		changed: make(chan struct{}), ended: make(chan error, 1), addresses: map[uint32]string{}}
	g.leaderless.Store(time.Now().UnixNano()) // none known yet
	log := cfg.Logger
	if g.system == nil {
		g.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return quietLogger(log.With("component", "actor"))
		}))
		g.ownSystem = true
	}
	local := []uint32{cfg.Local}
	if cfg.InProcess {
		g.network = replica.NewNetwork()
		tag := addressTag(cfg.BasePath, cfg.ClusterID)
		local = local[:0]
		for id := range uint32(cfg.Replicas) {
			g.addresses[id] = fmt.Sprintf("actorkv-%s-replica-%d", tag, id)
			local = append(local, id)
		}
	} else {
		for id, a := range cfg.Addresses {
			g.addresses[uint32(id)] = a
		}
		if cfg.RaftAddress != "" {
			g.addresses[cfg.Local] = cfg.RaftAddress
		}
	}
	for _, id := range local {
		g.states[id] = starting
	}
	g.serving.Store(int32(len(local)))
	scfg := supervisor.Config{
		Replicas: map[uint32]replica.Config{},
		Router: router.Config{
			Replicas:        local,
			Primary:         0,
			Local:           cfg.Local,
			Validator:       kv.NewValidator(cfg.Storage.Limits, cfg.Storage.ColumnFamilies),
			FixedMembership: cfg.InProcess,
			Timeout:         cfg.RequestTimeout,
			Logger:          log.With("component", "router"),
		},
		Primary:           0,
		HandoverRetry:     cfg.Raft.ElectionTimeout(),
		MembershipTimeout: 3 * cfg.Raft.ProposalTimeout, // three rounds at least
		Owner:             &g.owner,
		Watchers:          []*actor.PID{g.watch()},
		Logger:            log.With("component", "supervisor"),
	}
	for _, id := range local {
		scfg.Replicas[id] = replica.Config{
			ID:           id,
			ClusterID:    cfg.ClusterID,
			Dir:          filepath.Join(cfg.BasePath, fmt.Sprintf("replica-%d", id)),
			Members:      g.addresses,
			Listen:       cfg.RaftListen,
			Join:         cfg.JoinNode != 0,
			Generation:   replica.GenerationOf(max(cfg.JoinNode, 1)),
			Network:      g.network,
			TLS:          cfg.TLS,
			Storage:      cfg.Storage,
			Raft:         cfg.Raft,
			ApplyTimeout: cfg.ApplyTimeout,
			ReadWorkers:  cfg.ReadWorkers,
			MaxInFlight:  cfg.MaxInFlight,
			Observer:     cfg.Observer,
			Logger:       log,
		}
	}
	g.events = startPublisher(g.system.EventStream)
	g.pid = g.system.Root.SpawnPrefix(supervisor.Props(scfg), "actorkv")
	return g, nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig(c.BasePath)
	if c.ClusterID == 0 {
		c.ClusterID = d.ClusterID
	}
	if c.Replicas == 0 {
		c.Replicas = d.Replicas
	}
	if c.Storage.Limits == (kv.Limits{}) {
		c.Storage.Limits = d.Storage.Limits
	}
	c.Raft = c.Raft.WithDefaults()
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = d.ApplyTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.ReadWorkers == 0 {
		c.ReadWorkers = d.ReadWorkers
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// addressTag names the in-process Raft addresses of a group. Dragonboat
// records a NodeHost's address in its directory and refuses to start there
// under another one (ErrNotOwner), so a group restarted on the same data
// must get the same addresses: the tag is derived from the absolute base path
// and the cluster id, which also keeps the groups of one process apart.
func addressTag(basePath string, clusterID uint64) string {
	if abs, err := filepath.Abs(basePath); err == nil {
		basePath = abs
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", basePath, clusterID))
	return hex.EncodeToString(sum[:6])
}

// watch registers the group's watcher: the reply address the supervisor
// tells what it accepts (replicas up and down, leader changes), so that the
// group follows the supervisor's knowledge instead of keeping its own.
func (g *Group) watch() *actor.PID {
	reg := g.system.ProcessRegistry
	pid, _ := reg.Add(watcher{g}, "group-watcher"+reg.NextId())
	g.watcher = pid
	return pid
}

// watcher is the group's watcher process: it hands each event to onEvent.
type watcher struct{ g *Group }

func (w watcher) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	if m, ok := msg.(proto.Message); ok {
		w.g.onEvent(m)
	}
}

func (watcher) SendSystemMessage(*actor.PID, any) {}
func (watcher) Stop(*actor.PID)                   {}

// replicaState is what the group knows of one of its process's replicas.
type replicaState int

const (
	starting replicaState = iota
	up
	down
)

func (g *Group) onEvent(msg proto.Message) {
	g.follow(msg)
	// Then for embedders, from the publisher's goroutine: this runs in the
	// supervisor's Receive, and a subscriber may be slow or ask the group.
	g.events.publish(msg)
}

// follow updates what the group knows from one of the supervisor's events.
func (g *Group) follow(msg proto.Message) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch m := msg.(type) {
	case *messages.LeaderChanged:
		g.leader = m
		switch {
		case m.GetHasLeader():
			g.leaderless.Store(0)
		case g.leaderless.Load() == 0:
			g.leaderless.Store(time.Now().UnixNano())
		}
	case *messages.ReplicaStarting:
		g.setState(m.GetReplicaId(), starting)
	case *messages.ReplicaUp:
		g.setState(m.GetReplicaId(), up)
		g.wasUp[m.GetReplicaId()] = true
	case *messages.ReplicaDown:
		id := m.GetReplicaId()
		var end error
		switch {
		case m.GetRemoved():
			end = removedError(m.GetReason())
		case g.states[id] == starting && !g.wasUp[id]:
			end = fmt.Errorf("replica %d could not start: %s", id, strings.TrimPrefix(m.GetReason(), fmt.Sprintf("replica %d: ", id)))
		}
		if end != nil {
			select { // the first such end; Ended's reader stops the group
			case g.ended <- end:
			default:
			}
		}
		g.setState(id, down)
	}
	close(g.changed)
	g.changed = make(chan struct{})
}

// setState records replica id's state; g.mu is held.
func (g *Group) setState(id uint32, st replicaState) {
	old, ok := g.states[id]
	if !ok {
		return // not a replica of this process
	}
	g.states[id] = st
	switch {
	case old == down && st != down:
		g.serving.Add(1)
	case old != down && st == down:
		g.serving.Add(-1)
	}
	switch {
	case old != up && st == up:
		g.running.Add(1)
	case old == up && st != up:
		g.running.Add(-1)
	}
}

// Ended delivers the first end of one of this process's replicas that only
// an operator can undo: it failed to start since Start, before it ever
// served (its Raft address in use, its directory locked by another process
// or holding another cluster's data, a changed address, a storage error:
// the reason it gives), or it was removed from the group's membership
// (ErrRemoved). A process whose purpose is to serve its replica (kvserver)
// exits on it; an embedding program may keep serving through the others.
func (g *Group) Ended() <-chan error { return g.ended }

// ErrRemoved matches (errors.Is) what Ended delivers for a replica that
// was removed from the group's membership.
var ErrRemoved = errors.New("removed from the membership")

// removedError is the end of a removed replica: its reason, matching
// ErrRemoved.
type removedError string

func (e removedError) Error() string        { return string(e) }
func (e removedError) Is(target error) bool { return target == ErrRemoved }

// waitFor blocks until cond, checked after every group event, holds.
func (g *Group) waitFor(ctx context.Context, what string, cond func() bool) error {
	for {
		g.mu.Lock()
		ok, ch := cond(), g.changed
		g.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return messages.Errorf(messages.StatusCode_TIMEOUT, "waiting for %s: %v", what, ctx.Err())
		}
	}
}

// WaitReady waits until a leader is known and a replica of this process is
// up (with three replicas in the process, one that is stopped does not keep
// the others from serving).
func (g *Group) WaitReady(ctx context.Context) error {
	return g.waitFor(ctx, "a leader and a running replica", func() bool {
		if g.leader == nil || !g.leader.GetHasLeader() {
			return false
		}
		for _, st := range g.states {
			if st == up {
				return true
			}
		}
		return false
	})
}

// WaitStarted waits until every replica of this process is up.
func (g *Group) WaitStarted(ctx context.Context) error {
	return g.waitFor(ctx, "every replica of this process", func() bool {
		for _, st := range g.states {
			if st != up {
				return false
			}
		}
		return true
	})
}

// WaitLeader waits until replica id is the known leader.
func (g *Group) WaitLeader(ctx context.Context, id uint32) error {
	return g.waitFor(ctx, fmt.Sprintf("replica %d to lead", id), func() bool {
		return g.leader != nil && g.leader.GetHasLeader() && g.leader.GetLeaderId() == id
	})
}

// Leader returns the leader the group knows of.
func (g *Group) Leader() (id uint32, term uint64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.leader == nil || !g.leader.GetHasLeader() {
		return 0, 0, false
	}
	return g.leader.GetLeaderId(), g.leader.GetTerm(), true
}

func (g *Group) addressesLocal() []uint32 {
	if g.cfg.InProcess {
		ids := make([]uint32, 0, len(g.addresses))
		for id := range g.addresses {
			ids = append(ids, id)
		}
		return ids
	}
	return []uint32{g.cfg.Local}
}

// PID is the group's address: the supervisor, which forwards every request
// of the KV API to the router.
func (g *Group) PID() *actor.PID { return g.pid }

// Router is the group's router: requests sent to it skip the supervisor's
// forwarding hop. Its PID stays the same across restarts.
func (g *Group) Router() *actor.PID {
	return supervisor.RouterPID(g.pid)
}

// System is the actor system the group runs in.
func (g *Group) System() *actor.ActorSystem { return g.system }

// Network is the in-process transport (nil when Raft goes over TCP): cut
// and slow links between replicas with it.
func (g *Group) Network() *replica.Network { return g.network }

// RaftAddress is replica id's Raft address (for Network.Cut and friends).
func (g *Group) RaftAddress(id uint32) string { return g.addresses[id] }

// request sends msg to the supervisor and waits for the reply.
func (g *Group) request(ctx context.Context, msg proto.Message) (any, error) {
	timeout := g.cfg.RequestTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, messages.Errorf(messages.StatusCode_TIMEOUT, "deadline passed")
	}
	res, err := g.system.Root.RequestFuture(g.pid, msg, timeout).Result()
	if err != nil {
		return nil, futureError(err)
	}
	return res, nil
}

// Status asks every replica for its status (and content digest).
func (g *Group) Status(ctx context.Context, withDigests bool) (*messages.StatusResponse, error) {
	return g.StatusOf(ctx, &messages.StatusRequest{WithDigests: withDigests})
}

// StatusOf asks every replica for its status as req says (with digests, of
// one key range: see kv.FirstDifference).
func (g *Group) StatusOf(ctx context.Context, req *messages.StatusRequest) (*messages.StatusResponse, error) {
	res, err := g.request(ctx, req)
	if err != nil {
		return nil, err
	}
	st, ok := res.(*messages.StatusResponse)
	if !ok {
		return nil, messages.Errorf(messages.StatusCode_INTERNAL, "status answered with %T", res)
	}
	return st, st.GetStatus().Err()
}

// StopReplica stops replica id (its data stays on disk) and waits until its
// storage is closed.
func (g *Group) StopReplica(ctx context.Context, id uint32) error {
	return g.replicaCommand(ctx, &messages.StopReplica{ReplicaId: id})
}

// StartReplica starts a stopped replica from its data. It returns once the
// replica serves (not once it has caught up).
//
// With wipeRaftLog the replica is rebuilt from scratch, as a new Raft
// member: a replica that lost its log must not come back under its old
// node id (the leader's progress for it would commit beyond its empty log).
// First a running replica of this process (the leader's, if it runs here)
// replaces the replica's node in the membership with a node of its next
// generation (replica.NodeID: the generation is kept in the replica's
// directory, so the new id survives restarts); then the replica deletes its
// Raft log and its data, and joins under the new id, catching up from the
// leader — through a snapshot once the leader's log is compacted. The
// membership change needs a quorum of the other replicas. A failure is
// retryable (UNAVAILABLE or TIMEOUT; another attempt finishes the
// replacement with yet another generation), except INVALID_ARGUMENT: the
// replica is running (stop it first), or this process runs no other
// replica (InProcess false: one replica per process) and so cannot change
// the membership — rebuilding a replica is then not possible through this
// Group.
func (g *Group) StartReplica(ctx context.Context, id uint32, wipeRaftLog bool) error {
	return g.replicaCommand(ctx, &messages.StartReplica{ReplicaId: id, WipeRaftLog: wipeRaftLog})
}

// TransferLeader asks Raft to hand leadership to replica id (by its current
// node id). It returns once the leader was asked: a transfer can fail
// silently (the target must have caught up), so wait for the outcome with
// WaitLeader and ask again if need be.
func (g *Group) TransferLeader(ctx context.Context, id uint32) error {
	return g.replicaCommand(ctx, &messages.TransferLeader{TargetId: id})
}

// Members reads the group's Raft membership (linearizably, through a
// running replica of this process), by replica id.
func (g *Group) Members(ctx context.Context) ([]*messages.Member, error) {
	r, err := kv.Call[*messages.MemberListResponse](ctx, g.Client().Do, &messages.MemberListRequest{})
	return r.GetMembers(), err
}

// AddMember adds replica id, whose process will listen for Raft at
// address, to a cluster's membership (not an in-process group's:
// INVALID_ARGUMENT); start that process to join (server's
// deployment.join). Adding a member at the address it has changes nothing.
func (g *Group) AddMember(ctx context.Context, id uint32, address string) (*messages.Member, error) {
	r, err := kv.Call[*messages.MemberAddResponse](ctx, g.Client().Do, &messages.MemberAddRequest{ReplicaId: id, RaftAddress: address})
	return r.GetMember(), err
}

// RemoveMember removes replica id from a cluster's membership; removing a
// replica that is no member changes nothing.
func (g *Group) RemoveMember(ctx context.Context, id uint32) error {
	_, err := kv.Call[*messages.MemberRemoveResponse](ctx, g.Client().Do, &messages.MemberRemoveRequest{ReplicaId: id})
	return err
}

// ReplaceMember replaces replica id's node (see Members) with a node of
// the next generation at address, for a process to join on an empty
// directory there.
func (g *Group) ReplaceMember(ctx context.Context, id uint32, node uint64, address string) (*messages.Member, error) {
	r, err := kv.Call[*messages.MemberReplaceResponse](ctx, g.Client().Do, &messages.MemberReplaceRequest{ReplicaId: id, NodeId: node, RaftAddress: address})
	return r.GetMember(), err
}

// MoveLeader hands Raft leadership to replica id and returns once it leads,
// with its term.
func (g *Group) MoveLeader(ctx context.Context, id uint32) (uint64, error) {
	r, err := kv.Call[*messages.MoveLeaderResponse](ctx, g.Client().Do, &messages.MoveLeaderRequest{ReplicaId: id})
	return r.GetTerm(), err
}

func (g *Group) replicaCommand(ctx context.Context, msg proto.Message) error {
	res, err := g.request(ctx, msg)
	if err != nil {
		return err
	}
	r, ok := res.(*messages.ReplicaCommandResponse)
	if !ok {
		return messages.Errorf(messages.StatusCode_INTERNAL, "answered with %T", res)
	}
	return r.GetStatus().Err()
}

// Transport is the group as a kv.Transport: one attempt of a request, sent
// to the router.
func (g *Group) Transport() kv.Transport {
	return transport{root: g.system.Root, target: g.Router(), serving: &g.serving}
}

// ServingTransport is the transport of a server in front of the group
// (kvserver): while no replica of this process is up — starting, or down —
// it answers ErrNoReplica at once, which a Client does not retry, so the
// server's callers move on to another process (or retry themselves)
// instead of waiting here for a replica that may take a while. Transport
// waits for starting replicas instead, as an embedding program expects
// after Start.
//
// It also answers ErrNoLeader at once to the requests that need the leader
// once the group has known no leader for two election timeouts — the
// process is cut off from a majority, or a majority is down —, instead of
// retrying them here until their deadline: a client moves on to a process
// on the majority's side. Within two election timeouts an election
// normally ends, and requests wait for it as before.
func (g *Group) ServingTransport() kv.Transport {
	return transport{root: g.system.Root, target: g.Router(), serving: &g.running,
		leaderless: &g.leaderless, patience: 2 * g.cfg.Raft.ElectionTimeout()}
}

// Client returns a new client of the group (a kv.Database, with its own
// session), each attempt bounded by the request timeout.
func (g *Group) Client() *kv.Client {
	return kv.NewClient(g.Transport(), g.cfg.RequestTimeout)
}

// Stop stops the supervisor (and with it the router and every replica),
// waits until every replica has closed its storage, and shuts the actor
// system down if Start created it. It is idempotent.
func (g *Group) Stop() {
	g.stopOnce.Do(func() {
		_ = g.system.Root.StopFuture(g.pid).Wait()
		g.owner.Wait()
		g.system.ProcessRegistry.Remove(g.watcher)
		g.events.close()
		if g.ownSystem {
			g.system.Shutdown()
		}
	})
}

// quietLogger is the actor system's logger: protoactor's own messages at
// warning level and above.
func quietLogger(log *slog.Logger) *slog.Logger {
	return slog.New(levelFilter{h: log.Handler(), min: slog.LevelWarn})
}

type levelFilter struct {
	h   slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}
func (f levelFilter) Handle(ctx context.Context, r slog.Record) error { return f.h.Handle(ctx, r) }
func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{h: f.h.WithAttrs(a), min: f.min}
}
func (f levelFilter) WithGroup(n string) slog.Handler {
	return levelFilter{h: f.h.WithGroup(n), min: f.min}
}
