package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
)

func newSnapshotCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save a running group's data to a file, check a file, restore it into a new group",
		Long: `Backups (etcdctl's snapshot commands):

  kvctl snapshot save FILE      copy one replica's data, consistent at one applied index
  kvctl snapshot status FILE    check a file and describe it
  kvctl snapshot restore FILE   write a file's data into a new, empty group

A backup holds the key-value data of every column family; not sessions,
versions or membership. Restored data gets new versions.`,
	}
	cmd.AddCommand(newSnapshotSaveCommand(g), newSnapshotStatusCommand(g), newSnapshotRestoreCommand(g))
	return cmd
}

const snapshotSaveLong = `Copy the data of one replica, consistent at one applied index, into FILE.

The first endpoint that answers serves the whole backup: after a
linearizable read barrier (the backup holds every write acknowledged before
the command started) its replica pins a view of its data and kvctl reads it
page by page; writes go on meanwhile. kvctl hashes what it read and checks it
against the replica's digests of the view (the digests kvctl status shows),
then writes FILE (through FILE.part, renamed when complete). --timeout bounds
each page, not the whole backup. An admin operation (server.admin): it pins
the replica's old data while it lasts and scans it twice.

Prints, for example:
  saved 200 keys in 1 column family from replica 0 at applied index 404: digest b94bca530044
JSON (-w json): {"file": "...", "applied_index": N, "replica": R, "keys": N,
"column_families": [...], "digest": "<hex>"}`

func newSnapshotSaveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "save FILE",
		Short: "Save a consistent copy of the data to FILE",
		Long:  snapshotSaveLong,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			ts, closeAll, err := g.transports()
			if err != nil {
				return err
			}
			defer closeAll()
			var last error
			for i, tr := range ts {
				info, err := saveTo(cmd.Context(), file, tr, g.timeout)
				if err == nil {
					return g.printBackup("saved", file, info)
				}
				last = err
				if !messages.IsRetryable(err) || i == len(ts)-1 {
					break
				}
			}
			return last
		},
	}
}

// saveTo saves a backup through t into file, through file.part.
func saveTo(ctx context.Context, file string, t kv.Transport, pageTimeout time.Duration) (*kvclient.BackupInfo, error) {
	part := file + ".part"
	f, err := os.Create(part)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	defer os.Remove(part) // after the rename, there is none
	info, err := kvclient.SaveBackup(ctx, kv.NewClient(t, pageTimeout).Do, f, pageTimeout)
	if errors.Is(err, kvclient.ErrBackupMismatch) {
		err = mismatchError{err}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Rename(part, file); err != nil {
		return nil, messages.Errorf(messages.StatusCode_INTERNAL, "%v", err)
	}
	if d, err := os.Open(filepath.Dir(file)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return info, nil
}

// backupJSON is the JSON of snapshot save, status and restore.
type backupJSON struct {
	File           string   `json:"file"`
	AppliedIndex   uint64   `json:"applied_index"`
	Replica        uint32   `json:"replica"`
	Keys           uint64   `json:"keys"`
	ColumnFamilies []string `json:"column_families"`
	Digest         string   `json:"digest"`
	Created        string   `json:"created,omitempty"`
	// Restored: the version of the restore's last write, and the replicas
	// whose digests were compared with the file's.
	Version  uint64   `json:"version,omitempty"`
	Replicas []uint32 `json:"replicas,omitempty"`
}

func (g *globals) printBackup(verb, file string, info *kvclient.BackupInfo) error {
	h, tr := info.Header, info.Trailer
	if g.json() {
		return g.printJSON(backupJSON{File: file, AppliedIndex: h.GetAppliedIndex(), Replica: h.GetReplicaId(), Keys: tr.GetKeys(),
			ColumnFamilies: h.GetColumnFamilies(), Digest: hex.EncodeToString(tr.GetDigest()),
			Created: time.Unix(0, h.GetCreatedUnixNanos()).UTC().Format(time.RFC3339)})
	}
	return g.printf("%s %d keys in %s from replica %d at applied index %d: digest %s\n",
		verb, tr.GetKeys(), families(len(h.GetColumnFamilies())), h.GetReplicaId(), h.GetAppliedIndex(), shortHex(tr.GetDigest()))
}

// families is "1 column family" or "N column families".
func families(n int) string {
	if n == 1 {
		return "1 column family"
	}
	return fmt.Sprintf("%d column families", n)
}

func newSnapshotStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status FILE",
		Short: "Check a backup file and describe it",
		Long: `Read FILE, check its checksum and that its entries hash to the digests it
records, and describe it:
  backup of 200 keys in 1 column family from replica 0 at applied index 404: digest b94bca530044
It contacts no server. A damaged file fails with INVALID_ARGUMENT (exit 2).
JSON (-w json): as snapshot save's, with "created".`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			info, err := readBackupFile(args[0], nil)
			if err != nil {
				return err
			}
			return g.printBackup("backup of", args[0], info)
		},
	}
}

// readBackupFile reads and checks a backup file (kvclient.ReadBackup).
func readBackupFile(file string, each func(cf string, k, v []byte) error) (*kvclient.BackupInfo, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	defer f.Close()
	info, err := kvclient.ReadBackup(f, each)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return info, nil
}

const snapshotRestoreLong = `Write the data of backup FILE into a new group through its API: every
entry, as atomic commits of up to 1,000 entries (or 4 MiB), under one
session. The file is checked first (as snapshot status does); the group
must be empty in every column family the file holds (those families must
exist: name them in the new group's config) and nothing else may write to
it meanwhile. Then kvctl waits (up to --wait) for the replicas to apply the
last commit and compares their digests with the file's: each family's
digest must be the file's (the digests hash keys and values only, not
versions). --timeout bounds each commit.

Prints, for example:
  restored 200 keys in 1 column family at version 7: digest b94bca530044, the same on replicas 0, 1, 2
and fails with exit 6 when a replica's digests differ from the file's.
JSON (-w json): as snapshot save's, with "version" and "replicas".`

// Bounds of one restore commit (below the server's limits of 1,000
// operations and 8 MiB).
const (
	restoreCommitOps   = 1000
	restoreCommitBytes = 4 << 20
)

func newSnapshotRestoreCommand(g *globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Write a backup's data into a new, empty group",
		Long:  snapshotRestoreLong,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			info, err := readBackupFile(file, nil)
			if err != nil {
				return err
			}
			ts, closeAll, err := g.transports()
			if err != nil {
				return err
			}
			defer closeAll()
			client := kv.NewClient(kvclient.NewEndpoints(ts...), g.timeout)
			call := func(req *messages.AtomicCommitRequest) (uint64, error) {
				ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
				defer cancel()
				resp, err := kv.Call[*messages.AtomicCommitResponse](ctx, client.Do, req)
				if err != nil {
					return 0, gaveUp(ctx, err)
				}
				return resp.GetVersion(), resp.GetStatus().Err()
			}
			for _, cf := range info.Header.GetColumnFamilies() {
				ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
				resp, err := kv.Call[*messages.ListKeysResponse](ctx, client.Do, &messages.ListKeysRequest{ColumnFamily: cf, Limit: 1})
				cancel()
				if err == nil {
					err = resp.GetStatus().Err()
				}
				if err != nil {
					return err
				}
				if len(resp.GetKeys()) > 0 {
					return usageErr("the group is not empty: family %s holds %q; restore into a new group", cf, resp.GetKeys()[0])
				}
			}
			commit := &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{}}
			size := 0
			var version uint64
			flush := func() error {
				if len(commit.GetCommit().GetMutations()) == 0 {
					return nil
				}
				v, err := call(commit)
				if err != nil {
					return err
				}
				version, size = v, 0
				commit = &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{}}
				return nil
			}
			if _, err := readBackupFile(file, func(cf string, k, v []byte) error {
				if len(commit.Commit.Mutations) == restoreCommitOps || size+len(k)+len(v) > restoreCommitBytes {
					if err := flush(); err != nil {
						return err
					}
				}
				commit.Commit.Mutations = append(commit.Commit.Mutations, &messages.Mutation{Type: messages.MutationType_SET,
					ColumnFamily: cf, Key: bytes.Clone(k), Value: bytes.Clone(v)})
				size += len(k) + len(v)
				return nil
			}); err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
			replicas, err := g.compareRestored(cmd, info, version, wait)
			if err != nil {
				return err
			}
			h, tr := info.Header, info.Trailer
			if g.json() {
				return g.printJSON(backupJSON{File: file, AppliedIndex: h.GetAppliedIndex(), Replica: h.GetReplicaId(), Keys: tr.GetKeys(),
					ColumnFamilies: h.GetColumnFamilies(), Digest: hex.EncodeToString(tr.GetDigest()), Version: version, Replicas: replicas})
			}
			ids := make([]string, len(replicas))
			for i, id := range replicas {
				ids[i] = fmt.Sprint(id)
			}
			return g.printf("restored %d keys in %s at version %d: digest %s, the same on replicas %s\n",
				tr.GetKeys(), families(len(h.GetColumnFamilies())), version, shortHex(tr.GetDigest()), strings.Join(ids, ", "))
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the replicas to apply the restore before comparing digests")
	return cmd
}

// compareRestored waits until every running replica the endpoints report
// has applied version, then compares each one's digests of the file's
// families with the file's; it returns the replicas compared.
func (g *globals) compareRestored(cmd *cobra.Command, info *kvclient.BackupInfo, version uint64, wait time.Duration) ([]uint32, error) {
	deadline := time.Now().Add(wait)
	want := map[string][]byte{}
	for _, d := range info.Trailer.GetDigests() {
		want[d.GetColumnFamily()] = d.GetSha256()
	}
	for {
		st, err := g.status(cmd, true)
		if err != nil {
			return nil, err
		}
		var ids []uint32
		behind := false
		for _, r := range st.GetReplicas() {
			if !r.GetRunning() {
				continue
			}
			if r.GetAppliedIndex() < version || len(r.GetDigests()) == 0 {
				behind = true
				continue
			}
			for _, d := range r.GetDigests() {
				if w, ok := want[d.GetColumnFamily()]; ok && !bytes.Equal(w, d.GetSha256()) {
					return nil, mismatchError{messages.Errorf(messages.StatusCode_INTERNAL,
						"restore: replica %d's family %s has digest %s at applied index %d, the file's is %s (did something else write to the group?)",
						r.GetReplicaId(), d.GetColumnFamily(), shortHex(d.GetSha256()), r.GetAppliedIndex(), shortHex(w))}
				}
			}
			ids = append(ids, r.GetReplicaId())
		}
		if !behind && len(ids) > 0 {
			slices.Sort(ids)
			return ids, nil
		}
		if time.Now().After(deadline) {
			return nil, messages.Errorf(messages.StatusCode_UNAVAILABLE, "restore: written up to version %d, but not every running replica applied it within --wait %v", version, wait)
		}
		select {
		case <-cmd.Context().Done():
			return nil, messages.Errorf(messages.StatusCode_CANCELLED, "%v", cmd.Context().Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
