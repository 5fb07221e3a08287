package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// target is what the workers drive.
type target interface {
	put(ctx context.Context, key, value []byte) error
	get(ctx context.Context, key []byte) error
	commit(ctx context.Context, muts []*messages.Mutation) error
	getRange(ctx context.Context, begin []byte, limit int) error
	close()
}

// openTarget connects to or starts the target of o.
func openTarget(ctx context.Context, o options) (target, error) {
	switch o.target {
	case "grpc":
		switch {
		case o.unary:
			return dialGRPC(o)
		case o.retry:
			return dialRetry(o)
		}
		return dialBatch(o)
	case "standalone":
		dir, cleanup, err := dataDir(o.dir)
		if err != nil {
			return nil, err
		}
		s, err := storage.OpenStandalone(storage.DefaultConfig(dir))
		if err != nil {
			cleanup()
			return nil, err
		}
		db := s.Database()
		return &dbTarget{db: db, consistency: o.readConsistency(), done: func() { db.Close(); cleanup() }}, nil
	default: // embedded
		dir, cleanup, err := dataDir(o.dir)
		if err != nil {
			return nil, err
		}
		cfg := actors.DefaultConfig(dir)
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		g, err := actors.Start(cfg)
		if err != nil {
			cleanup()
			return nil, err
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := errors.Join(g.WaitReady(wctx), g.WaitStarted(wctx)); err != nil {
			g.Stop()
			cleanup()
			return nil, err
		}
		return &dbTarget{db: g.Client(), consistency: o.readConsistency(), done: func() { g.Stop(); cleanup() }}, nil
	}
}

func dataDir(dir string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, os.MkdirAll(dir, 0o755)
	}
	tmp, err := os.MkdirTemp("", "kvbench-")
	if err != nil {
		return "", nil, err
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// dbTarget drives a kv.Database in this process.
type dbTarget struct {
	db          kv.Database
	consistency messages.Consistency
	done        func()
}

func (t *dbTarget) put(ctx context.Context, key, value []byte) error {
	_, err := t.db.Put(ctx, key, value)
	return err
}

func (t *dbTarget) get(ctx context.Context, key []byte) error {
	_, _, err := t.db.Get(ctx, key, kv.WithConsistency(t.consistency))
	return err
}

func (t *dbTarget) commit(ctx context.Context, muts []*messages.Mutation) error {
	_, err := t.db.AtomicCommit(ctx, &messages.AtomicCommit{Mutations: muts})
	return err
}

func (t *dbTarget) getRange(ctx context.Context, begin []byte, limit int) error {
	_, err := t.db.GetRange(ctx, begin, nil, limit, false, kv.WithConsistency(t.consistency))
	return err
}

func (t *dbTarget) close() { t.done() }

// grpcTarget drives kvservers over gRPC, spreading calls over connections.
type grpcTarget struct {
	conns       []*grpc.ClientConn
	clients     []messages.KVClient
	next        atomic.Uint64
	consistency messages.Consistency
}

func dialGRPC(o options) (*grpcTarget, error) {
	t := &grpcTarget{consistency: o.readConsistency()}
	tc, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	for _, ep := range o.endpoints {
		for range o.conns {
			// Each connection is its own HTTP/2 transport.
			conn, err := grpc.NewClient(ep,
				kvclient.Credentials(tc),
				grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(messages.MaxResponseMessageBytes)),
				grpc.WithDisableServiceConfig())
			if err != nil {
				t.close()
				return nil, fmt.Errorf("dial %s: %w", ep, err)
			}
			t.conns = append(t.conns, conn)
			t.clients = append(t.clients, messages.NewKVClient(conn))
		}
	}
	return t, nil
}

func (t *grpcTarget) client() messages.KVClient {
	return t.clients[t.next.Add(1)%uint64(len(t.clients))]
}

func (t *grpcTarget) put(ctx context.Context, key, value []byte) error {
	_, err := t.client().Put(ctx, &messages.PutRequest{Key: key, Value: value})
	return messages.FromGRPC(err)
}

func (t *grpcTarget) get(ctx context.Context, key []byte) error {
	_, err := t.client().Get(ctx, &messages.GetRequest{Key: key, Consistency: t.consistency})
	return messages.FromGRPC(err)
}

func (t *grpcTarget) commit(ctx context.Context, muts []*messages.Mutation) error {
	_, err := t.client().AtomicCommit(ctx, &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{Mutations: muts}})
	return messages.FromGRPC(err)
}

func (t *grpcTarget) getRange(ctx context.Context, begin []byte, limit int) error {
	_, err := t.client().GetRange(ctx, &messages.GetRangeRequest{Begin: begin, Limit: int32(limit), Consistency: t.consistency})
	return messages.FromGRPC(err)
}

func (t *grpcTarget) close() {
	for _, c := range t.conns {
		c.Close()
	}
}

// batchTarget drives kvservers through kvclient's Batch streams.
type batchTarget struct {
	clients     []*kvclient.Client
	next        atomic.Uint64
	consistency messages.Consistency
	// leader, when set, takes the writes and linearizable reads: the
	// endpoint whose replica led when the run began (--prefer-leader).
	leader *kvclient.Client
}

func dialBatch(o options) (*batchTarget, error) {
	t := &batchTarget{consistency: o.readConsistency()}
	tc, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	for _, ep := range o.endpoints {
		c, err := kvclient.Dial(ep, kvclient.Options{Streams: o.conns, TLS: tc})
		if err != nil {
			t.close()
			return nil, err
		}
		t.clients = append(t.clients, c)
	}
	if o.preferLeader && len(t.clients) > 1 {
		if i := leaderIndex(o.endpoints, kvclient.Credentials(tc)); i >= 0 {
			t.leader = t.clients[i]
		}
	}
	return t, nil
}

// leaderIndex returns the index of the endpoint whose replica reports that
// it leads (the Status RPC), or -1 when none does (say, during an
// election): a write sent to another process reaches the leader through
// Raft's forwarding and is answered once that process has applied it, a hop
// and a commit notice later.
func leaderIndex(endpoints []string, creds grpc.DialOption) int {
	for i, ep := range endpoints {
		conn, err := grpc.NewClient(ep, creds)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := messages.NewKVClient(conn).Status(ctx, &messages.StatusRequest{})
		cancel()
		conn.Close()
		if err != nil {
			continue
		}
		for _, r := range st.GetReplicas() {
			if r.GetIsLeader() {
				fmt.Fprintf(os.Stderr, "kvbench: writes and linearizable reads go to %s, whose replica %d leads (--prefer-leader)\n", ep, r.GetReplicaId())
				return i
			}
		}
	}
	return -1
}

// dialRetry returns a target with kvctl's retry policy: one kv.Client
// (one session) over Batch streams to every endpoint.
func dialRetry(o options) (target, error) {
	b, err := dialBatch(o)
	if err != nil {
		return nil, err
	}
	ts := make([]kv.Transport, len(b.clients))
	for i, c := range b.clients {
		ts[i] = c
	}
	db := kv.NewClient(kvclient.NewEndpoints(ts...), retryAttempt)
	return &dbTarget{db: db, consistency: o.readConsistency(), done: func() { db.Close(); b.close() }}, nil
}

// retryAttempt bounds one attempt of a --retry call: long enough for a
// write through an election, short enough to move on from a process that
// does not answer.
const retryAttempt = 2 * time.Second

func (t *batchTarget) client() *kvclient.Client {
	return t.clients[t.next.Add(1)%uint64(len(t.clients))]
}

// forLeader is the client for a write or a linearizable read: the
// leader's endpoint's when known, else the next one.
func (t *batchTarget) forLeader() *kvclient.Client {
	if t.leader != nil {
		return t.leader
	}
	return t.client()
}

// forRead is the client for a read of t's consistency.
func (t *batchTarget) forRead() *kvclient.Client {
	if t.consistency == messages.Consistency_STALE {
		return t.client()
	}
	return t.forLeader()
}

func (t *batchTarget) put(ctx context.Context, key, value []byte) error {
	_, err := kvclient.Call[*messages.PutResponse](ctx, t.forLeader(), &messages.PutRequest{Key: key, Value: value})
	return err
}

func (t *batchTarget) get(ctx context.Context, key []byte) error {
	_, err := kvclient.Call[*messages.GetResponse](ctx, t.forRead(), &messages.GetRequest{Key: key, Consistency: t.consistency})
	return err
}

func (t *batchTarget) commit(ctx context.Context, muts []*messages.Mutation) error {
	_, err := kvclient.Call[*messages.AtomicCommitResponse](ctx, t.forLeader(), &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{Mutations: muts}})
	return err
}

func (t *batchTarget) getRange(ctx context.Context, begin []byte, limit int) error {
	_, err := kvclient.Call[*messages.GetRangeResponse](ctx, t.forRead(), &messages.GetRangeRequest{Begin: begin, Limit: int32(limit), Consistency: t.consistency})
	return err
}

func (t *batchTarget) close() {
	for _, c := range t.clients {
		c.Close()
	}
}
