package replica

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// generationFile, in a replica's directory, holds the generation the
// replica runs under (decimal text). A replica that has never been rebuilt
// has none: generation 0.
const generationFile = "generation"

// ReadGeneration returns the generation stored in replica directory dir; 0
// when there is none.
func ReadGeneration(dir string) (uint32, error) {
	b, err := os.ReadFile(filepath.Join(dir, generationFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	g, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("read generation: %s holds %q: %w", filepath.Join(dir, generationFile), b, err)
	}
	return uint32(g), nil
}

// writeGeneration stores generation in replica directory dir atomically: a
// crash leaves the old generation or the new one, never a torn file. The
// file is written and synced under a temporary name, renamed into place, and
// the directory synced so the rename is durable.
func writeGeneration(dir string, generation uint32) error {
	if err := writeFileSync(dir, generationFile, fmt.Sprintf("%d\n", generation)); err != nil {
		return fmt.Errorf("write generation %d: %w", generation, err)
	}
	return nil
}

// identityFile, in a replica's directory, names the cluster and replica
// the directory belongs to ("cluster 1 replica 0"), written when the
// replica first starts there.
const identityFile = "identity"

// checkIdentity refuses a directory that belongs to another cluster or
// replica (a configuration pointing at the wrong data would otherwise
// start dragonboat over a state machine it never fed). A directory without
// the file gets it once the replica's Raft node has started there
// (recordIdentity): a directory written before the file existed could
// belong to anyone, and dragonboat is the judge of that first start.
func checkIdentity(cfg Config) error {
	want := fmt.Sprintf("cluster %d replica %d", cfg.ClusterID, cfg.ID)
	path := filepath.Join(cfg.Dir, identityFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if got := strings.TrimSpace(string(b)); got != want {
			return fmt.Errorf("replica %d: directory %s holds %s's data, and this replica is %s of the configuration: "+
				"check deployment.cluster_id, instance_id and database.base_path", cfg.ID, cfg.Dir, got, want)
		}
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return nil
	}
	return fmt.Errorf("replica %d: read %s: %w", cfg.ID, path, err)
}

// recordIdentity writes the identity file of a replica whose Raft node
// started, if it has none.
func recordIdentity(cfg Config) error {
	if _, err := os.Stat(filepath.Join(cfg.Dir, identityFile)); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := writeFileSync(cfg.Dir, identityFile, fmt.Sprintf("cluster %d replica %d\n", cfg.ClusterID, cfg.ID)); err != nil {
		return fmt.Errorf("replica %d: record identity: %w", cfg.ID, err)
	}
	return nil
}

// writeFileSync writes name in dir atomically and durably: under a
// temporary name, synced, renamed into place, the directory synced.
func writeFileSync(dir, name, data string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// joinedFile, in a replica's directory, marks a replica that joined a
// running cluster (it was added to the membership) rather than being one
// of its initial members: dragonboat must be told the same on every start.
const joinedFile = "joined"

// disk is what prepareDisk decided: the generation the replica starts
// under, and whether it joins a running cluster (rather than being one of
// its initial members).
type disk struct {
	generation uint32
	join       bool
}

// prepareDisk decides the generation the replica starts under and whether
// it joins, and for a rebuild (WipeRaftLog) clears its old state. It does
// disk I/O: the replica runs it on its start goroutine.
//
// A replica that has Raft state starts as it did the first time: under
// its stored generation, joining when it joined then (a later generation,
// or the joined file). One that has none and is told to Join records the
// generation it was added under and the joined file first.
//
// A rebuild deletes the data, then the Raft log, then records the new
// generation, in that order because dragonboat panics on a Raft node with
// no log whose on-disk state machine is not empty. A crash part way leaves
// the old generation,
// whose node the group's membership no longer holds: restarted as it is,
// the replica replays what log it has left into empty data and runs as a
// removed node that no leader replicates to and no member votes for, until
// it is rebuilt again. Recording the generation first would leave a new,
// log-less node beside old data.
func prepareDisk(cfg Config) (disk, error) {
	if err := checkIdentity(cfg); err != nil {
		return disk{}, err
	}
	stored, err := ReadGeneration(cfg.Dir)
	if err != nil {
		return disk{}, fmt.Errorf("replica %d: %w", cfg.ID, err)
	}
	joined, err := exists(filepath.Join(cfg.Dir, joinedFile))
	if err != nil {
		return disk{}, fmt.Errorf("replica %d: %w", cfg.ID, err)
	}
	if !cfg.WipeRaftLog {
		hasState, err := exists(cfg.raftDir())
		if err != nil {
			return disk{}, fmt.Errorf("replica %d: %w", cfg.ID, err)
		}
		if !cfg.Join || hasState || joined {
			return disk{generation: stored, join: joined || stored > 0}, nil
		}
		if stored > cfg.Generation {
			return disk{}, fmt.Errorf("replica %d: directory %s was generation %d, above the generation %d it is to join as", cfg.ID, cfg.Dir, stored, cfg.Generation)
		}
		if err := writeGeneration(cfg.Dir, cfg.Generation); err != nil {
			return disk{}, fmt.Errorf("replica %d: %w", cfg.ID, err)
		}
		if err := writeFileSync(cfg.Dir, joinedFile, "joined a running cluster\n"); err != nil {
			return disk{}, fmt.Errorf("replica %d: record the join: %w", cfg.ID, err)
		}
		return disk{generation: cfg.Generation, join: true}, nil
	}
	if cfg.Generation <= stored {
		return disk{}, fmt.Errorf("replica %d: rebuilding needs a generation above the stored %d, got %d (nothing was deleted)", cfg.ID, stored, cfg.Generation)
	}
	if err := os.RemoveAll(cfg.dataDir()); err != nil {
		return disk{}, fmt.Errorf("replica %d: wipe data with the raft log: %w", cfg.ID, err)
	}
	if err := os.RemoveAll(cfg.raftDir()); err != nil {
		return disk{}, fmt.Errorf("replica %d: wipe raft log: %w", cfg.ID, err)
	}
	if err := writeGeneration(cfg.Dir, cfg.Generation); err != nil {
		return disk{}, fmt.Errorf("replica %d: %w", cfg.ID, err)
	}
	return disk{generation: cfg.Generation, join: true}, nil
}

// HasState reports whether replica directory dir holds a replica that
// started there before (it has a Raft directory).
func HasState(dir string) (bool, error) { return exists(Config{Dir: dir}.raftDir()) }

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}
