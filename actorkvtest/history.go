package actorkvtest

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// Histories: what every client asked and was answered, for the checkers.

// OpKind is the kind of a recorded operation.
type OpKind int

// The operations a History records.
const (
	OpGet OpKind = iota
	OpPut
	OpDelete
)

func (k OpKind) String() string { return [...]string{"get", "put", "delete"}[k] }

// Outcome is how a recorded operation ended.
type Outcome int

const (
	// OK: it succeeded (a read's value is its result).
	OK Outcome = iota
	// Failed: it certainly had no effect (refused: bad input, a conflict,
	// no room, permission) — or it was a read that failed.
	Failed
	// Unknown: a write whose effect nobody knows (a timeout, a client
	// that gave up, a crash): it may have taken effect at any time after
	// its call, or never.
	Unknown
)

func (o Outcome) String() string { return [...]string{"ok", "failed", "unknown"}[o] }

// Op is one recorded call: who made it, what it asked, what it got and
// when (nanoseconds since the history began).
type Op struct {
	Client       int
	Kind         OpKind
	Key, Value   string // Value: what a put wrote, or what a get read
	Found        bool   // a get found the key
	Call, Return int64
	Outcome      Outcome
	Err          error
}

// History records the operations of any number of clients, concurrently.
type History struct {
	mu    sync.Mutex
	start time.Time
	ops   []Op
}

// NewHistory returns an empty history whose clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

func (h *History) now() int64 { return int64(time.Since(h.start)) }

func (h *History) add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations recorded so far, in the order they
// returned.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Keys returns every key the history touched, sorted.
func (h *History) Keys() []string {
	seen := map[string]bool{}
	for _, op := range h.Ops() {
		seen[op.Key] = true
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Record wraps db — the Go client of the group, a kv.Client over gRPC, or
// any kv.Database — as client number client: its Get, Put and Delete are
// recorded (the other methods pass through unrecorded). A write's error is
// read as a certain failure when its status says nothing was done, and as
// an unknown outcome otherwise (TIMEOUT, UNAVAILABLE after retries,
// SESSION_EXPIRED, a cancelled context, INTERNAL).
func (h *History) Record(client int, db kv.Database) kv.Database {
	return &recorded{Database: db, h: h, client: client}
}

type recorded struct {
	kv.Database
	h      *History
	client int
}

func (r *recorded) Get(ctx context.Context, key []byte, opts ...kv.Option) ([]byte, bool, error) {
	call := r.h.now()
	v, found, err := r.Database.Get(ctx, key, opts...)
	op := Op{Client: r.client, Kind: OpGet, Key: string(key), Value: string(v), Found: found, Call: call, Return: r.h.now(), Err: err}
	if err != nil {
		op.Outcome = Failed
	}
	r.h.add(op)
	return v, found, err
}

func (r *recorded) Put(ctx context.Context, key, value []byte, opts ...kv.Option) (uint64, error) {
	call := r.h.now()
	v, err := r.Database.Put(ctx, key, value, opts...)
	r.h.add(Op{Client: r.client, Kind: OpPut, Key: string(key), Value: string(value), Call: call, Return: r.h.now(), Outcome: writeOutcome(err), Err: err})
	return v, err
}

func (r *recorded) Delete(ctx context.Context, key []byte, opts ...kv.Option) (uint64, error) {
	call := r.h.now()
	v, err := r.Database.Delete(ctx, key, opts...)
	r.h.add(Op{Client: r.client, Kind: OpDelete, Key: string(key), Call: call, Return: r.h.now(), Outcome: writeOutcome(err), Err: err})
	return v, err
}

// writeOutcome reads a write's error.
func writeOutcome(err error) Outcome {
	switch messages.CodeOf(err) {
	case messages.StatusCode_OK:
		return OK
	case messages.StatusCode_INVALID_ARGUMENT, messages.StatusCode_TOO_LARGE, messages.StatusCode_UNKNOWN_COLUMN_FAMILY,
		messages.StatusCode_CONFLICT, messages.StatusCode_TRANSACTION_TOO_OLD, messages.StatusCode_PERMISSION_DENIED,
		messages.StatusCode_RESOURCE_EXHAUSTED:
		return Failed // refused before anything was done
	default:
		return Unknown
	}
}

// never is the return time of an operation whose effect is unknown: it may
// take effect at any time after its call.
const never = math.MaxInt64
