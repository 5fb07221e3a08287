package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
)

// TestVerifyFindsTheFirstDifference: a replica whose RocksDB was changed
// behind Raft's back (one value overwritten on disk while the server was
// down) makes kvctl verify fail, naming the first differing key and both
// values, found by bisecting range digests.
func TestVerifyFindsTheFirstDifference(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, serverConfig{dataDir: dir})
	for i := range 200 {
		s.ctl(t, "put", fmt.Sprintf("d/%03d", i), fmt.Sprintf("v%03d", i))
	}
	if out := s.ctl(t, "verify", "--wait", "30s"); !strings.HasSuffix(out, "OK\n") {
		t.Fatalf("verify before the damage: %q", out)
	}
	if code := s.terminate(30 * time.Second); code != 0 {
		t.Fatalf("kvserver exited %d", code)
	}
	actorkvtest.OverwriteOnDisk(t, filepath.Join(dir, "replica-2", "data"), "default", "d/137", "tampered")

	s = startServer(t, serverConfig{dataDir: dir})
	args := []string{"--endpoints", s.GRPC, "--timeout", "40s", "verify", "--wait", "30s"}
	r := kvctl(t, "", args...)
	checkFailureExit(t, r, kvctlMismatch, "INTERNAL", args)
	want := `first difference: family default, key "d/137": replica 0 has "v137", replica 2 has "tampered"`
	if !strings.Contains(r.stdout, want) || !strings.Contains(r.stderr, want) {
		t.Fatalf("kvctl verify: want %q in its output and error; got %v", want, r)
	}
}
