package kv

import (
	"bytes"
	"fmt"

	"github.com/actorkv/actorkv/messages"
)

// RangeDigests returns the range digests of [begin, end) of column family
// cf on two replicas that must still be at the applied index where they
// were found to differ.
type RangeDigests func(cf string, begin, end []byte) (a, b *messages.RangeDigest, err error)

// FirstDifference narrows two replicas a and b, whose digests differ at
// one applied index, to the first key where they differ: for the first
// column family whose digests differ (a's families, compared with b's), it
// bisects the key space with range digests — each replica hashes only a
// range and names its middle key — without copying the data. It returns a
// line naming the family, the key and both values (or which replica lacks
// the key). kvctl verify and actorkvtest's EnsureSame use it.
func FirstDifference(a, b *messages.ReplicaStatus, digests RangeDigests) (string, error) {
	for _, fa := range a.GetDigests() {
		var fb *messages.ColumnFamilyDigest
		for _, f := range b.GetDigests() {
			if f.GetColumnFamily() == fa.GetColumnFamily() {
				fb = f
			}
		}
		if fb != nil && bytes.Equal(fa.GetSha256(), fb.GetSha256()) {
			continue
		}
		cf := fa.GetColumnFamily()
		var begin, end []byte
		for range 256 { // each round drops at least one key; 2^64 keys take 64
			ra, rb, err := digests(cf, begin, end)
			if err != nil {
				return "", err
			}
			if bytes.Equal(ra.GetSha256(), rb.GetSha256()) {
				return "", fmt.Errorf("no difference left in family %s [%q, %q): did the replicas change meanwhile?", cf, begin, end)
			}
			if ra.GetKeys() <= 1 && rb.GetKeys() <= 1 {
				return describeDifference(cf, a.GetReplicaId(), b.GetReplicaId(), ra.GetFirst(), rb.GetFirst()), nil
			}
			mid := ra.GetMiddle()
			if rb.GetKeys() > ra.GetKeys() {
				mid = rb.GetMiddle()
			}
			la, lb, err := digests(cf, begin, mid)
			if err != nil {
				return "", err
			}
			if bytes.Equal(la.GetSha256(), lb.GetSha256()) {
				begin = mid
			} else {
				end = mid
			}
		}
		return "", fmt.Errorf("family %s: the bisection did not converge", cf)
	}
	return "", fmt.Errorf("replicas %d and %d have equal family digests", a.GetReplicaId(), b.GetReplicaId())
}

// describeDifference says how replicas a and b differ, given the only
// entry (or none) each holds in a range where they differ.
func describeDifference(cf string, a, b uint32, ea, eb *messages.KeyValue) string {
	show := func(v []byte) string {
		if len(v) > 64 {
			return fmt.Sprintf("%q... (%d bytes)", v[:64], len(v))
		}
		return fmt.Sprintf("%q", v)
	}
	switch {
	case ea != nil && eb != nil && bytes.Equal(ea.GetKey(), eb.GetKey()):
		return fmt.Sprintf("first difference: family %s, key %q: replica %d has %s, replica %d has %s", cf, ea.GetKey(), a, show(ea.GetValue()), b, show(eb.GetValue()))
	case eb == nil || (ea != nil && bytes.Compare(ea.GetKey(), eb.GetKey()) < 0):
		return fmt.Sprintf("first difference: family %s, key %q: replica %d has %s, replica %d does not have it", cf, ea.GetKey(), a, show(ea.GetValue()), b)
	default:
		return fmt.Sprintf("first difference: family %s, key %q: replica %d has %s, replica %d does not have it", cf, eb.GetKey(), b, show(eb.GetValue()), a)
	}
}

// ReplicaPair picks the replicas a and b of st, both at one applied index,
// from a status response.
func ReplicaPair(st *messages.StatusResponse, a, b uint32) (ra, rb *messages.ReplicaStatus) {
	for _, r := range st.GetReplicas() {
		switch r.GetReplicaId() {
		case a:
			ra = r
		case b:
			rb = r
		}
	}
	return ra, rb
}

// PairDigests checks that two replica statuses of a range-digest request
// are at applied index index and returns their range digests.
func PairDigests(ra, rb *messages.ReplicaStatus, index uint64) (*messages.RangeDigest, *messages.RangeDigest, error) {
	for _, r := range []*messages.ReplicaStatus{ra, rb} {
		switch {
		case r == nil || r.GetRangeDigest() == nil:
			return nil, nil, fmt.Errorf("a replica gave no range digest (%s)", r.GetError())
		case r.GetAppliedIndex() != index:
			return nil, nil, fmt.Errorf("replica %d moved on from applied index %d to %d: compare again once writes stop", r.GetReplicaId(), index, r.GetAppliedIndex())
		}
	}
	return ra.GetRangeDigest(), rb.GetRangeDigest(), nil
}
