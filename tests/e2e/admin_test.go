package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/actorkv/actorkv/messages"
)

// TestAdminOperationsOffByDefault: a kvserver on its defaults (server.admin
// off) refuses every admin operation PERMISSION_DENIED, over kvctl and raw
// gRPC alike, and does none of it: a fault that would fail-stop a replica
// after one write is not injected, the membership and the leader stay, and
// writes and reads go on. Status (with whole digests, computed once per
// applied index), verify and member list are open.
func TestAdminOperationsOffByDefault(t *testing.T) {
	s := startServer(t, serverConfig{noAdmin: true})
	if out := s.ctl(t, "put", "admin/k", "v0"); !strings.HasPrefix(out, "OK") {
		t.Fatalf("put: %q", out)
	}
	for _, args := range [][]string{
		{"fault", "--fail-after", "1"},
		{"fault", "--off"},
		{"move-leader", "1"},
		{"member", "add", "3", "127.0.0.1:1"},
		{"member", "remove", "2"},
		{"member", "replace", "2", "127.0.0.1:1"},
		{"snapshot", "save", filepath.Join(t.TempDir(), "backup")},
	} {
		s.ctlFails(t, "PERMISSION_DENIED", args...)
	}
	kv := messages.NewKVClient(dial(t, s.GRPC))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for name, call := range map[string]func() error{
		"SetFaultInjection": func() error {
			_, err := kv.SetFaultInjection(ctx, &messages.SetFaultInjectionRequest{Replicas: []uint32{0, 1, 2},
				Faults: &messages.FaultInjection{FailAfterWrites: 1}})
			return err
		},
		"Status with a digest range": func() error {
			_, err := kv.Status(ctx, &messages.StatusRequest{WithDigests: true, DigestRange: &messages.KeyRange{}})
			return err
		},
		"MemberRemove": func() error {
			_, err := kv.MemberRemove(ctx, &messages.MemberRemoveRequest{ReplicaId: 1})
			return err
		},
		"MoveLeader": func() error {
			_, err := kv.MoveLeader(ctx, &messages.MoveLeaderRequest{ReplicaId: 2})
			return err
		},
	} {
		if err := call(); grpcstatus.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "server.admin") {
			t.Errorf("%s on a server without admin operations: %v, want PermissionDenied naming server.admin", name, err)
		}
	}

	// Nothing was done: every replica still runs and takes writes.
	for i := range 5 {
		if out := s.ctl(t, "put", "admin/k", "v"+string(rune('1'+i))); !strings.HasPrefix(out, "OK") {
			t.Fatalf("put %d after the refused admin operations: %q", i, out)
		}
	}
	if got := s.ctl(t, "get", "admin/k"); got != "admin/k\nv5\n" {
		t.Fatalf("get admin/k: %q", got)
	}
	if out := s.ctl(t, "verify", "--wait", "30s"); !strings.HasSuffix(out, "OK\n") {
		t.Fatalf("verify without admin operations: %q", out)
	}
	st, err := kv.Status(ctx, &messages.StatusRequest{})
	if err != nil {
		t.Fatalf("status without digests: %v", err)
	}
	if len(st.GetReplicas()) != 3 {
		t.Fatalf("status: %v", st)
	}
	for _, r := range st.GetReplicas() {
		if !r.GetRunning() || len(r.GetDigest()) != 0 {
			t.Fatalf("replica %d after the refused admin operations: %v", r.GetReplicaId(), r)
		}
	}
}
