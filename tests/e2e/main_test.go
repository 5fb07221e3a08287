package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/actorkv/actorkv/messages"
)

// binDir holds the kvserver and kvctl binaries built by TestMain.
var binDir string

// waitTimeout bounds every wait for a server to start, converge or stop;
// generous because two cores compile and test at once.
const waitTimeout = 60 * time.Second

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "actorkv-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	build := exec.Command("go", "build", "-o", dir, "./cmd/kvserver", "./cmd/kvctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build: %v\n%s", err, out)
		return 1
	}
	binDir = dir
	code := m.Run()
	if err := removeComposeImage(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return code
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

// eventually polls cond every 20ms until it returns nil, failing the test
// with cond's last error after d.
func eventually(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true within %v: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a loopback address nobody listened on a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// logBuffer collects a process's output for failure reports.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// serverConfig describes a kvserver process to start.
type serverConfig struct {
	mode           string   // "replicated" (default) or "standalone"
	dataDir        string   // default: a new temp dir
	columnFamilies []string // default: default only
	// lonely runs replica 0 of a three-replica TCP cluster whose other
	// replicas never start: it never has a leader.
	lonely bool
	// noAdmin leaves admin operations off (server.admin), as by default;
	// the tests' servers allow them otherwise.
	noAdmin bool
	// jsonLogs sets log.format = "json".
	jsonLogs bool
	// args are more kvserver flags.
	args []string
	// thrift turns on the Thrift front end (server.thrift_listen).
	thrift bool
	// configEnv names the configuration file in $CONFIG_PATH instead of
	// --config.
	configEnv bool
}

// kvserver is a running kvserver process.
type kvserver struct {
	t       testing.TB
	cfg     serverConfig
	cmd     *exec.Cmd
	GRPC    string          // gRPC address
	HTTP    string          // status page, /metrics, /healthz, /readyz address
	Thrift  string          // Thrift address ("": off)
	log     *logBuffer      // stdout and stderr
	netns   string          // the network namespace it runs in ("": this one's)
	creds   grpc.DialOption // how to reach its gRPC server (nil: plaintext)
	done    chan struct{}   // closed when the process has exited
	waitErr error           // cmd.Wait's result, once done is closed
}

// startServer starts kvserver and waits until it serves: the gRPC health
// service answers SERVING (or, for a lonely replica, /healthz answers). The
// ports are picked free just before; if another process took one in
// between, it starts once more on new ports.
func startServer(t testing.TB, cfg serverConfig) *kvserver {
	t.Helper()
	if cfg.mode == "" {
		cfg.mode = "replicated"
	}
	if cfg.dataDir == "" {
		cfg.dataDir = t.TempDir()
	}
	for attempt := 0; ; attempt++ {
		s := launch(t, cfg)
		err := s.waitServing()
		if err == nil {
			return s
		}
		if attempt == 0 && strings.Contains(s.log.String(), "address already in use") {
			t.Logf("port taken, starting again: %v", err)
			continue
		}
		t.Fatalf("kvserver did not start: %v\n%s", err, s.log.tail(8000))
	}
}

func launch(t testing.TB, cfg serverConfig) *kvserver {
	t.Helper()
	s := &kvserver{t: t, cfg: cfg, GRPC: freePort(t), HTTP: freePort(t), log: &logBuffer{}, done: make(chan struct{})}
	var b strings.Builder
	fmt.Fprintf(&b, "[deployment]\nmode = %q\n", cfg.mode)
	if cfg.lonely {
		fmt.Fprintf(&b, "in_process = false\ninstance_id = 0\nreplica_endpoints = [%q, %q, %q]\n", freePort(t), freePort(t), freePort(t))
	}
	fmt.Fprintf(&b, "\n[database]\nbase_path = %q\n", cfg.dataDir)
	if len(cfg.columnFamilies) > 0 {
		fmt.Fprintf(&b, "column_families = [%s]\n", quoteAll(cfg.columnFamilies))
	}
	// listen is overridden by the --listen flag below: flags win over the
	// file, and port 1 is nothing a test could reach.
	fmt.Fprintf(&b, "\n[server]\nlisten = \"127.0.0.1:1\"\nmetrics = %q\nshutdown_timeout = \"10s\"\nadmin = %t\n", s.HTTP, !cfg.noAdmin)
	if cfg.thrift {
		s.Thrift = freePort(t)
		fmt.Fprintf(&b, "thrift_listen = %q\n", s.Thrift)
	}
	if cfg.jsonLogs {
		b.WriteString("\n[log]\nformat = \"json\"\nlevel = \"debug\"\n")
	}
	path := filepath.Join(t.TempDir(), "kvserver.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg.configEnv {
		return spawnEnv(t, s, []string{"CONFIG_PATH=" + path}, append([]string{"--listen", s.GRPC}, cfg.args...)...)
	}
	return spawn(t, s, append([]string{"--config", path, "--listen", s.GRPC}, cfg.args...)...)
}

// spawn starts s's kvserver process with args; the test's cleanup stops it
// (SIGTERM) if it still runs, and logs its output if the test failed.
func spawn(t testing.TB, s *kvserver, args ...string) *kvserver {
	t.Helper()
	return spawnEnv(t, s, nil, args...)
}

// spawnEnv is spawn with env added to the process's environment.
func spawnEnv(t testing.TB, s *kvserver, env []string, args ...string) *kvserver {
	t.Helper()
	s.cmd = exec.Command(filepath.Join(binDir, "kvserver"), args...)
	if s.netns != "" { // ip netns exec runs kvserver itself: signals reach it
		s.cmd = exec.Command("ip", append([]string{"netns", "exec", s.netns, s.cmd.Path}, args...)...)
	}
	if env != nil {
		s.cmd.Env = append(os.Environ(), env...)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if s.exited() {
			return
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Errorf("kvserver ignored SIGTERM for 30s; killing it\n%s", s.log.tail(4000))
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kvserver %s log:\n%s", s.GRPC, s.log.tail(6000))
		}
	})
	return s
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func (s *kvserver) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// waitServing waits until the server serves (or, lonely, answers /healthz).
func (s *kvserver) waitServing() error {
	creds := s.creds
	if creds == nil {
		creds = grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	conn, err := grpc.NewClient(s.GRPC, creds)
	if err != nil {
		return err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(waitTimeout)
	var last error
	for time.Now().Before(deadline) {
		if s.exited() {
			return fmt.Errorf("kvserver exited: %v", s.waitErr)
		}
		if strings.Contains(s.log.String(), "address already in use") {
			return errors.New("a port is taken") // a Raft port: the process lives on, never ready
		}
		if s.cfg.lonely {
			last = httpGetStatus(s.HTTP, "/healthz", http.StatusOK)
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			var resp *healthpb.HealthCheckResponse
			resp, last = health.Check(ctx, &healthpb.HealthCheckRequest{})
			cancel()
			if last == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				last = fmt.Errorf("health: %v", resp.GetStatus())
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not serving within %v: %v", waitTimeout, last)
}

// terminate sends SIGTERM and waits up to d for the process to exit,
// returning its exit code.
func (s *kvserver) terminate(d time.Duration) int {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM: %v", err)
	}
	return s.wait(d)
}

// wait waits up to d for the process to exit and returns its exit code.
func (s *kvserver) wait(d time.Duration) int {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(d):
		s.t.Fatalf("kvserver did not exit within %v\n%s", d, s.log.tail(6000))
	}
	var ee *exec.ExitError
	if errors.As(s.waitErr, &ee) {
		return ee.ExitCode()
	}
	if s.waitErr != nil {
		s.t.Fatalf("kvserver: %v", s.waitErr)
	}
	return 0
}

// dial returns a gRPC connection to addr, closed when the test ends.
func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	return dialWith(t, addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// dialWith connects to addr with creds (TLS, say).
func dialWith(t testing.TB, addr string, creds grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, creds, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// kvClient returns a KV client of the server.
func (s *kvserver) kvClient(t testing.TB) messages.KVClient {
	return messages.NewKVClient(dial(t, s.GRPC))
}

// result is the outcome of one kvctl run.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// kvctl runs the kvctl binary with args (and stdin, if not empty).
func kvctl(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kvctl"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("kvctl %v: %v", args, err)
	}
	return r
}

// ctl runs kvctl against the server, expecting success, and returns its
// output.
func (s *kvserver) ctl(t testing.TB, args ...string) string {
	t.Helper()
	r := kvctl(t, "", append([]string{"--endpoints", s.GRPC, "--timeout", "20s"}, args...)...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("kvctl %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

// ctlFails runs kvctl against the server, expecting the exit code of code's
// class (kvctl --help) with exactly one line "kvctl: <code>: ..." on stderr.
func (s *kvserver) ctlFails(t testing.TB, code string, args ...string) result {
	t.Helper()
	r := kvctl(t, "", append([]string{"--endpoints", s.GRPC, "--timeout", "20s"}, args...)...)
	checkFailure(t, r, code, args)
	return r
}

// kvctlExit is the exit code kvctl --help documents for each status code;
// verify's digest mismatch is kvctlMismatch.
var kvctlExit = map[string]int{
	"INTERNAL": 1, "CANCELLED": 1, "SESSION_EXPIRED": 1,
	"INVALID_ARGUMENT": 2, "TOO_LARGE": 2, "UNKNOWN_COLUMN_FAMILY": 2,
	"UNAVAILABLE": 3, "TIMEOUT": 3,
	"CONFLICT": 4, "TRANSACTION_TOO_OLD": 4,
	"PERMISSION_DENIED": 5, "RESOURCE_EXHAUSTED": 5,
}

const kvctlMismatch = 6

func checkFailure(t testing.TB, r result, code string, args []string) {
	t.Helper()
	checkFailureExit(t, r, kvctlExit[code], code, args)
}

func checkFailureExit(t testing.TB, r result, exit int, code string, args []string) {
	t.Helper()
	if r.code != exit || !strings.HasPrefix(r.stderr, "kvctl: "+code+": ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Fatalf("kvctl %s: want exit %d and one line \"kvctl: %s: ...\"; got %v", strings.Join(args, " "), exit, code, r)
	}
}

// httpGetStatus checks that GET path on addr answers want.
func httpGetStatus(addr, path string, want int) error {
	code, body, err := httpGet(addr, path)
	if err != nil {
		return err
	}
	if code != want {
		return fmt.Errorf("GET %s: %d %q, want %d", path, code, body, want)
	}
	return nil
}

func httpGet(addr, path string) (int, string, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// converged waits until every replica runs at one applied index, and
// returns it with the group's term.
func converged(t testing.TB, kv messages.KVClient) (index, term uint64) {
	t.Helper()
	eventually(t, waitTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := kv.Status(ctx, &messages.StatusRequest{})
		if err != nil {
			return err
		}
		for i, r := range st.GetReplicas() {
			if !r.GetRunning() {
				return fmt.Errorf("replica %d is not running: %s", r.GetReplicaId(), r.GetError())
			}
			if i > 0 && r.GetAppliedIndex() != index {
				return fmt.Errorf("applied indexes differ: %v", st.GetReplicas())
			}
			index = r.GetAppliedIndex()
		}
		term = st.GetTerm()
		return nil
	})
	return index, term
}

// execOutput runs a program and returns its combined output; err is
// non-nil when it did not exit 0.
func execOutput(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
