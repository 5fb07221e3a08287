package tests

import (
	"context"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/storage"
	"github.com/actorkv/actorkv/storage/conformance"
)

// TestGroupConformance holds the replicated group (three in-process
// replicas, through the Client facade) to the same Database contract as the
// standalone engine: the suite runs unchanged.
func TestGroupConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB, cfg conformance.Config) storage.Database {
		c := actors.DefaultConfig(t.TempDir())
		c.Storage.ColumnFamilies = cfg.ColumnFamilies
		c.Storage.RetentionWindow = cfg.RetentionWindow
		c.RTT = 5 * time.Millisecond
		c.ElectionRTT = 20
		g, err := actors.Start(c)
		if err != nil {
			t.Fatalf("start group: %v", err)
		}
		t.Cleanup(g.Stop)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.WaitReady(ctx); err != nil {
			t.Fatalf("group not ready: %v", err)
		}
		db := g.Client()
		t.Cleanup(func() { _ = db.Close() })
		return db
	})
}
