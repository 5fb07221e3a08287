package storage_test

import (
	"testing"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/storage/conformance"
)

// TestEngineConformance holds the standalone service (one engine, no
// replication) to the Database contract.
func TestEngineConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB, cfg conformance.Config) kv.Database {
		return conformance.OpenStandalone(t, cfg).Database()
	})
}
