package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/actors/replica"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// Backend is what a configuration describes: the replicated group or the
// standalone service, as a kv.Transport (one attempt of any request of the
// KV API), with what it needs to report status and shut down.
type Backend struct {
	// Transport serves the requests: the group's router, or the standalone
	// service.
	Transport kv.Transport
	// DB is the Go API over it (retries, this process's session).
	DB *kv.Client
	// Group is the replicated group (nil in standalone mode).
	Group *actors.Group
	// Standalone is the standalone service (nil in replicated mode).
	Standalone *storage.Standalone
	mode       string
}

// ServerOwner is the identity of the server's own session, which stamps
// writes that come without a request id: not a certificate subject (those
// read "CN=..."), and not anonymous (""), so no caller can use its ids.
const ServerOwner = "kvserver"

// Open builds what cfg describes: a standalone service, or a replicated
// group (all replicas in this process, or this process's replica of a
// cluster). In replicated mode it returns at once; Ready tells when a
// leader is known.
func Open(cfg Config, log *slog.Logger) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	attempt := cfg.Raft.ProposalTimeout
	if cfg.Deployment.Mode == ModeStandalone {
		s, err := storage.OpenStandalone(cfg.StorageConfig(filepath.Join(cfg.Database.BasePath, "standalone")))
		if err != nil {
			return nil, err
		}
		return &Backend{Transport: s, DB: kv.NewClient(s, attempt).WithOwner(ServerOwner), Standalone: s, mode: ModeStandalone}, nil
	}
	gc := actors.DefaultConfig(cfg.Database.BasePath)
	gc.ClusterID = cfg.Deployment.ClusterID
	gc.Replicas = max(1, len(cfg.Deployment.ReplicaEndpoints))
	gc.InProcess = cfg.Deployment.InProcess
	gc.Local = cfg.Deployment.InstanceID
	if !gc.InProcess {
		gc.Addresses = cfg.Deployment.ReplicaEndpoints
		gc.RaftAddress = cfg.Deployment.OwnRaftAddress()
		gc.RaftListen = cfg.Deployment.RaftListen
		if len(cfg.Deployment.Join) > 0 {
			dir := filepath.Join(cfg.Database.BasePath, fmt.Sprintf("replica-%d", gc.Local))
			started, err := replica.HasState(dir)
			switch {
			case err != nil:
				return nil, err
			case started: // it restarts as it first started
				gc.JoinNode, err = joinedNode(dir, gc.Local)
			default:
				log.Info("joining the cluster", "replica", gc.Local, "raft_address", gc.RaftAddress, "via", cfg.Deployment.Join)
				gc.JoinNode, err = joinNode(cfg.Deployment.Join, gc.Local, gc.RaftAddress, cfg.TLS)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if !gc.InProcess {
		gc.TLS = cfg.TLS.raftFiles()
	}
	gc.Storage = cfg.StorageConfig("")
	gc.Raft = cfg.Raft
	gc.Logger = log
	g, err := actors.Start(gc)
	if err != nil {
		return nil, err
	}
	t := g.ServingTransport()
	return &Backend{Transport: t, DB: kv.NewClient(t, gc.RequestTimeout).WithOwner(ServerOwner), Group: g, mode: ModeReplicated}, nil
}

// Mode is "standalone" or "replicated".
func (b *Backend) Mode() string { return b.mode }

// Ready reports whether the backend serves: always for the standalone
// service; for a group, once a leader is known and this process's replicas
// are up.
func (b *Backend) Ready(ctx context.Context) error {
	if b.Group == nil {
		return nil
	}
	return b.Group.WaitReady(ctx)
}

// Ended delivers why a replica of this process will not serve without an
// operator: it could not start, or it was removed from the membership
// (actors.ErrRemoved). A nil channel in standalone mode: the engine opens
// in Open or not at all.
func (b *Backend) Ended() <-chan error {
	if b.Group == nil {
		return nil
	}
	return b.Group.Ended()
}

// Status describes the backend: every replica with its applied index (and
// digests on request), or the standalone service as replica 0.
func (b *Backend) Status(ctx context.Context, withDigests bool) (*messages.StatusResponse, error) {
	return b.StatusOf(ctx, &messages.StatusRequest{WithDigests: withDigests})
}

// StatusOf describes the backend as req asks (digests, sizes).
func (b *Backend) StatusOf(ctx context.Context, req *messages.StatusRequest) (*messages.StatusResponse, error) {
	if b.Group != nil {
		return b.Group.StatusOf(ctx, req)
	}
	return b.Standalone.StatusOf(ctx, req)
}

// Close shuts the backend down: the group stops every replica and closes
// their storage; the standalone service closes its engine.
func (b *Backend) Close() error {
	_ = b.DB.Close()
	if b.Group != nil {
		b.Group.Stop()
		return nil
	}
	return b.Standalone.Close()
}
