package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

func newEndpointCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "endpoint",
		Short: "Check each endpoint on its own (health, status)",
		Long: `Ask every endpoint of --endpoints on its own, all at once, one attempt each
within --timeout (no retry, no moving on to another endpoint):

  kvctl endpoint health   can it serve a linearizable read now?
  kvctl endpoint status   its replicas: leader, term, applied index, node id`,
	}
	cmd.AddCommand(newEndpointHealthCommand(g), newEndpointStatusCommand(g))
	return cmd
}

// perEndpoint sends req to every endpoint at once, one attempt each within
// --timeout, and returns each answer or error and how long it took.
func (g *globals) perEndpoint(cmd *cobra.Command, req proto.Message) ([]messages.Statused, []error, []time.Duration, error) {
	ts, closeAll, err := g.transports()
	if err != nil {
		return nil, nil, nil, err
	}
	defer closeAll()
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	answers, errs, took := make([]messages.Statused, len(ts)), make([]error, len(ts)), make([]time.Duration, len(ts))
	var wg sync.WaitGroup
	for i, tr := range ts {
		wg.Add(1)
		start := time.Now()
		tr.Send(req, deadline, func(resp messages.Statused, err error) {
			defer wg.Done()
			if err == nil {
				err = resp.GetStatus().Err()
			}
			answers[i], errs[i], took[i] = resp, err, time.Since(start)
		})
	}
	wg.Wait()
	return answers, errs, took, nil
}

// report prints out (JSON) or text (a table), then fails UNAVAILABLE
// naming the bad endpoints, if any.
func (g *globals) report(out any, text string, bad []string, what string) error {
	var err error
	if g.json() {
		err = g.printJSON(out)
	} else {
		err = g.printf("%s", text)
	}
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return messages.Errorf(messages.StatusCode_UNAVAILABLE, "%s: %s", what, strings.Join(bad, ", "))
	}
	return nil
}

type endpointHealth struct {
	Endpoint string  `json:"endpoint"`
	Healthy  bool    `json:"healthy"`
	TookMs   float64 `json:"took_ms"`
	Error    string  `json:"error,omitempty"`
}

func newEndpointHealthCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "health",
		Short: "Check that each endpoint serves a linearizable read now",
		Long: `Ask each endpoint for the latest committed version (GetReadVersion: a
linearizable read, which needs a leader and a majority) and print

  127.0.0.1:7070 is healthy: linearizable read in 1.2ms
  127.0.0.1:7071 is unhealthy: UNAVAILABLE: ...

Exit 3 (UNAVAILABLE) when some endpoint is unhealthy. JSON (-w json):
[{"endpoint", "healthy", "took_ms", "error"}].`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, errs, took, err := g.perEndpoint(cmd, &messages.GetReadVersionRequest{})
			if err != nil {
				return err
			}
			out := make([]endpointHealth, len(errs))
			var b strings.Builder
			var bad []string
			for i, e := range errs {
				h := endpointHealth{Endpoint: g.endpoints[i], Healthy: e == nil, TookMs: float64(took[i].Microseconds()) / 1000}
				if e != nil {
					h.Error = strings.TrimPrefix(errorLine(e), "kvctl: ")
					bad = append(bad, g.endpoints[i])
					fmt.Fprintf(&b, "%s is unhealthy: %s\n", h.Endpoint, h.Error)
				} else {
					fmt.Fprintf(&b, "%s is healthy: linearizable read in %v\n", h.Endpoint, took[i].Round(10*time.Microsecond))
				}
				out[i] = h
			}
			return g.report(out, b.String(), bad, "unhealthy")
		},
	}
}

type endpointStatus struct {
	Endpoint string        `json:"endpoint"`
	Mode     string        `json:"mode,omitempty"`
	Replicas []replicaJSON `json:"replicas,omitempty"`
	Error    string        `json:"error,omitempty"`
}

func newEndpointStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Print each endpoint's replicas",
		Long: `Ask each endpoint for the status of its replicas (one, in a cluster; all, in
an in-process group) and print one line per replica:

  ENDPOINT        ID  NODE  LEADER  TERM  APPLIED  RUNNING

Exit 3 (UNAVAILABLE) when some endpoint does not answer. JSON (-w json):
[{"endpoint", "mode", "replicas": [...as kvctl status...], "error"}].`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			answers, errs, _, err := g.perEndpoint(cmd, &messages.StatusRequest{})
			if err != nil {
				return err
			}
			out := make([]endpointStatus, len(errs))
			var b strings.Builder
			fmt.Fprintf(&b, "%-22s %-3s %-8s %-7s %-5s %-8s %s\n", "ENDPOINT", "ID", "NODE", "LEADER", "TERM", "APPLIED", "RUNNING")
			var bad []string
			for i, e := range errs {
				es := endpointStatus{Endpoint: g.endpoints[i]}
				if e != nil {
					es.Error = strings.TrimPrefix(errorLine(e), "kvctl: ")
					bad = append(bad, g.endpoints[i])
					fmt.Fprintf(&b, "%-22s unreachable: %s\n", es.Endpoint, es.Error)
					out[i] = es
					continue
				}
				st := answers[i].(*messages.StatusResponse)
				es.Mode = st.GetMode()
				for _, r := range st.GetReplicas() {
					es.Replicas = append(es.Replicas, replicaJSON{ID: r.GetReplicaId(), Running: r.GetRunning(), Leader: r.GetIsLeader(),
						Term: r.GetTerm(), AppliedIndex: r.GetAppliedIndex(), Error: r.GetError(), Endpoint: es.Endpoint})
					lead := ""
					if r.GetIsLeader() {
						lead = "*"
					}
					fmt.Fprintf(&b, "%-22s %-3d %-8d %-7s %-5d %-8d %t\n", es.Endpoint, r.GetReplicaId(), r.GetNodeId(), lead, r.GetTerm(), r.GetAppliedIndex(), r.GetRunning())
				}
				out[i] = es
			}
			return g.report(out, b.String(), bad, "no answer from")
		},
	}
}
