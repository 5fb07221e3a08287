package actorkvtest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/actors/executor"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// A Cluster: an in-process group for a test, started with fast Raft timers
// and stopped when the test ends.

// WaitTimeout bounds every wait of the harness (a leader, a replica's start
// or stop, replicas converging). It is generous: under -race on a loaded
// two-core machine a catch-up of thousands of entries takes seconds.
var WaitTimeout = 60 * time.Second

// Replicas is the size of the group a Cluster runs.
const Replicas = 3

// Option configures NewCluster.
type Option func(*clusterOptions)

type clusterOptions struct {
	dir                string
	columnFamilies     []string
	retention          time.Duration
	snapshotEntries    uint64
	compactionOverhead uint64
	maxSessions        int
	observer           executor.Observer
	recorder           *ApplyRecorder
	configure          []func(*actors.Config)
}

// WithDir runs the group in dir instead of a fresh t.TempDir(), so a test can
// start a second Cluster on the data a first one left behind.
func WithDir(dir string) Option { return func(o *clusterOptions) { o.dir = dir } }

// WithColumnFamilies configures column families besides "default".
func WithColumnFamilies(cfs ...string) Option {
	return func(o *clusterOptions) { o.columnFamilies = cfs }
}

// WithRetentionWindow sets the storage retention window (default 5 s).
func WithRetentionWindow(d time.Duration) Option {
	return func(o *clusterOptions) { o.retention = d }
}

// WithMaxSessions sets the session cap (limits.max_sessions; default
// 100,000): opening one more forgets the least recently used.
func WithMaxSessions(n int) Option {
	return func(o *clusterOptions) { o.maxSessions = n }
}

// WithSnapshots makes every replica take a snapshot, and compact its Raft log
// down to overhead entries, every entries applied entries. Small values force
// lagging replicas to catch up through a snapshot.
func WithSnapshots(entries, overhead uint64) Option {
	return func(o *clusterOptions) { o.snapshotEntries, o.compactionOverhead = entries, overhead }
}

// WithObserver adds an apply observer; it sees every batch after the
// cluster's ApplyRecorder does.
func WithObserver(obs executor.Observer) Option {
	return func(o *clusterOptions) { o.observer = obs }
}

// WithRecorder records applied entries in r instead of a fresh recorder, so
// that counts span several clusters on the same directory.
func WithRecorder(r *ApplyRecorder) Option { return func(o *clusterOptions) { o.recorder = r } }

// WithConfig edits the group's configuration after the harness has set it
// up (any field but BasePath and Observer).
func WithConfig(f func(*actors.Config)) Option {
	return func(o *clusterOptions) { o.configure = append(o.configure, f) }
}

// Cluster is an in-process three-replica group for scenario tests, after
// hashicorp/raft's MakeCluster: it starts the group with fast Raft timers,
// crashes, restarts, partitions and slows replicas, and checks that they
// converge. Every method fails the test on error; every wait has a deadline
// (WaitTimeout).
type Cluster struct {
	t    testing.TB
	cfg  actors.Config
	rec  *ApplyRecorder
	logs *LogRecorder

	mu     sync.Mutex
	group  *actors.Group
	client *kv.Client
	down   map[uint32]bool // replicas this harness stopped
}

// NewCluster starts a three-replica group in t.TempDir() (or WithDir) with
// Raft's tick at 5 ms and elections after 20 ticks, waits until every replica
// is up and replica 0 leads, and stops the group when the test ends.
func NewCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	var o clusterOptions
	for _, f := range opts {
		f(&o)
	}
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	rec := o.recorder
	if rec == nil {
		rec = NewApplyRecorder()
	}
	logs := NewLogRecorder(t)
	cfg := actors.DefaultConfig(o.dir)
	cfg.Replicas = Replicas
	cfg.Raft.RTT = 5 * time.Millisecond
	cfg.Raft.ElectionRTT = 20
	cfg.Storage.ColumnFamilies = o.columnFamilies
	if o.retention > 0 {
		cfg.Storage.RetentionWindow = o.retention
	}
	if o.maxSessions > 0 {
		cfg.Storage.Limits.MaxSessions = o.maxSessions
	}
	if o.snapshotEntries > 0 {
		cfg.Raft.SnapshotEntries, cfg.Raft.CompactionOverhead = o.snapshotEntries, o.compactionOverhead
	}
	cfg.Logger = slog.New(logs)
	for _, f := range o.configure {
		f(&cfg)
	}
	cfg.BasePath = o.dir
	observe := o.observer
	cfg.Observer = func(replica uint32, entries []storage.Entry, results []*messages.CommandResult) {
		rec.Observe(replica, entries, results)
		if observe != nil {
			observe(replica, entries, results)
		}
	}
	c := &Cluster{t: t, cfg: cfg, rec: rec, logs: logs, down: map[uint32]bool{}}
	t.Cleanup(logs.Close) // runs after Stop: nothing logs any more
	t.Cleanup(c.Stop)
	c.start()
	return c
}

func (c *Cluster) start() {
	c.t.Helper()
	g, err := actors.Start(c.cfg)
	if err != nil {
		c.t.Fatalf("cluster: start group: %v", err)
	}
	c.mu.Lock()
	c.group, c.client = g, g.Client()
	c.down = map[uint32]bool{}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if err := errors.Join(g.WaitReady(ctx), g.WaitStarted(ctx)); err != nil {
		c.t.Fatalf("cluster: group not ready: %v", err)
	}
	if err := g.WaitLeader(ctx, 0); err != nil {
		c.t.Fatalf("cluster: replica 0 did not take the lead: %v", err)
	}
}

// Stop stops the group and waits until every replica has closed its
// storage. It is idempotent; NewCluster registers it with t.Cleanup.
func (c *Cluster) Stop() {
	c.mu.Lock()
	g, cl := c.group, c.client
	c.mu.Unlock()
	if cl != nil {
		_ = cl.Close()
	}
	if g != nil {
		g.Stop()
	}
}

// Reboot stops the whole group and starts a new one on the same directory
// and configuration (the same ApplyRecorder), as a process restart would;
// it returns once every replica is up and replica 0 leads again.
func (c *Cluster) Reboot() {
	c.t.Helper()
	c.Stop()
	c.start()
}

// Group is the running group.
func (c *Cluster) Group() *actors.Group {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.group
}

// Client is a Database facade shared by the test (safe for concurrent use);
// Group().Client() makes more, each its own client session.
func (c *Cluster) Client() *kv.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client
}

// Recorder is the recorder of every batch every replica applied.
func (c *Cluster) Recorder() *ApplyRecorder { return c.rec }

// Logs is the record of the group's log messages.
func (c *Cluster) Logs() *LogRecorder { return c.logs }

// Config is the group's configuration.
func (c *Cluster) Config() actors.Config { return c.cfg }

// Context returns a context that ends after d or with the test.
func (c *Cluster) Context(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	c.t.Cleanup(cancel)
	return ctx
}

func (c *Cluster) waitCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), WaitTimeout)
}
