package kv

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// DefaultColumnFamily is the column family used when none is named.
const DefaultColumnFamily = "default"

// Database is actorkv's key-value API, the Go form of the original plan's
// KvDatabase. Two implementations stand behind it: the standalone RocksDB
// Engine of this package, and the replicated group's facade (actors/).
// A program cannot tell them apart except by speed and survival; the
// conformance suite (storage/conformance) holds both to this contract.
//
// Contract, for every method:
//   - Safe for concurrent use by many goroutines.
//   - Keys are non-empty and at most Limits.MaxKeySize bytes; values at most
//     Limits.MaxValueSize. Bad input fails with an error wrapping a sentinel of
//     messages (ErrInvalidArgument, ErrTooLarge, ErrUnknownColumnFamily) and
//     changes nothing, on every replica.
//   - WithColumnFamily selects the column family; the default is "default".
//     Column families are fixed by configuration.
//   - Every committed write gets a version above that of every write
//     acknowledged before it was sent; writes committed together (one log
//     entry, gathered by group commit) share one. Versions survive
//     restarts. A write returns its commit version once it is durable
//     (replicated: on a Raft majority and applied by the answering replica).
//   - Errors wrap exactly one sentinel of messages; messages.IsRetryable says
//     whether trying again can help. After ErrTimeout the write may still
//     commit: retry it with the same WithRequestID and it is applied at most
//     once, answering with the first outcome.
//   - A request id names a session that OpenSession opened. A write under a
//     session the database does not know — never opened, or forgotten
//     (Limits.MaxSessions, Limits.SessionTTL) — fails with
//     ErrSessionExpired and is not applied; an earlier attempt's outcome is
//     then unknown, and the id must not be used again.
//   - Returned slices belong to the caller; arguments are not retained.
type Database interface {
	// Get returns the value of key and whether it exists.
	Get(ctx context.Context, key []byte, opts ...Option) (value []byte, found bool, err error)
	// Put sets key to value and returns the commit version.
	Put(ctx context.Context, key, value []byte, opts ...Option) (version uint64, err error)
	// Delete removes key (a missing key is not an error) and returns the commit
	// version.
	Delete(ctx context.Context, key []byte, opts ...Option) (version uint64, err error)
	// ClearRange removes every key in [begin, end) and returns the commit
	// version. An empty end means "to the end of the key space".
	ClearRange(ctx context.Context, begin, end []byte, opts ...Option) (version uint64, err error)
	// ListKeys returns up to limit keys starting with prefix, in ascending
	// order. limit 0 means Limits.MaxRangeLimit; a negative limit or one over
	// Limits.MaxRangeLimit is ErrInvalidArgument.
	ListKeys(ctx context.Context, prefix []byte, limit int, opts ...Option) ([][]byte, error)
	// GetRange returns up to limit entries of [begin, end), ascending or, with
	// reverse, descending (the last keys of the range first). Empty begin or
	// end leave that side open; begin > end is ErrInvalidArgument.
	GetRange(ctx context.Context, begin, end []byte, limit int, reverse bool, opts ...Option) ([]*messages.KeyValue, error)
	// AtomicCommit applies the commit's mutations all or nothing and returns
	// the commit version. It fails with ErrConflict, changing nothing, when a
	// write that committed after ReadVersion intersects a read conflict range;
	// with ErrTransactionTooOld when ReadVersion has left the retention window.
	// A commit without read conflict ranges never conflicts.
	AtomicCommit(ctx context.Context, commit *messages.AtomicCommit, opts ...Option) (version uint64, err error)
	// GetReadVersion returns the latest committed version, linearizably.
	GetReadVersion(ctx context.Context) (version uint64, err error)
	// SnapshotRead returns the value of key as of version: the state right
	// after the write committed at version (and before the next one).
	// A version older than the retention window is ErrTransactionTooOld; one
	// beyond the latest committed version is ErrInvalidArgument.
	SnapshotRead(ctx context.Context, key []byte, version uint64, opts ...Option) (value []byte, found bool, err error)
	// SnapshotGetRange is GetRange as of version, with SnapshotRead's rules.
	SnapshotGetRange(ctx context.Context, begin, end []byte, limit int, reverse bool, version uint64, opts ...Option) ([]*messages.KeyValue, error)
	// SetFaultInjection replaces the injected storage faults (off by default)
	// of the replicas named by WithReplicas (all when none is named; the
	// standalone engine has one). In the replicated group a write that fails
	// in storage stops its replica (fail-stop); the others carry on.
	SetFaultInjection(ctx context.Context, faults *messages.FaultInjection, opts ...Option) error
	// OpenSession opens a client session and returns its client id, for the
	// request ids of WithRequestID (seq from 1). It is not deduplicated: a
	// retry opens another session, and a session nobody uses is forgotten.
	OpenSession(ctx context.Context) (clientID uint64, err error)
	// Close releases every resource. It is idempotent; every method called
	// after it fails with ErrUnavailable.
	Close() error
}

// Options are the optional arguments of Database methods.
type Options struct {
	// ColumnFamily is the column family; "" means DefaultColumnFamily.
	ColumnFamily string
	// Consistency selects how reads are served (replicated mode).
	Consistency messages.Consistency
	// RequestID identifies a write for exactly-once retries; nil lets the
	// implementation assign one.
	RequestID *messages.RequestId
	// Replicas names the replicas SetFaultInjection configures.
	Replicas []uint32
}

// Option sets one of Options.
type Option func(*Options)

// WithColumnFamily selects a column family.
func WithColumnFamily(cf string) Option { return func(o *Options) { o.ColumnFamily = cf } }

// WithConsistency selects a read's consistency level.
func WithConsistency(c messages.Consistency) Option {
	return func(o *Options) { o.Consistency = c }
}

// WithRequestID gives a write its request id, so that a retry of it is
// applied at most once.
func WithRequestID(id *messages.RequestId) Option { return func(o *Options) { o.RequestID = id } }

// WithReplicas names the replicas of SetFaultInjection.
func WithReplicas(ids ...uint32) Option { return func(o *Options) { o.Replicas = ids } }

// ApplyOptions folds opts into an Options value.
func ApplyOptions(opts []Option) Options {
	var o Options
	for _, f := range opts {
		f(&o)
	}
	if o.ColumnFamily == "" {
		o.ColumnFamily = DefaultColumnFamily
	}
	return o
}

// DefaultFamily returns commit with cf filled in where a mutation or conflict
// range names no column family (a copy when anything changes).
func DefaultFamily(commit *messages.AtomicCommit, cf string) *messages.AtomicCommit {
	if cf == "" || cf == DefaultColumnFamily {
		return commit
	}
	c := proto.Clone(commit).(*messages.AtomicCommit)
	for _, m := range c.Mutations {
		if m.ColumnFamily == "" {
			m.ColumnFamily = cf
		}
	}
	for _, rs := range [][]*messages.KeyRange{c.ReadConflictRanges, c.WriteConflictRanges} {
		for _, r := range rs {
			if r.ColumnFamily == "" {
				r.ColumnFamily = cf
			}
		}
	}
	return c
}
