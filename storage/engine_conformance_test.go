package storage_test

import (
	"testing"

	"github.com/actorkv/actorkv/storage"
	"github.com/actorkv/actorkv/storage/conformance"
)

// TestEngineConformance holds the standalone engine to the Database contract.
func TestEngineConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB, cfg conformance.Config) storage.Database {
		return conformance.OpenEngine(t, cfg)
	})
}
