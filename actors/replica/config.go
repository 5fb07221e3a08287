package replica

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/actorkv/actorkv/actors/executor"
	"github.com/actorkv/actorkv/storage"
)

// Config configures one replica.
type Config struct {
	// ID is the replica id, from 0 and below MaxReplicas; its dragonboat
	// node id is NodeID(ID, generation), the generation stored in
	// Dir/generation.
	ID uint32
	// ClusterID is the Raft cluster (group) id shared by the replicas.
	ClusterID uint64
	// Dir holds the replica: RocksDB in Dir/data, the Raft log in Dir/raft,
	// its generation in Dir/generation (see ReadGeneration).
	Dir string
	// Members maps every replica id of the group to its Raft address. A
	// replica of generation 0 starts a new group with these as the initial
	// members (generation-0 node ids); a replica of a later generation joins
	// the group it was added to, and ignores them.
	Members map[uint32]string
	// Listen, when set, is the host:port the TCP transport binds instead
	// of Members[ID] (dragonboat's ListenAddress): "0.0.0.0:6001" where the
	// replica's Raft address is a name that resolves to an address which
	// may change (a container on a network it leaves and rejoins).
	Listen string
	// Network is the in-process transport; nil means dragonboat's TCP
	// transport on the member addresses.
	Network *Network
	// TLS, when set, makes the Raft transport mutual TLS (not with
	// Network).
	TLS *TLSFiles
	// Storage configures the engine; its Dir is set from Dir.
	Storage storage.Config
	// Raft tunes consensus.
	Raft RaftConfig
	// ApplyTimeout bounds one executor ApplyBatch; beyond it the replica
	// fail-stops.
	ApplyTimeout time.Duration
	// ReadWorkers is the number of goroutines that serve reads.
	ReadWorkers int
	// MaxInFlight bounds the proposals and reads waiting for an answer.
	MaxInFlight int
	// WipeRaftLog rebuilds the replica from scratch as a new Raft node:
	// before starting, it deletes its Raft log and its data (dragonboat
	// refuses a new node whose state machine is not empty), records
	// Generation in Dir/generation, and joins the group as node
	// NodeID(ID, Generation), catching up from the leader (through a
	// snapshot once the leader's log is compacted).
	//
	// Raft forbids a node that lost its log to come back under its old id
	// (the leader would still hold its old progress and commit beyond its
	// empty log), so the group's membership must already have replaced the
	// replica's old node with the new one (*messages.ReplaceMember, which
	// the supervisor sends a running peer first), and Generation must be
	// above the stored one: otherwise the replica refuses to start and
	// deletes nothing.
	WipeRaftLog bool
	// Join starts a replica that has no state yet as a member added to a
	// running cluster (kvctl member add or replace) rather than as one of
	// its initial members: as node NodeID(ID, Generation), which must be
	// the node the membership holds for it; it catches up from the leader.
	// Once it started, the replica restarts as it first started, whatever
	// Join says.
	Join bool
	// Generation is the generation the replica is rebuilt under, with
	// WipeRaftLog, or joins under, with Join; otherwise the replica runs
	// under the generation stored in Dir/generation and this field is
	// ignored.
	Generation uint32
	// Observer, if set, sees every applied batch (tests).
	Observer executor.Observer
	// Logger receives the replica's logs.
	Logger *slog.Logger
}

// nodeIDStride separates the node ids of successive generations: replica id
// of generation g is node g*nodeIDStride + id + 1, so the replica id (and the
// generation) can be read back from any node id.
const nodeIDStride = 1 << 16

// MaxReplicas bounds replica ids (they are below it).
const MaxReplicas = nodeIDStride

// NodeID is the dragonboat node id of replica id in generation. A replica
// starts in generation 0 and moves to the next one each time it is rebuilt
// from scratch (WipeRaftLog): Raft never reuses the id of a removed node.
func NodeID(id, generation uint32) uint64 {
	return uint64(generation)*nodeIDStride + uint64(id) + 1
}

// ReplicaID is the replica id of dragonboat node id, whatever its
// generation.
func ReplicaID(node uint64) uint32 { return uint32((node - 1) % nodeIDStride) }

// GenerationOf is the generation of dragonboat node id.
func GenerationOf(node uint64) uint32 { return uint32((node - 1) / nodeIDStride) }

// TLSFiles are the PEM files of mutual TLS: the CA that signs every
// certificate, and this process's certificate and key.
type TLSFiles struct {
	CA, Cert, Key string
}

// logger is the replica's Logger, or slog's default.
func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

func (c Config) dataDir() string { return filepath.Join(c.Dir, "data") }
func (c Config) raftDir() string { return filepath.Join(c.Dir, "raft") }

func (c Config) validate() error {
	if c.Dir == "" {
		return fmt.Errorf("replica %d: dir is empty", c.ID)
	}
	if c.ID >= MaxReplicas {
		return fmt.Errorf("replica %d: replica ids must be below %d", c.ID, MaxReplicas)
	}
	if c.WipeRaftLog && c.Generation == 0 {
		return fmt.Errorf("replica %d: wipe_raft_log needs a new generation (above 0): the group's membership must first replace the replica's node", c.ID)
	}
	if _, ok := c.Members[c.ID]; !ok {
		return fmt.Errorf("replica %d: not among the members %v", c.ID, c.Members)
	}
	if err := c.Raft.Validate(); err != nil {
		return fmt.Errorf("replica %d: %w", c.ID, err)
	}
	if c.ApplyTimeout <= 0 {
		return fmt.Errorf("replica %d: the apply timeout must be positive", c.ID)
	}
	if c.ReadWorkers <= 0 || c.MaxInFlight <= 0 {
		return fmt.Errorf("replica %d: read_workers and max_in_flight must be positive", c.ID)
	}
	return nil
}
