package server

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// Limits bound what the server holds for its callers, so that no caller —
// however many calls, streams or bytes it sends — grows the process's memory
// without bound. A caller over a bound is slowed first (a Batch stream stops
// reading, and HTTP/2 flow control holds its client; a unary call waits)
// and refused second: a call that finds no room before its deadline
// answers RESOURCE_EXHAUSTED, having done nothing.
type Limits struct {
	// InflightBytes bounds the bytes of the requests in flight in the
	// process, unary and Batch calls together.
	InflightBytes int64
	// RangeReads bounds the range reads (get_range, list_keys,
	// snapshot_get_range) in flight in the process: each may build a reply
	// of up to limits.max_range_bytes.
	RangeReads int64
	// StreamBytes and StreamCalls bound one Batch stream's calls in flight
	// (their request bytes, and their number).
	StreamBytes int64
	StreamCalls int
	// Streams bounds the Batch streams open at once; one more is refused.
	Streams int
}

// limiter holds the process-wide bounds of Limits.
type limiter struct {
	l      Limits
	bytes  *semaphore.Weighted
	ranges *semaphore.Weighted
}

func newLimiter(l Limits) *limiter {
	if l.InflightBytes <= 0 {
		return nil
	}
	return &limiter{l: l, bytes: semaphore.NewWeighted(l.InflightBytes), ranges: semaphore.NewWeighted(max(1, l.RangeReads))}
}

// admit waits, until deadline, for room for req (of op, size bytes) and
// returns what gives it back; or RESOURCE_EXHAUSTED.
func (l *limiter) admit(ctx context.Context, op *messages.Op, size int64, deadline time.Time) (func(), error) {
	if l == nil {
		return func() {}, nil
	}
	size = max(1, min(size, l.l.InflightBytes))
	// The common case takes no timer: room is there.
	acquire := func(sem *semaphore.Weighted, n int64) error {
		if sem.TryAcquire(n) {
			return nil
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		return sem.Acquire(wctx, n)
	}
	if err := acquire(l.bytes, size); err != nil {
		return nil, l.exhausted(ctx, op, "bytes of calls in flight (server.max_inflight_mib)")
	}
	if !op.RangeRead() {
		return func() { l.bytes.Release(size) }, nil
	}
	if err := acquire(l.ranges, 1); err != nil {
		l.bytes.Release(size)
		return nil, l.exhausted(ctx, op, "range reads in flight (server.max_range_reads)")
	}
	return func() { l.ranges.Release(1); l.bytes.Release(size) }, nil
}

func (l *limiter) exhausted(ctx context.Context, op *messages.Op, what string) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return messages.Errorf(messages.StatusCode_CANCELLED, "%s: cancelled while waiting for room; nothing was done", op.Name)
	}
	return messages.Errorf(messages.StatusCode_RESOURCE_EXHAUSTED, "%s: no room before the deadline for %s; nothing was done: retry after a pause", op.Name, what)
}

// sizeOf is the bytes a request holds while in flight.
func sizeOf(req proto.Message) int64 { return int64(proto.Size(req)) }
