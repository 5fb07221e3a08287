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
// status, latency histograms, and per replica (read at scrape time) whether
// it runs and leads, its term, applied index and proposals in flight.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// StatusFunc reports the status of the backend's replicas.
type StatusFunc func(ctx context.Context, withDigests bool) (*messages.StatusResponse, error)

// NewMetrics registers the metrics; status is read at every scrape for the
// per-replica gauges.
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
	}
	m.Registry.MustRegister(m.requests, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&replicaCollector{status: status, log: log})
	return m
}

// Observe implements Observer.
func (m *Metrics) Observe(op string, code messages.StatusCode, d time.Duration) {
	m.requests.WithLabelValues(op, code.String()).Inc()
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

var (
	descRunning = prometheus.NewDesc("actorkv_replica_running", "1 when the replica serves.", []string{"replica"}, nil)
	descLeader  = prometheus.NewDesc("actorkv_replica_is_leader", "1 when the replica is the Raft leader.", []string{"replica"}, nil)
	descTerm    = prometheus.NewDesc("actorkv_replica_term", "The Raft term the replica knows.", []string{"replica"}, nil)
	descApplied = prometheus.NewDesc("actorkv_replica_applied_index", "The replica's last applied log index.", []string{"replica"}, nil)
	descFlight  = prometheus.NewDesc("actorkv_replica_proposals_in_flight", "The replica's proposals waiting for commit.", []string{"replica"}, nil)
	descHasLead = prometheus.NewDesc("actorkv_leader_known", "1 when the group knows a leader.", nil, nil)
)

// replicaCollector reads the replicas' status at scrape time.
type replicaCollector struct {
	status StatusFunc
	log    *slog.Logger
}

func (c *replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRunning, descLeader, descTerm, descApplied, descFlight, descHasLead} {
		ch <- d
	}
}

func (c *replicaCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.status(ctx, false)
	if err != nil {
		c.log.Warn("metrics: replica status", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descHasLead, prometheus.GaugeValue, b2f(st.GetHasLeader()))
	for _, r := range st.GetReplicas() {
		id := strconv.FormatUint(uint64(r.GetReplicaId()), 10)
		ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, b2f(r.GetRunning()), id)
		ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, b2f(r.GetIsLeader()), id)
		ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(r.GetTerm()), id)
		ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(r.GetAppliedIndex()), id)
		ch <- prometheus.MustNewConstMetric(descFlight, prometheus.GaugeValue, float64(r.GetProposalsInFlight()), id)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
