package server

import (
	"context"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/actorkv/actorkv/messages"
)

// statusHTML is the operator's status page: one file of HTML, CSS and
// JavaScript that polls /status.json (nothing loaded from elsewhere).
//
//go:embed status.html
var statusHTML []byte

const (
	// historyLen is how many one-second samples of throughput and latency
	// the page shows: the last five minutes.
	historyLen = 300
	// eventsLen bounds the recent events kept for the page.
	eventsLen = 100
	// digestEvery is how often, at most, the page's digests are refreshed,
	// and only while someone polls the page: a digest scans the data
	// whenever it changed.
	digestEvery = 10 * time.Second
)

// statusPage serves the status page ("/") and what it polls
// ("/status.json"): the replicas' status, the membership, throughput and
// latency over the last minutes (per-second samples of the process's own
// request metrics), and the group's recent events. Its goroutines belong to
// the Server, which stops them at Shutdown.
type statusPage struct {
	backend *Backend
	metrics *Metrics
	core    *Core
	log     *slog.Logger
	wantDig chan struct{} // capacity 1: a poll asks for fresh digests

	mu      sync.Mutex
	samples []Sample // ring of the last historyLen samples, oldest at next
	next    int
	last    totals  // the counters at the last sample
	events  []Event // ring of the last eventsLen events, oldest at evNext
	evNext  int
	digests map[uint32]digestAt // the last digests, by replica
	sub     *eventstream.Subscription
}

// Sample is one second (or so) of the process's requests.
type Sample struct {
	Time      int64   `json:"t"`         // Unix milliseconds at its end
	OpsPerSec float64 `json:"ops"`       // requests answered per second
	ErrPerSec float64 `json:"errors"`    // of those, answered other than OK
	P50Millis float64 `json:"p50_ms"`    // median latency (0 without requests)
	P99Millis float64 `json:"p99_ms"`    // 99th percentile latency
	InFlight  int64   `json:"in_flight"` // calls in flight at its end
}

// Event is one of the group's events as the page lists it.
type Event struct {
	Time int64  `json:"t"`    // Unix milliseconds
	Kind string `json:"kind"` // leader, replica, fail-stop, snapshot
	Text string `json:"text"`
}

type digestAt struct {
	Digest  string `json:"digest"` // hex
	Applied uint64 `json:"applied"`
	Time    int64  `json:"t"` // Unix milliseconds
}

// totals are the cumulative counts of the request metrics.
type totals struct {
	at       time.Time
	requests uint64
	errors   uint64
	bounds   []float64 // the latency buckets' upper bounds, in seconds
	buckets  []uint64  // cumulative counts per bound
	count    uint64    // latency observations
}

func newStatusPage(backend *Backend, metrics *Metrics, core *Core, log *slog.Logger) *statusPage {
	p := &statusPage{backend: backend, metrics: metrics, core: core, log: log,
		samples: make([]Sample, 0, historyLen), events: make([]Event, 0, eventsLen), digests: map[uint32]digestAt{},
		wantDig: make(chan struct{}, 1)}
	p.last = metrics.totals()
	if g := backend.Group; g != nil {
		p.sub = g.System().EventStream.Subscribe(p.onEvent)
	}
	return p
}

// run samples the request metrics every second and refreshes the digests
// when a poll asks (at most every digestEvery), until ctx ends.
func (p *statusPage) run(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				p.sample()
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.wantDig:
			}
			p.refreshDigests(ctx)
			pause := time.NewTimer(digestEvery)
			select {
			case <-ctx.Done():
				pause.Stop()
				return
			case <-pause.C:
			}
		}
	}()
}

// close stops following the group's events.
func (p *statusPage) close() {
	if p.sub != nil {
		p.backend.Group.System().EventStream.Unsubscribe(p.sub)
	}
}

func (p *statusPage) sample() {
	now := p.metrics.totals()
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.last
	p.last = now
	secs := now.at.Sub(prev.at).Seconds()
	if secs <= 0 {
		return
	}
	s := Sample{
		Time:      now.at.UnixMilli(),
		OpsPerSec: float64(now.requests-prev.requests) / secs,
		ErrPerSec: float64(now.errors-prev.errors) / secs,
		InFlight:  p.core.InFlight(),
	}
	if len(prev.buckets) == len(now.buckets) {
		delta := make([]uint64, len(now.buckets))
		for i := range delta {
			delta[i] = now.buckets[i] - prev.buckets[i]
		}
		n := now.count - prev.count
		s.P50Millis = 1000 * quantile(0.50, now.bounds, delta, n)
		s.P99Millis = 1000 * quantile(0.99, now.bounds, delta, n)
	}
	if len(p.samples) < historyLen {
		p.samples = append(p.samples, s)
		return
	}
	p.samples[p.next] = s
	p.next = (p.next + 1) % historyLen
}

// quantile estimates the q-quantile of n observations from cumulative
// bucket counts, interpolating linearly inside the bucket as Prometheus's
// histogram_quantile does; past the last bound it answers the last bound.
func quantile(q float64, bounds []float64, cumulative []uint64, n uint64) float64 {
	if n == 0 || len(bounds) == 0 {
		return 0
	}
	rank := q * float64(n)
	lower, below := 0.0, uint64(0)
	for i, b := range bounds {
		if float64(cumulative[i]) >= rank {
			inBucket := cumulative[i] - below
			if inBucket == 0 {
				return b
			}
			return lower + (b-lower)*(rank-float64(below))/float64(inBucket)
		}
		lower, below = b, cumulative[i]
	}
	return bounds[len(bounds)-1]
}

// totals reads the request counter and latency histogram, summed over
// operations (and status codes).
func (m *Metrics) totals() totals {
	t := totals{at: time.Now()}
	for _, metric := range collect(m.requests) {
		var d dto.Metric
		if metric.Write(&d) != nil {
			continue
		}
		n := uint64(d.GetCounter().GetValue())
		t.requests += n
		for _, l := range d.GetLabel() {
			if l.GetName() == "code" && l.GetValue() != messages.StatusCode_OK.String() {
				t.errors += n
			}
		}
	}
	for _, metric := range collect(m.latency) {
		var d dto.Metric
		if metric.Write(&d) != nil {
			continue
		}
		h := d.GetHistogram()
		if t.bounds == nil {
			for _, b := range h.GetBucket() {
				t.bounds = append(t.bounds, b.GetUpperBound())
			}
			t.buckets = make([]uint64, len(t.bounds))
		}
		for i, b := range h.GetBucket() {
			if i < len(t.buckets) {
				t.buckets[i] += b.GetCumulativeCount()
			}
		}
		t.count += h.GetSampleCount()
	}
	return t
}

// collect gathers c's metrics.
func collect(c prometheus.Collector) []prometheus.Metric {
	ch := make(chan prometheus.Metric)
	go func() { // ends when Collect returns
		c.Collect(ch)
		close(ch)
	}()
	var out []prometheus.Metric
	for m := range ch {
		out = append(out, m)
	}
	return out
}

func (p *statusPage) refreshDigests(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, digestEvery)
	defer cancel()
	st, err := p.backend.StatusOf(ctx, &messages.StatusRequest{WithDigests: true})
	if err != nil {
		p.log.Debug("status page: digests", "err", err)
		return
	}
	now := time.Now().UnixMilli()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range st.GetReplicas() {
		if len(r.GetDigest()) > 0 {
			p.digests[r.GetReplicaId()] = digestAt{Digest: hex.EncodeToString(r.GetDigest()), Applied: r.GetAppliedIndex(), Time: now}
		}
	}
}

// onEvent records one of the group's events (called on the group's
// publishing goroutine) and counts it in the metrics.
func (p *statusPage) onEvent(evt any) {
	if s, ok := evt.(*messages.SnapshotEvent); ok && s.GetIndex() == 0 && s.GetKind() != messages.SnapshotEvent_SENT && s.GetKind() != messages.SnapshotEvent_SEND_ABORTED {
		return // dragonboat "recovering" a new node from no snapshot at start: no snapshot at all
	}
	p.metrics.event(evt)
	kind, text := describeEvent(evt)
	if kind == "" {
		return
	}
	e := Event{Time: time.Now().UnixMilli(), Kind: kind, Text: text}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.events) < eventsLen {
		p.events = append(p.events, e)
		return
	}
	p.events[p.evNext] = e
	p.evNext = (p.evNext + 1) % eventsLen
}

// describeEvent names the kind of one of the group's events and says what
// happened ("" for messages the page does not list).
func describeEvent(evt any) (kind, text string) {
	switch e := evt.(type) {
	case *messages.LeaderChanged:
		if !e.GetHasLeader() {
			return "leader", fmt.Sprintf("no leader known (term %d)", e.GetTerm())
		}
		return "leader", fmt.Sprintf("replica %d leads (term %d)", e.GetLeaderId(), e.GetTerm())
	case *messages.ReplicaStarting:
		return "replica", fmt.Sprintf("replica %d starting", e.GetReplicaId())
	case *messages.ReplicaUp:
		return "replica", fmt.Sprintf("replica %d up (node %d)", e.GetReplicaId(), e.GetNodeId())
	case *messages.ReplicaDown:
		switch {
		case e.GetFailStop():
			return "fail-stop", fmt.Sprintf("replica %d fail-stopped: %s", e.GetReplicaId(), e.GetReason())
		case e.GetRemoved():
			return "replica", fmt.Sprintf("replica %d removed from the membership: %s", e.GetReplicaId(), e.GetReason())
		}
		return "replica", fmt.Sprintf("replica %d stopped: %s", e.GetReplicaId(), e.GetReason())
	case *messages.SnapshotEvent:
		r, i := e.GetReplicaId(), e.GetIndex()
		switch e.GetKind() {
		case messages.SnapshotEvent_SENT:
			return "snapshot", fmt.Sprintf("replica %d sent a snapshot to node %d", r, e.GetNodeId())
		case messages.SnapshotEvent_SEND_ABORTED:
			return "snapshot", fmt.Sprintf("replica %d aborted sending a snapshot to node %d", r, e.GetNodeId())
		case messages.SnapshotEvent_RECEIVED:
			return "snapshot", fmt.Sprintf("replica %d received a snapshot at index %d from node %d", r, i, e.GetFrom())
		case messages.SnapshotEvent_INSTALLED:
			return "snapshot", fmt.Sprintf("replica %d installed a snapshot at index %d", r, i)
		}
		return "snapshot", fmt.Sprintf("replica %d took a snapshot at index %d", r, i)
	}
	return "", ""
}

// pageReplica is one replica as /status.json reports it.
type pageReplica struct {
	ID                uint32                       `json:"id"`
	State             string                       `json:"state"` // leader, follower, no leader, installing snapshot, down
	Running           bool                         `json:"running"`
	IsLeader          bool                         `json:"is_leader"`
	LeaderID          *uint32                      `json:"leader_id,omitempty"`
	Term              uint64                       `json:"term"`
	Applied           uint64                       `json:"applied"`
	NodeID            uint64                       `json:"node_id,omitempty"`
	ProposalsInFlight uint64                       `json:"proposals_in_flight"`
	Error             string                       `json:"error,omitempty"`
	Digest            *digestAt                    `json:"digest,omitempty"`
	RaftLogBytes      uint64                       `json:"raft_log_bytes"`
	Sizes             []*messages.ColumnFamilySize `json:"sizes,omitempty"`
	Counters          *messages.ReplicaCounters    `json:"counters,omitempty"`
}

type pageMember struct {
	ReplicaID uint32 `json:"replica_id"`
	NodeID    uint64 `json:"node_id"`
	Address   string `json:"address"`
	Leader    bool   `json:"leader"`
}

// pageStatus is the document /status.json answers.
type pageStatus struct {
	Time         int64         `json:"t"`
	Mode         string        `json:"mode"`
	HasLeader    bool          `json:"has_leader"`
	Replicas     []pageReplica `json:"replicas"`
	StatusError  string        `json:"status_error,omitempty"`
	Members      []pageMember  `json:"members,omitempty"`
	MembersError string        `json:"members_error,omitempty"`
	InFlight     int64         `json:"in_flight"`
	Samples      []Sample      `json:"samples"`
	Events       []Event       `json:"events"` // newest first
	Draining     bool          `json:"draining"`
}

// replicaState is a replica's one-word state for the page.
func replicaState(r *messages.ReplicaStatus) string {
	switch {
	case !r.GetRunning():
		return "down"
	case r.GetInstallingSnapshot():
		return "installing snapshot"
	case r.GetIsLeader():
		return "leader"
	case r.GetHasLeader():
		return "follower"
	}
	return "no leader"
}

func (p *statusPage) status(ctx context.Context) pageStatus {
	select { // fresh digests, when the digest goroutine is ready for them
	case p.wantDig <- struct{}{}:
	default:
	}
	out := pageStatus{Time: time.Now().UnixMilli(), Mode: p.backend.Mode(), InFlight: p.core.InFlight()}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	st, err := p.backend.StatusOf(sctx, &messages.StatusRequest{WithSizes: true})
	cancel()
	if err != nil {
		out.StatusError = err.Error()
	}
	if g := p.backend.Group; g != nil {
		mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		members, err := g.Members(mctx)
		cancel()
		if err != nil {
			out.MembersError = err.Error()
		}
		for _, m := range members {
			out.Members = append(out.Members, pageMember{ReplicaID: m.GetReplicaId(), NodeID: m.GetNodeId(), Address: m.GetRaftAddress(), Leader: m.GetLeader()})
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out.HasLeader = st.GetHasLeader()
	for _, r := range st.GetReplicas() {
		pr := pageReplica{ID: r.GetReplicaId(), State: replicaState(r), Running: r.GetRunning(), IsLeader: r.GetIsLeader(),
			Term: r.GetTerm(), Applied: r.GetAppliedIndex(), NodeID: r.GetNodeId(), ProposalsInFlight: r.GetProposalsInFlight(),
			Error: r.GetError(), RaftLogBytes: r.GetRaftLogBytes(), Sizes: r.GetSizes(), Counters: r.GetCounters()}
		if r.GetHasLeader() {
			id := r.GetLeaderId()
			pr.LeaderID = &id
		}
		if d, ok := p.digests[r.GetReplicaId()]; ok {
			pr.Digest = &d
		}
		out.Replicas = append(out.Replicas, pr)
	}
	out.Samples = make([]Sample, 0, len(p.samples))
	out.Samples = append(out.Samples, p.samples[p.next:]...)
	out.Samples = append(out.Samples, p.samples[:p.next]...)
	out.Events = make([]Event, 0, len(p.events))
	for i := range p.events { // newest first
		out.Events = append(out.Events, p.events[(p.evNext+len(p.events)-1-i)%len(p.events)])
	}
	return out
}

// serveJSON answers /status.json.
func (p *statusPage) serveJSON(w http.ResponseWriter, r *http.Request, draining bool) {
	st := p.status(r.Context())
	st.Draining = draining
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(st); err != nil {
		p.log.Debug("status page: write", "err", err)
	}
}

// serveHTML answers "/" with the page (and 404 for any other path the mux
// sends here).
func (p *statusPage) serveHTML(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(statusHTML)
}
