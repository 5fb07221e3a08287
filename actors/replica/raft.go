package replica

import (
	"time"

	"github.com/lni/dragonboat/v3/config"

	"github.com/actorkv/actorkv/messages"
)

// RaftConfig is the one set of Raft settings: kvserver's [raft] section,
// the group's and every replica's. Every process of a cluster should have
// the same.
type RaftConfig struct {
	// RTT is the round trip time between replicas that Raft's timers are
	// counted in ("20ms"; at least 1ms).
	RTT time.Duration `toml:"rtt"`
	// ElectionRTT is the election timeout in RTTs (above twice
	// HeartbeatRTT): a follower that hears no leader for about that long
	// campaigns.
	ElectionRTT uint64 `toml:"election_rtt"`
	// HeartbeatRTT is the leader's heartbeat interval in RTTs.
	HeartbeatRTT uint64 `toml:"heartbeat_rtt"`
	// SnapshotEntries applied entries trigger a snapshot and log
	// compaction; CompactionOverhead entries are kept behind it, for
	// followers that lag a little.
	SnapshotEntries    uint64 `toml:"snapshot_entries"`
	CompactionOverhead uint64 `toml:"compaction_overhead"`
	// ProposalTimeout bounds one proposal or ReadIndex round ("5s").
	ProposalTimeout time.Duration `toml:"proposal_timeout"`
	// Group commit: a replica proposes a write at once while fewer than
	// MaxProposalsInFlight of its entries wait for an answer; the writes that
	// arrive meanwhile go, together, into its next entry, of at most
	// MaxEntryWrites writes and about MaxEntryBytes (a single larger write
	// goes alone).
	MaxProposalsInFlight int `toml:"max_proposals_in_flight"`
	MaxEntryWrites       int `toml:"max_entry_writes"`
	MaxEntryBytes        int `toml:"max_entry_bytes"`
}

// DefaultRaftConfig returns the defaults: elections after about half a
// second (25 × 20 ms), a snapshot every 100,000 entries.
func DefaultRaftConfig() RaftConfig {
	return RaftConfig{
		RTT:                20 * time.Millisecond,
		ElectionRTT:        25,
		HeartbeatRTT:       2,
		SnapshotEntries:    100_000,
		CompactionOverhead: 10_000,
		ProposalTimeout:    5 * time.Second,

		MaxProposalsInFlight: 4,
		MaxEntryWrites:       512,
		MaxEntryBytes:        1 << 20,
	}
}

// WithDefaults returns c with each zero field set to its default.
func (c RaftConfig) WithDefaults() RaftConfig {
	d := DefaultRaftConfig()
	for _, f := range []struct{ v, d *uint64 }{
		{&c.ElectionRTT, &d.ElectionRTT}, {&c.HeartbeatRTT, &d.HeartbeatRTT},
		{&c.SnapshotEntries, &d.SnapshotEntries}, {&c.CompactionOverhead, &d.CompactionOverhead},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	if c.RTT == 0 {
		c.RTT = d.RTT
	}
	if c.ProposalTimeout == 0 {
		c.ProposalTimeout = d.ProposalTimeout
	}
	for _, f := range []struct{ v, d *int }{
		{&c.MaxProposalsInFlight, &d.MaxProposalsInFlight}, {&c.MaxEntryWrites, &d.MaxEntryWrites}, {&c.MaxEntryBytes, &d.MaxEntryBytes},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	return c
}

// Validate names the first bad field by its TOML path.
func (c RaftConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "config: raft."+format, args...)
	}
	switch {
	case c.RTT < time.Millisecond:
		return bad("rtt: must be at least 1ms, got %v", c.RTT)
	case c.HeartbeatRTT == 0:
		return bad("heartbeat_rtt: must be positive")
	case c.ElectionRTT <= 2*c.HeartbeatRTT:
		return bad("election_rtt: must be above twice heartbeat_rtt (%d), got %d", c.HeartbeatRTT, c.ElectionRTT)
	case c.SnapshotEntries == 0:
		return bad("snapshot_entries: must be positive")
	case c.ProposalTimeout < c.RTT:
		return bad("proposal_timeout: must be at least one rtt (%v), got %v", c.RTT, c.ProposalTimeout)
	case c.MaxProposalsInFlight < 1:
		return bad("max_proposals_in_flight: must be positive, got %d", c.MaxProposalsInFlight)
	case c.MaxEntryWrites < 1:
		return bad("max_entry_writes: must be positive, got %d", c.MaxEntryWrites)
	case c.MaxEntryBytes < 1:
		return bad("max_entry_bytes: must be positive, got %d", c.MaxEntryBytes)
	}
	return nil
}

// ElectionTimeout is the election timeout (ElectionRTT RTTs).
func (c RaftConfig) ElectionTimeout() time.Duration { return c.RTT * time.Duration(c.ElectionRTT) }

// HeartbeatInterval is the leader's heartbeat interval (HeartbeatRTT RTTs).
func (c RaftConfig) HeartbeatInterval() time.Duration { return c.RTT * time.Duration(c.HeartbeatRTT) }

// Dragonboat is the Raft configuration of node nodeID of cluster
// clusterID, in dragonboat's terms (the NodeHost takes RTT).
func (c RaftConfig) Dragonboat(clusterID, nodeID uint64) config.Config {
	return config.Config{
		NodeID:             nodeID,
		ClusterID:          clusterID,
		ElectionRTT:        c.ElectionRTT,
		HeartbeatRTT:       c.HeartbeatRTT,
		CheckQuorum:        true,
		SnapshotEntries:    c.SnapshotEntries,
		CompactionOverhead: c.CompactionOverhead,
	}
}

// RTTMillisecond is RTT as dragonboat's NodeHost takes it.
func (c RaftConfig) RTTMillisecond() uint64 { return uint64(max(c.RTT.Milliseconds(), 1)) }
