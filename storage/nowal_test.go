package storage

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/actorkv/actorkv/messages"
)

// noWALConfig is an engine as a replica opens it: fed by ApplyBatch, no
// fsync, no RocksDB WAL.
func noWALConfig(dir string) Config {
	cfg := detConfig(dir)
	cfg.DisableWAL = true
	return cfg
}

func TestDisableWALNeedsReplicatedWithoutSync(t *testing.T) {
	for _, tc := range []struct {
		name       string
		replicated bool
		sync       bool
	}{
		{"standalone", false, false},
		{"standalone synced", false, true},
		{"replicated synced", true, true},
	} {
		cfg := testConfig(t.TempDir())
		cfg.Replicated, cfg.SyncWrites, cfg.DisableWAL = tc.replicated, tc.sync, true
		e, err := Open(cfg)
		if err == nil {
			e.Close()
		}
		wantCode(t, err, messages.StatusCode_INVALID_ARGUMENT, tc.name+": Open with disable_wal")
	}
}

// crashLogLen and crashSyncAt shape TestDisableWALCrashReplay: the child
// applies crashLogLen entries in batches of crashBatch, calls Sync after
// crashSyncAt of them, and dies without closing the engine.
const (
	crashLogLen = 3000
	crashSyncAt = 1000
	crashBatch  = 50
	crashSeed   = 7
)

// TestDisableWALCrashReplay kills a process that applied a log to an engine
// without RocksDB's WAL (as a replica does) and checks what a restart finds:
// an applied index no lower than the last Sync and no higher than the last
// applied entry, with the state of exactly that prefix — so replaying the
// rest of the log, as dragonboat does from its own log, gives the digest of
// an engine that never died.
func TestDisableWALCrashReplay(t *testing.T) {
	if dir := os.Getenv("ACTORKV_NOWAL_CHILD_DIR"); dir != "" {
		crashChild(dir) // never returns
	}
	log, _ := genLog(crashSeed, crashLogLen)

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDisableWALCrashReplay$")
	cmd.Env = append(os.Environ(), "ACTORKV_NOWAL_CHILD_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	last, err := strconv.ParseUint(string(lastLine(out)), 10, 64)
	if err != nil {
		t.Fatalf("child did not report its last applied index: %v\n%s", err, out)
	}
	if want := log[len(log)-1].Index; last != want {
		t.Fatalf("child applied up to %d, want %d", last, want)
	}

	e := openEngine(t, noWALConfig(dir))
	got := e.AppliedIndex()
	synced := log[crashSyncAt-1].Index
	if got < synced || got > last {
		t.Fatalf("after the crash the applied index is %d; want between the synced %d and the last applied %d", got, synced, last)
	}
	t.Logf("crash after applying up to %d (synced at %d): restart found %d applied", last, synced, got)
	rest := 0
	for rest < len(log) && log[rest].Index <= got {
		rest++
	}
	if rest == 0 || log[rest-1].Index != got {
		t.Fatalf("applied index %d is not the end of an applied entry", got)
	}
	for i := rest; i < len(log); i += crashBatch {
		mustApply(t, e, cloneEntries(log[i:min(i+crashBatch, len(log))]))
	}

	ref := openEngine(t, noWALConfig(t.TempDir()))
	for i := 0; i < len(log); i += crashBatch {
		mustApply(t, ref, cloneEntries(log[i:min(i+crashBatch, len(log))]))
	}
	if d := digestDiff(mustDigest(t, ref), mustDigest(t, e)); d != "" {
		t.Fatalf("crashed and replayed engine differs from one that never crashed: %s", d)
	}
	if a, b := internalDigest(t, ref), internalDigest(t, e); string(a) != string(b) {
		t.Fatalf("machine state differs after the replay")
	}
}

// crashChild applies the log, syncing once, prints the last applied index
// and exits without closing the engine: its unflushed memtables are lost,
// as in a crash.
func crashChild(dir string) {
	log, _ := genLog(crashSeed, crashLogLen)
	e, err := Open(noWALConfig(dir))
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	for i := 0; i < len(log); i += crashBatch {
		if _, err := e.ApplyBatch(log[i:min(i+crashBatch, len(log))]); err != nil {
			fmt.Println("apply:", err)
			os.Exit(2)
		}
		if i+crashBatch == crashSyncAt {
			if err := e.Sync(); err != nil {
				fmt.Println("sync:", err)
				os.Exit(2)
			}
		}
	}
	fmt.Println(e.AppliedIndex())
	os.Exit(0)
}

func lastLine(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return b[i+1:]
		}
	}
	return b
}
