package tests

import (
	"testing"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/server"
	"github.com/actorkv/actorkv/storage/conformance"
)

// TestThriftConformance holds kvserver's Thrift front end to the Database
// contract in replicated mode: kvserver on its embedded default (three
// replicas in one process, real RocksDB and Raft) with server.thrift_listen
// set, every operation of the suite — fault injection and the replicas'
// status included — a Thrift call sent by kvclient.ThriftClient. The suite
// runs unchanged, bad input included.
func TestThriftConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB, cfg conformance.Config) kv.Database {
		s := startConformanceServer(t, cfg, func(c *server.Config) { c.Server.ThriftListen = "127.0.0.1:0" })
		tc := kvclient.NewThriftClient(s.ThriftAddr(), kvclient.ThriftOptions{})
		db := &remoteDatabase{Requests: tc.Do, admin: tc.Do, close: func() { tc.Close() }}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
