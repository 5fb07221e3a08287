package replica

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	sm "github.com/lni/dragonboat/v3/statemachine"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// stateMachine is the dragonboat IOnDiskStateMachine of one replica. It owns
// no data: Update hands each batch of committed entries to the replica's
// executor actor (*messages.ApplyBatch) and waits for its answer on
// dragonboat's apply goroutine; snapshots stream the engine's contents.
//
// Contract with dragonboat (statemachine.IOnDiskStateMachine): Update,
// Sync, PrepareSnapshot and RecoverFromSnapshot are never called
// concurrently with each other; SaveSnapshot may run concurrently with
// Update. Open returns the applied index persisted with the data, so
// dragonboat replays exactly the entries after it.
//
// Fail-stop: when the executor cannot apply a batch, Update tells the
// replica (applyFailed, the one signal of a fail-stop) and blocks until the replica has stopped its Raft node (halt), then
// returns the entries marked unapplied. Those entries are never made durable
// as applied: from then on Sync and snapshots fail with ErrSnapshotStopped
// (an abort dragonboat tolerates), so no snapshot can claim an index the
// engine has not applied, and a restart replays them from the log.
type stateMachine struct {
	replica      uint32
	engine       *storage.Engine
	root         *actor.RootContext
	executor     *actor.PID // the only writer of engine
	owner        *actor.PID // the replica actor, told about failures
	applyTimeout time.Duration

	haltOnce sync.Once
	haltC    chan struct{} // closed by halt, after the Raft node is stopped

	mu    sync.Mutex // guards faked
	faked bool       // Update returned entries it did not apply

	counters *counters // the node's: snapshots sent and received
}

func newStateMachine(replica uint32, engine *storage.Engine, root *actor.RootContext, executor, owner *actor.PID, applyTimeout time.Duration, c *counters) *stateMachine {
	return &stateMachine{
		counters:     c,
		replica:      replica,
		engine:       engine,
		root:         root,
		executor:     executor,
		owner:        owner,
		applyTimeout: applyTimeout,
		haltC:        make(chan struct{}),
	}
}

// halt is called once the Raft node is stopped: a blocked or later Update
// returns without applying.
func (s *stateMachine) halt() { s.haltOnce.Do(func() { close(s.haltC) }) }

func (s *stateMachine) halted() bool {
	select {
	case <-s.haltC:
		return true
	default:
		return false
	}
}

// Open implements sm.IOnDiskStateMachine.
func (s *stateMachine) Open(_ <-chan struct{}) (uint64, error) {
	return s.engine.AppliedIndex(), nil
}

// unappliedResult is what a client waiting on this replica hears about an
// entry the replica stopped before applying. Other replicas apply it.
var unappliedResult = mustMarshal(messages.StatusOf(messages.Errorf(messages.StatusCode_UNAVAILABLE,
	"replica stopped before applying the entry; its outcome is unknown here: retry with the same request id")))

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func (s *stateMachine) unapplied(ents []sm.Entry) []sm.Entry {
	s.mu.Lock()
	s.faked = true
	s.mu.Unlock()
	for i := range ents {
		ents[i].Result = sm.Result{Data: unappliedResult}
	}
	return ents
}

// Update implements sm.IOnDiskStateMachine.
func (s *stateMachine) Update(ents []sm.Entry) ([]sm.Entry, error) {
	if s.halted() {
		return s.unapplied(ents), nil
	}
	batch := &messages.ApplyBatch{Entries: make([]*messages.LogEntry, len(ents))}
	for i, e := range ents {
		batch.Entries[i] = &messages.LogEntry{Index: e.Index, Cmd: e.Cmd}
	}
	res, err := s.awaitExecutor(batch)
	r, _ := res.(*messages.ApplyBatchResult)
	switch {
	case err != nil:
		err = fmt.Errorf("executor did not answer: %w", err)
	case r == nil:
		err = fmt.Errorf("executor answered %T", res)
	case r.GetStatus().Err() != nil:
		err = r.GetStatus().Err()
	case len(r.GetResults()) != len(ents):
		err = fmt.Errorf("executor answered %d results for %d entries", len(r.GetResults()), len(ents))
	}
	if err != nil {
		if !s.halted() {
			s.root.Send(s.owner, &applyFailed{reason: fmt.Sprintf("applying entries %d..%d: %v", ents[0].Index, ents[len(ents)-1].Index, err)})
			<-s.haltC
		}
		return s.unapplied(ents), nil
	}
	for i, cr := range r.GetResults() {
		ents[i].Result = encodeResult(cr)
	}
	return ents, nil
}

// awaitExecutor sends batch to the executor and waits for its answer, for
// halt, or for ApplyTimeout. The executor stops with its replica and may
// never answer (protoactor drops what is left in a stopped actor's mailbox),
// so a wait that halt cannot end would hold NodeHost.Stop — and the replica's
// stop — for ApplyTimeout. The answer goes to a reply process of this call
// rather than a protoactor future: a future cannot be abandoned safely (an
// answer arriving after it completed writes its result without a lock).
func (s *stateMachine) awaitExecutor(batch *messages.ApplyBatch) (any, error) {
	reg := s.root.ActorSystem().ProcessRegistry
	r := replyProcess(make(chan any, 1))
	pid, ok := reg.Add(r, "apply"+reg.NextId())
	if !ok {
		return nil, fmt.Errorf("reply address %s is taken", pid.GetId())
	}
	defer reg.Remove(pid)
	s.root.RequestWithCustomSender(s.executor, batch, pid)
	t := time.NewTimer(s.applyTimeout)
	defer t.Stop()
	select {
	case res := <-r:
		return res, nil
	case <-s.haltC:
		return nil, errors.New("replica halted")
	case <-t.C:
		return nil, fmt.Errorf("no answer within %v", s.applyTimeout)
	}
}

// replyProcess is the reply address of one ApplyBatch: it hands the first
// answer (or the dead letter response) to its channel.
type replyProcess chan any

func (r replyProcess) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	select {
	case r <- msg:
	default:
	}
}

func (r replyProcess) SendSystemMessage(*actor.PID, any) {}
func (r replyProcess) Stop(*actor.PID)                   {}

// encodeResult packs a CommandResult into a dragonboat result: Value is the
// commit version of a success, and Data, for a batch, the whole result
// (its commands' results); Data holds the Status of a failure, whose Value
// is 0.
func encodeResult(cr *messages.CommandResult) sm.Result {
	if cr.GetStatus().Err() != nil {
		return sm.Result{Data: mustMarshal(cr.GetStatus())}
	}
	if cr.GetBatch() != nil {
		return sm.Result{Value: cr.GetVersion(), Data: mustMarshal(cr)}
	}
	return sm.Result{Value: cr.GetVersion()}
}

// decodeBatch returns the results of the commands of a batch entry.
func decodeBatch(r sm.Result) ([]*messages.CommandResult, error) {
	if r.Value == 0 { // a failure (an entry the replica stopped before applying)
		_, err := decodeResult(r)
		if err == nil {
			err = messages.Errorf(messages.StatusCode_INTERNAL, "a batch entry answered no results")
		}
		return nil, err
	}
	cr := &messages.CommandResult{}
	if err := proto.Unmarshal(r.Data, cr); err != nil {
		return nil, messages.Errorf(messages.StatusCode_INTERNAL, "undecodable batch result: %v", err)
	}
	return cr.GetBatch(), nil
}

// decodeResult is the inverse of encodeResult.
func decodeResult(r sm.Result) (uint64, error) {
	if r.Data == nil {
		return r.Value, nil
	}
	st := &messages.Status{}
	if err := proto.Unmarshal(r.Data, st); err != nil {
		return 0, messages.Errorf(messages.StatusCode_INTERNAL, "undecodable result: %v", err)
	}
	if err := st.Err(); err != nil {
		return 0, err
	}
	return r.Value, nil
}

func (s *stateMachine) stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faked
}

// Lookup implements sm.IOnDiskStateMachine. Reads do not use it: after a
// ReadIndex round they read the engine directly, without taking
// dragonboat's state machine lock.
func (s *stateMachine) Lookup(any) (any, error) {
	return nil, errors.New("replica: reads go to the storage engine, not through Lookup")
}

// Sync implements sm.IOnDiskStateMachine.
func (s *stateMachine) Sync() error {
	if s.stopped() {
		return sm.ErrSnapshotStopped
	}
	return s.engine.Sync()
}

// PrepareSnapshot implements sm.IOnDiskStateMachine.
func (s *stateMachine) PrepareSnapshot() (any, error) {
	if s.stopped() || s.halted() {
		return nil, sm.ErrSnapshotStopped
	}
	return s.engine.PrepareSnapshot()
}

// SaveSnapshot implements sm.IOnDiskStateMachine.
func (s *stateMachine) SaveSnapshot(ctx any, w io.Writer, stopc <-chan struct{}) error {
	view := ctx.(*storage.SnapshotView)
	if s.stopped() {
		view.Release()
		return sm.ErrSnapshotStopped
	}
	start, cw := time.Now(), &countingWriter{w: w}
	err := s.engine.SaveSnapshot(view, cw, stopc)
	s.counters.sent(cw.n, time.Since(start))
	return snapshotError(err)
}

// RecoverFromSnapshot implements sm.IOnDiskStateMachine. Dragonboat never
// runs it concurrently with Update, so the executor is idle while the
// engine's contents are replaced.
func (s *stateMachine) RecoverFromSnapshot(r io.Reader, stopc <-chan struct{}) error {
	if s.stopped() || s.halted() {
		return sm.ErrSnapshotStopped
	}
	start, cr := time.Now(), &countingReader{r: r}
	err := s.engine.RecoverSnapshot(cr, stopc)
	s.counters.received(cr.n, time.Since(start))
	if err != nil {
		return snapshotError(err)
	}
	slog.Info("snapshot installed", "replica", s.replica, "applied", s.engine.AppliedIndex(),
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

func snapshotError(err error) error {
	if errors.Is(err, storage.ErrSnapshotStopped) {
		return sm.ErrSnapshotStopped
	}
	return err
}

// Close implements sm.IOnDiskStateMachine; the replica closes the engine
// after its NodeHost has stopped.
func (s *stateMachine) Close() error { return nil }
