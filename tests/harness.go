package tests

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/actors/executor"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
	"github.com/actorkv/actorkv/storage/conformance"
)

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
	if err := g.WaitReady(ctx); err != nil {
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

// Leader waits until the group knows a leader and returns it.
func (c *Cluster) Leader() uint32 {
	c.t.Helper()
	var id uint32
	Eventually(c.t, func() bool {
		var ok bool
		id, _, ok = c.Group().Leader()
		return ok
	}, WaitTimeout, "the group knows a leader")
	return id
}

// WaitLeader waits until the group knows replica id as its leader.
func (c *Cluster) WaitLeader(id uint32) {
	c.t.Helper()
	ctx, cancel := c.waitCtx()
	defer cancel()
	if err := c.Group().WaitLeader(ctx, id); err != nil {
		c.t.Fatalf("cluster: %v", err)
	}
}

// WaitNewLeader waits until the group knows a leader other than old and
// returns it.
func (c *Cluster) WaitNewLeader(old uint32) uint32 {
	c.t.Helper()
	var id uint32
	Eventually(c.t, func() bool {
		l, _, ok := c.Group().Leader()
		id = l
		return ok && l != old
	}, WaitTimeout, fmt.Sprintf("a leader other than replica %d", old))
	return id
}

// Crash stops replica id (StopReplica: its Raft node halts at once, its data
// stays on disk) and waits until its storage is closed. EnsureSame leaves it
// out until Restart.
func (c *Cluster) Crash(id uint32) {
	c.t.Helper()
	ctx, cancel := c.waitCtx()
	defer cancel()
	if err := c.Group().StopReplica(ctx, id); err != nil {
		c.t.Fatalf("cluster: crash replica %d: %v", id, err)
	}
	c.mu.Lock()
	c.down[id] = true
	c.mu.Unlock()
}

// Restart starts a stopped replica from its data; with wipeRaftLog it is
// rebuilt from scratch: replaced in the Raft membership by a node of its
// next generation, its Raft log and data deleted, it catches up from the
// leader (through a snapshot once the leader's log is compacted; see
// Group.StartReplica). It returns once the replica serves (not once it has
// caught up: see EnsureSame).
func (c *Cluster) Restart(id uint32, wipeRaftLog bool) {
	c.t.Helper()
	ctx, cancel := c.waitCtx()
	defer cancel()
	if err := c.Group().StartReplica(ctx, id, wipeRaftLog); err != nil {
		c.t.Fatalf("cluster: restart replica %d: %v", id, err)
	}
	c.mu.Lock()
	delete(c.down, id)
	c.mu.Unlock()
}

func (c *Cluster) addresses() []string {
	g := c.Group()
	out := make([]string, Replicas)
	for id := range uint32(Replicas) {
		out[id] = g.RaftAddress(id)
	}
	return out
}

// TransferLeader asks the group to hand leadership to replica id until the
// group knows id as its leader: a transfer fails silently while the target
// lags, so it asks again after each wait of twenty election timeouts.
func (c *Cluster) TransferLeader(id uint32) {
	c.t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*c.cfg.Raft.ElectionTimeout())
		err := c.Group().TransferLeader(ctx, id)
		if err == nil {
			err = c.Group().WaitLeader(ctx, id)
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster: replica %d did not take the lead: %v", id, err)
		}
	}
}

// Partition cuts replica id off from every other replica (both ways); its
// actor still runs and answers the router.
func (c *Cluster) Partition(id uint32) {
	g := c.Group()
	g.Network().Isolate(g.RaftAddress(id), c.addresses())
}

// Heal restores every link and removes every network delay.
func (c *Cluster) Heal() { c.Group().Network().Heal() }

// SlowNetwork delays every Raft message sent to replica id by d (0 removes
// the delay).
func (c *Cluster) SlowNetwork(id uint32, d time.Duration) {
	g := c.Group()
	g.Network().Delay(g.RaftAddress(id), d)
}

// SlowStorage adds latency d to every storage operation of the replicas ids
// (all when none); d 0 removes every injected fault there. Faults belong to
// one engine instance: a restarted replica has none.
func (c *Cluster) SlowStorage(d time.Duration, ids ...uint32) {
	c.t.Helper()
	f := &messages.FaultInjection{}
	if d > 0 {
		f.AddedLatency = durationpb.New(d)
	}
	c.InjectFaults(f, ids...)
}

// InjectFaults sets the injected storage faults of the replicas ids (all
// when none).
func (c *Cluster) InjectFaults(f *messages.FaultInjection, ids ...uint32) {
	c.t.Helper()
	ctx, cancel := c.waitCtx()
	defer cancel()
	if err := c.Client().SetFaultInjection(ctx, f, kv.WithReplicas(ids...)); err != nil {
		c.t.Fatalf("cluster: inject faults %v into replicas %v: %v", f, ids, err)
	}
}

// Status asks every replica for its status.
func (c *Cluster) Status(withDigests bool) *messages.StatusResponse {
	c.t.Helper()
	ctx, cancel := c.waitCtx()
	defer cancel()
	st, err := c.Group().Status(ctx, withDigests)
	if err != nil {
		c.t.Fatalf("cluster: status: %v", err)
	}
	return st
}

// ReplicaStatus returns replica id's entry of a status.
func ReplicaStatus(st *messages.StatusResponse, id uint32) *messages.ReplicaStatus {
	for _, r := range st.GetReplicas() {
		if r.GetReplicaId() == id {
			return r
		}
	}
	return &messages.ReplicaStatus{ReplicaId: id, Error: "missing from the status"}
}

// AppliedIndex returns replica id's applied index (0 when it is not running).
func (c *Cluster) AppliedIndex(id uint32) uint64 {
	c.t.Helper()
	return ReplicaStatus(c.Status(false), id).GetAppliedIndex()
}

// Up returns the replicas the harness has not crashed.
func (c *Cluster) Up() []uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint32
	for id := range uint32(Replicas) {
		if !c.down[id] {
			ids = append(ids, id)
		}
	}
	return ids
}

// EnsureSame waits until every replica the harness has not crashed is
// running, at the same applied index, with equal digests of every column
// family; it fails t with a per-replica table otherwise. It returns that
// common state.
func (c *Cluster) EnsureSame(t testing.TB) *messages.ReplicaStatus {
	t.Helper()
	return c.EnsureSameWithin(t, WaitTimeout)
}

// EnsureSameWithin is EnsureSame with its own deadline.
func (c *Cluster) EnsureSameWithin(t testing.TB, timeout time.Duration) *messages.ReplicaStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	same, err := c.Converged(ctx)
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	return same
}

// Converged is EnsureSame without a test: it waits until ctx is done for the
// replicas the harness has not crashed to converge, and returns their common
// state, or an error with the per-replica table. It may be called from any
// goroutine.
func (c *Cluster) Converged(ctx context.Context) (*messages.ReplicaStatus, error) {
	ids := c.Up()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := c.Group().Status(sctx, true)
		cancel()
		if err != nil {
			last = fmt.Sprintf("status: %v", err)
		} else if same, diff := sameState(st, ids); same != nil {
			return same, nil
		} else {
			last = diff
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("replicas %v did not converge: %w:\n%s", ids, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// sameState returns the common state of replicas ids, or nil and a table of
// how they differ.
func sameState(st *messages.StatusResponse, ids []uint32) (*messages.ReplicaStatus, string) {
	var first *messages.ReplicaStatus
	ok := true
	for _, id := range ids {
		r := ReplicaStatus(st, id)
		switch {
		case !r.GetRunning() || r.GetError() != "" || len(r.GetDigest()) == 0:
			ok = false
		case first == nil:
			first = r
		case r.GetAppliedIndex() != first.GetAppliedIndex() || string(r.GetDigest()) != string(first.GetDigest()):
			ok = false
		}
	}
	if ok && first != nil {
		return first, ""
	}
	return nil, DescribeStatus(st)
}

// DescribeStatus renders a status as one line per replica, for failure
// messages.
func DescribeStatus(st *messages.StatusResponse) string {
	var b strings.Builder
	fmt.Fprintf(&b, "leader %d (known %v) term %d\n", st.GetLeaderId(), st.GetHasLeader(), st.GetTerm())
	for _, r := range st.GetReplicas() {
		fmt.Fprintf(&b, "  replica %d: running=%v leader=%v applied=%d digest=%s", r.GetReplicaId(), r.GetRunning(), r.GetIsLeader(), r.GetAppliedIndex(), short(r.GetDigest()))
		for _, d := range r.GetDigests() {
			fmt.Fprintf(&b, " %s:%d keys/%s", d.GetColumnFamily(), d.GetKeys(), short(d.GetSha256()))
		}
		if r.GetError() != "" {
			fmt.Fprintf(&b, " error=%q", r.GetError())
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func short(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return hex.EncodeToString(b[:min(len(b), 6)])
}

// Eventually polls cond until it holds, failing t with msg after timeout.
func Eventually(t testing.TB, cond func() bool, timeout time.Duration, msg string) {
	t.Helper()
	conformance.Eventually(t, cond, timeout, msg)
}

// RequestKey identifies a write: its client session and sequence number.
type RequestKey struct {
	ClientID, Seq uint64
}

// Applied is one entry as a replica applied it.
type Applied struct {
	Index   uint64
	Request RequestKey // zero when the entry carried no request id
	// Version is the entry's outcome: its own index for a write executed
	// here, an earlier index for a retry answered with the first outcome,
	// 0 for a failure.
	Version uint64
	Code    messages.StatusCode
}

// Executed reports whether the entry executed its request (a successful
// write committed at this entry), rather than replaying an earlier outcome.
func (a Applied) Executed() bool {
	return a.Code == messages.StatusCode_OK && a.Version == a.Index
}

// ApplyRecorder is an executor.Observer that records, per replica, every
// entry applied, in order, and counts how often each index and each request
// was applied. It is safe for concurrent use; it outlives groups, so one
// recorder passed to successive clusters on the same directory (WithRecorder)
// counts across restarts.
type ApplyRecorder struct {
	mu       sync.Mutex
	log      map[uint32][]Applied
	indexes  map[uint32]map[uint64]int
	executed map[uint32]map[RequestKey]int
	seen     map[uint32]map[RequestKey]int
}

// NewApplyRecorder returns an empty recorder.
func NewApplyRecorder() *ApplyRecorder {
	return &ApplyRecorder{
		log:      map[uint32][]Applied{},
		indexes:  map[uint32]map[uint64]int{},
		executed: map[uint32]map[RequestKey]int{},
		seen:     map[uint32]map[RequestKey]int{},
	}
}

var _ executor.Observer = (*ApplyRecorder)(nil).Observe

// Observe implements executor.Observer.
func (r *ApplyRecorder) Observe(replica uint32, entries []storage.Entry, results []*messages.CommandResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.indexes[replica] == nil {
		r.indexes[replica] = map[uint64]int{}
		r.executed[replica] = map[RequestKey]int{}
		r.seen[replica] = map[RequestKey]int{}
	}
	for i, e := range entries {
		a := Applied{Index: e.Index}
		if rid := e.Cmd.GetRequestId(); rid.GetClientId() != 0 {
			a.Request = RequestKey{ClientID: rid.GetClientId(), Seq: rid.GetSeq()}
		}
		if i < len(results) {
			a.Version, a.Code = results[i].GetVersion(), results[i].GetStatus().GetCode()
		}
		r.log[replica] = append(r.log[replica], a)
		r.indexes[replica][e.Index]++
		if a.Request != (RequestKey{}) {
			r.seen[replica][a.Request]++
			if a.Executed() {
				r.executed[replica][a.Request]++
			}
		}
	}
}

// Log returns the entries replica applied, in order.
func (r *ApplyRecorder) Log(replica uint32) []Applied {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log[replica])
}

// Count returns how many entries replica applied.
func (r *ApplyRecorder) Count(replica uint32) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.log[replica])
}

// IndexCount returns how many times replica applied index.
func (r *ApplyRecorder) IndexCount(replica uint32, index uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.indexes[replica][index]
}

// Executions returns how many entries of replica executed request k (see
// Applied.Executed): exactly once means 1.
func (r *ApplyRecorder) Executions(replica uint32, k RequestKey) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.executed[replica][k]
}

// Occurrences returns how many applied entries of replica carried request k
// (retries that reached the log count too).
func (r *ApplyRecorder) Occurrences(replica uint32, k RequestKey) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[replica][k]
}

// ExecutedAt returns the index at which replica executed request k.
func (r *ApplyRecorder) ExecutedAt(replica uint32, k RequestKey) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.log[replica] {
		if a.Request == k && a.Executed() {
			return a.Index, true
		}
	}
	return 0, false
}

// Duplicates describes every index replica applied more than once, every
// request it executed more than once, and every index that did not follow
// the one before it; it returns "" when there is none.
func (r *ApplyRecorder) Duplicates(replica uint32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for idx, n := range r.indexes[replica] {
		if n > 1 {
			out = append(out, fmt.Sprintf("index %d applied %d times", idx, n))
		}
	}
	for k, n := range r.executed[replica] {
		if n > 1 {
			out = append(out, fmt.Sprintf("request %d/%d executed %d times", k.ClientID, k.Seq, n))
		}
	}
	var prev uint64
	for _, a := range r.log[replica] {
		if a.Index <= prev {
			out = append(out, fmt.Sprintf("index %d applied after %d", a.Index, prev))
		}
		prev = a.Index
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// LogRecord is one message the group logged.
type LogRecord struct {
	Level   slog.Level
	Message string
	Attrs   map[string]string
}

// LogRecorder is the slog.Handler a Cluster gives its group: it keeps every
// record for assertions and writes it to the test's log (shown on failure
// or with -v) until Close.
type LogRecorder struct {
	shared *logShared
	attrs  []slog.Attr
	group  string
}

type logShared struct {
	mu      sync.Mutex
	t       testing.TB // nil once closed
	records []LogRecord
}

// NewLogRecorder returns a recorder that writes to t's log.
func NewLogRecorder(t testing.TB) *LogRecorder {
	return &LogRecorder{shared: &logShared{t: t}}
}

// Close stops writing to the test's log (records are still kept): the test
// may have ended.
func (l *LogRecorder) Close() {
	l.shared.mu.Lock()
	defer l.shared.mu.Unlock()
	l.shared.t = nil
}

// Enabled implements slog.Handler.
func (l *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (l *LogRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := LogRecord{Level: r.Level, Message: r.Message, Attrs: map[string]string{}}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	add := func(a slog.Attr) bool {
		k := a.Key
		if l.group != "" {
			k = l.group + "." + k
		}
		rec.Attrs[k] = a.Value.String()
		fmt.Fprintf(&b, " %s=%v", k, a.Value)
		return true
	}
	for _, a := range l.attrs {
		add(a)
	}
	r.Attrs(add)
	s := l.shared
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, rec)
	if s.t != nil {
		s.t.Log(b.String())
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (l *LogRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &LogRecorder{shared: l.shared, attrs: append(slices.Clone(l.attrs), as...), group: l.group}
}

// WithGroup implements slog.Handler.
func (l *LogRecorder) WithGroup(name string) slog.Handler {
	g := name
	if l.group != "" {
		g = l.group + "." + name
	}
	return &LogRecorder{shared: l.shared, attrs: slices.Clone(l.attrs), group: g}
}

// Records returns the records kept so far that match (all when match is
// nil).
func (l *LogRecorder) Records(match func(LogRecord) bool) []LogRecord {
	l.shared.mu.Lock()
	defer l.shared.mu.Unlock()
	var out []LogRecord
	for _, r := range l.shared.records {
		if match == nil || match(r) {
			out = append(out, r)
		}
	}
	return out
}

// WaitFor waits until a record matching match has been logged and returns
// it.
func (l *LogRecorder) WaitFor(t testing.TB, what string, match func(LogRecord) bool) LogRecord {
	t.Helper()
	var found LogRecord
	Eventually(t, func() bool {
		rs := l.Records(match)
		if len(rs) == 0 {
			return false
		}
		found = rs[0]
		return true
	}, WaitTimeout, "log record: "+what)
	return found
}

// Dump writes every record to w (for debugging a test).
func (l *LogRecorder) Dump(w io.Writer) {
	for _, r := range l.Records(nil) {
		fmt.Fprintf(w, "%s %s %v\n", r.Level, r.Message, r.Attrs)
	}
}
