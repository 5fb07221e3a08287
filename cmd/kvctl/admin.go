package main

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/messages"
)

func (g *globals) printf(format string, args ...any) error {
	_, err := fmt.Fprintf(g.stdout, format, args...)
	return err
}

// printJSON writes v as one line of JSON.
func (g *globals) printJSON(v any) error {
	return json.NewEncoder(g.stdout).Encode(v)
}

// shortHex is the first 6 bytes of a digest, in hex.
func shortHex(b []byte) string {
	if len(b) > 6 {
		b = b[:6]
	}
	return hex.EncodeToString(b)
}

// replicaJSON is one replica of status's JSON output.
type replicaJSON struct {
	ID                uint32 `json:"id"`
	Running           bool   `json:"running"`
	Leader            bool   `json:"leader"`
	Term              uint64 `json:"term"`
	AppliedIndex      uint64 `json:"applied_index"`
	Digest            string `json:"digest,omitempty"`
	ProposalsInFlight uint64 `json:"proposals_in_flight"`
	Error             string `json:"error,omitempty"`
	Endpoint          string `json:"endpoint"`
}

type statusJSON struct {
	Mode        string        `json:"mode"`
	HasLeader   bool          `json:"has_leader"`
	LeaderID    uint32        `json:"leader_id"`
	Term        uint64        `json:"term"`
	Replicas    []replicaJSON `json:"replicas"`
	Unreachable []unreachable `json:"unreachable"`
}

const statusLong = `Print every replica: id, the endpoint that reported it, whether it runs,
the leader (*), its term, applied index and a digest of its contents (the
first 6 bytes, in hex; the SHA-256 of every column family, computed at the
applied index shown, once per applied index: --digests=false skips them).

kvctl asks every endpoint of --endpoints at once and merges the replicas they
report by id. An in-process server reports all its replicas; in a cluster
(one replica per process) each process reports only its own, so give the
endpoints of every process to see the whole cluster:

  kvctl --endpoints host0:7070,host1:7070,host2:7070 status

The header's leader is the one known at the highest term. An endpoint that
does not answer is listed below the table ("endpoint host2:7070: unreachable
(UNAVAILABLE: ...)") and the command still succeeds; it fails only when no
endpoint answers within --timeout.

With --watch (-W) it prints the status again every --interval (each table
after a line with the time; with -w json one object per line) until
interrupted (exit 0); a round that fails prints its error line and the
watch goes on.

JSON (-w json): {"mode": "replicated", "has_leader": true, "leader_id": 0,
"term": 2, "replicas": [{"id": 0, "running": true, "leader": true, "term": 2,
"applied_index": 15, "digest": "<full hex>", "proposals_in_flight": 0,
"error": "...", "endpoint": "127.0.0.1:7070"}], "unreachable": [{"endpoint":
"...", "error": "..."}]}`

func newStatusCommand(g *globals) *cobra.Command {
	var (
		digests  bool
		watch    bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the replicas' status",
		Long:  statusLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !watch {
				return g.printStatus(cmd, digests)
			}
			if interval <= 0 {
				return usageErr("--interval must be positive, got %v", interval)
			}
			for {
				if !g.json() {
					if err := g.printf("%s\n", time.Now().Format(time.RFC3339)); err != nil {
						return err
					}
				}
				if err := g.printStatus(cmd, digests); err != nil {
					if cmd.Context().Err() != nil {
						return nil // interrupted
					}
					if err := g.printf("%s\n", errorLine(err)); err != nil {
						return err
					}
				}
				if !g.json() {
					if err := g.printf("\n"); err != nil {
						return err
					}
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	f := cmd.Flags()
	f.BoolVar(&digests, "digests", true, "show the replicas' content digests (a scan of all data once per applied index)")
	f.BoolVarP(&watch, "watch", "W", false, "print the status again every --interval until interrupted (a failure is printed, not fatal)")
	f.DurationVar(&interval, "interval", 2*time.Second, "how often --watch prints")
	return cmd
}

// printStatus prints the status once (kvctl status).
func (g *globals) printStatus(cmd *cobra.Command, digests bool) error {
	st, err := g.status(cmd, digests)
	if err != nil {
		return err
	}
	if g.json() {
		out := statusJSON{Mode: st.GetMode(), HasLeader: st.GetHasLeader(), LeaderID: st.GetLeaderId(), Term: st.GetTerm(),
			Replicas: []replicaJSON{}, Unreachable: append([]unreachable{}, st.unreachable...)}
		for _, r := range st.GetReplicas() {
			out.Replicas = append(out.Replicas, replicaJSON{
				ID: r.GetReplicaId(), Running: r.GetRunning(), Leader: r.GetIsLeader(), Term: r.GetTerm(),
				AppliedIndex: r.GetAppliedIndex(), Digest: hex.EncodeToString(r.GetDigest()),
				ProposalsInFlight: r.GetProposalsInFlight(), Error: r.GetError(), Endpoint: st.endpoint[r.GetReplicaId()],
			})
		}
		return g.printJSON(out)
	}
	leader := "none"
	if st.GetHasLeader() {
		leader = fmt.Sprint(st.GetLeaderId())
	}
	if err := g.printf("mode: %s, leader: %s, term: %d\n", st.GetMode(), leader, st.GetTerm()); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tENDPOINT\tRUNNING\tLEADER\tTERM\tAPPLIED\tDIGEST\tERROR")
	for _, r := range st.GetReplicas() {
		lead := ""
		if r.GetIsLeader() {
			lead = "*"
		}
		d := shortHex(r.GetDigest())
		if d == "" {
			d = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%t\t%s\t%d\t%d\t%s\t%s\n", r.GetReplicaId(), st.endpoint[r.GetReplicaId()], r.GetRunning(), lead, r.GetTerm(), r.GetAppliedIndex(), d, oneLine(r.GetError()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, u := range st.unreachable {
		if err := g.printf("endpoint %s: unreachable (%s)\n", u.Endpoint, u.Error); err != nil {
			return err
		}
	}
	return nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

const verifyLong = `Check that the replicas hold identical data: replicas at the same applied
index must have the same digest.

kvctl asks for every replica's status with digests, from every endpoint of
--endpoints at once, and merges the replicas by id (see "kvctl status --help":
in a cluster, give the endpoint of every process). A replica behind the
others is not a mismatch: while replicas are at different applied indexes,
kvctl asks again (every 200ms, for up to --wait) for them to converge. Then
it prints what it compared, for example

  replicas 0, 1, 2 at applied index 42: same digest 1a2b3c4d5e6f
  replica 2 at applied index 40: not compared (no other replica there)
  endpoint host2:7070: not compared (unreachable: UNAVAILABLE: ...)
  OK

and exits 0, or exits 6 when replicas at the same applied index have
different digests, after narrowing two of them down to the first key where
they differ by bisecting range digests (each replica hashes half a range at a
time; no data is copied; the replicas must not move on meanwhile; range
digests are an admin operation, server.admin): it prints
"first difference: family F, key K: replica A has V1, replica B has V2" (or
"does not have it") and fails ("kvctl: INTERNAL: verify: digest mismatch at applied
index 42: replica 0 ..., replica 2 ..."). With --require-all it exits 3
(UNAVAILABLE) when some replica is not running or could not be compared, or
some endpoint did not answer, and prints INCOMPLETE instead of OK.

JSON (-w json): {"ok": bool, "mode": "...", "groups": [{"applied_index": 42,
"replicas": [0, 1, 2], "digests": {"0": "<hex>", ...}, "same": true}],
"not_running": [{"id": 1, "error": "..."}], "not_compared": [2],
"unreachable": [{"endpoint": "...", "error": "..."}]}`

type verifyGroup struct {
	AppliedIndex uint64            `json:"applied_index"`
	Replicas     []uint32          `json:"replicas"`
	Digests      map[string]string `json:"digests"`
	Same         bool              `json:"same"`
	// FirstDifference names the first key where two of the replicas
	// differ (when they differ).
	FirstDifference string `json:"first_difference,omitempty"`
}

type notRunning struct {
	ID    uint32 `json:"id"`
	Error string `json:"error,omitempty"`
}

type verifyJSON struct {
	OK          bool          `json:"ok"`
	Mode        string        `json:"mode"`
	Groups      []verifyGroup `json:"groups"`
	NotRunning  []notRunning  `json:"not_running"`
	NotCompared []uint32      `json:"not_compared"`
	Unreachable []unreachable `json:"unreachable"`
	// Incomplete: --require-all, and some replica was not compared.
	Incomplete bool `json:"incomplete,omitempty"`
}

// verifyReport groups the replicas of st by applied index.
func verifyReport(st *groupStatus) verifyJSON {
	rep := verifyJSON{OK: true, Mode: st.GetMode(), Groups: []verifyGroup{}, NotRunning: []notRunning{}, NotCompared: []uint32{},
		Unreachable: append([]unreachable{}, st.unreachable...)}
	byIndex := map[uint64]*verifyGroup{}
	firsts := map[uint64][]byte{} // the digest of each group's first replica
	for _, r := range st.GetReplicas() {
		if !r.GetRunning() || len(r.GetDigest()) == 0 {
			msg := r.GetError()
			if r.GetRunning() && msg == "" {
				msg = "no digest"
			}
			rep.NotRunning = append(rep.NotRunning, notRunning{ID: r.GetReplicaId(), Error: oneLine(msg)})
			continue
		}
		grp := byIndex[r.GetAppliedIndex()]
		if grp == nil {
			grp = &verifyGroup{AppliedIndex: r.GetAppliedIndex(), Digests: map[string]string{}, Same: true}
			byIndex[r.GetAppliedIndex()] = grp
		}
		if len(grp.Replicas) > 0 && !bytes.Equal(r.GetDigest(), firsts[r.GetAppliedIndex()]) {
			grp.Same = false
		}
		if len(grp.Replicas) == 0 {
			firsts[r.GetAppliedIndex()] = r.GetDigest()
		}
		grp.Replicas = append(grp.Replicas, r.GetReplicaId())
		grp.Digests[fmt.Sprint(r.GetReplicaId())] = hex.EncodeToString(r.GetDigest())
	}
	for _, grp := range byIndex {
		if len(grp.Replicas) < 2 && (len(st.GetReplicas()) > 1 || len(st.unreachable) > 0) {
			rep.NotCompared = append(rep.NotCompared, grp.Replicas...)
		}
		rep.Groups = append(rep.Groups, *grp)
		if !grp.Same {
			rep.OK = false
		}
	}
	slices.SortFunc(rep.Groups, func(a, b verifyGroup) int { return cmp.Compare(b.AppliedIndex, a.AppliedIndex) })
	slices.Sort(rep.NotCompared)
	return rep
}

// differing returns two replicas of grp whose digests differ.
func differing(st *groupStatus, grp verifyGroup) (*messages.ReplicaStatus, *messages.ReplicaStatus) {
	byID := map[uint32]*messages.ReplicaStatus{}
	for _, r := range st.GetReplicas() {
		byID[r.GetReplicaId()] = r
	}
	first := byID[grp.Replicas[0]]
	for _, id := range grp.Replicas[1:] {
		if r := byID[id]; !bytes.Equal(r.GetDigest(), first.GetDigest()) {
			return first, r
		}
	}
	return first, byID[grp.Replicas[1]]
}

// short is the first 12 characters of a hex digest.
func short(h string) string { return h[:min(12, len(h))] }

func joinIDs(ids []uint32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ", ")
}

func newVerifyCommand(g *globals) *cobra.Command {
	var (
		wait       time.Duration
		requireAll bool
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that replicas at the same applied index hold the same data",
		Long:  verifyLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			deadline := time.Now().Add(wait)
			var rep verifyJSON
			var st *groupStatus
			for {
				var err error
				st, err = g.status(cmd, true)
				if err != nil {
					return err
				}
				rep = verifyReport(st)
				if !rep.OK || len(rep.Groups) <= 1 || time.Now().After(deadline) {
					break
				}
				select {
				case <-cmd.Context().Done():
					return messages.Errorf(messages.StatusCode_CANCELLED, "verify: %v", cmd.Context().Err())
				case <-time.After(200 * time.Millisecond):
				}
			}
			if requireAll && (len(rep.NotRunning) > 0 || len(rep.NotCompared) > 0 || len(rep.Unreachable) > 0) {
				rep.OK, rep.Incomplete = false, true // not "OK": the command fails
			}
			// Replicas that differ: narrow them to the first differing key.
			for i, grp := range rep.Groups {
				if grp.Same {
					continue
				}
				a, b := differing(st, grp)
				if diff, err := g.firstDifference(cmd, a, b); err != nil {
					rep.Groups[i].FirstDifference = "not found: " + err.Error()
				} else {
					rep.Groups[i].FirstDifference = diff
				}
			}
			if err := g.printVerify(rep); err != nil {
				return err
			}
			for _, grp := range rep.Groups {
				if !grp.Same {
					var parts []string
					for _, id := range grp.Replicas {
						parts = append(parts, fmt.Sprintf("replica %d %s", id, short(grp.Digests[fmt.Sprint(id)])))
					}
					return mismatchError{messages.Errorf(messages.StatusCode_INTERNAL, "verify: digest mismatch at applied index %d: %s; %s", grp.AppliedIndex, strings.Join(parts, ", "), grp.FirstDifference)}
				}
			}
			if requireAll && (len(rep.NotRunning) > 0 || len(rep.NotCompared) > 0 || len(rep.Unreachable) > 0) {
				var ids []uint32
				for _, r := range rep.NotRunning {
					ids = append(ids, r.ID)
				}
				ids = append(ids, rep.NotCompared...)
				slices.Sort(ids)
				var what []string
				switch len(ids) {
				case 0:
				case 1:
					what = append(what, "replica "+joinIDs(ids))
				default:
					what = append(what, "replicas "+joinIDs(ids))
				}
				if n := len(rep.Unreachable); n > 0 {
					eps := make([]string, n)
					for i, u := range rep.Unreachable {
						eps[i] = u.Endpoint
					}
					w := "endpoint "
					if n > 1 {
						w = "endpoints "
					}
					what = append(what, w+strings.Join(eps, ", ")+" (unreachable)")
				}
				return messages.Errorf(messages.StatusCode_UNAVAILABLE, "verify: %s could not be compared within %v", strings.Join(what, " and "), wait)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 3*time.Second, "how long to wait for replicas at different applied indexes to converge")
	cmd.Flags().BoolVar(&requireAll, "require-all", false, "fail unless every replica runs and was compared")
	return cmd
}

func (g *globals) printVerify(rep verifyJSON) error {
	if g.json() {
		return g.printJSON(rep)
	}
	var b strings.Builder
	for _, grp := range rep.Groups {
		switch {
		case len(grp.Replicas) == 1 && len(rep.NotCompared) == 0:
			fmt.Fprintf(&b, "replica %d at applied index %d: digest %s (the only replica, nothing to compare)\n", grp.Replicas[0], grp.AppliedIndex, short(grp.Digests[fmt.Sprint(grp.Replicas[0])]))
		case len(grp.Replicas) == 1:
			fmt.Fprintf(&b, "replica %d at applied index %d: not compared (no other replica there)\n", grp.Replicas[0], grp.AppliedIndex)
		case grp.Same:
			fmt.Fprintf(&b, "replicas %s at applied index %d: same digest %s\n", joinIDs(grp.Replicas), grp.AppliedIndex, short(grp.Digests[fmt.Sprint(grp.Replicas[0])]))
		default:
			fmt.Fprintf(&b, "replicas %s at applied index %d: DIFFERENT digests\n", joinIDs(grp.Replicas), grp.AppliedIndex)
			for _, id := range grp.Replicas {
				fmt.Fprintf(&b, "  replica %d: %s\n", id, grp.Digests[fmt.Sprint(id)])
			}
			fmt.Fprintf(&b, "  %s\n", grp.FirstDifference)
		}
	}
	for _, r := range rep.NotRunning {
		fmt.Fprintf(&b, "replica %d: not compared (not running: %s)\n", r.ID, r.Error)
	}
	for _, u := range rep.Unreachable {
		fmt.Fprintf(&b, "endpoint %s: not compared (unreachable: %s)\n", u.Endpoint, u.Error)
	}
	switch {
	case rep.OK:
		b.WriteString("OK\n")
	case rep.Incomplete && !slices.ContainsFunc(rep.Groups, func(g verifyGroup) bool { return !g.Same }):
		b.WriteString("INCOMPLETE (--require-all: not every replica was compared)\n")
	default:
		b.WriteString("MISMATCH\n")
	}
	return g.printf("%s", b.String())
}

const faultLong = `Configure injected storage faults (for tests). It is an admin operation: the
server refuses it (PERMISSION_DENIED) unless it allows admin operations
(server.admin, kvserver --admin).

  kvctl fault --replicas 1,2 --error-rate 0.5 --fail-after 100 --latency 10ms
  kvctl fault --off

--error-rate is the probability in [0, 1] that a storage operation fails;
--fail-after N lets N more writes succeed and fails every later one;
--latency is added to every storage operation. Unset ones are off; the
settings replace the previous ones. --replicas names the replicas (default:
all; ignored by a standalone server). In a replicated group a replica whose
write fails stops (fail-stop). With one endpoint the request goes to that
process, which configures the replicas it runs. With several (a cluster, one
replica per process), kvctl first asks every endpoint which replicas it runs,
then sends each process the request for its own replicas among those named.
It configures none when a named replica (or, naming none, any endpoint) gives
no status; a process that then refuses the request is named in the error.
Prints "OK"; JSON (-w json): {"ok": true}.`

func newFaultCommand(g *globals) *cobra.Command {
	var (
		replicas  []uint
		errorRate float64
		failAfter uint64
		latency   time.Duration
		off       bool
	)
	cmd := &cobra.Command{
		Use:   "fault",
		Short: "Inject storage faults (or turn them --off)",
		Long:  faultLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			set := fl.Changed("error-rate") || fl.Changed("fail-after") || fl.Changed("latency")
			if off == set {
				return usageErr("give --off, or some of --error-rate, --fail-after, --latency")
			}
			if errorRate < 0 || errorRate > 1 {
				return usageErr("--error-rate %v is not in [0, 1]", errorRate)
			}
			if latency < 0 {
				return usageErr("--latency %v is negative", latency)
			}
			req := &messages.SetFaultInjectionRequest{Faults: &messages.FaultInjection{}}
			if !off {
				req.Faults = &messages.FaultInjection{ErrorRate: errorRate, FailAfterWrites: failAfter}
				if latency > 0 {
					req.Faults.AddedLatency = durationpb.New(latency)
				}
			}
			for _, r := range replicas {
				req.Replicas = append(req.Replicas, uint32(r))
			}
			send := g.faultEach
			if len(g.endpoints) == 1 {
				send = func(cmd *cobra.Command, req *messages.SetFaultInjectionRequest) error {
					_, err := do[*messages.SetFaultInjectionResponse](g, cmd, req)
					return err
				}
			}
			if err := send(cmd, req); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(map[string]bool{"ok": true})
			}
			return g.printf("OK\n")
		},
	}
	f := cmd.Flags()
	f.UintSliceVar(&replicas, "replicas", nil, "replica ids, comma-separated (default: all)")
	f.Float64Var(&errorRate, "error-rate", 0, "probability in [0, 1] that a storage operation fails")
	f.Uint64Var(&failAfter, "fail-after", 0, "let N more writes succeed, then fail every write")
	f.DurationVar(&latency, "latency", 0, "latency added to every storage operation")
	f.BoolVar(&off, "off", false, "turn every injected fault off")
	return cmd
}

// clearing reports whether req clears every fault (kvctl fault --off).
func clearing(req *messages.SetFaultInjectionRequest) bool {
	f := req.GetFaults()
	return f.GetErrorRate() == 0 && f.GetFailAfterWrites() == 0 && f.GetAddedLatency().AsDuration() == 0
}

// faultEach sends req to each endpoint that runs a replica req names (every
// replica the endpoints report, when it names none), naming only that
// endpoint's replicas: in a cluster a process configures only its own.
func (g *globals) faultEach(cmd *cobra.Command, req *messages.SetFaultInjectionRequest) error {
	st, err := g.status(cmd, false)
	if err != nil {
		return err
	}
	byEndpoint := map[string][]uint32{}
	if st.GetMode() == "standalone" { // each endpoint is an engine of its own
		for _, ep := range g.endpoints {
			if !slices.ContainsFunc(st.unreachable, func(u unreachable) bool { return u.Endpoint == ep }) {
				byEndpoint[ep] = req.GetReplicas()
			}
		}
	} else {
		ids := req.GetReplicas()
		if len(ids) == 0 {
			if len(st.unreachable) > 0 {
				u := st.unreachable[0]
				return messages.Errorf(messages.StatusCode_UNAVAILABLE, "endpoint %s did not answer (%s); no faults set: name the replicas to configure the others", u.Endpoint, u.Error)
			}
			for _, r := range st.GetReplicas() {
				// Every running replica, as the group's router reads it: a
				// stopped one has no faults (they belong to one engine
				// instance), and none can be set on it.
				if r.GetRunning() {
					ids = append(ids, r.GetReplicaId())
				}
			}
		}
		running := map[uint32]bool{}
		for _, r := range st.GetReplicas() {
			running[r.GetReplicaId()] = r.GetRunning()
		}
		for _, id := range ids {
			ep, ok := st.endpoint[id]
			if !ok {
				return messages.Errorf(messages.StatusCode_UNAVAILABLE, "no endpoint reports replica %d; no faults set", id)
			}
			if !running[id] { // named, and stopped
				if clearing(req) {
					continue // nothing to clear
				}
				return messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica %d is not running; no faults set", id)
			}
			byEndpoint[ep] = append(byEndpoint[ep], id)
		}
	}
	for _, ep := range g.endpoints {
		mine, ok := byEndpoint[ep]
		if !ok {
			continue
		}
		delete(byEndpoint, ep) // an endpoint given twice is sent to once
		one := &messages.SetFaultInjectionRequest{Faults: req.GetFaults(), Replicas: mine}
		at := *g
		at.endpoints = []string{ep}
		if _, err := do[*messages.SetFaultInjectionResponse](&at, cmd, one); err != nil {
			return fmt.Errorf("%s (replicas %v): %w", ep, mine, err)
		}
	}
	return nil
}
