package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/messages"
)

// kvctlRun runs kvctl in process.
func kvctlRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// documentedExit is the exit code kvctl's help gives for each status code,
// read from the exit-status table at the end of rootLong.
var documentedExit = func() map[string]int {
	m := map[string]int{}
	table := rootLong[strings.Index(rootLong, "The exit status tells the class:"):]
	code := -1
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && len(f[0]) == 1 && f[0][0] >= '0' && f[0][0] <= '9' {
			code = int(f[0][0] - '0')
		}
		for _, w := range strings.FieldsFunc(line, func(r rune) bool { return !(r == '_' || r >= 'A' && r <= 'Z') }) {
			if _, ok := messages.StatusCode_value[w]; ok && code >= 0 {
				m[w] = code
			}
		}
	}
	return m
}()

// wantFailure checks the documented exit code of status and one line
// "kvctl: <status>: ..." naming want.
func wantFailure(t *testing.T, stderr string, code int, status string, want string) {
	t.Helper()
	wantFailureExit(t, stderr, code, documentedExit[status], status, want)
}

// wantFailureExit checks exit code exit and one line "kvctl: <status>: ..."
// naming want.
func wantFailureExit(t *testing.T, stderr string, code, exit int, status string, want string) {
	t.Helper()
	if code != exit || !strings.HasPrefix(stderr, "kvctl: "+status+": ") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("want exit %d and one line \"kvctl: %s: ...%s...\"; got exit %d, %q", exit, status, want, code, stderr)
	}
}

// TestExitCodes holds every status code to the exit code of its class.
func TestExitCodes(t *testing.T) {
	for name, v := range messages.StatusCode_value {
		code := messages.StatusCode(v)
		if code == messages.StatusCode_OK {
			continue
		}
		want, ok := documentedExit[name]
		if !ok {
			t.Fatalf("status %s has no documented exit code", name)
		}
		if got := exitCode(messages.Errorf(code, "x")); got != want {
			t.Errorf("%s: exit %d, want %d", name, got, want)
		}
	}
	// Every command's help that names an exit code with its status
	// ("exits 3 (UNAVAILABLE)") agrees with the table.
	named := regexp.MustCompile(`(?i)exits? (\d) \(([A-Z_]+)[,)]`)
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, m := range named.FindAllStringSubmatch(c.Long, -1) {
			if want, ok := documentedExit[m[2]]; ok && strconv.Itoa(want) != m[1] {
				t.Errorf("kvctl %s --help says %q; %s exits %d", c.Name(), m[0], m[2], want)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand(io.Discard, io.Discard))
	if got := exitCode(mismatchError{messages.Errorf(messages.StatusCode_INTERNAL, "x")}); got != exitMismatch {
		t.Errorf("mismatch: exit %d, want %d", got, exitMismatch)
	}
	if got := exitCode(errors.New("unknown flag")); got != exitUsage {
		t.Errorf("an error without status: exit %d, want %d (usage)", got, exitUsage)
	}
}

func TestErrorLine(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{messages.Errorf(messages.StatusCode_CONFLICT, "read range [a, b) was written"), "kvctl: CONFLICT: read range [a, b) was written"},
		{&messages.Error{Code: messages.StatusCode_UNAVAILABLE, Message: "no leader"}, "kvctl: UNAVAILABLE: no leader"},
		{&messages.Error{Code: messages.StatusCode_TIMEOUT}, "kvctl: TIMEOUT: timeout"},
		{fmt.Errorf("x: %w", messages.Errorf(messages.StatusCode_INTERNAL, "disk\non fire")), "kvctl: INTERNAL: disk on fire"},
		{errors.New("unknown flag: --bogus"), "kvctl: INVALID_ARGUMENT: unknown flag: --bogus"},
	}
	for _, c := range cases {
		if got := errorLine(c.err); got != c.want {
			t.Errorf("errorLine(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	cases := map[string]string{"": "", "a": "b", "ab": "ac", "a\xff": "b", "\xff\xff": "", "a\x00": "a\x01"}
	for in, want := range cases {
		if got := string(prefixEnd([]byte(in))); got != want {
			t.Errorf("prefixEnd(%q) = %q, want %q", in, got, want)
		}
	}
}

func plain(_, s string) ([]byte, error) { return []byte(s), nil }

func TestParseCommitJSON(t *testing.T) {
	c, err := parseCommitJSON([]byte(`{
		"read_version": 42,
		"mutations": [
			{"type": "set", "key": "a", "value": "1"},
			{"type": "delete", "key": "b", "column_family": "meta"},
			{"type": "clear_range", "begin": "c", "end": "d"},
			{"type": "clear_range", "begin": "e"},
			{"type": "SET", "key": "f", "value": ""}
		],
		"read_conflict_ranges": [{"begin": "a", "end": "b"}],
		"write_conflict_ranges": [{"begin": "a", "end": "", "column_family": "meta"}]
	}`), plain)
	if err != nil {
		t.Fatal(err)
	}
	want := &messages.AtomicCommit{
		ReadVersion: 42,
		Mutations: []*messages.Mutation{
			{Type: messages.MutationType_SET, Key: []byte("a"), Value: []byte("1")},
			{Type: messages.MutationType_DELETE, ColumnFamily: "meta", Key: []byte("b")},
			{Type: messages.MutationType_CLEAR_RANGE, Key: []byte("c"), End: []byte("d")},
			{Type: messages.MutationType_CLEAR_RANGE, Key: []byte("e"), End: []byte{}},
			{Type: messages.MutationType_SET, Key: []byte("f"), Value: []byte{}},
		},
		ReadConflictRanges:  []*messages.KeyRange{{Begin: []byte("a"), End: []byte("b")}},
		WriteConflictRanges: []*messages.KeyRange{{ColumnFamily: "meta", Begin: []byte("a"), End: []byte{}}},
	}
	if !proto.Equal(c, want) {
		t.Errorf("parseCommitJSON =\n%v\nwant\n%v", c, want)
	}

	hexed, err := parseCommitJSON([]byte(`{"mutations": [{"type": "set", "key": "00ff", "value": "0a"}]}`), (&globals{hex: true}).bytes)
	if err != nil || !bytes.Equal(hexed.GetMutations()[0].GetKey(), []byte{0, 0xff}) || !bytes.Equal(hexed.GetMutations()[0].GetValue(), []byte{'\n'}) {
		t.Errorf("hex commit: %v %v", hexed, err)
	}

	bad := []struct{ json, want string }{
		{`{"mutations": [{"type": "set", "key": "a", "value": "1", "ttl": 5}]}`, `unknown field "ttl"`},
		{`{"mutation": []}`, `unknown field "mutation"`},
		{`{"mutations": [{"type": "set", "key": "a"}]}`, `mutations[0]: type "set" needs "value"`},
		{`{"mutations": [{"type": "delete"}]}`, `needs "key"`},
		{`{"mutations": [{"type": "delete", "key": "a", "value": "b"}]}`, `takes no "value"`},
		{`{"mutations": [{"type": "clear_range", "key": "a"}]}`, `needs "begin"`},
		{`{"mutations": [{"type": "set", "key": "a", "value": "1", "end": "b"}]}`, `takes no "end"`},
		{`{"mutations": [{}, {"type": "upsert"}]}`, `mutations[0]: type "" is not set, delete or clear_range`},
		{`{"read_version": -1}`, `read_version`},
		{`{} {}`, `data after the JSON object`},
		{`[`, `commit file`},
	}
	for _, b := range bad {
		_, err := parseCommitJSON([]byte(b.json), plain)
		if err == nil || !strings.Contains(err.Error(), b.want) || !errors.Is(err, messages.ErrInvalidArgument) {
			t.Errorf("parseCommitJSON(%s) = %v, want INVALID_ARGUMENT naming %s", b.json, err, b.want)
		}
	}
	if _, err := parseCommitJSON([]byte(`{"mutations": [{"type": "set", "key": "zz", "value": ""}]}`), (&globals{hex: true}).bytes); err == nil {
		t.Error("a non-hex key with --hex was accepted")
	}
}

// TestUsageErrors checks errors kvctl finds before it dials: one line,
// INVALID_ARGUMENT, exit 2.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"get"}, "accepts between 1 and 2 arg(s)"},
		{[]string{"put"}, "accepts between 1 and 2 arg(s)"},
		{[]string{"put", "k", "v", "w"}, "accepts between 1 and 2 arg(s)"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"get", "k", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"-w", "yaml", "get", "k"}, `--write-out "yaml"`},
		{[]string{"--protocol", "http", "get", "k"}, `--protocol "http" is not grpc or thrift`},
		{[]string{"--timeout", "0s", "get", "k"}, "--timeout must be positive"},
		{[]string{"--endpoints", "", "get", "k"}, "--endpoints is empty"},
		{[]string{"get", "k", "--consistency", "eventual"}, `"eventual" is not linearizable or stale`},
		{[]string{"get", "k", "--version", "3", "--consistency", "stale"}, "--consistency does not apply"},
		{[]string{"get", "k", "--limit", "5"}, "--limit and --reverse need --range or --prefix"},
		{[]string{"get", "a", "b", "--prefix"}, "--prefix takes one argument"},
		{[]string{"get", "k", "--keys-only", "--print-value-only"}, "exclude each other"},
		{[]string{"del", "a", "b", "--prefix"}, "--prefix takes one argument"},
		{[]string{"--hex", "put", "xyz", "00"}, `key "xyz" is not hex`},
		{[]string{"commit"}, "nothing to commit"},
		{[]string{"commit", "--set", "k"}, `--set "k" is not of the form A=B`},
		{[]string{"commit", "--read-range", "ab"}, `--read-range "ab" is not of the form A:B`},
		{[]string{"commit", "--file", "/nonexistent/commit.json"}, "--file"},
		{[]string{"fault"}, "give --off"},
		{[]string{"fault", "--off", "--latency", "1s"}, "give --off"},
		{[]string{"fault", "--error-rate", "1.5"}, "not in [0, 1]"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			stdout, stderr, code := kvctlRun(t, c.args...)
			wantFailure(t, stderr, code, "INVALID_ARGUMENT", c.want)
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

// fakeKV is a KV server whose answers a test scripts.
type fakeKV struct {
	messages.UnimplementedKVServer
	mu       sync.Mutex
	puts     []*messages.PutRequest
	putErrs  []error // returned by the first calls of Put, in order
	statuses []*messages.StatusResponse
	statusN  int
	faults   []*messages.SetFaultInjectionRequest
	sessions uint64 // sessions opened
	tooOld   bool   // SnapshotRead answers TRANSACTION_TOO_OLD
}

func (f *fakeKV) SnapshotRead(_ context.Context, r *messages.SnapshotReadRequest) (*messages.SnapshotReadResponse, error) {
	if f.tooOld {
		return nil, messages.ToGRPC(messages.Errorf(messages.StatusCode_TRANSACTION_TOO_OLD, "version %d is older than the retention window", r.GetVersion()))
	}
	return &messages.SnapshotReadResponse{Found: true, Value: []byte("old value")}, nil
}

func (f *fakeKV) OpenSession(context.Context, *messages.OpenSessionRequest) (*messages.OpenSessionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions++
	return &messages.OpenSessionResponse{ClientId: 100 + f.sessions}, nil
}

func (f *fakeKV) SetFaultInjection(_ context.Context, r *messages.SetFaultInjectionRequest) (*messages.SetFaultInjectionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, r)
	return &messages.SetFaultInjectionResponse{}, nil
}

// faultsSent returns the replica lists of the fault requests f received.
func (f *fakeKV) faultsSent() [][]uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]uint32
	for _, r := range f.faults {
		out = append(out, append([]uint32{}, r.GetReplicas()...))
	}
	return out
}

func (f *fakeKV) Put(_ context.Context, r *messages.PutRequest) (*messages.PutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, r)
	if len(f.puts) <= len(f.putErrs) {
		return nil, f.putErrs[len(f.puts)-1]
	}
	return &messages.PutResponse{Version: 7}, nil
}

func (f *fakeKV) Status(context.Context, *messages.StatusRequest) (*messages.StatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.statuses[min(f.statusN, len(f.statuses)-1)]
	f.statusN++
	return st, nil
}

func (f *fakeKV) AtomicCommit(context.Context, *messages.AtomicCommitRequest) (*messages.AtomicCommitResponse, error) {
	return nil, messages.ToGRPC(messages.Errorf(messages.StatusCode_CONFLICT, "read range [\"a\", \"b\") was written at version 9"))
}

func serveFake(t *testing.T, f *fakeKV) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	messages.RegisterKVServer(s, f)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

func deadEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestWriteRetriesKeepTheRequestID checks that a put answered UNAVAILABLE
// or TIMEOUT is sent again with the same request id, and that a dead
// endpoint passes the call to the next one.
func TestWriteRetriesKeepTheRequestID(t *testing.T) {
	f := &fakeKV{putErrs: []error{
		grpcstatus.Error(codes.Unavailable, "unavailable: no leader"),
		grpcstatus.Error(codes.DeadlineExceeded, "timeout: outcome unknown"),
	}}
	addr := serveFake(t, f)
	stdout, stderr, code := kvctlRun(t, "--endpoints", deadEndpoint(t)+","+addr, "put", "k", "v")
	if code != 0 || stdout != "OK version 7\n" || stderr != "" {
		t.Fatalf("put: exit %d, %q, %q", code, stdout, stderr)
	}
	if len(f.puts) != 3 {
		t.Fatalf("%d put attempts reached the server, want 3", len(f.puts))
	}
	id := f.puts[0].GetRequestId()
	if id.GetClientId() == 0 || id.GetSeq() != 1 || id.GetRespondedTo() != 0 {
		t.Fatalf("request id %v: want a client id and seq 1", id)
	}
	for i, p := range f.puts {
		if !proto.Equal(p.GetRequestId(), id) || string(p.GetKey()) != "k" || string(p.GetValue()) != "v" {
			t.Errorf("attempt %d: %v, want the first request %v", i, p, f.puts[0])
		}
	}
	// Another kvctl run is another client.
	kvctlRun(t, "--endpoints", addr, "put", "k", "v")
	if last := f.puts[len(f.puts)-1].GetRequestId(); last.GetClientId() == id.GetClientId() {
		t.Errorf("two kvctl runs share client id %d", id.GetClientId())
	}
}

// TestSessionExpiredWrites checks what kvctl does when the state machine
// has forgotten a write's session: a write whose only attempt was refused
// was never applied, so it goes again under a new session; a write with an
// earlier attempt fails SESSION_EXPIRED, its outcome unknown.
func TestSessionExpiredWrites(t *testing.T) {
	expired := grpcstatus.Error(codes.OutOfRange, "session expired: client session 101 is unknown")
	f := &fakeKV{putErrs: []error{expired}}
	addr := serveFake(t, f)
	stdout, stderr, code := kvctlRun(t, "--endpoints", addr, "put", "k", "v")
	if code != 0 || stdout != "OK version 7\n" {
		t.Fatalf("put refused once for its session: exit %d, %q, %q; want it sent again under a new session", code, stdout, stderr)
	}
	if len(f.puts) != 2 || f.sessions != 2 {
		t.Fatalf("%d puts under %d sessions, want 2 and 2", len(f.puts), f.sessions)
	}
	if a, b := f.puts[0].GetRequestId(), f.puts[1].GetRequestId(); a.GetClientId() == b.GetClientId() || b.GetSeq() != 1 {
		t.Fatalf("request ids %v then %v: want the second under the new session, seq 1", a, b)
	}

	f = &fakeKV{putErrs: []error{grpcstatus.Error(codes.DeadlineExceeded, "timeout: outcome unknown"), expired}}
	addr = serveFake(t, f)
	_, stderr, code = kvctlRun(t, "--endpoints", addr, "put", "k", "v")
	wantFailure(t, stderr, code, "SESSION_EXPIRED", "outcome is unknown")
	if len(f.puts) != 2 || f.sessions != 1 {
		t.Fatalf("%d puts under %d sessions, want 2 under 1: a write that may have been applied is not sent again", len(f.puts), f.sessions)
	}
}

// TestSnapshotReadAsksEveryEndpoint: an endpoint whose replica no longer
// holds a version's history answers TRANSACTION_TOO_OLD; kvctl asks the
// next one, and fails TOO_OLD only when every endpoint said so.
func TestSnapshotReadAsksEveryEndpoint(t *testing.T) {
	restarted, holds := serveFake(t, &fakeKV{tooOld: true}), serveFake(t, &fakeKV{})
	stdout, stderr, code := kvctlRun(t, "--endpoints", restarted+","+holds, "get", "k", "--version", "5")
	if code != 0 || stdout != "k\nold value\n" {
		t.Fatalf("get --version through a restarted endpoint first: exit %d, %q, %q", code, stdout, stderr)
	}
	_, stderr, code = kvctlRun(t, "--endpoints", restarted+","+serveFake(t, &fakeKV{tooOld: true}), "get", "k", "--version", "5")
	wantFailure(t, stderr, code, "TRANSACTION_TOO_OLD", "older than the retention window")
}

func TestNonRetryableErrorsAreNotRetried(t *testing.T) {
	f := &fakeKV{putErrs: []error{grpcstatus.Error(codes.ResourceExhausted, "too large: value is 2000000 bytes")}}
	addr := serveFake(t, f)
	_, stderr, code := kvctlRun(t, "--endpoints", addr, "put", "k", "v")
	wantFailure(t, stderr, code, "TOO_LARGE", "value is 2000000 bytes")
	if len(f.puts) != 1 {
		t.Errorf("%d attempts, want 1", len(f.puts))
	}
	_, stderr, code = kvctlRun(t, "--endpoints", addr, "commit", "--set", "a=1", "--read-range", "a:b", "--read-version", "3")
	wantFailure(t, stderr, code, "CONFLICT", "was written at version 9")
}

func TestRetriesEndAtTheTimeout(t *testing.T) {
	_, stderr, code := kvctlRun(t, "--endpoints", deadEndpoint(t), "--timeout", "200ms", "put", "k", "v")
	wantFailure(t, stderr, code, "UNAVAILABLE", "no answer before the deadline")
}

func replica(id uint32, applied uint64, digest string) *messages.ReplicaStatus {
	d, _ := hex.DecodeString(strings.Repeat(digest, 32)[:64])
	return &messages.ReplicaStatus{ReplicaId: id, Running: true, AppliedIndex: applied, Digest: d, IsLeader: id == 0, HasLeader: true}
}

func statusOf(rs ...*messages.ReplicaStatus) *messages.StatusResponse {
	return &messages.StatusResponse{Mode: "replicated", HasLeader: true, Replicas: rs}
}

func TestVerify(t *testing.T) {
	stopped := &messages.ReplicaStatus{ReplicaId: 2, Error: "injected fault: replica stopped"}
	cases := []struct {
		name     string
		args     []string
		statuses []*messages.StatusResponse
		code     int    // the exit code
		status   string // the failure's code
		want     string // in stdout, or in the failure's line
		calls    int    // at least this many Status calls
	}{
		{"all equal", nil, []*messages.StatusResponse{statusOf(replica(0, 9, "ab"), replica(1, 9, "ab"), replica(2, 9, "ab"))},
			0, "", "replicas 0, 1, 2 at applied index 9: same digest abababababab\nOK\n", 1},
		{"mismatch", nil, []*messages.StatusResponse{statusOf(replica(0, 9, "ab"), replica(1, 9, "ab"), replica(2, 9, "cd"))},
			6, "INTERNAL", "digest mismatch at applied index 9: replica 0 abababababab, replica 1 abababababab, replica 2 cdcdcdcdcdcd", 1},
		{"a follower catches up", nil, []*messages.StatusResponse{
			statusOf(replica(0, 9, "ab"), replica(1, 9, "ab"), replica(2, 7, "cd")),
			statusOf(replica(0, 9, "ab"), replica(1, 9, "ab"), replica(2, 8, "ef")),
			statusOf(replica(0, 9, "ab"), replica(1, 9, "ab"), replica(2, 9, "ab")),
		}, 0, "", "replicas 0, 1, 2 at applied index 9: same digest", 3},
		{"a follower never catches up", []string{"--wait", "300ms"}, []*messages.StatusResponse{
			statusOf(replica(0, 9, "ab"), replica(1, 9, "ab"), replica(2, 7, "cd")),
		}, 0, "", "replicas 0, 1 at applied index 9: same digest abababababab\nreplica 2 at applied index 7: not compared (no other replica there)\nOK\n", 2},
		{"require all", []string{"--wait", "100ms", "--require-all"}, []*messages.StatusResponse{
			statusOf(replica(0, 9, "ab"), replica(1, 9, "ab"), replica(2, 7, "cd")),
		}, 3, "UNAVAILABLE", "replica 2 could not be compared", 1},
		{"a stopped replica", nil, []*messages.StatusResponse{statusOf(replica(0, 9, "ab"), replica(1, 9, "ab"), stopped)},
			0, "", "replica 2: not compared (not running: injected fault: replica stopped)\nOK\n", 1},
		{"a stopped replica, require all", []string{"--require-all"}, []*messages.StatusResponse{statusOf(replica(0, 9, "ab"), replica(1, 9, "ab"), stopped)},
			3, "UNAVAILABLE", "replica 2 could not be compared", 1},
		{"standalone", []string{"--require-all"}, []*messages.StatusResponse{{Mode: "standalone", Replicas: []*messages.ReplicaStatus{replica(0, 4, "12")}}},
			0, "", "replica 0 at applied index 4: digest 121212121212 (the only replica, nothing to compare)\nOK\n", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeKV{statuses: c.statuses}
			addr := serveFake(t, f)
			stdout, stderr, code := kvctlRun(t, append([]string{"--endpoints", addr, "verify"}, c.args...)...)
			if c.code == 0 {
				if code != 0 || stderr != "" || !strings.Contains(stdout, c.want) {
					t.Fatalf("exit %d, stdout %q, stderr %q; want exit 0 and %q", code, stdout, stderr, c.want)
				}
			} else {
				wantFailureExit(t, stderr, code, c.code, c.status, c.want)
			}
			if f.statusN < c.calls {
				t.Errorf("%d Status calls, want at least %d", f.statusN, c.calls)
			}
		})
	}
}

func TestStatusTable(t *testing.T) {
	f := &fakeKV{statuses: []*messages.StatusResponse{{Mode: "replicated", HasLeader: true, LeaderId: 0, Term: 3, Replicas: []*messages.ReplicaStatus{
		replica(0, 9, "ab"), replica(1, 9, "ab"), {ReplicaId: 2, Error: "stopped:\nfault"},
	}}}}
	addr := serveFake(t, f)
	stdout, stderr, code := kvctlRun(t, "--endpoints", addr, "status")
	ep := func(s string) string { return fmt.Sprintf("%-*s", len(addr)+2, s) } // the ENDPOINT column
	want := "mode: replicated, leader: 0, term: 3\n" +
		"ID  " + ep("ENDPOINT") + "RUNNING  LEADER  TERM  APPLIED  DIGEST        ERROR\n" +
		"0   " + ep(addr) + "true     *       0     9        abababababab  \n" +
		"1   " + ep(addr) + "true             0     9        abababababab  \n" +
		"2   " + ep(addr) + "false            0     0        -             stopped: fault\n"
	if code != 0 || stderr != "" || stdout != want {
		t.Fatalf("status: exit %d, stderr %q, stdout\n%s\nwant\n%s", code, stderr, stdout, want)
	}
	stdout, _, code = kvctlRun(t, "--endpoints", addr, "-w", "json", "status")
	if code != 0 || !strings.HasPrefix(stdout, `{"mode":"replicated","has_leader":true,"leader_id":0,"term":3,"replicas":[{"id":0,"running":true,"leader":true,"term":0,"applied_index":9,"digest":"abab`) {
		t.Fatalf("status -w json: %q", stdout)
	}
}

// clusterNode is the status a cluster process reports: its own replica, and
// the leader it knows.
func clusterNode(r *messages.ReplicaStatus, leader uint32, term uint64) *messages.StatusResponse {
	r.Term, r.HasLeader, r.LeaderId, r.IsLeader = term, true, leader, r.GetReplicaId() == leader
	return &messages.StatusResponse{Mode: "replicated", HasLeader: true, LeaderId: leader, Term: term, Replicas: []*messages.ReplicaStatus{r}}
}

// TestStatusMergesEndpoints checks that status asks every endpoint and
// merges the replicas by id: a cluster's processes each report their own
// replica; an endpoint that does not answer is listed, not fatal; the leader
// is the one of the highest term.
func TestStatusMergesEndpoints(t *testing.T) {
	a0 := serveFake(t, &fakeKV{statuses: []*messages.StatusResponse{clusterNode(replica(0, 9, "ab"), 1, 4)}})
	a1 := serveFake(t, &fakeKV{statuses: []*messages.StatusResponse{clusterNode(replica(1, 9, "ab"), 1, 4)}})
	// A process cut off from the others still believes an older leader.
	a2 := serveFake(t, &fakeKV{statuses: []*messages.StatusResponse{clusterNode(replica(2, 7, "cd"), 0, 3)}})
	dead := deadEndpoint(t)

	stdout, stderr, code := kvctlRun(t, "--endpoints", strings.Join([]string{a2, dead, a1, a0}, ","), "-w", "json", "status")
	if code != 0 || stderr != "" {
		t.Fatalf("status: exit %d, stderr %q", code, stderr)
	}
	var sj statusJSON
	if err := json.Unmarshal([]byte(stdout), &sj); err != nil {
		t.Fatalf("status -w json: %v: %q", err, stdout)
	}
	if !sj.HasLeader || sj.LeaderID != 1 || sj.Term != 4 || sj.Mode != "replicated" || len(sj.Replicas) != 3 {
		t.Fatalf("status -w json: %+v", sj)
	}
	for i, r := range sj.Replicas {
		if want := []string{a0, a1, a2}[i]; r.ID != uint32(i) || r.Endpoint != want || r.Leader != (i == 1) {
			t.Errorf("replica %d: %+v, want id %d from %s", i, r, i, want)
		}
	}
	if len(sj.Unreachable) != 1 || sj.Unreachable[0].Endpoint != dead || !strings.HasPrefix(sj.Unreachable[0].Error, "UNAVAILABLE: ") {
		t.Errorf("unreachable: %+v, want %s UNAVAILABLE", sj.Unreachable, dead)
	}

	stdout, stderr, code = kvctlRun(t, "--endpoints", strings.Join([]string{a0, a1, dead}, ","), "status")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if code != 0 || stderr != "" || len(lines) != 5 || lines[0] != "mode: replicated, leader: 1, term: 4" ||
		!strings.HasPrefix(lines[4], "endpoint "+dead+": unreachable (UNAVAILABLE: ") {
		t.Fatalf("status: exit %d, stderr %q, stdout\n%s", code, stderr, stdout)
	}

	// The same in-process server given twice: its replicas once each.
	group := serveFake(t, &fakeKV{statuses: []*messages.StatusResponse{statusOf(replica(0, 9, "ab"), replica(1, 9, "ab"), replica(2, 9, "ab"))}})
	stdout, _, code = kvctlRun(t, "--endpoints", group+","+group, "-w", "json", "status")
	sj = statusJSON{}
	if err := json.Unmarshal([]byte(stdout), &sj); code != 0 || err != nil || len(sj.Replicas) != 3 || len(sj.Unreachable) != 0 {
		t.Fatalf("status of one group twice: exit %d, %v, %q", code, err, stdout)
	}

	// No endpoint answers: UNAVAILABLE at the timeout.
	_, stderr, code = kvctlRun(t, "--endpoints", dead+","+deadEndpoint(t), "--timeout", "300ms", "status")
	wantFailure(t, stderr, code, "UNAVAILABLE", "no answer before the deadline")
}

// TestVerifyAcrossEndpoints checks verify over a cluster's endpoints: the
// replicas of all processes are compared; an endpoint that does not answer
// is reported and fails --require-all.
func TestVerifyAcrossEndpoints(t *testing.T) {
	a0 := serveFake(t, &fakeKV{statuses: []*messages.StatusResponse{clusterNode(replica(0, 9, "ab"), 0, 2)}})
	a1 := serveFake(t, &fakeKV{statuses: []*messages.StatusResponse{
		clusterNode(replica(1, 8, "cd"), 0, 2), clusterNode(replica(1, 9, "ab"), 0, 2),
	}})
	bad := serveFake(t, &fakeKV{statuses: []*messages.StatusResponse{clusterNode(replica(2, 9, "ef"), 0, 2)}})
	dead := deadEndpoint(t)

	stdout, stderr, code := kvctlRun(t, "--endpoints", a0+","+a1, "verify", "--require-all")
	if code != 0 || stderr != "" || stdout != "replicas 0, 1 at applied index 9: same digest abababababab\nOK\n" {
		t.Fatalf("verify: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	_, stderr, code = kvctlRun(t, "--endpoints", a0+","+a1+","+bad, "verify")
	wantFailureExit(t, stderr, code, exitMismatch, "INTERNAL", "digest mismatch at applied index 9: replica 0 abababababab, replica 1 abababababab, replica 2 efefefefefef")

	stdout, stderr, code = kvctlRun(t, "--endpoints", a0+","+dead+","+a1, "verify")
	if code != 0 || stderr != "" || !strings.Contains(stdout, "replicas 0, 1 at applied index 9: same digest") ||
		!strings.Contains(stdout, "endpoint "+dead+": not compared (unreachable: UNAVAILABLE: ") || !strings.HasSuffix(stdout, "\nOK\n") {
		t.Fatalf("verify with an endpoint down: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = kvctlRun(t, "--endpoints", a0+","+dead+","+a1, "verify", "--require-all", "--wait", "100ms")
	wantFailure(t, stderr, code, "UNAVAILABLE", "endpoint "+dead+" (unreachable) could not be compared")
	if strings.HasSuffix(stdout, "OK\n") || !strings.HasSuffix(stdout, "INCOMPLETE (--require-all: not every replica was compared)\n") {
		t.Fatalf("verify --require-all with an endpoint down printed %q; want INCOMPLETE, not OK", stdout)
	}

	// One process left: its replica is not compared, not "the only one".
	stdout, _, code = kvctlRun(t, "--endpoints", a0+","+dead, "verify")
	if code != 0 || !strings.Contains(stdout, "replica 0 at applied index 9: not compared (no other replica there)") {
		t.Fatalf("verify with one process: exit %d, stdout %q", code, stdout)
	}
}

// TestFaultAcrossEndpoints checks fault over several endpoints: each process
// gets the request for its own replicas among those named (all, naming
// none); nothing is sent when a named replica, or (naming none) an
// endpoint, gives no status; standalone endpoints each get the request.
func TestFaultAcrossEndpoints(t *testing.T) {
	nodes := make([]*fakeKV, 3)
	addrs := make([]string, 3)
	for i := range nodes {
		nodes[i] = &fakeKV{statuses: []*messages.StatusResponse{clusterNode(replica(uint32(i), 9, "ab"), 0, 2)}}
		addrs[i] = serveFake(t, nodes[i])
	}
	all := strings.Join(addrs, ",")
	sent := func() [][][]uint32 {
		out := make([][][]uint32, len(nodes))
		for i, n := range nodes {
			out[i] = n.faultsSent()
		}
		return out
	}
	stdout, stderr, code := kvctlRun(t, "--endpoints", all, "fault", "--replicas", "2,0", "--latency", "5ms")
	if code != 0 || stdout != "OK\n" || stderr != "" {
		t.Fatalf("fault --replicas 2,0: exit %d, %q, %q", code, stdout, stderr)
	}
	if got, want := sent(), [][][]uint32{{{0}}, nil, {{2}}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("fault --replicas 2,0 sent %v, want %v", got, want)
	}
	if _, _, code := kvctlRun(t, "--endpoints", all, "fault", "--off"); code != 0 {
		t.Fatalf("fault --off: exit %d", code)
	}
	if got, want := sent(), [][][]uint32{{{0}, {0}}, {{1}}, {{2}, {2}}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("fault --off sent %v, want %v", got, want)
	}
	for _, n := range nodes {
		if f := n.faults[len(n.faults)-1].GetFaults(); f.GetAddedLatency() != nil || f.GetErrorRate() != 0 {
			t.Fatalf("fault --off sent faults %v", f)
		}
	}

	// An endpoint gives no status: nothing is sent unless the replicas
	// named are all reported.
	dead := deadEndpoint(t)
	_, stderr, code = kvctlRun(t, "--endpoints", addrs[0]+","+dead, "--timeout", "2s", "fault", "--off")
	wantFailure(t, stderr, code, "UNAVAILABLE", "endpoint "+dead+" did not answer")
	_, stderr, code = kvctlRun(t, "--endpoints", addrs[0]+","+dead, "--timeout", "2s", "fault", "--off", "--replicas", "1")
	wantFailure(t, stderr, code, "UNAVAILABLE", "no endpoint reports replica 1")
	if got := nodes[0].faultsSent(); len(got) != 2 {
		t.Fatalf("failed fault commands sent %d requests to %s", len(got)-2, addrs[0])
	}
	if _, _, code = kvctlRun(t, "--endpoints", addrs[0]+","+dead, "--timeout", "2s", "fault", "--off", "--replicas", "0"); code != 0 {
		t.Fatalf("fault --replicas 0 with another endpoint down: exit %d", code)
	}

	// A stopped replica in an in-process group: --off skips it at once
	// (it has no faults), setting faults on it is refused at once.
	stopped := &messages.ReplicaStatus{ReplicaId: 2, Error: "not running: fail-stop"}
	group := &fakeKV{statuses: []*messages.StatusResponse{statusOf(replica(0, 9, "ab"), replica(1, 9, "ab"), stopped)}}
	gaddr := serveFake(t, group)
	both := gaddr + "," + gaddr // two endpoints: kvctl asks for the status first
	if stdout, stderr, code := kvctlRun(t, "--endpoints", both, "fault", "--off"); code != 0 || stdout != "OK\n" {
		t.Fatalf("fault --off with replica 2 stopped: exit %d, %q, %q", code, stdout, stderr)
	}
	if got := group.faultsSent(); !reflect.DeepEqual(got, [][]uint32{{0, 1}}) {
		t.Fatalf("fault --off with replica 2 stopped sent %v, want [[0 1]]", got)
	}
	_, stderr, code = kvctlRun(t, "--endpoints", both, "fault", "--replicas", "2", "--latency", "1ms")
	wantFailure(t, stderr, code, "UNAVAILABLE", "replica 2 is not running; no faults set")

	// Standalone servers: each its own engine, each gets the request.
	solo := make([]*fakeKV, 2)
	var soloAddrs []string
	for i := range solo {
		st := statusOf(replica(0, 5, "ab"))
		st.Mode = "standalone"
		solo[i] = &fakeKV{statuses: []*messages.StatusResponse{st}}
		soloAddrs = append(soloAddrs, serveFake(t, solo[i]))
	}
	if _, _, code := kvctlRun(t, "--endpoints", strings.Join(soloAddrs, ","), "fault", "--error-rate", "0.5"); code != 0 {
		t.Fatalf("fault over two standalone servers: exit %d", code)
	}
	for i, n := range solo {
		if got := n.faultsSent(); len(got) != 1 || len(got[0]) != 0 || n.faults[0].GetFaults().GetErrorRate() != 0.5 {
			t.Errorf("standalone server %d got %v", i, got)
		}
	}
}

// TestStatusWatch: status --watch prints the status every --interval, a
// round whose endpoint is gone as its error line, until its context ends
// (exit 0).
func TestStatusWatch(t *testing.T) {
	f := &fakeKV{statuses: []*messages.StatusResponse{
		statusOf(replica(0, 9, "ab"), replica(1, 9, "ab"), replica(2, 9, "ab")),
		statusOf(replica(0, 10, "cd"), replica(1, 10, "cd"), replica(2, 10, "cd")),
	}}
	addr := serveFake(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"--endpoints", addr, "--timeout", "300ms", "status", "--watch", "--interval", "100ms"}, &out, &errb)
	if code != 0 || errb.Len() != 0 {
		t.Fatalf("status --watch: exit %d, stderr %q", code, errb.String())
	}
	tables := strings.Count(out.String(), "ID  ENDPOINT")
	if tables < 3 {
		t.Fatalf("status --watch printed %d tables in 1.5s at 100ms:\n%s", tables, out.String())
	}
	if !strings.Contains(out.String(), "  9  ") || !strings.Contains(out.String(), "  10  ") {
		t.Fatalf("status --watch did not follow the applied index from 9 to 10:\n%s", out.String())
	}
	// A round that fails prints its error line and the watch goes on.
	dead := deadEndpoint(t)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel2()
	out.Reset()
	code = run(ctx2, []string{"--endpoints", dead, "--timeout", "100ms", "status", "-W", "--interval", "50ms"}, &out, &errb)
	if code != 0 || strings.Count(out.String(), "kvctl: UNAVAILABLE") < 2 {
		t.Fatalf("status --watch of a dead endpoint: exit %d, stdout %q", code, out.String())
	}
}
