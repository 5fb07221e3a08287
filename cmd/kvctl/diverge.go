package main

import (
	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// firstDifference narrows replicas a and b, which hold different data at
// the same applied index, to the first key where they differ
// (kv.FirstDifference), asking every endpoint for range digests.
func (g *globals) firstDifference(cmd *cobra.Command, a, b *messages.ReplicaStatus) (string, error) {
	index := a.GetAppliedIndex()
	return kv.FirstDifference(a, b, func(cf string, begin, end []byte) (*messages.RangeDigest, *messages.RangeDigest, error) {
		st, err := g.statusOf(cmd, &messages.StatusRequest{WithDigests: true,
			DigestRange: &messages.KeyRange{ColumnFamily: cf, Begin: begin, End: end}})
		if err != nil {
			return nil, nil, err
		}
		ra, rb := kv.ReplicaPair(st.StatusResponse, a.GetReplicaId(), b.GetReplicaId())
		return kv.PairDigests(ra, rb, index)
	})
}
