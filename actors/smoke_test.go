package actors

import (
	"context"
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.RTT = 5 * time.Millisecond
	cfg.ElectionRTT = 20
	g, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	t.Log(g.Leader())
	if err := g.WaitLeader(ctx, 0); err != nil {
		t.Fatal(err)
	}
	c := g.Client()
	v, err := c.Put(ctx, []byte("k"), []byte("v"))
	t.Log(v, err)
	val, ok, err := c.Get(ctx, []byte("k"))
	t.Log(string(val), ok, err)
	st, err := g.Status(ctx, true)
	t.Log(st, err)
	start := time.Now()
	for i := 0; i < 1000; i++ {
		if _, err := c.Put(ctx, []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	t.Log("1000 sequential puts", time.Since(start))
}
