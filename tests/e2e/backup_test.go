package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupAndRestore saves a backup of a three-process cluster while
// writers keep writing, restores it into a new group (another kvserver on an
// empty directory) and compares: the file holds every write acknowledged
// before the save began, kvctl restore finds the new replicas' digests equal
// to the file's, and the new group's digest (kvctl status) is the file's.
// Bad files and a group that is not empty are refused with their exit codes.
func TestBackupAndRestore(t *testing.T) {
	c := startCluster(t)
	var first []*writer
	for i := range 4 {
		first = append(first, &writer{id: i})
	}
	l := startLoad(first, c.nodes...)
	l.waitAcks(t, 300, waitTimeout)
	before := l.stop(t) // acknowledged before the save began
	var second []*writer
	for i := range 4 {
		second = append(second, &writer{id: 10 + i})
	}
	l = startLoad(second, c.nodes...)
	l.waitAcks(t, 50, waitTimeout)

	file := filepath.Join(t.TempDir(), "backup.akv")
	r := kvctl(t, "", "--endpoints", c.endpoints(), "--timeout", "20s", "-w", "json", "snapshot", "save", file)
	if r.code != 0 {
		t.Fatalf("snapshot save under load: %v", r)
	}
	l.waitAcks(t, 100, waitTimeout) // the writers went on
	l.stop(t)
	var saved backupInfo
	if err := json.Unmarshal([]byte(r.stdout), &saved); err != nil {
		t.Fatalf("snapshot save -w json: %v: %q", err, r.stdout)
	}
	if _, err := os.Stat(file + ".part"); !os.IsNotExist(err) {
		t.Fatalf("%s.part left behind: %v", file, err)
	}
	// The file: checked, and holding every write acknowledged before the
	// save (a linearizable barrier opened it).
	var status backupInfo
	if err := json.Unmarshal([]byte(ctlOK(t, "-w", "json", "snapshot", "status", file)), &status); err != nil {
		t.Fatal(err)
	}
	if status.Digest != saved.Digest || status.Keys != saved.Keys || status.AppliedIndex != saved.AppliedIndex {
		t.Fatalf("snapshot status %+v, save said %+v", status, saved)
	}
	var maxVersion uint64
	for _, a := range before {
		maxVersion = max(maxVersion, a.version)
	}
	if saved.AppliedIndex < maxVersion || saved.Keys < uint64(len(before)) {
		t.Fatalf("the backup is at index %d with %d keys; %d writes were acknowledged before it, up to version %d", saved.AppliedIndex, saved.Keys, len(before), maxVersion)
	}

	// Restore into a new group and compare.
	s := startServer(t, serverConfig{})
	r = kvctl(t, "", "--endpoints", s.GRPC, "--timeout", "20s", "-w", "json", "snapshot", "restore", file)
	if r.code != 0 {
		t.Fatalf("snapshot restore: %v", r)
	}
	var restored backupInfo
	if err := json.Unmarshal([]byte(r.stdout), &restored); err != nil {
		t.Fatal(err)
	}
	if restored.Digest != saved.Digest || len(restored.Replicas) != 3 {
		t.Fatalf("restore: %+v; want digest %s on three replicas", restored, saved.Digest)
	}
	var st struct {
		Replicas []struct {
			ID     uint32 `json:"id"`
			Digest string `json:"digest"`
		} `json:"replicas"`
	}
	if err := json.Unmarshal([]byte(s.ctl(t, "-w", "json", "status")), &st); err != nil {
		t.Fatal(err)
	}
	for _, rep := range st.Replicas {
		if rep.Digest != saved.Digest {
			t.Fatalf("replica %d of the restored group has digest %q, the backup %s", rep.ID, rep.Digest, saved.Digest)
		}
	}
	for _, a := range before[:20] {
		if got := s.ctl(t, "get", "--print-value-only", a.key); got != a.value+"\n" {
			t.Fatalf("restored %s = %q, want %q", a.key, got, a.value)
		}
	}

	// Refused: a group that is not empty (exit 2), a damaged file (exit 2).
	if r := s.ctlFails(t, "INVALID_ARGUMENT", "snapshot", "restore", file); !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("restore into a group that holds data: %v, want it refused as not empty", r)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	bad := filepath.Join(t.TempDir(), "bad.akv")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r = kvctl(t, "", "snapshot", "status", bad)
	checkFailure(t, r, "INVALID_ARGUMENT", []string{"snapshot status (damaged)"})
	if !strings.Contains(r.stderr, "not a valid backup file") {
		t.Fatalf("snapshot status of a damaged file: %v", r)
	}
	fresh := startServer(t, serverConfig{})
	if r := fresh.ctlFails(t, "INVALID_ARGUMENT", "snapshot", "restore", bad); !strings.Contains(r.stderr, "not a valid backup file") {
		t.Fatalf("restore of a damaged file: %v", r)
	}
	if out := fresh.ctl(t, "get", "--prefix", "load/"); out != "" {
		t.Fatalf("a damaged file's restore wrote %q", out[:min(len(out), 200)])
	}
}

// backupInfo is kvctl snapshot's JSON.
type backupInfo struct {
	File         string   `json:"file"`
	AppliedIndex uint64   `json:"applied_index"`
	Keys         uint64   `json:"keys"`
	Digest       string   `json:"digest"`
	Replicas     []uint32 `json:"replicas"`
}

// ctlOK runs kvctl without a server and wants it to succeed.
func ctlOK(t testing.TB, args ...string) string {
	t.Helper()
	r := kvctl(t, "", args...)
	if r.code != 0 {
		t.Fatalf("kvctl %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}
