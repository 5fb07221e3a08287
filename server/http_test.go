package server_test

import (
	"log/slog"
	"net/http"
	"testing"

	"github.com/actorkv/actorkv/server"
)

// TestPprofIsOptIn checks Go's profiler is served on the metrics address
// only with server.pprof.
func TestPprofIsOptIn(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := server.DefaultConfig()
		cfg.Deployment.Mode = server.ModeStandalone
		cfg.Database.BasePath = t.TempDir()
		cfg.Server.Listen = "127.0.0.1:0"
		cfg.Server.Metrics = "127.0.0.1:0"
		cfg.Server.Pprof = on
		s, err := server.Start(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("start server: %v", err)
		}
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		for _, path := range []string{"/debug/pprof/", "/metrics"} {
			resp, err := http.Get("http://" + s.HTTPAddr() + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if path == "/metrics" {
				if resp.StatusCode != http.StatusOK {
					t.Errorf("pprof %v: %s answered %d", on, path, resp.StatusCode)
				}
			} else if resp.StatusCode != want {
				t.Errorf("pprof %v: %s answered %d, want %d", on, path, resp.StatusCode, want)
			}
		}
		s.Shutdown()
	}
}
