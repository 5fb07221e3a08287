package storage_test

import (
	"testing"

	"github.com/actorkv/actorkv/storage"
	"github.com/actorkv/actorkv/storage/conformance"
)

// TestEngineConformance holds the standalone engine to the Database contract.
func TestEngineConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB, cfg conformance.Config) storage.Database {
		c := storage.DefaultConfig(t.TempDir())
		c.ColumnFamilies = cfg.ColumnFamilies
		c.RetentionWindow = cfg.RetentionWindow
		e, err := storage.Open(c)
		if err != nil {
			t.Fatalf("open engine: %v", err)
		}
		t.Cleanup(func() {
			if err := e.Close(); err != nil {
				t.Errorf("close engine: %v", err)
			}
		})
		return e
	})
}
