package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestLogHandlerLevelsPerComponent: each component's lines pass at its own
// level, whether the component is the logger's attribute or the record's,
// and lines of no component at the default level.
func TestLogHandlerLevelsPerComponent(t *testing.T) {
	var buf bytes.Buffer
	inner := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	log := slog.New(NewLogHandler(inner, slog.LevelInfo, map[string]slog.Level{"replica": slog.LevelDebug, "actor": slog.LevelError}))
	replica := log.With("component", "replica", "replica", 2)
	actor := log.With("component", "actor")
	replica.Debug("replica debug")                        // passes: replica at debug
	actor.Warn("actor warn")                              // dropped: actor at error
	actor.Error("actor error")                            // passes
	log.Debug("plain debug")                              // dropped: default info
	log.Info("plain info")                                // passes
	log.Debug("record debug", "component", "replica")     // passes: the record names replica
	log.Info("record info", "component", "actor")         // dropped
	log.With("component", "server").Debug("server debug") // dropped: server at the default
	if !log.Handler().Enabled(context.Background(), slog.LevelDebug) || actor.Handler().Enabled(context.Background(), slog.LevelWarn) {
		t.Error("Enabled does not follow the components' levels")
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var obj struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatal(err)
		}
		got = append(got, obj.Msg)
	}
	want := []string{"replica debug", "actor error", "plain info", "record debug"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("logged %q, want %q", got, want)
	}
}
