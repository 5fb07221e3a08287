package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/kv"
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
// asked) and merges the answers. Each round sends every endpoint one attempt,
// at the same time; it is over when at least one answered, and the others
// are reported unreachable. When none answered, it tries again after the
// retry policy's pause (kv.Backoff) until --timeout, unless an endpoint
// answered with an error the policy does not retry.
func (g *globals) status(cmd *cobra.Command, digests bool) (*groupStatus, error) {
	return g.statusOf(cmd, &messages.StatusRequest{WithDigests: digests})
}

// statusOf is status with the request req.
func (g *globals) statusOf(cmd *cobra.Command, req *messages.StatusRequest) (*groupStatus, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	ts, closeAll, err := g.transports()
	if err != nil {
		return nil, err
	}
	defer closeAll()
	deadline, _ := ctx.Deadline()
	for round := 1; ; round++ {
		answers := make([]*messages.StatusResponse, len(ts))
		errs := make([]error, len(ts))
		var wg sync.WaitGroup
		for i, tr := range ts {
			wg.Add(1)
			tr.Send(req, deadline, func(resp messages.Statused, err error) {
				defer wg.Done()
				if err == nil {
					err = resp.GetStatus().Err()
				}
				if err != nil {
					errs[i] = err
					return
				}
				answers[i] = resp.(*messages.StatusResponse)
			})
		}
		wg.Wait()
		if slices.ContainsFunc(answers, func(st *messages.StatusResponse) bool { return st != nil }) {
			return mergeStatus(g.endpoints, answers, errs), nil
		}
		var last error
		for i, err := range errs {
			if !kv.Retryable(err) && ctx.Err() == nil {
				return nil, err
			}
			last = fmt.Errorf("%s: %w", g.endpoints[i], err)
		}
		select {
		case <-ctx.Done():
			return nil, gaveUp(ctx, last)
		case <-time.After(kv.Backoff(round)):
		}
	}
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
			gs.unreachable = append(gs.unreachable, unreachable{Endpoint: endpoints[i], Error: strings.TrimPrefix(errorLine(errs[i]), "kvctl: ")})
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
