package actorkvtest

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage/conformance"
)

// Checks that the replicas converge: status, EnsureSame, and Eventually.

// Status asks every replica for its status.
func (c *Cluster) Status(withDigests bool) *messages.StatusResponse {
	c.t.Helper()
	ctx, cancel := c.waitCtx()
	defer cancel()
	st, err := c.Group().Status(ctx, withDigests)
	if err != nil {
		c.t.Fatalf("cluster: status: %v", err)
	}
	return st
}

// ReplicaStatus returns replica id's entry of a status.
func ReplicaStatus(st *messages.StatusResponse, id uint32) *messages.ReplicaStatus {
	for _, r := range st.GetReplicas() {
		if r.GetReplicaId() == id {
			return r
		}
	}
	return &messages.ReplicaStatus{ReplicaId: id, Error: "missing from the status"}
}

// AppliedIndex returns replica id's applied index (0 when it is not running).
func (c *Cluster) AppliedIndex(id uint32) uint64 {
	c.t.Helper()
	return ReplicaStatus(c.Status(false), id).GetAppliedIndex()
}

// Up returns the replicas the harness has not crashed.
func (c *Cluster) Up() []uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint32
	for id := range uint32(Replicas) {
		if !c.down[id] {
			ids = append(ids, id)
		}
	}
	return ids
}

// EnsureSame waits until every replica the harness has not crashed is
// running, at the same applied index, with equal digests of every column
// family; it fails t with a per-replica table otherwise. It returns that
// common state.
func (c *Cluster) EnsureSame(t testing.TB) *messages.ReplicaStatus {
	t.Helper()
	return c.EnsureSameWithin(t, WaitTimeout)
}

// EnsureSameWithin is EnsureSame with its own deadline.
func (c *Cluster) EnsureSameWithin(t testing.TB, timeout time.Duration) *messages.ReplicaStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	same, err := c.Converged(ctx)
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	return same
}

// Converged is EnsureSame without a test: it waits until ctx is done for the
// replicas the harness has not crashed to converge, and returns their common
// state, or an error with the per-replica table. It may be called from any
// goroutine.
func (c *Cluster) Converged(ctx context.Context) (*messages.ReplicaStatus, error) {
	ids := c.Up()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last string
	var lastSt *messages.StatusResponse
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := c.Group().Status(sctx, true)
		cancel()
		if err != nil {
			last = fmt.Sprintf("status: %v", err)
		} else if same, diff := SameState(st, ids); same != nil {
			return same, nil
		} else {
			last, lastSt = diff, st
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("replicas %v did not converge: %w:\n%s%s", ids, ctx.Err(), last, c.firstDifference(lastSt, ids))
		case <-tick.C:
		}
	}
}

// firstDifference names the first key where two of the replicas ids that
// are at one applied index differ, if any do in st ("" otherwise).
func (c *Cluster) firstDifference(st *messages.StatusResponse, ids []uint32) string {
	for i, a := range ids {
		ra := ReplicaStatus(st, a)
		for _, b := range ids[i+1:] {
			rb := ReplicaStatus(st, b)
			if ra.GetAppliedIndex() != rb.GetAppliedIndex() || len(ra.GetDigest()) == 0 || len(rb.GetDigest()) == 0 ||
				string(ra.GetDigest()) == string(rb.GetDigest()) {
				continue
			}
			diff, err := kv.FirstDifference(ra, rb, func(cf string, begin, end []byte) (*messages.RangeDigest, *messages.RangeDigest, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				st, err := c.Group().StatusOf(ctx, &messages.StatusRequest{WithDigests: true,
					DigestRange: &messages.KeyRange{ColumnFamily: cf, Begin: begin, End: end}})
				if err != nil {
					return nil, nil, err
				}
				x, y := kv.ReplicaPair(st, a, b)
				return kv.PairDigests(x, y, ra.GetAppliedIndex())
			})
			if err != nil {
				return fmt.Sprintf("replicas %d and %d differ at applied index %d; the first differing key was not found: %v\n", a, b, ra.GetAppliedIndex(), err)
			}
			return diff + "\n"
		}
	}
	return ""
}

// SameState returns the common state of replicas ids, or nil and a table of
// how they differ.
func SameState(st *messages.StatusResponse, ids []uint32) (*messages.ReplicaStatus, string) {
	var first *messages.ReplicaStatus
	ok := true
	for _, id := range ids {
		r := ReplicaStatus(st, id)
		switch {
		case !r.GetRunning() || r.GetError() != "" || len(r.GetDigest()) == 0:
			ok = false
		case first == nil:
			first = r
		case r.GetAppliedIndex() != first.GetAppliedIndex() || string(r.GetDigest()) != string(first.GetDigest()):
			ok = false
		}
	}
	if ok && first != nil {
		return first, ""
	}
	return nil, DescribeStatus(st)
}

// DescribeStatus renders a status as one line per replica, for failure
// messages.
func DescribeStatus(st *messages.StatusResponse) string {
	var b strings.Builder
	fmt.Fprintf(&b, "leader %d (known %v) term %d\n", st.GetLeaderId(), st.GetHasLeader(), st.GetTerm())
	for _, r := range st.GetReplicas() {
		fmt.Fprintf(&b, "  replica %d: running=%v leader=%v applied=%d digest=%s", r.GetReplicaId(), r.GetRunning(), r.GetIsLeader(), r.GetAppliedIndex(), short(r.GetDigest()))
		for _, d := range r.GetDigests() {
			fmt.Fprintf(&b, " %s:%d keys/%s", d.GetColumnFamily(), d.GetKeys(), short(d.GetSha256()))
		}
		if r.GetError() != "" {
			fmt.Fprintf(&b, " error=%q", r.GetError())
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func short(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return hex.EncodeToString(b[:min(len(b), 6)])
}

// Eventually polls cond until it holds, failing t with msg after timeout.
func Eventually(t testing.TB, cond func() bool, timeout time.Duration, msg string) {
	t.Helper()
	conformance.Eventually(t, cond, timeout, msg)
}
