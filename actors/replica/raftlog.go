package replica

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v3/logger"
)

// dragonboat logs through a process-wide logger factory; actorkv installs
// one (once, before its first NodeHost) that hands every line to slog's
// default logger as a record with component=dragonboat and pkg=<its
// package>, so a JSON log stays JSON. Its packages start at error level
// (dragonboat's Raft layer logs every election as a warning; actorkv logs
// leadership and replica state itself), and a transport line that repeats
// (a peer that is down refuses a connection every second) is logged once
// per repeatWindow, with the number of repeats left out.

// repeatWindow is how often one recurring dragonboat line is logged.
const repeatWindow = 30 * time.Second

var (
	raftLogOnce sync.Once
	// raftFatal, when set, is called with dragonboat's message when it hits
	// a state it cannot go on from (it panics otherwise).
	raftFatal atomic.Pointer[func(msg string)]
)

// OnRaftFatal sets what happens when dragonboat meets a state it cannot go
// on from — a replica whose Raft log was lost while the cluster committed
// past it ("invalid commitTo index"), data applied beyond a log that is
// new ("new node at non-zero index"). Dragonboat panics on its own
// goroutine, which ends the process with a stack trace; f runs first with
// RaftFatalCause of the message, and must not return (kvserver prints the
// cause on one line and exits). If it returns, the panic goes on.
func OnRaftFatal(f func(cause string)) { raftFatal.Store(&f) }

// RaftFatalCause explains one of dragonboat's fatal messages to an
// operator: what most likely happened and what to do.
func RaftFatalCause(msg string) string {
	switch {
	case strings.Contains(msg, "invalid commitTo index"):
		return "Raft: " + msg + ": this replica's Raft log is behind what the cluster committed with it: " +
			"its data directory was lost, emptied or restored from an old copy; it cannot rejoin under its old identity: " +
			"replace it (kvctl member replace, see docs/CLUSTER.md)"
	case strings.Contains(msg, "new node at non-zero index"):
		return "Raft: " + msg + ": the replica's data was applied from a Raft log this node does not have " +
			"(its Raft directory was removed, or the data belongs to another cluster id)"
	}
	return "Raft: " + msg
}

// SetRaftLogLevel sets the level of dragonboat's lines: "debug", "info",
// "warn" or "error" (the default).
func SetRaftLogLevel(level string) error {
	lv, ok := map[string]logger.LogLevel{"debug": logger.DEBUG, "info": logger.INFO, "warn": logger.WARNING, "error": logger.ERROR}[level]
	if !ok {
		return fmt.Errorf("raft log level %q is not debug, info, warn or error", level)
	}
	installRaftLogger()
	for _, name := range raftLogPackages {
		logger.GetLogger(name).SetLevel(lv)
	}
	return nil
}

// raftLogPackages are dragonboat's loggers.
var raftLogPackages = []string{"raft", "rsm", "transport", "dragonboat", "logdb", "raftpb", "config", "settings", "grpc", "netutil", "server", "tan"}

// installRaftLogger routes dragonboat's logging through slog; it runs once,
// before the first NodeHost starts. If the embedding program installed a
// logger factory of its own first, that one stays.
func installRaftLogger() {
	raftLogOnce.Do(func() {
		func() {
			defer func() { _ = recover() }() // "setting the logger factory again": keep theirs
			logger.SetLoggerFactory(func(pkg string) logger.ILogger {
				l := &raftLogger{pkg: pkg, last: map[string]time.Time{}}
				l.level.Store(int32(logger.ERROR))
				return l
			})
		}()
		for _, name := range raftLogPackages {
			logger.GetLogger(name).SetLevel(logger.ERROR)
		}
	})
}

// raftLogger is one dragonboat package's logger.
type raftLogger struct {
	pkg   string
	level atomic.Int32 // a logger.LogLevel: lines above it are dropped

	mu   sync.Mutex
	last map[string]time.Time // when each format was last logged
}

var _ logger.ILogger = (*raftLogger)(nil)

func (l *raftLogger) SetLevel(level logger.LogLevel) { l.level.Store(int32(level)) }

func (l *raftLogger) Debugf(format string, args ...any) {
	l.log(logger.DEBUG, slog.LevelDebug, format, args)
}
func (l *raftLogger) Infof(format string, args ...any) {
	l.log(logger.INFO, slog.LevelInfo, format, args)
}
func (l *raftLogger) Warningf(format string, args ...any) {
	l.log(logger.WARNING, slog.LevelWarn, format, args)
}
func (l *raftLogger) Errorf(format string, args ...any) {
	l.log(logger.ERROR, slog.LevelError, format, args)
}

// Panicf logs the message, hands it to the fatal hook, and panics.
func (l *raftLogger) Panicf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	slog.Error("dragonboat: fatal: "+msg, "component", "dragonboat", "pkg", l.pkg)
	if f := raftFatal.Load(); f != nil {
		(*f)(RaftFatalCause(msg))
	}
	panic(msg)
}

func (l *raftLogger) log(level logger.LogLevel, slevel slog.Level, format string, args []any) {
	if int32(level) > l.level.Load() {
		return
	}
	if l.pkg != "transport" { // only its lines repeat while a peer is down
		slog.Log(context.Background(), slevel, fmt.Sprintf(format, args...), "component", "dragonboat", "pkg", l.pkg)
		return
	}
	now := time.Now()
	l.mu.Lock()
	last, seen := l.last[format]
	if seen && now.Sub(last) < repeatWindow {
		l.mu.Unlock()
		return
	}
	l.last[format] = now
	if len(l.last) > 1024 { // formats are constants; this only bounds a surprise
		clear(l.last)
	}
	l.mu.Unlock()
	slog.Log(context.Background(), slevel, fmt.Sprintf(format, args...), "component", "dragonboat", "pkg", l.pkg)
}
