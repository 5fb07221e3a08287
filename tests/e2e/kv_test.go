package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/messages"
)

// TestReplicated runs every suite against kvserver's embedded default: three
// replicas in one process.
func TestReplicated(t *testing.T) {
	s := startServer(t, serverConfig{columnFamilies: []string{"default", "meta"}})
	t.Run("kvctl", func(t *testing.T) { kvctlSuite(t, s, 3) })
	t.Run("grpc", func(t *testing.T) { grpcSuite(t, s, 3) })
	t.Run("bad-input", func(t *testing.T) { badInputSuite(t, s) })
	t.Run("deadline", func(t *testing.T) { deadlineSuite(t, s) })
	t.Run("http", func(t *testing.T) { httpSuite(t, s, 3) })
}

// TestStandalone runs the suites against one RocksDB without replication,
// then shuts the server down while a request is in flight.
func TestStandalone(t *testing.T) {
	s := startServer(t, serverConfig{mode: "standalone", columnFamilies: []string{"default", "meta"}})
	t.Run("kvctl", func(t *testing.T) { kvctlSuite(t, s, 1) })
	t.Run("grpc", func(t *testing.T) { grpcSuite(t, s, 1) })
	t.Run("bad-input", func(t *testing.T) { badInputSuite(t, s) })
	t.Run("deadline", func(t *testing.T) { deadlineSuite(t, s) })
	t.Run("http", func(t *testing.T) { httpSuite(t, s, 1) })
	t.Run("graceful-shutdown", func(t *testing.T) { gracefulShutdown(t, s) })
}

var okVersion = regexp.MustCompile(`^OK version (\d+)\n$`)

// version parses kvctl's "OK version N" line.
func version(t testing.TB, out string) uint64 {
	t.Helper()
	m := okVersion.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output %q is not \"OK version N\"", out)
	}
	v, _ := strconv.ParseUint(m[1], 10, 64)
	if v == 0 {
		t.Fatalf("output %q: version 0", out)
	}
	return v
}

func equal[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %#v, want %#v", what, got, want)
	}
}

// kvctlSuite runs every operation through the kvctl binary; keys start with
// "kc/".
func kvctlSuite(t *testing.T, s *kvserver, replicas int) {
	ctl := func(args ...string) string { t.Helper(); return s.ctl(t, args...) }
	get := func(args ...string) string { t.Helper(); return ctl(append([]string{"get"}, args...)...) }

	// put and get, every output format.
	va := version(t, ctl("put", "kc/a", "1"))
	equal(t, "get", get("kc/a"), "kc/a\n1\n")
	equal(t, "get --print-value-only", get("kc/a", "--print-value-only"), "1\n")
	eventually(t, waitTimeout, func() error { // a stale read may lag
		if out := get("kc/a", "--consistency", "stale"); out != "kc/a\n1\n" {
			return fmt.Errorf("stale get: %q", out)
		}
		return nil
	})
	var one struct {
		Found bool    `json:"found"`
		Key   string  `json:"key"`
		Value *string `json:"value"`
	}
	mustJSON(t, ctl("-w", "json", "get", "kc/a"), &one)
	if !one.Found || one.Key != "kc/a" || one.Value == nil || *one.Value != "1" {
		t.Fatalf("get -w json: %+v", one)
	}
	equal(t, "get missing", get("kc/missing"), "")
	one.Value = nil
	mustJSON(t, ctl("-w", "json", "get", "kc/missing"), &one)
	if one.Found || one.Value != nil {
		t.Fatalf("get missing -w json: %+v", one)
	}
	var pv struct{ Version uint64 }
	mustJSON(t, ctl("-w", "json", "put", "kc/b", "2"), &pv)
	if pv.Version <= va {
		t.Fatalf("put -w json: version %d after %d", pv.Version, va)
	}
	vc := version(t, ctl("put", "kc/c", "3"))
	if vc <= pv.Version {
		t.Fatalf("versions do not grow: %d after %d", vc, pv.Version)
	}

	// ranges and prefixes.
	equal(t, "prefix", get("kc/", "--prefix"), "kc/a\n1\nkc/b\n2\nkc/c\n3\n")
	equal(t, "prefix limit", get("kc/", "--prefix", "--limit", "2"), "kc/a\n1\nkc/b\n2\n")
	equal(t, "prefix reverse", get("kc/", "--prefix", "--reverse", "--limit", "2"), "kc/c\n3\nkc/b\n2\n")
	equal(t, "prefix keys-only (ListKeys)", get("kc/", "--prefix", "--keys-only"), "kc/a\nkc/b\nkc/c\n")
	equal(t, "prefix keys-only limit", get("kc/", "--prefix", "--keys-only", "--limit", "1"), "kc/a\n")
	equal(t, "prefix keys-only reverse", get("kc/", "--prefix", "--keys-only", "--reverse"), "kc/c\nkc/b\nkc/a\n")
	equal(t, "prefix stale", get("kc/", "--prefix", "--consistency", "stale", "--print-value-only"), "1\n2\n3\n")
	equal(t, "range", get("kc/a", "kc/c"), "kc/a\n1\nkc/b\n2\n")
	equal(t, "range open end", get("kc/b", "--range", "--limit", "2"), "kc/b\n2\nkc/c\n3\n")
	var rng struct {
		KVs []struct {
			Key   string  `json:"key"`
			Value *string `json:"value"`
		} `json:"kvs"`
		Count int `json:"count"`
	}
	mustJSON(t, ctl("-w", "json", "get", "kc/", "--prefix"), &rng)
	if rng.Count != 3 || len(rng.KVs) != 3 || rng.KVs[2].Key != "kc/c" || *rng.KVs[2].Value != "3" {
		t.Fatalf("prefix -w json: %+v", rng)
	}

	// --hex: binary keys and values.
	hk, hv := hex.EncodeToString([]byte("kc/h\x00")), hex.EncodeToString([]byte{0, 0xff, '\n'})
	version(t, ctl("--hex", "put", hk, hv))
	equal(t, "get --hex", ctl("--hex", "get", hk), hk+"\n"+hv+"\n")

	// column families.
	version(t, ctl("put", "--cf", "meta", "kc/a", "m"))
	equal(t, "get default cf", get("kc/a", "--print-value-only"), "1\n")
	equal(t, "get --cf meta", get("kc/a", "--cf", "meta", "--print-value-only"), "m\n")

	// snapshot reads.
	vOld := version(t, ctl("put", "kc/s", "old"))
	version(t, ctl("put", "kc/s", "new"))
	equal(t, "get --version", get("kc/s", "--version", fmt.Sprint(vOld)), "kc/s\nold\n")
	equal(t, "get --prefix --version", get("kc/s", "--prefix", "--version", fmt.Sprint(vOld)), "kc/s\nold\n")
	equal(t, "get after", get("kc/s", "--print-value-only"), "new\n")
	equal(t, "get before it existed", get("kc/s", "--version", fmt.Sprint(va)), "")

	rv, err := strconv.ParseUint(strings.TrimSpace(ctl("read-version")), 10, 64)
	if err != nil || rv < vOld+1 {
		t.Fatalf("read-version: %v %d, want at least %d", err, rv, vOld+1)
	}

	// deletes.
	version(t, ctl("del", "kc/a"))
	equal(t, "get deleted", get("kc/a"), "")
	version(t, ctl("del", "kc/b", "kc/c")) // ClearRange [kc/b, kc/c)
	equal(t, "after del range", get("kc/", "--prefix", "--keys-only"), "kc/c\nkc/h\x00\nkc/s\n")
	version(t, ctl("put", "--cf", "meta", "kc/m1", "1"))
	version(t, ctl("put", "--cf", "meta", "kc/m2", "2"))
	version(t, ctl("put", "--cf", "meta", "z1", "1"))
	version(t, ctl("del", "--cf", "meta", "kc/m", "--prefix"))
	version(t, ctl("del", "--cf", "meta", "z", "", "--range")) // open end
	equal(t, "meta after deletes", get("", "--prefix", "--cf", "meta"), "kc/a\nm\n")

	// atomic commits: from a file, from stdin, from flags; a conflict.
	file := filepath.Join(t.TempDir(), "commit.json")
	writeFile(t, file, `{"mutations": [
		{"type": "set", "key": "kc/t1", "value": "1"},
		{"type": "set", "key": "kc/t2", "value": "2"},
		{"type": "delete", "key": "kc/c"},
		{"type": "clear_range", "begin": "kc/s", "end": "kc/t"}
	]}`)
	version(t, ctl("commit", "--file", file))
	equal(t, "after commit", get("kc/", "--prefix"), "kc/h\x00\n\x00\xff\n\nkc/t1\n1\nkc/t2\n2\n")
	r := kvctl(t, `{"mutations": [{"type": "set", "key": "kc/t3", "value": "3", "column_family": "meta"}]}`,
		"--endpoints", s.GRPC, "commit", "-f", "-")
	if r.code != 0 {
		t.Fatalf("commit from stdin: %v", r)
	}
	version(t, r.stdout)
	equal(t, "commit from stdin", get("kc/t3", "--cf", "meta", "--print-value-only"), "3\n")
	rv = readVersion(t, s)
	version(t, ctl("put", "kc/x1", "1"))
	version(t, ctl("commit", "--read-version", fmt.Sprint(rv), "--read-range", "kc/t:kc/u", "--set", "kc/t4=4",
		"--delete", "kc/t2", "--clear-range", "kc/x:kc/y", "--write-range", "kc/t4:kc/t5"))
	equal(t, "commit from flags", get("kc/", "--prefix", "--keys-only"), "kc/h\x00\nkc/t1\nkc/t4\n")
	rv = readVersion(t, s)
	version(t, ctl("put", "kc/t1", "changed"))
	s.ctlFails(t, "CONFLICT", "commit", "--read-version", fmt.Sprint(rv), "--read-range", "kc/t:kc/u", "--set", "kc/t5=5")
	equal(t, "after conflict", get("kc/t5"), "")

	// A value from standard input, and the endpoints from the environment.
	if r := kvctl(t, "from\nstdin", "--endpoints", s.GRPC, "put", "kc/stdin"); r.code != 0 || !strings.HasPrefix(r.stdout, "OK version ") {
		t.Fatalf("kvctl put from stdin: %v", r)
	}
	t.Setenv("KVCTL_ENDPOINTS", "127.0.0.1:1,"+s.GRPC)
	t.Setenv("KVCTL_WRITE_OUT", "json")
	if r := kvctl(t, "", "get", "kc/stdin"); r.code != 0 || r.stdout != `{"found":true,"key":"kc/stdin","value":"from\nstdin"}`+"\n" {
		t.Fatalf("kvctl get with $KVCTL_ENDPOINTS and $KVCTL_WRITE_OUT=json: %v", r)
	}
	if r := kvctl(t, "", "-w", "table", "get", "kc/stdin"); r.code != 0 || r.stdout != "kc/stdin\nfrom\nstdin\n" {
		t.Fatalf("kvctl get with -w table over $KVCTL_WRITE_OUT: %v", r)
	}
	t.Setenv("KVCTL_TIMEOUT", "soon")
	checkFailure(t, kvctl(t, "", "get", "kc/stdin"), "INVALID_ARGUMENT", []string{"get with KVCTL_TIMEOUT=soon"})
	os.Unsetenv("KVCTL_TIMEOUT")
	os.Unsetenv("KVCTL_WRITE_OUT")

	// status and verify.
	st := ctl("status")
	lines := strings.Split(strings.TrimSuffix(st, "\n"), "\n")
	if len(lines) != 2+replicas || !strings.Contains(st, "*") {
		t.Fatalf("status: want %d replicas and a leader:\n%s", replicas, st)
	}
	var sj struct {
		Mode     string `json:"mode"`
		Replicas []struct {
			ID           uint32 `json:"id"`
			Running      bool   `json:"running"`
			AppliedIndex uint64 `json:"applied_index"`
			Digest       string `json:"digest"`
		} `json:"replicas"`
	}
	mustJSON(t, ctl("-w", "json", "status", "--digests"), &sj)
	if len(sj.Replicas) != replicas || len(sj.Replicas[0].Digest) != 64 || !sj.Replicas[0].Running {
		t.Fatalf("status -w json: %+v", sj)
	}
	out := ctl("verify", "--require-all", "--wait", "30s")
	if !strings.HasSuffix(out, "OK\n") {
		t.Fatalf("verify: %q", out)
	}
	var vj struct {
		OK     bool `json:"ok"`
		Groups []struct {
			Replicas []uint32 `json:"replicas"`
		} `json:"groups"`
	}
	mustJSON(t, ctl("-w", "json", "verify", "--wait", "30s"), &vj)
	if !vj.OK || len(vj.Groups) == 0 {
		t.Fatalf("verify -w json: %+v", vj)
	}

	// fault injection (latency only: a failed write stops a replica).
	equal(t, "fault", ctl("fault", "--replicas", "1,2", "--latency", "1ms"), "OK\n")
	equal(t, "fault --off", ctl("fault", "--off"), "OK\n")

	// errors: one line, the status code, the exit code of its class.
	s.ctlFails(t, "INVALID_ARGUMENT", "put", "", "v")
	s.ctlFails(t, "INVALID_ARGUMENT", "get", "kc/", "--prefix", "--limit", "10001")
	s.ctlFails(t, "INVALID_ARGUMENT", "get", "kc/b", "kc/a")
	s.ctlFails(t, "UNKNOWN_COLUMN_FAMILY", "get", "--cf", "nope", "k")
	s.ctlFails(t, "UNKNOWN_COLUMN_FAMILY", "put", "--cf", "nope", "k", "v")
	big := filepath.Join(t.TempDir(), "big.json")
	writeFile(t, big, `{"mutations": [{"type": "set", "key": "kc/big", "value": "`+strings.Repeat("x", 1<<20+1)+`"}]}`)
	s.ctlFails(t, "TOO_LARGE", "commit", "--file", big)
	s.ctlFails(t, "INVALID_ARGUMENT", "get")
	s.ctlFails(t, "INVALID_ARGUMENT", "fault")
	s.ctlFails(t, "INVALID_ARGUMENT", "--hex", "get", "zz")
	s.ctlFails(t, "INVALID_ARGUMENT", "-w", "yaml", "get", "k")
	s.ctlFails(t, "INVALID_ARGUMENT", "commit", "--set", "novalue")
	bad := filepath.Join(t.TempDir(), "bad.json")
	writeFile(t, bad, `{"mutations": [{"type": "set", "key": "k", "value": "v", "colour": "red"}]}`)
	s.ctlFails(t, "INVALID_ARGUMENT", "commit", "--file", bad)

	// endpoints: a dead one is skipped; only dead ones are UNAVAILABLE.
	dead := freePort(t)
	r = kvctl(t, "", "--endpoints", dead+","+s.GRPC, "put", "kc/ep", "1")
	if r.code != 0 {
		t.Fatalf("put with a dead first endpoint: %v", r)
	}
	r = kvctl(t, "", "--endpoints", dead, "--timeout", "300ms", "put", "kc/ep", "1")
	checkFailure(t, r, "UNAVAILABLE", []string{"put (dead endpoint)"})
}

func readVersion(t testing.TB, s *kvserver) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimSpace(s.ctl(t, "read-version")), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustJSON(t testing.TB, out string, v any) {
	t.Helper()
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("JSON output is not one line: %q", out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func bs(s string) []byte { return []byte(s) }

// grpcSuite runs every RPC of the KV service through a Go gRPC client; keys
// start with "gc/".
func grpcSuite(t *testing.T, s *kvserver, replicas int) {
	kv := s.kvClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	put := func(key, value string) uint64 {
		t.Helper()
		resp, err := kv.Put(ctx, &messages.PutRequest{Key: bs(key), Value: bs(value)})
		must(err)
		if resp.GetVersion() == 0 || resp.GetStatus().GetCode() != messages.StatusCode_OK {
			t.Fatalf("put %s: %v", key, resp)
		}
		return resp.GetVersion()
	}
	getIs := func(cf, key, want string, found bool) {
		t.Helper()
		resp, err := kv.Get(ctx, &messages.GetRequest{ColumnFamily: cf, Key: bs(key)})
		must(err)
		if resp.GetFound() != found || string(resp.GetValue()) != want {
			t.Fatalf("get %s/%s: %v, want found=%t %q", cf, key, resp, found, want)
		}
	}
	keysOf := func(kvs []*messages.KeyValue) string {
		var b []string
		for _, e := range kvs {
			b = append(b, string(e.GetKey())+"="+string(e.GetValue()))
		}
		return strings.Join(b, " ")
	}

	// Put, Get (both consistencies).
	v1 := put("gc/a", "1")
	getIs("", "gc/a", "1", true)
	eventually(t, waitTimeout, func() error {
		resp, err := kv.Get(ctx, &messages.GetRequest{Key: bs("gc/a"), Consistency: messages.Consistency_STALE})
		if err != nil || !resp.GetFound() || string(resp.GetValue()) != "1" {
			return fmt.Errorf("stale get: %v %v", resp, err)
		}
		return nil
	})
	getIs("", "gc/missing", "", false)

	// A write retried with the same request id is applied once and answers
	// with the first outcome.
	sess, err := kv.OpenSession(ctx, &messages.OpenSessionRequest{})
	must(err)
	rid := &messages.RequestId{ClientId: sess.GetClientId(), Seq: 1}
	p1, err := kv.Put(ctx, &messages.PutRequest{Key: bs("gc/r"), Value: bs("x"), RequestId: rid})
	must(err)
	p2, err := kv.Put(ctx, &messages.PutRequest{Key: bs("gc/r"), Value: bs("x"), RequestId: rid})
	must(err)
	if p1.GetVersion() != p2.GetVersion() || p1.GetVersion() <= v1 {
		t.Fatalf("retried put: versions %d then %d (after %d)", p1.GetVersion(), p2.GetVersion(), v1)
	}
	p3, err := kv.Put(ctx, &messages.PutRequest{Key: bs("gc/r"), Value: bs("y"), RequestId: &messages.RequestId{ClientId: rid.ClientId, Seq: 2, RespondedTo: 1}})
	must(err)
	if p3.GetVersion() <= p1.GetVersion() {
		t.Fatalf("next seq: version %d after %d", p3.GetVersion(), p1.GetVersion())
	}
	getIs("", "gc/r", "y", true)

	// Delete.
	d, err := kv.Delete(ctx, &messages.DeleteRequest{Key: bs("gc/a")})
	must(err)
	if d.GetVersion() <= p3.GetVersion() {
		t.Fatalf("delete version %d", d.GetVersion())
	}
	getIs("", "gc/a", "", false)

	// GetRange, ListKeys, ClearRange.
	put("gc/b", "2")
	put("gc/c", "3")
	put("gc/d", "4")
	gr, err := kv.GetRange(ctx, &messages.GetRangeRequest{Begin: bs("gc/b"), End: bs("gc/d")})
	must(err)
	equal(t, "GetRange", keysOf(gr.GetKvs()), "gc/b=2 gc/c=3")
	gr, err = kv.GetRange(ctx, &messages.GetRangeRequest{Begin: bs("gc/b"), End: bs("gc/e"), Limit: 2, Reverse: true, Consistency: messages.Consistency_LINEARIZABLE})
	must(err)
	equal(t, "GetRange reverse", keysOf(gr.GetKvs()), "gc/d=4 gc/c=3")
	lk, err := kv.ListKeys(ctx, &messages.ListKeysRequest{Prefix: bs("gc/"), Limit: 3})
	must(err)
	equal(t, "ListKeys", fmt.Sprintf("%q", lk.GetKeys()), fmt.Sprintf("%q", [][]byte{bs("gc/b"), bs("gc/c"), bs("gc/d")}))
	cr, err := kv.ClearRange(ctx, &messages.ClearRangeRequest{Begin: bs("gc/b"), End: bs("gc/d")})
	must(err)
	if cr.GetVersion() == 0 {
		t.Fatal("ClearRange: version 0")
	}
	getIs("", "gc/b", "", false)
	getIs("", "gc/d", "4", true)

	// GetReadVersion, SnapshotRead, SnapshotGetRange.
	vOld := put("gc/s", "old")
	vNew := put("gc/s", "new")
	rv, err := kv.GetReadVersion(ctx, &messages.GetReadVersionRequest{})
	must(err)
	if rv.GetVersion() < vNew {
		t.Fatalf("read version %d below the last write %d", rv.GetVersion(), vNew)
	}
	sr, err := kv.SnapshotRead(ctx, &messages.SnapshotReadRequest{Key: bs("gc/s"), Version: vOld})
	must(err)
	if !sr.GetFound() || string(sr.GetValue()) != "old" {
		t.Fatalf("SnapshotRead at %d: %v", vOld, sr)
	}
	sgr, err := kv.SnapshotGetRange(ctx, &messages.SnapshotGetRangeRequest{Begin: bs("gc/"), End: bs("gc/t"), Version: vOld, Reverse: true, Limit: 2})
	must(err)
	equal(t, "SnapshotGetRange", keysOf(sgr.GetKvs()), "gc/s=old gc/r=y")

	// AtomicCommit: a commit, then a conflict that changes nothing.
	set := func(k, v string) *messages.Mutation {
		return &messages.Mutation{Type: messages.MutationType_SET, Key: bs(k), Value: bs(v)}
	}
	readRange := []*messages.KeyRange{{Begin: bs("gc/t"), End: bs("gc/u")}}
	rv, err = kv.GetReadVersion(ctx, &messages.GetReadVersionRequest{})
	must(err)
	ac, err := kv.AtomicCommit(ctx, &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{
		ReadVersion:         rv.GetVersion(),
		Mutations:           []*messages.Mutation{set("gc/t1", "1"), {Type: messages.MutationType_DELETE, Key: bs("gc/d")}, set("gc/m", "meta")},
		ReadConflictRanges:  readRange,
		WriteConflictRanges: []*messages.KeyRange{{Begin: bs("gc/t1"), End: bs("gc/t2")}},
	}})
	must(err)
	if ac.GetVersion() <= rv.GetVersion() {
		t.Fatalf("AtomicCommit version %d, read version %d", ac.GetVersion(), rv.GetVersion())
	}
	getIs("", "gc/t1", "1", true)
	getIs("", "gc/d", "", false)
	put("gc/t1", "changed")
	_, err = kv.AtomicCommit(ctx, &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{
		ReadVersion: rv.GetVersion(), Mutations: []*messages.Mutation{set("gc/t2", "2")}, ReadConflictRanges: readRange,
	}})
	if grpcstatus.Code(err) != codes.Aborted || !errors.Is(messages.FromGRPC(err), messages.ErrConflict) {
		t.Fatalf("conflicting AtomicCommit: %v, want Aborted (CONFLICT)", err)
	}
	getIs("", "gc/t2", "", false)

	// Column families.
	_, err = kv.Put(ctx, &messages.PutRequest{ColumnFamily: "meta", Key: bs("gc/cf"), Value: bs("m")})
	must(err)
	getIs("meta", "gc/cf", "m", true)
	getIs("", "gc/cf", "", false)

	// SetFaultInjection (latency only) and Status.
	_, err = kv.SetFaultInjection(ctx, &messages.SetFaultInjectionRequest{Faults: &messages.FaultInjection{AddedLatency: durationpb.New(time.Millisecond)}})
	must(err)
	getIs("", "gc/t1", "changed", true)
	_, err = kv.SetFaultInjection(ctx, &messages.SetFaultInjectionRequest{Faults: &messages.FaultInjection{}})
	must(err)
	st, err := kv.Status(ctx, &messages.StatusRequest{WithDigests: true})
	must(err)
	wantMode := "replicated"
	if replicas == 1 {
		wantMode = "standalone"
	}
	if st.GetMode() != wantMode || len(st.GetReplicas()) != replicas || !st.GetHasLeader() {
		t.Fatalf("Status: %v", st)
	}
	for _, r := range st.GetReplicas() {
		if !r.GetRunning() || len(r.GetDigest()) != 32 || len(r.GetDigests()) != 2 {
			t.Fatalf("Status: replica %v", r)
		}
	}
}
