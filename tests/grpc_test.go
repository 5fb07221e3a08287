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
		scfg := server.DefaultConfig()
		scfg.Database.BasePath = t.TempDir()
		scfg.Database.ColumnFamilies = cfg.ColumnFamilies
		scfg.Database.RetentionWindow = server.Duration{Duration: cfg.RetentionWindow}
		scfg.Limits.MaxSessions = cfg.MaxSessions
		scfg.Server.Listen = "127.0.0.1:0"
		scfg.Server.Metrics = ""
		scfg.Server.Admin = true // the suite injects faults
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
		kc, err := kvclient.Dial(s.GRPCAddr(), kvclient.Options{})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		db := &grpcDatabase{
			Requests: overCalls(kc.Do),
			kv:       messages.NewKVClient(conn),
			close:    func() { kc.Close(); conn.Close() },
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

// grpcDatabase is a kv.Database over kvserver's gRPC API.
type grpcDatabase struct {
	kv.Requests // Batch calls
	kv          messages.KVClient
	close       func()
	closed      atomic.Bool
}

var errGRPCClosed = messages.Errorf(messages.StatusCode_UNAVAILABLE, "closed")

// SetFaultInjection sends the unary RPC. As for the group's Client
// (faultsAfterApply), before injecting storage errors it waits until every
// replica has applied everything, so no replica fails a write the suite
// made before.
func (d *grpcDatabase) SetFaultInjection(ctx context.Context, f *messages.FaultInjection, opts ...kv.Option) error {
	if d.closed.Load() {
		return errGRPCClosed
	}
	if f.GetErrorRate() > 0 || f.GetFailAfterWrites() > 0 {
		if err := d.converged(ctx); err != nil {
			return err
		}
	}
	o := kv.ApplyOptions(opts)
	resp, err := d.kv.SetFaultInjection(ctx, &messages.SetFaultInjectionRequest{Faults: f, Replicas: o.Replicas})
	if err != nil {
		return messages.Errorf(messages.CodeOf(err), "set fault injection: %v", err)
	}
	return resp.GetStatus().Err()
}

// converged polls the Status RPC until the three replicas report the same
// applied index and digest.
func (d *grpcDatabase) converged(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := "no status yet"
	for {
		st, err := d.kv.Status(ctx, &messages.StatusRequest{WithDigests: true})
		if err == nil {
			err = st.GetStatus().Err()
		}
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

// Close closes the client's streams and connection (kvclient fails calls
// after it with UNAVAILABLE); the server stops when the test ends.
func (d *grpcDatabase) Close() error {
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
