package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRaftListen starts replica 0 of a three-member cluster (the others
// never start) with its Raft address on 127.0.0.1 and checks where its Raft
// transport listens: with raft_listen = "0.0.0.0:<port>" it accepts on
// another loopback address (127.0.0.2) too; without it, it binds its Raft
// address only and 127.0.0.2 is refused.
func TestRaftListen(t *testing.T) {
	for _, listen := range []bool{true, false} {
		t.Run(fmt.Sprintf("raft_listen=%t", listen), func(t *testing.T) {
			raft := freePort(t)
			s := &kvserver{t: t, cfg: serverConfig{mode: "replicated", lonely: true}, GRPC: freePort(t), HTTP: freePort(t),
				log: &logBuffer{}, done: make(chan struct{})}
			conf := fmt.Sprintf("[deployment]\nmode = \"replicated\"\nin_process = false\ninstance_id = 0\nreplica_endpoints = [%q, %q, %q]\n",
				raft, freePort(t), freePort(t))
			if listen {
				conf += fmt.Sprintf("raft_listen = \"0.0.0.0:%s\"\n", port(raft))
			}
			conf += fmt.Sprintf("\n[database]\nbase_path = %q\n\n[server]\nlisten = %q\nmetrics = %q\nshutdown_timeout = \"10s\"\n", t.TempDir(), s.GRPC, s.HTTP)
			path := filepath.Join(t.TempDir(), "kvserver.toml")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			spawn(t, s, "--config", path)
			if err := s.waitServing(); err != nil {
				t.Fatalf("kvserver did not start: %v\n%s", err, s.log.tail(4000))
			}
			eventually(t, waitTimeout, func() error { // the transport starts with the replica
				c, err := net.DialTimeout("tcp", raft, time.Second)
				if err != nil {
					return err
				}
				return c.Close()
			})
			c, err := net.DialTimeout("tcp", "127.0.0.2:"+port(raft), time.Second)
			if err == nil {
				c.Close()
			}
			if listen && err != nil {
				t.Fatalf("raft_listen 0.0.0.0: dial 127.0.0.2:%s: %v", port(raft), err)
			}
			if !listen && err == nil {
				t.Fatalf("without raft_listen, 127.0.0.2:%s accepted: the transport binds more than its Raft address %s", port(raft), raft)
			}
		})
	}
}
