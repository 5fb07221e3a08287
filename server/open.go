package server

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// Backend is the Database a configuration describes, with what it needs to
// report status and shut down.
type Backend struct {
	// DB is the database: the standalone engine or the group's facade.
	DB storage.Database
	// Group is the replicated group (nil in standalone mode).
	Group *actors.Group
	// Engine is the standalone engine (nil in replicated mode).
	Engine *storage.Engine
	mode   string
}

// Open builds the Database cfg describes: a standalone RocksDB engine, or a
// replicated group (all replicas in this process, or this process's replica
// of a cluster). In replicated mode it returns at once; Ready tells when a
// leader is known.
func Open(cfg Config, log *slog.Logger) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.Deployment.Mode == ModeStandalone {
		e, err := storage.Open(cfg.StorageConfig(filepath.Join(cfg.Database.BasePath, "standalone")))
		if err != nil {
			return nil, err
		}
		return &Backend{DB: e, Engine: e, mode: ModeStandalone}, nil
	}
	gc := actors.DefaultConfig(cfg.Database.BasePath)
	gc.ClusterID = cfg.Deployment.ClusterID
	gc.Replicas = len(cfg.Deployment.ReplicaEndpoints)
	gc.InProcess = cfg.Deployment.InProcess
	if !gc.InProcess {
		gc.Addresses = cfg.Deployment.ReplicaEndpoints
	}
	gc.Local = cfg.Deployment.InstanceID
	gc.Storage = cfg.StorageConfig("")
	gc.RTT = cfg.Raft.RTT.Duration
	gc.ElectionRTT = cfg.Raft.ElectionRTT
	gc.HeartbeatRTT = cfg.Raft.HeartbeatRTT
	gc.SnapshotEntries = cfg.Raft.SnapshotEntries
	gc.CompactionOverhead = cfg.Raft.CompactionOverhead
	gc.ProposalTimeout = cfg.Raft.ProposalTimeout.Duration
	gc.Logger = log
	g, err := actors.Start(gc)
	if err != nil {
		return nil, err
	}
	return &Backend{DB: g.Client(), Group: g, mode: ModeReplicated}, nil
}

// Mode is "standalone" or "replicated".
func (b *Backend) Mode() string { return b.mode }

// Ready reports whether the backend serves: always for the standalone
// engine; for a group, once a leader is known and this process's replicas
// are up.
func (b *Backend) Ready(ctx context.Context) error {
	if b.Group == nil {
		return nil
	}
	return b.Group.WaitReady(ctx)
}

// Status describes the backend: every replica with its applied index (and
// digests on request), or the standalone engine as replica 0.
func (b *Backend) Status(ctx context.Context, withDigests bool) (*messages.StatusResponse, error) {
	if b.Group != nil {
		return b.Group.Status(ctx, withDigests)
	}
	st := &messages.ReplicaStatus{ReplicaId: 0, Running: true, IsLeader: true, HasLeader: true, AppliedIndex: b.Engine.AppliedIndex()}
	if withDigests {
		d, err := b.Engine.Digest(ctx)
		if err != nil {
			return nil, err
		}
		st.AppliedIndex, st.Digests, st.Digest = d.AppliedIndex, d.Families, d.Combined
	}
	return &messages.StatusResponse{Status: messages.StatusOf(nil), Mode: ModeStandalone, Replicas: []*messages.ReplicaStatus{st}, HasLeader: true}, nil
}

// Close shuts the backend down: the group stops every replica and closes
// their storage; the engine closes.
func (b *Backend) Close() error {
	if b.Group != nil {
		_ = b.DB.Close()
		b.Group.Stop()
		return nil
	}
	return b.Engine.Close()
}
