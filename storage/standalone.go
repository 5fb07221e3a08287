package storage

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// Standalone is the single-node service: one engine, no replication — the
// original plan's server before replication. It serves the requests of the
// KV API (messages.Ops) as a kv.Transport: writes become commands that one
// owned goroutine gathers into one ApplyBatch (group commit: concurrent
// writers share one RocksDB write and one fsync); reads go to the engine,
// each on a goroutine of its own. The commands are decided by the same
// state machine as in the replicated group; a write's version is the
// engine's next index.
type Standalone struct {
	engine    *Engine
	validator *kv.Validator
	limits    *messages.SessionLimits // stamped on the sessions it opens

	mu      sync.Mutex
	queue   []*writeReq // waiting for the writer
	stopped bool
	wake    chan struct{} // capacity 1: the queue has work
	stopC   chan struct{} // closed by Close
	doneC   chan struct{} // closed when the writer has exited
	reads   sync.WaitGroup
	closing sync.Once
}

// OpenStandalone opens the engine of cfg (writes fsynced unless
// cfg.SyncWrites is off: see DefaultConfig) and starts the service on it.
func OpenStandalone(cfg Config) (*Standalone, error) {
	e, err := Open(cfg)
	if err != nil {
		return nil, err
	}
	return NewStandalone(e), nil
}

// NewStandalone starts the service on e, which it owns from now on: Close
// closes it.
func NewStandalone(e *Engine) *Standalone {
	s := &Standalone{
		engine:    e,
		validator: e.Validator(),
		limits:    e.cfg.Limits.SessionLimits(),
		wake:      make(chan struct{}, 1),
		stopC:     make(chan struct{}),
		doneC:     make(chan struct{}),
	}
	go s.write()
	return s
}

// Engine is the service's engine.
func (s *Standalone) Engine() *Engine { return s.engine }

// Database returns the service's Go API: a kv.Client over it (one attempt
// bound by the call's own deadline), whose Close also closes the service.
func (s *Standalone) Database() kv.Database {
	return standaloneDB{Client: kv.NewClient(s, kv.DefaultCallTimeout), s: s}
}

type standaloneDB struct {
	*kv.Client
	s *Standalone
}

func (d standaloneDB) Close() error {
	_ = d.Client.Close()
	return d.s.Close()
}

var _ kv.Transport = (*Standalone)(nil)

// Send implements kv.Transport: it serves one request, validated first as
// the router validates it in the group, and answers done by deadline.
func (s *Standalone) Send(req proto.Message, deadline time.Time, done func(messages.Statused, error)) {
	op := messages.OpOf(req)
	if op == nil {
		done(nil, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "%T is no request of the KV API", req))
		return
	}
	if err := s.validator.Request(req); err != nil {
		done(op.Response(err), nil)
		return
	}
	once := &answerOnce{done: done}
	once.timer.Store(time.AfterFunc(time.Until(deadline), func() {
		once.answer(nil, messages.Errorf(messages.StatusCode_TIMEOUT, "no answer by the deadline; a write's outcome is unknown: retry with the same request id"))
	}))
	if op.Kind == messages.Write {
		cmd := op.Command(req, messages.Stamp{TimestampUnixNanos: time.Now().UnixNano(), SessionLimits: s.limits})
		// The command outlives the call: it may still be queued when the
		// attempt times out, and ApplyBatch keeps its mutations for
		// snapshot reads, so it must not share the caller's message.
		s.enqueue(&writeReq{cmd: proto.Clone(cmd).(*messages.Command), done: func(res *messages.CommandResult, err error) {
			if err != nil {
				once.answer(nil, err)
				return
			}
			once.answer(op.Result(res.GetVersion(), res.GetStatus().Err()), nil)
		}})
		return
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		once.answer(nil, ErrClosed)
		return
	}
	s.reads.Add(1) // under mu: never after Close began to wait for the reads
	s.mu.Unlock()
	go func() {
		defer s.reads.Done()
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		once.answer(s.serve(ctx, op, req), nil)
	}()
}

// serve answers a read or an admin request.
func (s *Standalone) serve(ctx context.Context, op *messages.Op, req proto.Message) messages.Statused {
	switch r := req.(type) {
	case *messages.SetFaultInjectionRequest:
		return op.Response(s.engine.SetFaultInjection(ctx, r.GetFaults()))
	case *messages.BackupRequest:
		return s.engine.Backup(ctx, r)
	case *messages.StatusRequest:
		st, err := s.StatusOf(ctx, r)
		if err != nil {
			return op.Response(err)
		}
		return st
	}
	return s.engine.Serve(ctx, req)
}

// Status describes the service as a group of one replica, 0, which leads.
func (s *Standalone) Status(ctx context.Context, withDigests bool) (*messages.StatusResponse, error) {
	return s.StatusOf(ctx, &messages.StatusRequest{WithDigests: withDigests})
}

// StatusOf describes the service as req asks: with digests (of the whole
// contents; the standalone service has no range digests) and sizes.
func (s *Standalone) StatusOf(ctx context.Context, req *messages.StatusRequest) (*messages.StatusResponse, error) {
	st := &messages.ReplicaStatus{ReplicaId: 0, Running: true, IsLeader: true, HasLeader: true, AppliedIndex: s.engine.AppliedIndex()}
	if req.GetWithSizes() {
		sizes, err := s.engine.Sizes()
		if err != nil {
			return nil, err
		}
		st.Sizes = sizes
	}
	if req.GetWithDigests() {
		d, err := s.engine.Digest(ctx)
		if err != nil {
			return nil, err
		}
		st.AppliedIndex, st.Digests, st.Digest = d.AppliedIndex, d.Families, d.Combined
	}
	return &messages.StatusResponse{Status: messages.StatusOf(nil), Mode: "standalone", Replicas: []*messages.ReplicaStatus{st}, HasLeader: true}, nil
}

// answerOnce answers an attempt once: with its outcome, or at its deadline.
type answerOnce struct {
	done  func(messages.Statused, error)
	timer atomic.Pointer[time.Timer] // nil until set, if it fires first
	over  atomic.Bool
}

func (a *answerOnce) answer(resp messages.Statused, err error) {
	if a.over.CompareAndSwap(false, true) {
		if t := a.timer.Load(); t != nil {
			t.Stop()
		}
		a.done(resp, err)
	}
}

// maxGroup bounds the commands of one group commit.
const maxGroup = 256

// writeReq is one command waiting for the writer, and who to tell.
type writeReq struct {
	cmd  *messages.Command
	done func(*messages.CommandResult, error) // called once, from the writer
}

// enqueue hands r to the writer without blocking.
func (s *Standalone) enqueue(r *writeReq) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		r.done(nil, ErrClosed)
		return
	}
	s.queue = append(s.queue, r)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take removes up to maxGroup waiting commands.
func (s *Standalone) take() []*writeReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(s.queue), maxGroup)
	batch := s.queue[:n:n]
	s.queue = s.queue[n:]
	return batch
}

// write is the writer goroutine: it applies what waits, maxGroup commands
// per ApplyBatch, until Close.
func (s *Standalone) write() {
	defer close(s.doneC)
	entries := make([]Entry, 0, maxGroup)
	for {
		select {
		case <-s.stopC:
			return
		case <-s.wake:
		}
		for batch := s.take(); len(batch) > 0; batch = s.take() {
			entries = entries[:0]
			next := s.engine.AppliedIndex()
			for _, r := range batch {
				next++
				entries = append(entries, Entry{Index: next, Cmd: r.cmd})
			}
			results, err := s.engine.ApplyBatch(entries)
			for i, r := range batch {
				if err != nil {
					r.done(nil, err)
				} else {
					r.done(results[i], nil)
				}
			}
		}
	}
}

// Close stops the writer (failing the writes still queued with
// UNAVAILABLE), waits for the reads in flight, and closes the engine. It
// is idempotent.
func (s *Standalone) Close() error {
	var err error
	s.closing.Do(func() {
		s.mu.Lock()
		s.stopped = true
		queued := s.queue
		s.queue = nil
		s.mu.Unlock()
		close(s.stopC)
		<-s.doneC
		for _, r := range queued {
			r.done(nil, ErrClosed)
		}
		s.reads.Wait()
		err = s.engine.Close()
	})
	return err
}
