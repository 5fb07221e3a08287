package actorkvtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The LogRecorder: the group's log records, kept for assertions.

// LogRecord is one message the group logged.
type LogRecord struct {
	Level   slog.Level
	Message string
	Attrs   map[string]string
}

// LogRecorder is the slog.Handler a Cluster gives its group: it keeps every
// record for assertions and writes it to the test's log (shown on failure
// or with -v) until Close.
type LogRecorder struct {
	shared *logShared
	attrs  []slog.Attr
	group  string
}

type logShared struct {
	mu      sync.Mutex
	t       testing.TB // nil once closed
	records []LogRecord
}

// NewLogRecorder returns a recorder that writes to t's log.
func NewLogRecorder(t testing.TB) *LogRecorder {
	return &LogRecorder{shared: &logShared{t: t}}
}

// Close stops writing to the test's log (records are still kept): the test
// may have ended.
func (l *LogRecorder) Close() {
	l.shared.mu.Lock()
	defer l.shared.mu.Unlock()
	l.shared.t = nil
}

// Enabled implements slog.Handler.
func (l *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (l *LogRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := LogRecord{Level: r.Level, Message: r.Message, Attrs: map[string]string{}}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	add := func(a slog.Attr) bool {
		k := a.Key
		if l.group != "" {
			k = l.group + "." + k
		}
		rec.Attrs[k] = a.Value.String()
		fmt.Fprintf(&b, " %s=%v", k, a.Value)
		return true
	}
	for _, a := range l.attrs {
		add(a)
	}
	r.Attrs(add)
	s := l.shared
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, rec)
	if s.t != nil {
		s.t.Log(b.String())
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (l *LogRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &LogRecorder{shared: l.shared, attrs: append(slices.Clone(l.attrs), as...), group: l.group}
}

// WithGroup implements slog.Handler.
func (l *LogRecorder) WithGroup(name string) slog.Handler {
	g := name
	if l.group != "" {
		g = l.group + "." + name
	}
	return &LogRecorder{shared: l.shared, attrs: slices.Clone(l.attrs), group: g}
}

// Records returns the records kept so far that match (all when match is
// nil).
func (l *LogRecorder) Records(match func(LogRecord) bool) []LogRecord {
	l.shared.mu.Lock()
	defer l.shared.mu.Unlock()
	var out []LogRecord
	for _, r := range l.shared.records {
		if match == nil || match(r) {
			out = append(out, r)
		}
	}
	return out
}

// WaitFor waits until a record matching match has been logged and returns
// it.
func (l *LogRecorder) WaitFor(t testing.TB, what string, match func(LogRecord) bool) LogRecord {
	t.Helper()
	var found LogRecord
	Eventually(t, func() bool {
		rs := l.Records(match)
		if len(rs) == 0 {
			return false
		}
		found = rs[0]
		return true
	}, WaitTimeout, "log record: "+what)
	return found
}

// Dump writes every record to w (for debugging a test).
func (l *LogRecorder) Dump(w io.Writer) {
	for _, r := range l.Records(nil) {
		fmt.Fprintf(w, "%s %s %v\n", r.Level, r.Message, r.Attrs)
	}
}
