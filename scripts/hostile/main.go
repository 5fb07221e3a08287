// Command hostile drives a kvserver with the loads issue 14 names — many
// large puts in flight on one Batch stream, concurrent range reads of tens
// of MiB, thousands of Batch streams — and reports the server's peak RSS
// during each (sampled from /proc/PID/status every 50 ms), beside what the
// calls answered. scripts/memory.sh runs it against a fresh kvserver.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7070", "kvserver gRPC address")
	pid := flag.Int("pid", 0, "kvserver's process id, whose RSS is sampled")
	rounds := flag.Int("rounds", 5, "rounds of each load")
	target := flag.Float64("target-mib", 0, "fail (exit 1) when the peak RSS of a load is over this many MiB (0: report only)")
	flag.Parse()
	if err := run(*addr, *pid, *rounds, *target); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

// rss returns pid's resident set size in MiB.
func rss(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

// phase runs load while sampling pid's RSS and prints its peak and the
// count of each outcome; it returns the peak.
func phase(name string, pid int, load func(record func(error))) float64 {
	var mu sync.Mutex
	codes := map[string]int{}
	record := func(err error) {
		mu.Lock()
		codes[messages.CodeOf(err).String()]++
		mu.Unlock()
	}
	before := rss(pid)
	peak := before
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				peak = max(peak, rss(pid))
			}
		}
	})
	start := time.Now()
	load(record)
	close(stop)
	wg.Wait()
	fmt.Printf("%-40s RSS before %6.0f MiB, peak %6.0f MiB, after %6.0f MiB  (%v; outcomes %v)\n",
		name, before, peak, rss(pid), time.Since(start).Round(time.Millisecond), codes)
	return peak
}

func run(addr string, pid, rounds int, target float64) error {
	var over []string
	check := func(name string, peak float64) {
		if target > 0 && peak > target {
			over = append(over, fmt.Sprintf("%s: peak RSS %.0f MiB", name, peak))
		}
	}
	ctx := context.Background()
	one, err := kvclient.Dial(addr, kvclient.Options{Streams: 1})
	if err != nil {
		return err
	}
	defer one.Close()
	mib := bytes.Repeat([]byte("v"), 1<<20)
	call := func(c *kvclient.Client, req *messages.Call, d time.Duration) error {
		cctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		r, err := c.Do(cctx, req)
		if err != nil {
			return err
		}
		return r.GetStatus().Err()
	}
	newCall := func(req proto.Message) *messages.Call {
		c, _ := messages.NewCall(0, req) // every request here is a Batch call
		return c
	}
	put := func(key string, v []byte) *messages.Call {
		return newCall(&messages.PutRequest{Key: []byte(key), Value: v})
	}

	check("puts", phase("192 x 1 MiB puts in flight, one stream", pid, func(record func(error)) {
		for r := range rounds {
			var wg sync.WaitGroup
			for i := range 192 {
				wg.Go(func() { record(call(one, put(fmt.Sprintf("big/%d/%d", r, i), mib), 60*time.Second)) })
			}
			wg.Wait()
		}
	}))

	for i := range 30 { // 30 MiB under r/
		if err := call(one, put(fmt.Sprintf("r/%02d", i), mib), 30*time.Second); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
	}
	check("range reads", phase("16 concurrent 30 MiB range reads", pid, func(record func(error)) {
		for range rounds {
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					record(call(one, newCall(&messages.GetRangeRequest{Begin: []byte("r/"), End: []byte("r0"), Limit: 100}), 60*time.Second))
				})
			}
			wg.Wait()
		}
	}))

	check("streams", phase("3000 Batch streams, one put each", pid, func(record func(error)) {
		var clients []*kvclient.Client
		defer func() {
			for _, c := range clients {
				c.Close()
			}
		}()
		for range 30 { // 30 connections of 100 streams
			c, err := kvclient.Dial(addr, kvclient.Options{Streams: 100})
			if err != nil {
				record(err)
				return
			}
			clients = append(clients, c)
		}
		var wg sync.WaitGroup
		for i, c := range clients {
			for j := range 100 {
				wg.Go(func() { record(call(c, put(fmt.Sprintf("s/%d/%d", i, j), []byte("v")), 60*time.Second)) })
			}
		}
		wg.Wait()
	}))
	if len(over) > 0 {
		return fmt.Errorf("over the target of %.0f MiB: %s", target, strings.Join(over, "; "))
	}
	return nil
}
