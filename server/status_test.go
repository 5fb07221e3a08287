package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/server"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestStatusJSON: the status page is served at / (and nothing else at
// unknown paths), and /status.json reports the standalone service as one
// leading replica with its sizes and digest, and per-second samples of the
// requests served.
func TestStatusJSON(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.Deployment.Mode = server.ModeStandalone
	cfg.Database.BasePath = t.TempDir()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.Metrics = "127.0.0.1:0"
	s, err := server.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	base := "http://" + s.HTTPAddr()
	if code, body := get(t, base+"/"); code != http.StatusOK || !strings.Contains(body, "status.json") || strings.Contains(body, "<script src") {
		t.Fatalf("GET /: %d, a self-contained page polling status.json expected", code)
	}
	if code, _ := get(t, base+"/nope"); code != http.StatusNotFound {
		t.Fatalf("GET /nope: %d, want 404", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type doc struct {
		Mode     string `json:"mode"`
		Replicas []struct {
			ID     uint32 `json:"id"`
			State  string `json:"state"`
			Digest *struct {
				Digest  string `json:"digest"`
				Applied uint64 `json:"applied"`
			} `json:"digest"`
			Sizes []struct {
				ColumnFamily string `json:"column_family"`
			} `json:"sizes"`
		} `json:"replicas"`
		Samples []struct {
			Ops float64 `json:"ops"`
			P50 float64 `json:"p50_ms"`
		} `json:"samples"`
	}
	var d doc
	actorkvtest.Eventually(t, func() bool {
		for i := range 20 {
			if _, err := s.Core().Do(ctx, &messages.PutRequest{Key: []byte{'k', byte(i)}, Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
		}
		code, body := get(t, base+"/status.json")
		if code != http.StatusOK {
			t.Fatalf("GET /status.json: %d %s", code, body)
		}
		d = doc{}
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatal(err)
		}
		if len(d.Replicas) != 1 || d.Replicas[0].Digest == nil || len(d.Replicas[0].Digest.Digest) != 64 {
			return false // the first poll asks for the digests
		}
		for _, s := range d.Samples {
			if s.Ops > 0 && s.P50 > 0 {
				return true
			}
		}
		return false
	}, actorkvtest.WaitTimeout, "a sample of the puts with their latency, and the digest")
	if d.Mode != server.ModeStandalone || len(d.Replicas) != 1 || d.Replicas[0].State != "leader" || len(d.Replicas[0].Sizes) != 2 {
		t.Fatalf("status.json: %+v", d)
	}
}
