package e2e

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/actorkv/actorkv/messages"
)

// rawCodec sends and receives raw bytes, so a test can put malformed
// protobuf on the wire. Its name is "proto": the server decodes with its
// own protobuf codec.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*p = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// badInputSuite sends every bad input of DESIGN.md and checks its gRPC code,
// that nothing was proposed (every replica's applied index is unchanged) and
// that the server still serves.
func badInputSuite(t *testing.T, s *kvserver) {
	conn := dial(t, s.GRPC)
	kv := messages.NewKVClient(conn)
	before, term := converged(t, kv)

	key := func(n int) []byte { return bytes.Repeat([]byte("k"), n) }
	set := func(cf string, k, v []byte) *messages.Mutation {
		return &messages.Mutation{Type: messages.MutationType_SET, ColumnFamily: cf, Key: k, Value: v}
	}
	manyOps := make([]*messages.Mutation, 1001)
	for i := range manyOps {
		manyOps[i] = set("", []byte(fmt.Sprintf("bad/%d", i)), []byte("v"))
	}
	var bigCommit []*messages.Mutation // 8 values of 1 MiB: over 8 MiB with keys and framing
	for i := range 8 {
		bigCommit = append(bigCommit, set("", []byte(fmt.Sprintf("bad/big/%d", i)), make([]byte, 1<<20)))
	}
	rid := func(seq, responded uint64) *messages.RequestId {
		return &messages.RequestId{ClientId: 7, Seq: seq, RespondedTo: responded}
	}
	raw := func(method string, body []byte) func(context.Context) error {
		return func(ctx context.Context) error {
			var out []byte
			return conn.Invoke(ctx, "/actorkv.v1.KV/"+method, body, &out, grpc.ForceCodec(rawCodec{}))
		}
	}
	cases := []struct {
		name string
		call func(context.Context) error
		want codes.Code
	}{
		{"put empty key", func(ctx context.Context) error {
			_, err := kv.Put(ctx, &messages.PutRequest{Value: []byte("v")})
			return err
		}, codes.InvalidArgument},
		{"put key over 10,000 bytes", func(ctx context.Context) error {
			_, err := kv.Put(ctx, &messages.PutRequest{Key: key(10_001), Value: []byte("v")})
			return err
		}, codes.InvalidArgument},
		{"get empty key", func(ctx context.Context) error {
			_, err := kv.Get(ctx, &messages.GetRequest{})
			return err
		}, codes.InvalidArgument},
		{"get key over 10,000 bytes", func(ctx context.Context) error {
			_, err := kv.Get(ctx, &messages.GetRequest{Key: key(10_001)})
			return err
		}, codes.InvalidArgument},
		{"delete empty key", func(ctx context.Context) error {
			_, err := kv.Delete(ctx, &messages.DeleteRequest{})
			return err
		}, codes.InvalidArgument},
		{"snapshot read empty key", func(ctx context.Context) error {
			_, err := kv.SnapshotRead(ctx, &messages.SnapshotReadRequest{Version: 1})
			return err
		}, codes.InvalidArgument},
		{"value over 1 MiB", func(ctx context.Context) error {
			_, err := kv.Put(ctx, &messages.PutRequest{Key: []byte("bad/v"), Value: make([]byte, 1<<20+1)})
			return err
		}, codes.ResourceExhausted},
		{"atomic commit over 1,000 operations", func(ctx context.Context) error {
			_, err := kv.AtomicCommit(ctx, &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{Mutations: manyOps}})
			return err
		}, codes.ResourceExhausted},
		{"atomic commit over 8 MiB", func(ctx context.Context) error {
			_, err := kv.AtomicCommit(ctx, &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{Mutations: bigCommit}})
			return err
		}, codes.ResourceExhausted},
		{"atomic commit value over 1 MiB", func(ctx context.Context) error {
			_, err := kv.AtomicCommit(ctx, &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{
				Mutations: []*messages.Mutation{set("", []byte("bad/c"), make([]byte, 1<<20+1))}}})
			return err
		}, codes.ResourceExhausted},
		{"atomic commit empty key", func(ctx context.Context) error {
			_, err := kv.AtomicCommit(ctx, &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{
				Mutations: []*messages.Mutation{set("", nil, []byte("v"))}}})
			return err
		}, codes.InvalidArgument},
		{"atomic commit mutation type unspecified", func(ctx context.Context) error {
			_, err := kv.AtomicCommit(ctx, &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{
				Mutations: []*messages.Mutation{{Key: []byte("bad/u")}}}})
			return err
		}, codes.InvalidArgument},
		{"atomic commit missing", func(ctx context.Context) error {
			_, err := kv.AtomicCommit(ctx, &messages.AtomicCommitRequest{})
			return err
		}, codes.InvalidArgument},
		{"get range limit over 10,000", func(ctx context.Context) error {
			_, err := kv.GetRange(ctx, &messages.GetRangeRequest{Limit: 10_001})
			return err
		}, codes.InvalidArgument},
		{"get range negative limit", func(ctx context.Context) error {
			_, err := kv.GetRange(ctx, &messages.GetRangeRequest{Limit: -1})
			return err
		}, codes.InvalidArgument},
		{"list keys limit over 10,000", func(ctx context.Context) error {
			_, err := kv.ListKeys(ctx, &messages.ListKeysRequest{Limit: 10_001})
			return err
		}, codes.InvalidArgument},
		{"list keys negative limit", func(ctx context.Context) error {
			_, err := kv.ListKeys(ctx, &messages.ListKeysRequest{Limit: -5})
			return err
		}, codes.InvalidArgument},
		{"snapshot range negative limit", func(ctx context.Context) error {
			_, err := kv.SnapshotGetRange(ctx, &messages.SnapshotGetRangeRequest{Limit: -1, Version: 1})
			return err
		}, codes.InvalidArgument},
		{"get range begin after end", func(ctx context.Context) error {
			_, err := kv.GetRange(ctx, &messages.GetRangeRequest{Begin: []byte("b"), End: []byte("a")})
			return err
		}, codes.InvalidArgument},
		{"clear range begin after end", func(ctx context.Context) error {
			_, err := kv.ClearRange(ctx, &messages.ClearRangeRequest{Begin: []byte("b"), End: []byte("a")})
			return err
		}, codes.InvalidArgument},
		{"request id seq 0", func(ctx context.Context) error {
			_, err := kv.Put(ctx, &messages.PutRequest{Key: []byte("bad/r"), RequestId: rid(0, 0)})
			return err
		}, codes.InvalidArgument},
		{"request id responded_to not below seq", func(ctx context.Context) error {
			_, err := kv.Delete(ctx, &messages.DeleteRequest{Key: []byte("bad/r"), RequestId: rid(3, 3)})
			return err
		}, codes.InvalidArgument},
		{"fault error rate over 1", func(ctx context.Context) error {
			_, err := kv.SetFaultInjection(ctx, &messages.SetFaultInjectionRequest{Faults: &messages.FaultInjection{ErrorRate: 2}})
			return err
		}, codes.InvalidArgument},
		{"fault negative latency", func(ctx context.Context) error {
			_, err := kv.SetFaultInjection(ctx, &messages.SetFaultInjectionRequest{Faults: &messages.FaultInjection{AddedLatency: durationpb.New(-time.Second)}})
			return err
		}, codes.InvalidArgument},
		{"snapshot read beyond the latest version", func(ctx context.Context) error {
			_, err := kv.SnapshotRead(ctx, &messages.SnapshotReadRequest{Key: []byte("k"), Version: 1 << 60})
			return err
		}, codes.InvalidArgument},
		{"unknown column family: put", func(ctx context.Context) error {
			_, err := kv.Put(ctx, &messages.PutRequest{ColumnFamily: "nope", Key: []byte("k")})
			return err
		}, codes.NotFound},
		{"unknown column family: get", func(ctx context.Context) error {
			_, err := kv.Get(ctx, &messages.GetRequest{ColumnFamily: "nope", Key: []byte("k")})
			return err
		}, codes.NotFound},
		{"unknown column family: get range", func(ctx context.Context) error {
			_, err := kv.GetRange(ctx, &messages.GetRangeRequest{ColumnFamily: "nope"})
			return err
		}, codes.NotFound},
		{"unknown column family: list keys", func(ctx context.Context) error {
			_, err := kv.ListKeys(ctx, &messages.ListKeysRequest{ColumnFamily: "nope"})
			return err
		}, codes.NotFound},
		{"unknown column family: clear range", func(ctx context.Context) error {
			_, err := kv.ClearRange(ctx, &messages.ClearRangeRequest{ColumnFamily: "nope"})
			return err
		}, codes.NotFound},
		{"unknown column family: atomic commit mutation", func(ctx context.Context) error {
			_, err := kv.AtomicCommit(ctx, &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{
				Mutations: []*messages.Mutation{set("nope", []byte("k"), nil)}}})
			return err
		}, codes.NotFound},
		{"unknown column family: read conflict range", func(ctx context.Context) error {
			_, err := kv.AtomicCommit(ctx, &messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{
				Mutations:          []*messages.Mutation{set("", []byte("bad/k"), nil)},
				ReadConflictRanges: []*messages.KeyRange{{ColumnFamily: "nope"}}}})
			return err
		}, codes.NotFound},
		// Malformed protobuf on the wire.
		{"malformed: truncated field", raw("Put", []byte{0x12, 0x05, 'k'}), codes.InvalidArgument},
		{"malformed: bad tag", raw("Put", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), codes.InvalidArgument},
		{"malformed: invalid UTF-8 column family", raw("Put", []byte{0x0a, 0x02, 0xff, 0xfe, 0x12, 0x01, 'k'}), codes.InvalidArgument},
		{"malformed: field 0", raw("Get", []byte{0x00, 0x01}), codes.InvalidArgument},
		{"malformed: truncated nested message", raw("AtomicCommit", []byte{0x0a, 0x02, 0x0a, 0x09}), codes.InvalidArgument},
		{"malformed: status request", raw("Status", []byte{0x08}), codes.InvalidArgument},
		// A message over the server's receive limit.
		{"message over MaxRequestMessageBytes", func(ctx context.Context) error {
			_, err := kv.Put(ctx, &messages.PutRequest{Key: []byte("bad/huge"), Value: make([]byte, messages.MaxRequestMessageBytes+1)})
			return err
		}, codes.ResourceExhausted},
		{"raw message over MaxRequestMessageBytes", raw("Put", make([]byte, messages.MaxRequestMessageBytes+100)), codes.ResourceExhausted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := c.call(ctx)
			if got := grpcstatus.Code(err); got != c.want {
				t.Fatalf("got %v (%v), want %v", got, err, c.want)
			}
		})
	}

	// Nothing was proposed: every replica is where it was.
	switch after, afterTerm := converged(t, kv); {
	case after == before:
	case afterTerm != term:
		// A new leader appends an entry of its own: the test cannot tell.
		t.Logf("applied index moved from %d to %d, but the term changed from %d to %d (an election); not a proposed bad input", before, after, term, afterTerm)
	default:
		t.Fatalf("applied index moved from %d to %d in term %d: a bad input was proposed", before, after, term)
	}
	// The server still serves, on the same connection.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := kv.Put(ctx, &messages.PutRequest{Key: []byte("bad/after"), Value: []byte("fine")})
	if err != nil {
		t.Fatalf("put after the bad inputs: %v", err)
	}
	g, err := kv.Get(ctx, &messages.GetRequest{Key: []byte("bad/after")})
	if err != nil || string(g.GetValue()) != "fine" {
		t.Fatalf("get after the bad inputs: %v %v", g, err)
	}
	if p.GetVersion() <= before {
		t.Fatalf("put after the bad inputs: version %d, applied index was %d", p.GetVersion(), before)
	}
}

// deadlineSuite makes storage slow (1s on every operation) and checks that
// a request with a short deadline ends DeadlineExceeded, that the server
// itself gave up (its metrics count the get as TIMEOUT or CANCELLED, not OK
// a second later), and that kvctl reports it.
func deadlineSuite(t *testing.T, s *kvserver) {
	kv := s.kvClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The server sees TIMEOUT, or CANCELLED when the client's cancellation
	// reaches it before its own copy of the deadline passes.
	timeouts := func() int {
		return metricValue(t, s, `actorkv_requests_total{code="TIMEOUT",op="get"}`) +
			metricValue(t, s, `actorkv_requests_total{code="CANCELLED",op="get"}`)
	}
	before := timeouts()
	if _, err := kv.SetFaultInjection(ctx, &messages.SetFaultInjectionRequest{Faults: &messages.FaultInjection{AddedLatency: durationpb.New(time.Second)}}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := kv.SetFaultInjection(ctx, &messages.SetFaultInjectionRequest{Faults: &messages.FaultInjection{}}); err != nil {
			t.Errorf("turning faults off: %v", err)
		}
	}()
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	start := time.Now()
	_, err := kv.Get(short, &messages.GetRequest{Key: []byte("dl/k")})
	cancelShort()
	if grpcstatus.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("get with a 100ms deadline on 1s storage: %v, want DeadlineExceeded", err)
	}
	t.Logf("get with a 100ms deadline ended after %v", time.Since(start))
	eventually(t, 20*time.Second, func() error {
		if n := timeouts(); n <= before {
			return fmt.Errorf("the server counted %d gets ending TIMEOUT or CANCELLED, want more than %d", n, before)
		}
		return nil
	})
	r := kvctl(t, "", "--endpoints", s.GRPC, "--timeout", "300ms", "get", "dl/k")
	checkFailure(t, r, "TIMEOUT", []string{"get with --timeout 300ms on 1s storage"})
}

// metricValue scrapes /metrics for one sample (its full name with labels);
// 0 when absent.
func metricValue(t testing.TB, s *kvserver, sample string) int {
	t.Helper()
	code, body, err := httpGet(s.HTTP, "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return int(f)
		}
	}
	return 0
}

// httpSuite checks /metrics, /healthz, /readyz and the gRPC health service.
func httpSuite(t *testing.T, s *kvserver, replicas int) {
	if err := httpGetStatus(s.HTTP, "/healthz", 200); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitTimeout, func() error { return httpGetStatus(s.HTTP, "/readyz", 200) })
	_, body, err := httpGet(s.HTTP, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`(?m)^actorkv_requests_total\{code="OK",op="put"\} [1-9]`,
		`(?m)^actorkv_requests_total\{code="OK",op="get"\} [1-9]`,
		`(?m)^actorkv_requests_total\{code="INVALID_ARGUMENT",op="put"\} [1-9]`,
		`(?m)^actorkv_request_duration_seconds_bucket\{op="put",le="[^"]+"\} `,
		`(?m)^actorkv_request_duration_seconds_count\{op="get"\} [1-9]`,
	}
	for i := range replicas {
		want = append(want, fmt.Sprintf(`(?m)^actorkv_replica_applied_index\{replica="%d"\} [1-9]`, i))
	}
	for _, w := range want {
		if !regexp.MustCompile(w).MatchString(body) {
			t.Errorf("/metrics has no line matching %s", w)
		}
	}
	health := healthpb.NewHealthClient(dial(t, s.GRPC))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, svc := range []string{"", "actorkv.v1.KV"} {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health check %q: %v %v, want SERVING", svc, resp, err)
		}
	}
}

// gracefulShutdown holds a gRPC health Watch open (an in-flight RPC that
// graceful shutdown waits for), sends SIGTERM, and checks that while the
// server drains /readyz and /healthz answer 503 and the health service
// NOT_SERVING; once the watch ends the server exits 0.
func gracefulShutdown(t *testing.T, s *kvserver) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	watch, err := healthpb.NewHealthClient(dial(t, s.GRPC)).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: %v %v, want SERVING", resp, err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health watch after SIGTERM: %v %v, want NOT_SERVING", resp, err)
	}
	for _, path := range []string{"/readyz", "/healthz"} {
		if err := httpGetStatus(s.HTTP, path, 503); err != nil {
			t.Errorf("while draining: %v", err)
		}
	}
	cancel() // ends the watch: the last in-flight RPC
	if code := s.wait(30 * time.Second); code != 0 {
		t.Fatalf("kvserver exited %d after SIGTERM\n%s", code, s.log.tail(4000))
	}
}
