package server

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// Observer is told about every request the core served: its operation name,
// outcome and duration (the server's Prometheus metrics implement it).
type Observer interface {
	Observe(op string, code messages.StatusCode, d time.Duration)
}

// StatusFunc reports the status of the backend's replicas.
type StatusFunc func(ctx context.Context, withDigests bool) (*messages.StatusResponse, error)

// Core is the protocol-agnostic service layer above a Database — the
// original plan's KvServiceCore. The gRPC server and embedding programs call
// it with the protobuf requests of messages/kv.proto; it validates them
// against the limits, passes request ids through, bounds each request with a
// default deadline when the caller set none, times it, and returns the
// response or a status error (messages.CodeOf). A Thrift or HTTP adapter
// would be a thin layer on it, like the gRPC one.
type Core struct {
	db        storage.Database
	status    StatusFunc
	validator *storage.Validator
	timeout   time.Duration
	obs       Observer
}

// NewCore returns the core over db. timeout bounds requests without a
// deadline; obs may be nil.
func NewCore(db storage.Database, status StatusFunc, validator *storage.Validator, timeout time.Duration, obs Observer) *Core {
	return &Core{db: db, status: status, validator: validator, timeout: timeout, obs: obs}
}

// NewCoreFor returns the core of a Backend built from cfg.
func NewCoreFor(b *Backend, cfg Config, obs Observer) *Core {
	return NewCore(b.DB, b.Status, storage.NewValidator(cfg.Limits, cfg.Database.ColumnFamilies), cfg.Server.RequestTimeout.Duration, obs)
}

// run validates req, runs f under the request's deadline and records it.
func (c *Core) run(ctx context.Context, op string, req proto.Message, f func(context.Context) error) error {
	start := time.Now()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	err := c.validator.Request(req)
	if err == nil {
		err = f(ctx)
	}
	if c.obs != nil {
		c.obs.Observe(op, messages.CodeOf(err), time.Since(start))
	}
	return err
}

func cfOpts(cf string, rid *messages.RequestId, consistency messages.Consistency) []storage.Option {
	opts := []storage.Option{storage.WithColumnFamily(cf), storage.WithConsistency(consistency)}
	if rid.GetClientId() != 0 {
		opts = append(opts, storage.WithRequestID(rid))
	}
	return opts
}

// Get serves a get.
func (c *Core) Get(ctx context.Context, req *messages.GetRequest) (*messages.GetResponse, error) {
	resp := &messages.GetResponse{}
	err := c.run(ctx, "get", req, func(ctx context.Context) (err error) {
		resp.Value, resp.Found, err = c.db.Get(ctx, req.GetKey(), cfOpts(req.GetColumnFamily(), nil, req.GetConsistency())...)
		return err
	})
	return resp, err
}

// Put serves a put.
func (c *Core) Put(ctx context.Context, req *messages.PutRequest) (*messages.PutResponse, error) {
	resp := &messages.PutResponse{}
	err := c.run(ctx, "put", req, func(ctx context.Context) (err error) {
		resp.Version, err = c.db.Put(ctx, req.GetKey(), req.GetValue(), cfOpts(req.GetColumnFamily(), req.GetRequestId(), 0)...)
		return err
	})
	return resp, err
}

// Delete serves a delete.
func (c *Core) Delete(ctx context.Context, req *messages.DeleteRequest) (*messages.DeleteResponse, error) {
	resp := &messages.DeleteResponse{}
	err := c.run(ctx, "delete", req, func(ctx context.Context) (err error) {
		resp.Version, err = c.db.Delete(ctx, req.GetKey(), cfOpts(req.GetColumnFamily(), req.GetRequestId(), 0)...)
		return err
	})
	return resp, err
}

// ClearRange serves a clear-range.
func (c *Core) ClearRange(ctx context.Context, req *messages.ClearRangeRequest) (*messages.ClearRangeResponse, error) {
	resp := &messages.ClearRangeResponse{}
	err := c.run(ctx, "clear_range", req, func(ctx context.Context) (err error) {
		resp.Version, err = c.db.ClearRange(ctx, req.GetBegin(), req.GetEnd(), cfOpts(req.GetColumnFamily(), req.GetRequestId(), 0)...)
		return err
	})
	return resp, err
}

// ListKeys serves a key listing.
func (c *Core) ListKeys(ctx context.Context, req *messages.ListKeysRequest) (*messages.ListKeysResponse, error) {
	resp := &messages.ListKeysResponse{}
	err := c.run(ctx, "list_keys", req, func(ctx context.Context) (err error) {
		resp.Keys, err = c.db.ListKeys(ctx, req.GetPrefix(), int(req.GetLimit()), cfOpts(req.GetColumnFamily(), nil, req.GetConsistency())...)
		return err
	})
	return resp, err
}

// GetRange serves a range read.
func (c *Core) GetRange(ctx context.Context, req *messages.GetRangeRequest) (*messages.GetRangeResponse, error) {
	resp := &messages.GetRangeResponse{}
	err := c.run(ctx, "get_range", req, func(ctx context.Context) (err error) {
		resp.Kvs, err = c.db.GetRange(ctx, req.GetBegin(), req.GetEnd(), int(req.GetLimit()), req.GetReverse(), cfOpts(req.GetColumnFamily(), nil, req.GetConsistency())...)
		return err
	})
	return resp, err
}

// AtomicCommit serves an atomic commit.
func (c *Core) AtomicCommit(ctx context.Context, req *messages.AtomicCommitRequest) (*messages.AtomicCommitResponse, error) {
	resp := &messages.AtomicCommitResponse{}
	err := c.run(ctx, "atomic_commit", req, func(ctx context.Context) (err error) {
		resp.Version, err = c.db.AtomicCommit(ctx, req.GetCommit(), cfOpts("", req.GetRequestId(), 0)...)
		return err
	})
	return resp, err
}

// OpenSession opens a client session for exactly-once writes.
func (c *Core) OpenSession(ctx context.Context, req *messages.OpenSessionRequest) (*messages.OpenSessionResponse, error) {
	resp := &messages.OpenSessionResponse{}
	err := c.run(ctx, "open_session", req, func(ctx context.Context) (err error) {
		resp.ClientId, err = c.db.OpenSession(ctx)
		return err
	})
	return resp, err
}

// GetReadVersion serves a read version.
func (c *Core) GetReadVersion(ctx context.Context, req *messages.GetReadVersionRequest) (*messages.GetReadVersionResponse, error) {
	resp := &messages.GetReadVersionResponse{}
	err := c.run(ctx, "get_read_version", req, func(ctx context.Context) (err error) {
		resp.Version, err = c.db.GetReadVersion(ctx)
		return err
	})
	return resp, err
}

// SnapshotRead serves a read at a version.
func (c *Core) SnapshotRead(ctx context.Context, req *messages.SnapshotReadRequest) (*messages.SnapshotReadResponse, error) {
	resp := &messages.SnapshotReadResponse{}
	err := c.run(ctx, "snapshot_read", req, func(ctx context.Context) (err error) {
		resp.Value, resp.Found, err = c.db.SnapshotRead(ctx, req.GetKey(), req.GetVersion(), cfOpts(req.GetColumnFamily(), nil, 0)...)
		return err
	})
	return resp, err
}

// SnapshotGetRange serves a range read at a version.
func (c *Core) SnapshotGetRange(ctx context.Context, req *messages.SnapshotGetRangeRequest) (*messages.SnapshotGetRangeResponse, error) {
	resp := &messages.SnapshotGetRangeResponse{}
	err := c.run(ctx, "snapshot_get_range", req, func(ctx context.Context) (err error) {
		resp.Kvs, err = c.db.SnapshotGetRange(ctx, req.GetBegin(), req.GetEnd(), int(req.GetLimit()), req.GetReverse(), req.GetVersion(), cfOpts(req.GetColumnFamily(), nil, 0)...)
		return err
	})
	return resp, err
}

// SetFaultInjection configures injected faults on the named replicas.
func (c *Core) SetFaultInjection(ctx context.Context, req *messages.SetFaultInjectionRequest) (*messages.SetFaultInjectionResponse, error) {
	resp := &messages.SetFaultInjectionResponse{}
	err := c.run(ctx, "set_fault_injection", req, func(ctx context.Context) error {
		return c.db.SetFaultInjection(ctx, req.GetFaults(), storage.WithReplicas(req.GetReplicas()...))
	})
	return resp, err
}

// Status reports every replica (leader, term, applied index, digests).
func (c *Core) Status(ctx context.Context, req *messages.StatusRequest) (*messages.StatusResponse, error) {
	var resp *messages.StatusResponse
	err := c.run(ctx, "status", req, func(ctx context.Context) (err error) {
		resp, err = c.status(ctx, req.GetWithDigests())
		return err
	})
	if resp == nil {
		resp = &messages.StatusResponse{}
	}
	return resp, err
}

// Call serves one call of a Batch stream and returns its reply. A call
// without a deadline of its own gets the core's default.
func (c *Core) Call(ctx context.Context, call *messages.Call) *messages.Reply {
	if t := call.GetTimeoutMicros(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Microsecond)
		defer cancel()
	}
	op, req := call.Operation()
	var resp messages.Statused
	var err error
	switch r := req.(type) {
	case *messages.GetRequest:
		resp, err = c.Get(ctx, r)
	case *messages.PutRequest:
		resp, err = c.Put(ctx, r)
	case *messages.DeleteRequest:
		resp, err = c.Delete(ctx, r)
	case *messages.ClearRangeRequest:
		resp, err = c.ClearRange(ctx, r)
	case *messages.ListKeysRequest:
		resp, err = c.ListKeys(ctx, r)
	case *messages.GetRangeRequest:
		resp, err = c.GetRange(ctx, r)
	case *messages.AtomicCommitRequest:
		resp, err = c.AtomicCommit(ctx, r)
	case *messages.OpenSessionRequest:
		resp, err = c.OpenSession(ctx, r)
	case *messages.GetReadVersionRequest:
		resp, err = c.GetReadVersion(ctx, r)
	case *messages.SnapshotReadRequest:
		resp, err = c.SnapshotRead(ctx, r)
	case *messages.SnapshotGetRangeRequest:
		resp, err = c.SnapshotGetRange(ctx, r)
	default:
		err = messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "call %d names no operation", call.GetId())
	}
	return messages.NewReply(call.GetId(), op, resp, err)
}

// Submitter is a Database that can also serve a request without a goroutine
// waiting for it: actors.Client (the replicated group) is one.
type Submitter interface {
	// Submit serves req, a request of messages/kv.proto, until deadline or
	// until cancel closes, and calls done once with its response or status
	// error; done must not block.
	Submit(req proto.Message, deadline time.Time, cancel <-chan struct{}, done func(messages.Statused, error))
}

// Start serves call like Call, but hands the reply to done instead of
// returning it. Over a Submitter (the replicated group) no goroutine waits
// for the call: it is validated here and done runs on the goroutine that
// delivered the answer, so done must not block. Over any other Database the
// call runs on a goroutine of its own, which ends with done.
func (c *Core) Start(ctx context.Context, call *messages.Call, done func(*messages.Reply)) {
	sub, ok := c.db.(Submitter)
	op, req := call.Operation()
	if !ok || req == nil {
		go func() { done(c.Call(ctx, call)) }()
		return
	}
	start := time.Now()
	finish := func(resp messages.Statused, err error) {
		if c.obs != nil {
			c.obs.Observe(op, messages.CodeOf(err), time.Since(start))
		}
		done(messages.NewReply(call.GetId(), op, resp, err))
	}
	// As Call's context would have it: the call's own timeout when it has
	// one (never past ctx's deadline), else ctx's deadline, else the
	// core's default.
	deadline, ok := ctx.Deadline()
	if t := call.GetTimeoutMicros(); t > 0 {
		if d := start.Add(time.Duration(t) * time.Microsecond); !ok || d.Before(deadline) {
			deadline, ok = d, true
		}
	}
	if !ok {
		deadline = start.Add(c.timeout)
	}
	if err := c.validator.Request(req); err != nil {
		finish(nil, err)
		return
	}
	if err := ctx.Err(); err != nil {
		finish(nil, messages.Errorf(messages.CodeOf(err), "%v", err))
		return
	}
	sub.Submit(req, deadline, ctx.Done(), finish)
}
