package storage

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

func TestReopenKeepsDataVersionAndAppliedIndex(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	e := openEngine(t, cfg)
	var last uint64
	for i, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"a", "4"}} {
		v := mustPut(t, e, kv[0], kv[1])
		if want := uint64(i + 1); v != want {
			t.Fatalf("Put %d got version %d, want %d", i, v, want)
		}
		last = v
	}
	v, err := db(e).Put(ctx, []byte("u"), []byte("in users"), kv.WithColumnFamily(usersCF))
	if err != nil {
		t.Fatal(err)
	}
	last = v
	if v, err = db(e).Delete(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	last = v
	before := map[string]map[string]string{kv.DefaultColumnFamily: dump(t, e, kv.DefaultColumnFamily), usersCF: dump(t, e, usersCF)}
	digest := mustDigest(t, e)

	e = reopen(t, e, cfg)
	if got := e.AppliedIndex(); got != last {
		t.Fatalf("AppliedIndex after reopen = %d, want %d", got, last)
	}
	rv, err := e.GetReadVersion(ctx)
	if err != nil || rv != last {
		t.Fatalf("GetReadVersion after reopen = %d, %v; want %d", rv, err, last)
	}
	for cf, want := range before {
		if got := dump(t, e, cf); !maps.Equal(got, want) {
			t.Fatalf("family %s after reopen = %v, want %v", cf, got, want)
		}
	}
	if d := digestDiff(mustDigest(t, e), digest); d != "" {
		t.Fatalf("digest after reopen: %s", d)
	}
	// The latest version stays readable after a restart.
	if val, ok, err := e.SnapshotRead(ctx, []byte("a"), last); err != nil || !ok || string(val) != "4" {
		t.Fatalf("SnapshotRead(a, %d) after reopen = %q, %v, %v", last, val, ok, err)
	}
	if v := mustPut(t, e, "d", "5"); v != last+1 {
		t.Fatalf("first write after reopen got version %d, want %d", v, last+1)
	}
}

func TestDataDirLockAndClose(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	e := openEngine(t, cfg)
	mustPut(t, e, "k", "v")

	second, err := Open(cfg)
	if err == nil {
		second.Close()
		t.Fatal("second Open of an open directory succeeded")
	}
	if !errors.Is(err, messages.ErrUnavailable) {
		t.Fatalf("second Open: %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), cfg.Dir) {
		t.Fatalf("second Open error %q does not name the directory %s", err, cfg.Dir)
	}
	// The failed Open must not have disturbed the first engine.
	if got, ok := mustGet(t, e, "k"); !ok || got != "v" {
		t.Fatalf("Get after failed second Open = %q, %v", got, ok)
	}

	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	closedOps := []struct {
		name string
		op   func() error
	}{
		{"Get", func() error { _, _, err := e.Get(ctx, []byte("k")); return err }},
		{"Put", func() error { _, err := db(e).Put(ctx, []byte("k"), []byte("v")); return err }},
		{"Delete", func() error { _, err := db(e).Delete(ctx, []byte("k")); return err }},
		{"ClearRange", func() error { _, err := db(e).ClearRange(ctx, nil, nil); return err }},
		{"ListKeys", func() error { _, err := e.ListKeys(ctx, nil, 0); return err }},
		{"GetRange", func() error { _, err := e.GetRange(ctx, nil, nil, 0, false); return err }},
		{"AtomicCommit", func() error {
			_, err := db(e).AtomicCommit(ctx, &messages.AtomicCommit{Mutations: []*messages.Mutation{{Type: messages.MutationType_SET, Key: []byte("k")}}})
			return err
		}},
		{"GetReadVersion", func() error { _, err := e.GetReadVersion(ctx); return err }},
		{"SnapshotRead", func() error { _, _, err := e.SnapshotRead(ctx, []byte("k"), 1); return err }},
		{"SnapshotGetRange", func() error { _, err := e.SnapshotGetRange(ctx, nil, nil, 0, false, 1); return err }},
		{"SetFaultInjection", func() error { return e.SetFaultInjection(ctx, &messages.FaultInjection{}) }},
		{"ApplyBatch", func() error { _, err := e.ApplyBatch(entries(5, setCmd("", "k", "v"))); return err }},
		{"Digest", func() error { _, err := e.Digest(ctx); return err }},
		{"PrepareSnapshot", func() error { _, err := e.PrepareSnapshot(); return err }},
		{"RecoverSnapshot", func() error { return e.RecoverSnapshot(strings.NewReader(""), nil) }},
		{"Sync", func() error { return e.Sync() }},
	}
	for _, c := range closedOps {
		t.Run(c.name, func(t *testing.T) {
			err := c.op()
			if !errors.Is(err, messages.ErrUnavailable) {
				t.Fatalf("%s after Close: %v, want ErrUnavailable", c.name, err)
			}
		})
	}

	e2 := openEngine(t, cfg)
	if got, ok := mustGet(t, e2, "k"); !ok || got != "v" {
		t.Fatalf("Get after reopen = %q, %v", got, ok)
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name   string
		modify func(*Config)
		want   string // a word the message must contain
	}{
		{"empty dir", func(c *Config) { c.Dir = "" }, "dir"},
		{"empty family", func(c *Config) { c.ColumnFamilies = []string{"a", ""} }, "empty"},
		{"duplicate family", func(c *Config) { c.ColumnFamilies = []string{"a", "b", "a"} }, `"a" is listed twice`},
		{"reserved family", func(c *Config) { c.ColumnFamilies = []string{"__x"} }, `"__x"`},
		{"internal family", func(c *Config) { c.ColumnFamilies = []string{internalColumnFamily} }, "reserved"},
		{"negative retention window", func(c *Config) { c.RetentionWindow = -time.Second }, "retention_window"},
		{"negative session ttl", func(c *Config) { c.Limits.SessionTTL = -time.Minute }, "session_ttl"},
		{"zero session ttl", func(c *Config) { c.Limits.SessionTTL = 0 }, "session_ttl"},
		{"negative max sessions", func(c *Config) { c.Limits.MaxSessions = -1 }, "max_sessions"},
		{"zero max sessions", func(c *Config) { c.Limits.MaxSessions = 0 }, "max_sessions"},
		{"negative max key size", func(c *Config) { c.Limits.MaxKeySize = -1 }, "max_key_size"},
		{"max key size over ceiling", func(c *Config) { c.Limits.MaxKeySize = kv.MaxKeySizeCeiling + 1 }, "max_key_size"},
		{"zero max value size", func(c *Config) { c.Limits.MaxValueSize = 0 }, "max_value_size"},
		{"zero max commit ops", func(c *Config) { c.Limits.MaxCommitOps = 0 }, "max_commit_ops"},
		{"negative max commit bytes", func(c *Config) { c.Limits.MaxCommitBytes = -5 }, "max_commit_bytes"},
		{"zero max range limit", func(c *Config) { c.Limits.MaxRangeLimit = 0 }, "max_range_limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig(dir)
			c.modify(&cfg)
			err := cfg.Validate()
			if !errors.Is(err, messages.ErrInvalidArgument) {
				t.Fatalf("Validate: %v, want ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %q does not name %q", err, c.want)
			}
			if e, err := Open(cfg); err == nil {
				e.Close()
				t.Fatal("Open accepted the bad config")
			} else if !errors.Is(err, messages.ErrInvalidArgument) {
				t.Fatalf("Open: %v, want ErrInvalidArgument", err)
			}
		})
	}
	t.Run("defaults are valid", func(t *testing.T) {
		if err := DefaultConfig(dir).Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("zero fields take defaults", func(t *testing.T) {
		e := openEngine(t, Config{Dir: t.TempDir()})
		if e.cfg.Limits != kv.DefaultLimits() || e.cfg.RetentionWindow != 5*time.Second || e.cfg.Limits.MaxSessions != 100_000 {
			t.Fatalf("defaults not applied: %+v", e.cfg)
		}
	})
}

func TestColumnFamiliesCreatedAndAdded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(dir)
	e := openEngine(t, cfg)
	if got, want := e.ColumnFamilies(), []string{kv.DefaultColumnFamily, usersCF}; !slices.Equal(got, want) {
		t.Fatalf("ColumnFamilies = %v, want %v", got, want)
	}
	mustPut(t, e, "k", "default value")
	mustPut(t, e, "k", "users value", kv.WithColumnFamily(usersCF))
	if _, err := db(e).Put(ctx, []byte("k"), []byte("v"), kv.WithColumnFamily("orders")); !errors.Is(err, messages.ErrUnknownColumnFamily) {
		t.Fatalf("Put to an unconfigured family: %v, want ErrUnknownColumnFamily", err)
	}

	check := func(t *testing.T, e *Engine) {
		t.Helper()
		if got, _ := mustGet(t, e, "k"); got != "default value" {
			t.Fatalf("default family: %q", got)
		}
		if got, _ := mustGet(t, e, "k", kv.WithColumnFamily(usersCF)); got != "users value" {
			t.Fatalf("users family: %q", got)
		}
	}

	t.Run("reopen with an extra family", func(t *testing.T) {
		cfg2 := cfg
		cfg2.ColumnFamilies = []string{usersCF, "orders"}
		e = reopen(t, e, cfg2)
		if got, want := e.ColumnFamilies(), []string{kv.DefaultColumnFamily, "orders", usersCF}; !slices.Equal(got, want) {
			t.Fatalf("ColumnFamilies = %v, want %v", got, want)
		}
		check(t, e)
		if _, ok := mustGet(t, e, "k", kv.WithColumnFamily("orders")); ok {
			t.Fatal("new family is not empty")
		}
		mustPut(t, e, "o", "order", kv.WithColumnFamily("orders"))
	})
	t.Run("reopen without a family keeps its data", func(t *testing.T) {
		// A family that holds data is never hidden: Open refuses, and the
		// data is there once it is configured again.
		cfg3 := cfg
		cfg3.ColumnFamilies = nil
		if err := closeEngine(e); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(cfg3); !errors.Is(err, messages.ErrInvalidArgument) || !strings.Contains(err.Error(), "holds data but is not configured") {
			t.Fatalf("Open without families that hold data: %v", err)
		}
		cfg4 := cfg
		cfg4.ColumnFamilies = []string{"orders", usersCF}
		e = openEngine(t, cfg4)
		check(t, e)
		if got, _ := mustGet(t, e, "o", kv.WithColumnFamily("orders")); got != "order" {
			t.Fatalf("orders family: %q", got)
		}
	})
	t.Run("default named in the list", func(t *testing.T) {
		// DESIGN.md's example lists "default" itself; wherever it stands in
		// the list, it is the same family.
		for _, cfs := range [][]string{{usersCF, "orders", kv.DefaultColumnFamily}, {kv.DefaultColumnFamily, usersCF, "orders"}, {"orders", kv.DefaultColumnFamily, usersCF, kv.DefaultColumnFamily}} {
			c := cfg
			c.ColumnFamilies = cfs
			e = reopen(t, e, c)
			check(t, e)
			if got := e.ColumnFamilies(); !slices.Contains(got, usersCF) || len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Fatalf("families %v opened as %v", cfs, got)
			}
		}
		c := cfg
		c.ColumnFamilies = []string{kv.DefaultColumnFamily, "orders", usersCF}
		e = reopen(t, e, c)
		if got, _ := mustGet(t, e, "k"); got != "default value" {
			t.Fatalf("default family: %q", got)
		}
	})
}

func TestWriterGoroutineStopsOnClose(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := OpenStandalone(testConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	d := s.Database()
	if _, err := d.Put(context.Background(), []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.doneC:
		t.Fatal("writer goroutine exited while the service is open")
	default:
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.doneC: // Close waits for it
	default:
		t.Fatal("Close returned before the writer goroutine exited")
	}
	eventually(t, 5*time.Second, func() bool { return runtime.NumGoroutine() <= before },
		"%d goroutines after Close, %d before Open", runtime.NumGoroutine(), before)
}

func TestCloseWhileWriting(t *testing.T) {
	// Close must stop cleanly while writers are busy; every write either
	// commits or fails with ErrUnavailable.
	s, err := OpenStandalone(testConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	e, d := s.Engine(), s.Database()
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				_, err := d.Put(context.Background(), []byte{byte('a' + w), byte(i)}, []byte("v"))
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	eventually(t, 5*time.Second, func() bool { return e.AppliedIndex() >= 50 }, "writers made no progress")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := <-errs; !errors.Is(err, messages.ErrUnavailable) {
			t.Fatalf("write during Close: %v, want ErrUnavailable", err)
		}
	}
}

// TestOpenRefusesToHideAFamily: a column family that holds data and was
// removed from the configuration is not silently hidden: Open refuses,
// naming it, and with the family configured again the data is there.
func TestOpenRefusesToHideAFamily(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig(dir)
	cfg.ColumnFamilies = []string{"meta", "empty"}
	e := openEngine(t, cfg)
	mustApply(t, e, []Entry{{Index: 1, Cmd: setCmd("meta", "k", "v")}})
	if err := closeEngine(e); err != nil {
		t.Fatal(err)
	}
	cfg.ColumnFamilies = []string{"empty"}
	if _, err := Open(cfg); messages.CodeOf(err) != messages.StatusCode_INVALID_ARGUMENT || (err == nil || !strings.Contains(err.Error(), `column family "meta" holds data`)) {
		t.Fatalf("Open without a family that holds data: %v", err)
	}
	cfg.ColumnFamilies = []string{"meta"} // "empty" holds nothing: leaving it out is fine
	e = openEngine(t, cfg)
	if v, ok := mustGet(t, e, "k", kv.WithColumnFamily("meta")); !ok || v != "v" {
		t.Fatalf("meta/k after configuring the family again: %q, %v", v, ok)
	}
}
