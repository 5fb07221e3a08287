package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestJSONLogsArePure: with log.format = "json" every line kvserver writes —
// its own, dragonboat's, Proto.Actor's, at debug level, through a start, a
// write, a replica's fail-stop and a shutdown — is one JSON object.
func TestJSONLogsArePure(t *testing.T) {
	s := startServer(t, serverConfig{jsonLogs: true})
	s.ctl(t, "put", "k", "v")
	s.ctl(t, "fault", "--replicas", "2", "--fail-after", "1") // replica 2 fail-stops at its next write
	s.ctl(t, "put", "k", "v2")
	eventually(t, waitTimeout, func() error {
		if !strings.Contains(s.log.String(), `"fail_stop"`) && !strings.Contains(s.log.String(), "fail-stop") {
			return errNotYet("replica 2's fail-stop in the log")
		}
		return nil
	})
	if code := s.terminate(30 * time.Second); code != 0 {
		t.Fatalf("kvserver exited %d", code)
	}
	lines := strings.Split(strings.TrimRight(s.log.String(), "\n"), "\n")
	for i, line := range lines {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("line %d of %d is not a JSON object (%v): %q", i+1, len(lines), err, line)
		}
	}
	if len(lines) < 5 {
		t.Fatalf("only %d log lines", len(lines))
	}
	if !strings.Contains(s.log.String(), `"replica":2`) {
		t.Fatalf("the fail-stop lines do not name replica 2:\n%s", s.log.tail(3000))
	}
}

// TestLogLevelsPerComponent: with log.level = warn and the supervisor at
// debug (--log-levels), the supervisor's debug lines are logged and no
// other component's below warn (a line of no component counts as at the
// default level, warn).
func TestLogLevelsPerComponent(t *testing.T) {
	s := startServer(t, serverConfig{jsonLogs: true, args: []string{"--log-level", "warn", "--log-levels", "supervisor=debug,router=info"}})
	s.ctl(t, "put", "k", "v")
	eventually(t, waitTimeout, func() error {
		if !strings.Contains(s.log.String(), "leader change observed") {
			return errNotYet("the supervisor's debug line")
		}
		return nil
	})
	if code := s.terminate(30 * time.Second); code != 0 {
		t.Fatalf("kvserver exited %d", code)
	}
	rank := map[string]int{"DEBUG": 0, "INFO": 1, "WARN": 2, "ERROR": 3}
	levels := map[string]int{"supervisor": 0, "router": 1}
	seen := map[string]bool{}
	for i, line := range strings.Split(strings.TrimRight(s.log.String(), "\n"), "\n") {
		var obj struct{ Level, Component, Msg string }
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("line %d is not JSON: %q", i+1, line)
		}
		want, ok := levels[obj.Component]
		if !ok {
			want = rank["WARN"]
		}
		if rank[obj.Level] < want {
			t.Errorf("line %d: %s of component %q, below its level: %q", i+1, obj.Level, obj.Component, line)
		}
		seen[obj.Component+"/"+obj.Level] = true
	}
	if !seen["supervisor/DEBUG"] {
		t.Fatalf("no supervisor debug line:\n%s", s.log.tail(3000))
	}
}

type errNotYet string

func (e errNotYet) Error() string { return "not yet: " + string(e) }
