package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/messages"
)

// unreachable is an endpoint that gave no status, and why.
type unreachable struct {
	Endpoint string `json:"endpoint"`
	Error    string `json:"error"`
}

// groupStatus is the status of every replica the endpoints reported, merged
// by replica id: in a cluster each process reports only its own replica, an
// in-process group reports all of them.
type groupStatus struct {
	*messages.StatusResponse                   // Replicas sorted by id; the leader of the highest term
	endpoint                 map[uint32]string // which endpoint reported each replica
	unreachable              []unreachable     // endpoints that did not answer, in --endpoints order
}

// status asks every endpoint for its replicas' status (with digests if
// asked) and merges the answers. Each round asks every endpoint once, at the
// same time; it is over when at least one answered, and the others are
// reported unreachable. When none answered, it tries again until --timeout,
// unless an endpoint answered with a non-retryable error.
func (g *globals) status(cmd *cobra.Command, digests bool) (*groupStatus, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	c := newClient(g.endpoints)
	defer c.close()
	kvs := make([]messages.KVClient, len(g.endpoints))
	for i := range g.endpoints {
		kv, err := c.kv(i)
		if err != nil {
			return nil, err
		}
		kvs[i] = kv
	}
	var merged *groupStatus
	err := c.retry(ctx, func() (error, error) {
		answers := make([]*messages.StatusResponse, len(kvs))
		errs := make([]error, len(kvs))
		var wg sync.WaitGroup
		for i, kv := range kvs {
			wg.Go(func() {
				answers[i], errs[i] = kv.Status(ctx, &messages.StatusRequest{WithDigests: digests})
			})
		}
		wg.Wait()
		if slices.ContainsFunc(answers, func(st *messages.StatusResponse) bool { return st != nil }) {
			merged = mergeStatus(g.endpoints, answers, errs)
			return nil, nil
		}
		var last error
		for i, err := range errs {
			if !retryable(err) && ctx.Err() == nil {
				return nil, messages.FromGRPC(err)
			}
			last = fmt.Errorf("%s: %w", g.endpoints[i], messages.FromGRPC(err))
		}
		if ctx.Err() != nil {
			return nil, c.gaveUp(ctx, last)
		}
		return last, nil
	})
	return merged, err
}

// mergeStatus merges the endpoints' answers (nil where errs says why not).
// A replica reported twice (the same process given twice) is taken from the
// first endpoint that reports it running, else the first that reports it.
// The mode is the first answer's; the leader is the one known at the highest
// term.
func mergeStatus(endpoints []string, answers []*messages.StatusResponse, errs []error) *groupStatus {
	gs := &groupStatus{StatusResponse: &messages.StatusResponse{Status: messages.StatusOf(nil)}, endpoint: map[uint32]string{}}
	byID := map[uint32]*messages.ReplicaStatus{}
	first := true
	for i, st := range answers {
		if st == nil {
			gs.unreachable = append(gs.unreachable, unreachable{Endpoint: endpoints[i], Error: strings.TrimPrefix(errorLine(messages.FromGRPC(errs[i])), "kvctl: ")})
			continue
		}
		m := gs.StatusResponse
		if first {
			m.Mode = st.GetMode()
			first = false
		}
		if st.GetHasLeader() && (!m.GetHasLeader() || st.GetTerm() > m.GetTerm()) {
			m.HasLeader, m.LeaderId, m.Term = true, st.GetLeaderId(), st.GetTerm()
		} else if !m.GetHasLeader() {
			m.Term = max(m.GetTerm(), st.GetTerm())
		}
		for _, r := range st.GetReplicas() {
			if have, ok := byID[r.GetReplicaId()]; ok && (have.GetRunning() || !r.GetRunning()) {
				continue
			}
			byID[r.GetReplicaId()] = r
			gs.endpoint[r.GetReplicaId()] = endpoints[i]
		}
	}
	for _, r := range byID {
		gs.Replicas = append(gs.Replicas, r)
	}
	slices.SortFunc(gs.Replicas, func(a, b *messages.ReplicaStatus) int { return cmp.Compare(a.GetReplicaId(), b.GetReplicaId()) })
	return gs
}
