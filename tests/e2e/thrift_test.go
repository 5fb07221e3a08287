package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestThriftFrontEnd runs kvserver as the original plan's server ran: its
// configuration named by $CONFIG_PATH (no --config), the Thrift front end on
// (server.thrift_listen), three replicas in the process. kvctl --protocol
// thrift writes, reads, lists, scans, deletes, commits, reads the status and
// saves a backup over Thrift; what it wrote gRPC reads back (one core, one database); bad
// input gets the documented codes.
func TestThriftFrontEnd(t *testing.T) {
	s := startServer(t, serverConfig{thrift: true, configEnv: true, columnFamilies: []string{"default", "meta"}})
	thrift := func(args ...string) result {
		return kvctl(t, "", append([]string{"--protocol", "thrift", "--endpoints", s.Thrift, "--timeout", "20s"}, args...)...)
	}
	ok := func(args ...string) string {
		t.Helper()
		r := thrift(args...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("kvctl --protocol thrift %s: %v", strings.Join(args, " "), r)
		}
		return r.stdout
	}
	equal := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: got %q, want %q", what, got, want)
		}
	}
	for _, kv := range [][2]string{{"th/a", "1"}, {"th/b", "2"}, {"th/c", "3"}} {
		if out := ok("put", kv[0], kv[1]); !strings.HasPrefix(out, "OK version ") {
			t.Fatalf("put %s: %q", kv[0], out)
		}
	}
	equal("get", ok("get", "th/a"), "th/a\n1\n")
	equal("get over gRPC", s.ctl(t, "get", "th/b", "--print-value-only"), "2\n")
	equal("list", ok("get", "th/", "--prefix", "--keys-only"), "th/a\nth/b\nth/c\n")
	equal("range", ok("get", "th/b", "th/d", "--range"), "th/b\n2\nth/c\n3\n")
	equal("reverse", ok("get", "th/", "--prefix", "--reverse", "--limit", "1"), "th/c\n3\n")
	ok("put", "--cf", "meta", "th/a", "m")
	equal("column family", ok("get", "th/a", "--cf", "meta", "--print-value-only"), "m\n")
	ok("del", "th/a")
	equal("deleted", ok("get", "th/a"), "")
	ok("del", "th/b", "th/c") // ClearRange [th/b, th/c)
	equal("after del range", ok("get", "th/", "--prefix", "--keys-only"), "th/c\n")
	ok("commit", "--set", "th/x=1", "--set", "th/y=2")
	equal("after commit", s.ctl(t, "get", "th/x", "th/z", "--range", "--keys-only"), "th/x\nth/y\n")
	if out := ok("status"); !strings.Contains(out, "LEADER") {
		t.Fatalf("status over Thrift: %q", out)
	}
	backup := filepath.Join(t.TempDir(), "backup")
	ok("snapshot", "save", backup) // pages of Backup calls, an admin operation
	if out := s.ctl(t, "snapshot", "status", backup); !strings.Contains(out, "keys") {
		t.Fatalf("snapshot status of the backup saved over Thrift: %q", out)
	}
	if out := ok("endpoint", "health"); !strings.Contains(out, "is healthy") {
		t.Fatalf("endpoint health over Thrift: %q", out)
	}

	checkFailure(t, thrift("get", "th/a", "--cf", "nope"), "UNKNOWN_COLUMN_FAMILY", []string{"get --cf nope"})
	checkFailure(t, thrift("put", strings.Repeat("k", 10_001), "v"), "INVALID_ARGUMENT", []string{"put <long key>"})
	checkFailure(t, thrift("get", "th/b", "th/a", "--range"), "INVALID_ARGUMENT", []string{"get inverted range"})
	checkFailure(t, kvctl(t, "", "--protocol", "carrier-pigeon", "--endpoints", s.Thrift, "get", "k"), "INVALID_ARGUMENT", []string{"--protocol carrier-pigeon"})
}
