package tests

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
)

// TestConvergedNamesTheFirstDifference: when a replica's data was changed
// behind Raft's back, the harness's convergence check fails naming the
// first differing key and both values (found by bisecting range digests).
func TestConvergedNamesTheFirstDifference(t *testing.T) {
	dir := t.TempDir()
	c := actorkvtest.NewCluster(t, actorkvtest.WithDir(dir))
	ctx := c.Context(time.Minute)
	for i := range 100 {
		if _, err := c.Client().Put(ctx, []byte(fmt.Sprintf("d/%03d", i)), []byte(fmt.Sprintf("v%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	c.EnsureSame(t)
	c.Crash(1)
	actorkvtest.OverwriteOnDisk(t, filepath.Join(dir, "replica-1", "data"), "default", "d/042", "tampered")
	c.Restart(1, false)
	cctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := c.Converged(cctx)
	want := `first difference: family default, key "d/042": replica 0 has "v042", replica 1 has "tampered"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Converged: %v; want an error naming %s", err, want)
	}
}
