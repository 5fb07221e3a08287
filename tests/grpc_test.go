package tests

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/server"
	"github.com/actorkv/actorkv/storage/conformance"
)

// TestGRPCConformance holds the network API to the Database contract:
// kvserver on its embedded default (three replicas in one process, real
// RocksDB and Raft), every operation of the suite a Batch call sent by
// kvclient over gRPC, fault injection and the replicas' status unary
// RPCs. The suite runs unchanged, bad input included.
func TestGRPCConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB, cfg conformance.Config) kv.Database {
		s := startConformanceServer(t, cfg, nil)
		kc, err := kvclient.Dial(s.GRPCAddr(), kvclient.Options{})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		db := &remoteDatabase{
			Requests: overCalls(kc.Do),
			admin:    unaryRPCs(conn),
			close:    func() { kc.Close(); conn.Close() },
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

// startConformanceServer starts kvserver on its embedded default (three
// replicas in one process) configured for the suite's cfg, changed by
// edit when not nil, and waits until its replicas serve.
func startConformanceServer(t testing.TB, cfg conformance.Config, edit func(*server.Config)) *server.Server {
	scfg := server.DefaultConfig()
	scfg.Database.BasePath = t.TempDir()
	scfg.Database.ColumnFamilies = cfg.ColumnFamilies
	scfg.Database.RetentionWindow = server.Duration{Duration: cfg.RetentionWindow}
	scfg.Limits.MaxSessions = cfg.MaxSessions
	scfg.Server.Listen = "127.0.0.1:0"
	scfg.Server.Metrics = ""
	scfg.Server.Admin = true // the suite injects faults
	if edit != nil {
		edit(&scfg)
	}
	s, err := server.Start(scfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("start kvserver: %v", err)
	}
	t.Cleanup(s.Shutdown)
	// Until its replicas run, kvserver answers UNAVAILABLE at once (its
	// callers move on or retry); the suite's calls are single attempts.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := errors.Join(s.Backend().Ready(ctx), s.Backend().Group.WaitStarted(ctx)); err != nil {
		t.Fatalf("kvserver not ready: %v", err)
	}
	return s
}

// unaryRPCs sends each request as its unary RPC over conn.
func unaryRPCs(conn *grpc.ClientConn) kv.Requests {
	return func(ctx context.Context, req proto.Message) (messages.Statused, error) {
		op := messages.OpOf(req)
		resp := op.Response(nil)
		if err := conn.Invoke(ctx, "/"+messages.KV_ServiceDesc.ServiceName+"/"+op.RPC, req, resp); err != nil {
			return nil, messages.FromGRPC(err)
		}
		return resp, nil
	}
}

// remoteDatabase is a kv.Database over one of kvserver's front ends.
type remoteDatabase struct {
	kv.Requests             // the operations of the suite
	admin       kv.Requests // fault injection and the replicas' status
	close       func()
	closed      atomic.Bool
}

var errRemoteClosed = messages.Errorf(messages.StatusCode_UNAVAILABLE, "closed")

// SetFaultInjection sends the admin request. As for the group's Client
// (faultsAfterApply), before injecting storage errors it waits until every
// replica has applied everything, so no replica fails a write the suite
// made before.
func (d *remoteDatabase) SetFaultInjection(ctx context.Context, f *messages.FaultInjection, opts ...kv.Option) error {
	if d.closed.Load() {
		return errRemoteClosed
	}
	if f.GetErrorRate() > 0 || f.GetFailAfterWrites() > 0 {
		if err := d.converged(ctx); err != nil {
			return err
		}
	}
	o := kv.ApplyOptions(opts)
	_, err := kv.Call[*messages.SetFaultInjectionResponse](ctx, d.admin, &messages.SetFaultInjectionRequest{Faults: f, Replicas: o.Replicas})
	return err
}

// converged polls the Status request until the three replicas report the
// same applied index and digest.
func (d *remoteDatabase) converged(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := "no status yet"
	for {
		st, err := kv.Call[*messages.StatusResponse](ctx, d.admin, &messages.StatusRequest{WithDigests: true})
		if err != nil {
			last = err.Error()
		} else if same, diff := actorkvtest.SameState(st, replicaIDs(st)); same != nil && len(st.GetReplicas()) == 3 {
			return nil
		} else {
			last = diff
		}
		select {
		case <-ctx.Done():
			return messages.Errorf(messages.CodeOf(ctx.Err()), "before injecting faults, the replicas did not converge: %s", last)
		case <-tick.C:
		}
	}
}

// Close closes the client's streams and connections (the clients fail
// calls after it with UNAVAILABLE); the server stops when the test ends.
func (d *remoteDatabase) Close() error {
	if !d.closed.Swap(true) {
		d.close()
	}
	return nil
}

func replicaIDs(st *messages.StatusResponse) []uint32 {
	ids := make([]uint32, 0, len(st.GetReplicas()))
	for _, r := range st.GetReplicas() {
		ids = append(ids, r.GetReplicaId())
	}
	return ids
}
