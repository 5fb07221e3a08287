package server

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/actorkv/actorkv/messages"
)

// Metrics are kvserver's Prometheus metrics: requests by operation and
// status, latency histograms, calls in flight, the group's events (leader
// changes, snapshots, replicas stopping), and per replica (read at scrape
// time) whether it runs and leads, its term, applied index, proposals in
// flight and dropped, snapshots sent and received, and the sizes of its Raft
// log and RocksDB column families.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	leaderChanges prometheus.Counter
	snapshots     *prometheus.CounterVec // by replica and kind
	replicaDowns  *prometheus.CounterVec // by replica and why
}

// StatusFunc reports the status of the backend's replicas as req asks.
type StatusFunc func(ctx context.Context, req *messages.StatusRequest) (*messages.StatusResponse, error)

// NewMetrics registers the metrics; status is read at every scrape for the
// per-replica gauges and counters.
func NewMetrics(status StatusFunc, log *slog.Logger) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "actorkv_requests_total",
			Help: "Requests served, by operation and status code.",
		}, []string{"op", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "actorkv_request_duration_seconds",
			Help:    "Request latency, by operation.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18), // 50µs .. 6.5s
		}, []string{"op"}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "actorkv_leader_changes_total",
			Help: "Leader changes this process's group observed (a new leader or term, or the leader lost).",
		}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "actorkv_snapshot_events_total",
			Help: "Raft snapshot events of this process's replicas, by kind: created, sent, send_aborted, received, installed.",
		}, []string{"replica", "kind"}),
		replicaDowns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "actorkv_replica_stops_total",
			Help: "Replicas of this process that stopped, by why: fail_stop (its storage failed), removed (from the membership), or stopped.",
		}, []string{"replica", "why"}),
	}
	m.Registry.MustRegister(m.requests, m.latency, m.leaderChanges, m.snapshots, m.replicaDowns,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&replicaCollector{status: status, log: log})
	return m
}

// Observe implements Observer.
func (m *Metrics) Observe(op string, code messages.StatusCode, d time.Duration) {
	m.requests.WithLabelValues(op, code.String()).Inc()
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

// watchCalls registers the gauge of the calls core serves at the moment.
func (m *Metrics) watchCalls(core *Core) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "actorkv_calls_in_flight",
		Help: "Calls of the KV API (unary and Batch) admitted and not yet answered.",
	}, func() float64 { return float64(core.InFlight()) }))
}

// event counts one of the group's events.
func (m *Metrics) event(msg any) {
	switch e := msg.(type) {
	case *messages.LeaderChanged:
		m.leaderChanges.Inc()
	case *messages.SnapshotEvent:
		m.snapshots.WithLabelValues(replicaLabel(e.GetReplicaId()), snapshotKind(e.GetKind())).Inc()
	case *messages.ReplicaDown:
		why := "stopped"
		switch {
		case e.GetFailStop():
			why = "fail_stop"
		case e.GetRemoved():
			why = "removed"
		}
		m.replicaDowns.WithLabelValues(replicaLabel(e.GetReplicaId()), why).Inc()
	}
}

func replicaLabel(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

// snapshotKind is the metrics' and the status page's name of a snapshot
// event's kind.
func snapshotKind(k messages.SnapshotEvent_Kind) string {
	switch k {
	case messages.SnapshotEvent_CREATED:
		return "created"
	case messages.SnapshotEvent_SENT:
		return "sent"
	case messages.SnapshotEvent_SEND_ABORTED:
		return "send_aborted"
	case messages.SnapshotEvent_RECEIVED:
		return "received"
	case messages.SnapshotEvent_INSTALLED:
		return "installed"
	}
	return "unknown"
}

var (
	descRunning = prometheus.NewDesc("actorkv_replica_running", "1 when the replica serves.", []string{"replica"}, nil)
	descLeader  = prometheus.NewDesc("actorkv_replica_is_leader", "1 when the replica is the Raft leader.", []string{"replica"}, nil)
	descTerm    = prometheus.NewDesc("actorkv_replica_term", "The Raft term the replica knows.", []string{"replica"}, nil)
	descApplied = prometheus.NewDesc("actorkv_replica_applied_index", "The replica's last applied log index.", []string{"replica"}, nil)
	descFlight  = prometheus.NewDesc("actorkv_replica_proposals_in_flight", "The replica's proposals waiting for commit.", []string{"replica"}, nil)
	descHasLead = prometheus.NewDesc("actorkv_leader_known", "1 when the group knows a leader.", nil, nil)

	descDropped   = prometheus.NewDesc("actorkv_replica_proposals_dropped_total", "Entries the replica proposed that did not commit: refused at once (queue full, Raft busy, no leader) or timed out, dropped or stopped; since the replica started.", []string{"replica"}, nil)
	descSnapCount = prometheus.NewDesc("actorkv_replica_snapshots_total", "Snapshots the replica streamed to followers (sent) or read from its leader and installed (received), since it started.", []string{"replica", "direction"}, nil)
	descSnapBytes = prometheus.NewDesc("actorkv_replica_snapshot_bytes_total", "Bytes of the snapshots the replica sent or received, since it started.", []string{"replica", "direction"}, nil)
	descSnapSecs  = prometheus.NewDesc("actorkv_replica_snapshot_seconds_total", "Time the replica spent sending or receiving (and installing) snapshots, since it started.", []string{"replica", "direction"}, nil)
	descLogBytes  = prometheus.NewDesc("actorkv_replica_raft_log_bytes", "Bytes of the replica's Raft log database on disk.", []string{"replica"}, nil)
	descCFBytes   = prometheus.NewDesc("actorkv_replica_column_family_bytes", "Size of a column family of the replica's RocksDB, by what: sst (rocksdb.total-sst-files-size), live (rocksdb.estimate-live-data-size), memtable (rocksdb.cur-size-all-mem-tables); __actorkv is the engine's internal family.", []string{"replica", "column_family", "what"}, nil)
)

// replicaCollector reads the replicas' status at scrape time.
type replicaCollector struct {
	status StatusFunc
	log    *slog.Logger
}

func (c *replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRunning, descLeader, descTerm, descApplied, descFlight, descHasLead,
		descDropped, descSnapCount, descSnapBytes, descSnapSecs, descLogBytes, descCFBytes} {
		ch <- d
	}
}

func (c *replicaCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.status(ctx, &messages.StatusRequest{WithSizes: true})
	if err != nil {
		c.log.Warn("metrics: replica status", "err", err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descHasLead, b2f(st.GetHasLeader()))
	for _, r := range st.GetReplicas() {
		id := replicaLabel(r.GetReplicaId())
		gauge(descRunning, b2f(r.GetRunning()), id)
		gauge(descLeader, b2f(r.GetIsLeader()), id)
		gauge(descTerm, float64(r.GetTerm()), id)
		gauge(descApplied, float64(r.GetAppliedIndex()), id)
		gauge(descFlight, float64(r.GetProposalsInFlight()), id)
		if !r.GetRunning() {
			continue // no counters or sizes: nothing runs to count or open to measure
		}
		n := r.GetCounters()
		counter(descDropped, float64(n.GetProposalsDropped()), id)
		counter(descSnapCount, float64(n.GetSnapshotsSent()), id, "sent")
		counter(descSnapCount, float64(n.GetSnapshotsReceived()), id, "received")
		counter(descSnapBytes, float64(n.GetSnapshotBytesSent()), id, "sent")
		counter(descSnapBytes, float64(n.GetSnapshotBytesReceived()), id, "received")
		counter(descSnapSecs, n.GetSnapshotSendSeconds(), id, "sent")
		counter(descSnapSecs, n.GetSnapshotReceiveSeconds(), id, "received")
		if len(r.GetSizes()) == 0 {
			continue // the sizes could not be read (the replica's error says why)
		}
		if st.GetMode() != ModeStandalone { // no Raft log there
			gauge(descLogBytes, float64(r.GetRaftLogBytes()), id)
		}
		for _, s := range r.GetSizes() {
			cf := s.GetColumnFamily()
			gauge(descCFBytes, float64(s.GetSstBytes()), id, cf, "sst")
			gauge(descCFBytes, float64(s.GetLiveDataBytes()), id, cf, "live")
			gauge(descCFBytes, float64(s.GetMemtableBytes()), id, cf, "memtable")
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
