package replica

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNodeIDs(t *testing.T) {
	for _, tc := range []struct {
		id, generation uint32
		node           uint64
	}{
		{0, 0, 1},
		{2, 0, 3},
		{2, 1, 1<<16 + 3},
		{2, 2, 2<<16 + 3},
		{MaxReplicas - 1, 0, 1 << 16},
		{MaxReplicas - 1, 7, 8 << 16},
		{5, 1 << 20, 1<<36 + 6},
	} {
		if got := NodeID(tc.id, tc.generation); got != tc.node {
			t.Errorf("NodeID(%d, %d) = %d, want %d", tc.id, tc.generation, got, tc.node)
		}
		if got := ReplicaID(tc.node); got != tc.id {
			t.Errorf("ReplicaID(%d) = %d, want %d", tc.node, got, tc.id)
		}
		if got := GenerationOf(tc.node); got != tc.generation {
			t.Errorf("GenerationOf(%d) = %d, want %d", tc.node, got, tc.generation)
		}
	}
}

func TestGenerationFile(t *testing.T) {
	dir := t.TempDir()
	if g, err := ReadGeneration(dir); err != nil || g != 0 {
		t.Fatalf("no file: generation %d, %v; want 0", g, err)
	}
	for _, g := range []uint32{1, 2, 4_000_000_000} {
		if err := writeGeneration(dir, g); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadGeneration(dir); err != nil || got != g {
			t.Fatalf("wrote %d, read %d, %v", g, got, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, generationFile+".tmp")); !os.IsNotExist(err) {
		t.Fatalf("the temporary file is left behind: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, generationFile), []byte("two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if g, err := ReadGeneration(dir); err == nil {
		t.Fatalf("a garbled file read as generation %d", g)
	}
	fresh := filepath.Join(t.TempDir(), "not", "yet")
	if err := writeGeneration(fresh, 3); err != nil {
		t.Fatalf("into a directory that does not exist yet: %v", err)
	}
}

// TestPrepareDisk: a rebuild needs a generation above the stored one, and
// otherwise deletes nothing; a rebuild deletes the data and the Raft log and
// records the generation; a plain start keeps everything and runs under the
// stored generation.
func TestPrepareDisk(t *testing.T) {
	cfg := Config{ID: 2, Dir: t.TempDir()}
	marker := func(dir string) string { return filepath.Join(dir, "marker") }
	fill := func() {
		for _, d := range []string{cfg.dataDir(), cfg.raftDir()} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(marker(d), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	fill()
	if d, err := prepareDisk(cfg); err != nil || d != (disk{}) {
		t.Fatalf("plain start: %+v, %v", d, err)
	}
	rebuild := cfg
	rebuild.WipeRaftLog, rebuild.Generation = true, 1
	if d, err := prepareDisk(rebuild); err != nil || d != (disk{generation: 1, join: true}) {
		t.Fatalf("rebuild as generation 1: %+v, %v", d, err)
	}
	if exists(marker(cfg.dataDir())) || exists(marker(cfg.raftDir())) {
		t.Fatal("the rebuild left the old data or Raft log")
	}
	fill()
	for _, g := range []uint32{0, 1} {
		stale := rebuild
		stale.Generation = g
		if _, err := prepareDisk(stale); err == nil {
			t.Fatalf("a rebuild as generation %d over generation 1 went ahead", g)
		}
		if !exists(marker(cfg.dataDir())) || !exists(marker(cfg.raftDir())) {
			t.Fatalf("the refused rebuild as generation %d deleted something", g)
		}
	}
	if d, err := prepareDisk(cfg); err != nil || d != (disk{generation: 1, join: true}) {
		t.Fatalf("plain start after the rebuild: %+v, %v; want generation 1, joining", d, err)
	}
}

// TestPrepareDiskJoin: a replica told to join records its generation and
// that it joined on its first start, and restarts so whatever it is told;
// one that started as an initial member stays one.
func TestPrepareDiskJoin(t *testing.T) {
	cfg := Config{ID: 3, ClusterID: 1, Dir: t.TempDir(), Join: true, Generation: 2}
	if d, err := prepareDisk(cfg); err != nil || d != (disk{generation: 2, join: true}) {
		t.Fatalf("first start of a joining replica: %+v, %v", d, err)
	}
	if err := os.MkdirAll(cfg.raftDir(), 0o755); err != nil { // it started
		t.Fatal(err)
	}
	again := cfg
	again.Join, again.Generation = false, 0
	if d, err := prepareDisk(again); err != nil || d != (disk{generation: 2, join: true}) {
		t.Fatalf("restart without the join setting: %+v, %v; want it to join as before", d, err)
	}
	initial := Config{ID: 0, ClusterID: 1, Dir: t.TempDir()}
	if d, err := prepareDisk(initial); err != nil || d != (disk{}) {
		t.Fatalf("first start of an initial member: %+v, %v", d, err)
	}
	if err := os.MkdirAll(initial.raftDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	initial.Join, initial.Generation = true, 1
	if d, err := prepareDisk(initial); err != nil || d != (disk{}) {
		t.Fatalf("restart of an initial member told to join: %+v, %v; want it to start as before", d, err)
	}
}
