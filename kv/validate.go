package kv

import (
	"bytes"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// Limits bound the input actorkv accepts (DESIGN.md, "Bad input").
type Limits struct {
	// MaxKeySize is the largest key, in bytes.
	MaxKeySize int `toml:"max_key_size"`
	// MaxValueSize is the largest value, in bytes.
	MaxValueSize int `toml:"max_value_size"`
	// MaxCommitOps is the most mutations in one atomic commit.
	MaxCommitOps int `toml:"max_commit_ops"`
	// MaxCommitBytes is the largest encoded atomic commit, in bytes.
	MaxCommitBytes int `toml:"max_commit_bytes"`
	// MaxRangeLimit is the largest range or list limit (and the default).
	MaxRangeLimit int `toml:"max_range_limit"`
	// MaxRangeBytes bounds the bytes of keys (and values) one range or list
	// read returns: a read whose entries would exceed it is TOO_LARGE. It
	// keeps a legal request — 10,000 values of 1 MiB — from making a reply
	// of gigabytes, which no gRPC message (64 MiB) carries.
	MaxRangeBytes int `toml:"max_range_bytes"`
	// MaxSessions is the most client sessions the state machine remembers:
	// opening one more forgets the least recently used, whose next write is
	// refused with SESSION_EXPIRED (never applied).
	MaxSessions int `toml:"max_sessions"`
	// SessionTTL forgets a session idle this long in log time (the
	// proposers' clocks, not a replica's); its next write is refused with
	// SESSION_EXPIRED.
	SessionTTL time.Duration `toml:"session_ttl"`
}

// MaxKeySizeCeiling caps Limits.MaxKeySize: the storage engine bounds the
// open end of a range just above it.
const MaxKeySizeCeiling = 1 << 16

// DefaultLimits returns the limits of DESIGN.md.
func DefaultLimits() Limits {
	return Limits{
		MaxKeySize:     10_000,
		MaxValueSize:   1 << 20,
		MaxCommitOps:   1_000,
		MaxCommitBytes: 8 << 20,
		MaxRangeLimit:  10_000,
		MaxRangeBytes:  32 << 20,
		MaxSessions:    100_000,
		SessionTTL:     10 * time.Minute,
	}
}

// SessionLimits is the session part of l, as an OpenSession carries it.
func (l Limits) SessionLimits() *messages.SessionLimits {
	return &messages.SessionLimits{MaxSessions: uint64(l.MaxSessions), TtlNanos: int64(l.SessionTTL)}
}

// Validate reports the first limit that is not positive.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max_key_size", l.MaxKeySize},
		{"max_value_size", l.MaxValueSize},
		{"max_commit_ops", l.MaxCommitOps},
		{"max_commit_bytes", l.MaxCommitBytes},
		{"max_range_limit", l.MaxRangeLimit},
		{"max_range_bytes", l.MaxRangeBytes},
		{"max_sessions", l.MaxSessions},
	} {
		if f.v <= 0 {
			return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "limits.%s must be positive, got %d", f.name, f.v)
		}
	}
	if l.SessionTTL <= 0 {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "limits.session_ttl must be positive, got %v", l.SessionTTL)
	}
	if l.MaxKeySize > MaxKeySizeCeiling {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "limits.max_key_size %d is over the engine's ceiling of %d", l.MaxKeySize, MaxKeySizeCeiling)
	}
	return nil
}

// Validator checks requests against the limits and the configured column
// families before anything is written or proposed. The standalone engine and
// the replicated router share it, so both reject the same input the same way.
type Validator struct {
	limits Limits
	cfs    map[string]bool
}

// NewValidator returns a Validator for limits and the column families cfs
// ("default" is always included).
func NewValidator(limits Limits, cfs []string) *Validator {
	v := &Validator{limits: limits, cfs: map[string]bool{DefaultColumnFamily: true}}
	for _, cf := range cfs {
		v.cfs[cf] = true
	}
	return v
}

// Limits returns the limits the validator enforces.
func (v *Validator) Limits() Limits { return v.limits }

func invalid(format string, args ...any) error {
	return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, format, args...)
}

// ColumnFamily checks that cf ("" meaning default) is configured.
func (v *Validator) ColumnFamily(cf string) error {
	if cf == "" || v.cfs[cf] {
		return nil
	}
	return messages.Errorf(messages.StatusCode_UNKNOWN_COLUMN_FAMILY, "column family %q is not configured", cf)
}

// Key checks a key: non-empty and at most MaxKeySize bytes.
func (v *Validator) Key(key []byte) error {
	if len(key) == 0 {
		return invalid("key is empty")
	}
	if len(key) > v.limits.MaxKeySize {
		return invalid("key is %d bytes, over the limit of %d", len(key), v.limits.MaxKeySize)
	}
	return nil
}

// Value checks a value's size.
func (v *Validator) Value(value []byte) error {
	if len(value) > v.limits.MaxValueSize {
		return messages.Errorf(messages.StatusCode_TOO_LARGE, "value is %d bytes, over the limit of %d", len(value), v.limits.MaxValueSize)
	}
	return nil
}

// Range checks the bounds of [begin, end): each may be empty (open), neither
// may exceed MaxKeySize, and begin may not follow a non-empty end.
func (v *Validator) Range(begin, end []byte) error {
	if len(begin) > v.limits.MaxKeySize || len(end) > v.limits.MaxKeySize {
		return invalid("range bound is over the key limit of %d bytes", v.limits.MaxKeySize)
	}
	if len(end) > 0 && bytes.Compare(begin, end) > 0 {
		return invalid("range begin %q is after its end %q", begin, end)
	}
	return nil
}

// Limit checks a range or list limit and returns the effective one (0 means
// MaxRangeLimit).
func (v *Validator) Limit(limit int) (int, error) {
	if limit < 0 {
		return 0, invalid("limit %d is negative", limit)
	}
	if limit > v.limits.MaxRangeLimit {
		return 0, invalid("limit %d is over the maximum of %d", limit, v.limits.MaxRangeLimit)
	}
	if limit == 0 {
		return v.limits.MaxRangeLimit, nil
	}
	return limit, nil
}

// Mutation checks one mutation.
func (v *Validator) Mutation(m *messages.Mutation) error {
	if m == nil {
		return invalid("mutation is missing")
	}
	if err := v.ColumnFamily(m.GetColumnFamily()); err != nil {
		return err
	}
	switch m.GetType() {
	case messages.MutationType_SET:
		if err := v.Key(m.GetKey()); err != nil {
			return err
		}
		return v.Value(m.GetValue())
	case messages.MutationType_DELETE:
		return v.Key(m.GetKey())
	case messages.MutationType_CLEAR_RANGE:
		return v.Range(m.GetKey(), m.GetEnd())
	default:
		return invalid("mutation type %v is not SET, DELETE or CLEAR_RANGE", m.GetType())
	}
}

// KeyRange checks a conflict range.
func (v *Validator) KeyRange(r *messages.KeyRange) error {
	if r == nil {
		return invalid("key range is missing")
	}
	if err := v.ColumnFamily(r.GetColumnFamily()); err != nil {
		return err
	}
	return v.Range(r.GetBegin(), r.GetEnd())
}

// AtomicCommit checks an atomic commit: its size, every mutation and every
// conflict range.
func (v *Validator) AtomicCommit(c *messages.AtomicCommit) error {
	if c == nil {
		return invalid("atomic commit is missing")
	}
	if n := len(c.GetMutations()); n > v.limits.MaxCommitOps {
		return messages.Errorf(messages.StatusCode_TOO_LARGE, "atomic commit has %d operations, over the limit of %d", n, v.limits.MaxCommitOps)
	}
	if n := proto.Size(c); n > v.limits.MaxCommitBytes {
		return messages.Errorf(messages.StatusCode_TOO_LARGE, "atomic commit is %d bytes, over the limit of %d", n, v.limits.MaxCommitBytes)
	}
	for i, m := range c.GetMutations() {
		if err := v.Mutation(m); err != nil {
			return wrapIndex("mutation", i, err)
		}
	}
	for i, r := range c.GetReadConflictRanges() {
		if err := v.KeyRange(r); err != nil {
			return wrapIndex("read conflict range", i, err)
		}
	}
	for i, r := range c.GetWriteConflictRanges() {
		if err := v.KeyRange(r); err != nil {
			return wrapIndex("write conflict range", i, err)
		}
	}
	return nil
}

// RequestID checks a write's request id: with a client id, seq must be
// positive and responded_to below it.
func (v *Validator) RequestID(id *messages.RequestId) error {
	if id.GetClientId() == 0 {
		return nil
	}
	if id.GetSeq() == 0 {
		return invalid("request id of client %d has seq 0", id.GetClientId())
	}
	if id.GetRespondedTo() >= id.GetSeq() {
		return invalid("request id of client %d: responded_to %d is not below seq %d", id.GetClientId(), id.GetRespondedTo(), id.GetSeq())
	}
	return nil
}

// OpenSession checks a command that opens a session: it carries no request
// id of its own (the session it opens has none yet).
func (v *Validator) OpenSession(c *messages.Command) error {
	if c.GetRequestId().GetClientId() != 0 {
		return invalid("opening a session carries no request id (it has client id %d)", c.GetRequestId().GetClientId())
	}
	return nil
}

func wrapIndex(what string, i int, err error) error {
	return &messages.Error{Code: messages.CodeOf(err), Message: what + " " + strconv.Itoa(i) + ": " + err.Error()}
}

// Request checks a request message of the KV API the way the standalone
// engine checks the same call's arguments, so the router rejects exactly
// what the engine would, before anything is proposed. Messages that carry no
// input (GetReadVersionRequest, StatusRequest) always pass.
func (v *Validator) Request(req proto.Message) error {
	switch r := req.(type) {
	case *messages.GetRequest:
		return v.keyIn(r.GetColumnFamily(), r.GetKey())
	case *messages.SnapshotReadRequest:
		return v.keyIn(r.GetColumnFamily(), r.GetKey())
	case *messages.PutRequest:
		if err := v.keyIn(r.GetColumnFamily(), r.GetKey()); err != nil {
			return err
		}
		if err := v.Value(r.GetValue()); err != nil {
			return err
		}
		return v.RequestID(r.GetRequestId())
	case *messages.DeleteRequest:
		if err := v.keyIn(r.GetColumnFamily(), r.GetKey()); err != nil {
			return err
		}
		return v.RequestID(r.GetRequestId())
	case *messages.ClearRangeRequest:
		if err := v.rangeIn(r.GetColumnFamily(), r.GetBegin(), r.GetEnd(), 0); err != nil {
			return err
		}
		return v.RequestID(r.GetRequestId())
	case *messages.GetRangeRequest:
		return v.rangeIn(r.GetColumnFamily(), r.GetBegin(), r.GetEnd(), r.GetLimit())
	case *messages.SnapshotGetRangeRequest:
		return v.rangeIn(r.GetColumnFamily(), r.GetBegin(), r.GetEnd(), r.GetLimit())
	case *messages.ListKeysRequest:
		if err := v.ColumnFamily(r.GetColumnFamily()); err != nil {
			return err
		}
		if len(r.GetPrefix()) > v.limits.MaxKeySize {
			return invalid("prefix is over the key limit of %d bytes", v.limits.MaxKeySize)
		}
		_, err := v.Limit(int(r.GetLimit()))
		return err
	case *messages.AtomicCommitRequest:
		if err := v.AtomicCommit(r.GetCommit()); err != nil {
			return err
		}
		return v.RequestID(r.GetRequestId())
	case *messages.SetFaultInjectionRequest:
		return ValidateFaults(r.GetFaults())
	case *messages.BackupRequest:
		if r.GetBackupId() == 0 {
			if r.GetAbandon() || r.GetColumnFamily() != "" || len(r.GetAfter()) > 0 {
				return invalid("a backup's first request (backup_id 0) names no position and abandons nothing")
			}
			return nil
		}
		if err := v.ColumnFamily(r.GetColumnFamily()); err != nil {
			return err
		}
		if len(r.GetAfter()) > v.limits.MaxKeySize {
			return invalid("after is over the key limit of %d bytes", v.limits.MaxKeySize)
		}
	}
	return nil
}

func (v *Validator) keyIn(cf string, key []byte) error {
	if err := v.ColumnFamily(cf); err != nil {
		return err
	}
	return v.Key(key)
}

func (v *Validator) rangeIn(cf string, begin, end []byte, limit int32) error {
	if err := v.ColumnFamily(cf); err != nil {
		return err
	}
	if err := v.Range(begin, end); err != nil {
		return err
	}
	_, err := v.Limit(int(limit))
	return err
}

// maxAddedLatency bounds injected latency, so a typo cannot wedge a replica.
const maxAddedLatency = 10 * time.Second

// ValidateFaults checks a fault injection configuration.
func ValidateFaults(faults *messages.FaultInjection) error {
	if r := faults.GetErrorRate(); !(r >= 0 && r <= 1) {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "error_rate %v is outside [0, 1]", r)
	}
	if l := faults.GetAddedLatency(); l != nil {
		if err := l.CheckValid(); err != nil {
			return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "added_latency: %v", err)
		}
		if d := l.AsDuration(); d < 0 || d > maxAddedLatency {
			return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "added_latency %v is outside [0, %v]", d, maxAddedLatency)
		}
	}
	return nil
}
