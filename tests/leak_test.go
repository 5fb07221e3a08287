package tests

import (
	"bytes"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/actorkv/actorkv/actorkvtest"
)

// TestGroupStopLeavesNoGoroutines starts a group, writes through it, crashes
// and restarts a replica, rebuilds another (a membership change on a peer's
// goroutine), and stops it: the number of goroutines returns to what it was
// before.
func TestGroupStopLeavesNoGoroutines(t *testing.T) {
	base := settledGoroutines()

	c := actorkvtest.NewCluster(t)
	putAll(t, c, "leak/", 200, 8, false)
	c.Crash(1)
	c.Restart(1, false)
	c.Crash(2)
	c.Restart(2, true)
	c.EnsureSame(t)
	c.Stop()

	const slack = 2 // runtime and testing goroutines that come and go
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base+slack {
			t.Logf("%d goroutines after the group stopped, %d before it started", n, base)
			return
		}
		if time.Now().After(deadline) {
			var dump bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
			t.Fatalf("%d goroutines 30 s after the group stopped, %d before it started:\n%s", n, base, dump.String())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// settledGoroutines returns the goroutine count once it stops falling (the
// goroutines of an earlier test may still be winding down), or after a
// second.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond) // poll interval
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}
