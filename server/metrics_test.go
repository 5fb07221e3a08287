package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/server"
)

// scrape reads the server's /metrics.
func scrape(t *testing.T, s *server.Server) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the value of family name's sample with the given labels (name,
// value pairs); ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestOperationalMetrics drives a three-replica server through writes, a
// replica rebuilt from scratch that catches up through a snapshot, and a
// lost quorum, and finds each operational metric on /metrics with the value
// those caused: leader changes, replica stops, snapshots sent and received
// (count, bytes, time), proposals dropped, calls in flight, the Raft log's
// and the column families' sizes.
func TestOperationalMetrics(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.Database.BasePath = t.TempDir()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.Metrics = "127.0.0.1:0"
	cfg.Raft.SnapshotEntries, cfg.Raft.CompactionOverhead = 20, 5 // compact early: a rebuilt replica needs a snapshot
	cfg.Raft.ProposalTimeout = 2 * time.Second
	s, err := server.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	g := s.Backend().Group
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := g.WaitStarted(ctx); err != nil {
		t.Fatal(err)
	}
	put := func(ctx context.Context, i int) error {
		_, err := s.Core().Do(ctx, &messages.PutRequest{Key: fmt.Appendf(nil, "m%03d", i), Value: make([]byte, 1000)})
		return err
	}
	for i := range 50 {
		if err := put(ctx, i); err != nil {
			t.Fatal(err)
		}
	}

	// Replica 2, rebuilt from scratch, catches up through a snapshot: the
	// leader's log was compacted past what it needs.
	if err := g.StopReplica(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for i := 50; i < 100; i++ {
		if err := put(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.StartReplica(ctx, 2, true); err != nil {
		t.Fatal(err)
	}
	leader, _, ok := g.Leader()
	if !ok {
		t.Fatal("no leader")
	}
	lead := fmt.Sprint(leader)
	var fams map[string]*dto.MetricFamily
	actorkvtest.Eventually(t, func() bool {
		fams = scrape(t, s)
		sent, _ := value(fams, "actorkv_replica_snapshots_total", "replica", lead, "direction", "sent")
		got, _ := value(fams, "actorkv_replica_snapshots_total", "replica", "2", "direction", "received")
		installed, _ := value(fams, "actorkv_snapshot_events_total", "replica", "2", "kind", "installed")
		return sent >= 1 && got >= 1 && installed >= 1
	}, actorkvtest.WaitTimeout, "a snapshot sent by the leader, received and installed by replica 2 (its event)")
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"actorkv_leader_changes_total", nil, 1},
		{"actorkv_replica_stops_total", []string{"replica", "2", "why", "stopped"}, 1},
		{"actorkv_replica_snapshot_bytes_total", []string{"replica", lead, "direction", "sent"}, 50 * 1000},
		{"actorkv_replica_snapshot_bytes_total", []string{"replica", "2", "direction", "received"}, 50 * 1000},
		{"actorkv_replica_snapshot_seconds_total", []string{"replica", lead, "direction", "sent"}, 1e-9},
		{"actorkv_replica_snapshot_seconds_total", []string{"replica", "2", "direction", "received"}, 1e-9},
		{"actorkv_replica_raft_log_bytes", []string{"replica", "0"}, 1},
		{"actorkv_requests_total", []string{"op", "put", "code", "OK"}, 100},
	} {
		v, ok := value(fams, c.name, c.labels...)
		if !ok || v < c.min {
			t.Errorf("%s%v = %v (present %v), want at least %v", c.name, c.labels, v, ok, c.min)
		}
	}
	// The 100 KB written: in memtables, or in files once flushed.
	for _, id := range []string{"0", "1", "2"} {
		sst, ok1 := value(fams, "actorkv_replica_column_family_bytes", "replica", id, "column_family", "default", "what", "sst")
		mem, ok2 := value(fams, "actorkv_replica_column_family_bytes", "replica", id, "column_family", "default", "what", "memtable")
		if _, ok3 := value(fams, "actorkv_replica_column_family_bytes", "replica", id, "column_family", "__actorkv", "what", "live"); !ok1 || !ok2 || !ok3 {
			t.Errorf("replica %s: column family sizes missing", id)
		}
		if sst+mem < 100*1000 {
			t.Errorf("replica %s: default family holds %v + %v bytes, want at least the 100 KB written", id, sst, mem)
		}
	}
	if v, ok := value(fams, "actorkv_calls_in_flight"); !ok || v != 0 {
		t.Errorf("actorkv_calls_in_flight = %v (present %v) with no call running, want 0", v, ok)
	}
	dropped, ok := value(fams, "actorkv_replica_proposals_dropped_total", "replica", lead)
	if !ok {
		t.Errorf("actorkv_replica_proposals_dropped_total missing for the leader, replica %s", lead)
	}

	// Without a quorum a write waits (in flight) and its proposals are
	// dropped.
	for _, id := range []uint32{1, 2} {
		if id != leader {
			if err := g.StopReplica(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The leader may be 1 or 2 after the rebuild; stop whichever other
	// replica keeps a quorum, so that one replica runs alone.
	if leader != 0 {
		if err := g.StopReplica(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		defer cancel()
		done <- put(wctx, 1000)
	}()
	actorkvtest.Eventually(t, func() bool {
		v, _ := value(scrape(t, s), "actorkv_calls_in_flight")
		return v == 1
	}, actorkvtest.WaitTimeout, "one call in flight while the quorum is lost")
	if err := <-done; err == nil {
		t.Fatal("a write without a quorum succeeded")
	}
	fams = scrape(t, s)
	if v, _ := value(fams, "actorkv_replica_proposals_dropped_total", "replica", lead); v <= dropped {
		t.Errorf("proposals dropped on the lone leader = %v after a write without a quorum, want more than the %v before", v, dropped)
	}
	if v, _ := value(fams, "actorkv_calls_in_flight"); v != 0 {
		t.Errorf("actorkv_calls_in_flight = %v after the call ended, want 0", v)
	}

	// The Grafana dashboard in docs/ asks only for metrics that exist.
	dash, err := os.ReadFile("../docs/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`\b(actorkv|process)_[a-z_]+`).FindAllString(string(dash), -1)
	if len(names) < 10 {
		t.Fatalf("docs/dashboard.json names %d metrics", len(names))
	}
	for _, name := range names {
		if fams[strings.TrimSuffix(name, "_bucket")] == nil {
			t.Errorf("docs/dashboard.json uses %s, which /metrics does not export", name)
		}
	}
}
