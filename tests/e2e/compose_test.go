package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actorkv/actorkv/messages"
)

// composeTool is the Compose command on this machine: the docker plugin
// ("docker compose") or the standalone docker-compose; nil when neither
// answers.
func composeTool() []string {
	for _, tool := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		args := append(slices.Clone(tool[1:]), "version")
		if exec.Command(tool[0], args...).Run() == nil {
			return tool
		}
	}
	return nil
}

// composeCluster is deploy/docker-compose.yml brought up under a project
// name of its own, on an image built for the test.
type composeCluster struct {
	*cluster
	tool    []string
	project string
	files   []string // the compose files, in order
	env     []string
	ids     []string // container id of node i
	network string   // the cluster's network
}

// docker runs docker with args and returns its output, failing the test
// when it does not exit 0.
func docker(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// compose runs the Compose tool on the project and returns its output, or
// an error with it.
func (cc *composeCluster) compose(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append(slices.Clone(cc.tool[1:]), "-p", cc.project)
	for _, f := range cc.files {
		full = append(full, "-f", f)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, cc.tool[0], full...)
	cmd.Env = cc.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", strings.Join(cc.tool, " "), strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func (cc *composeCluster) mustCompose(args ...string) string {
	cc.t.Helper()
	out, err := cc.compose(args...)
	if err != nil {
		cc.t.Fatal(err)
	}
	return out
}

// health is Docker's health status of node n's container (healthy,
// unhealthy, starting), or its state when it does not run.
func (cc *composeCluster) health(n *node) string {
	return docker(cc.t, "inspect", "--format", "{{if .State.Running}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}", cc.ids[n.id])
}

// waitHealth waits until Docker reports each of nodes' containers in state
// want: the health check (kvserver probe of /readyz) decides.
func (cc *composeCluster) waitHealth(want string, nodes ...*node) {
	cc.t.Helper()
	eventually(cc.t, waitTimeout, func() error {
		for _, n := range nodes {
			if got := cc.health(n); got != want {
				return fmt.Errorf("container of node %d is %s, want %s", n.id, got, want)
			}
		}
		return nil
	})
}

// composeImage is the image built from the test's binaries, once for all
// the tests that need it; TestMain removes it at the end.
var composeImage struct {
	once sync.Once
	tag  string
	out  string
	err  error
}

// buildComposeImage builds composeImage with scripts/image.sh, the first
// time it is called, and returns its tag.
func buildComposeImage(t *testing.T, root string) string {
	t.Helper()
	composeImage.once.Do(func() {
		tag := "actorkv-e2e:" + randomHex()
		out, err := exec.Command(filepath.Join(root, "scripts", "image.sh"), binDir, tag).CombinedOutput()
		composeImage.out, composeImage.err = strings.TrimSpace(string(out)), err
		if err == nil {
			composeImage.tag = tag
		}
	})
	if composeImage.err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", composeImage.err, composeImage.out)
	}
	t.Logf("%s", composeImage.out)
	return composeImage.tag
}

// removeComposeImage removes composeImage if it was built.
func removeComposeImage() error {
	if composeImage.tag == "" {
		return nil
	}
	if out, err := exec.Command("docker", "rmi", "--force", composeImage.tag).CombinedOutput(); err != nil {
		return fmt.Errorf("docker rmi %s: %w\n%s", composeImage.tag, err, out)
	}
	return nil
}

// randomHex is this process's id and 8 random hex digits: a name no other
// run uses.
func randomHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%d%s", os.Getpid(), hex.EncodeToString(b))
}

// upCompose brings the compose cluster up on composeImage —
// deploy/docker-compose.yml and the overrides in deploy/ named by extra,
// with env added to the environment — with its gRPC and HTTP ports
// published on loopback ports picked free; it starts once more on new
// ports if one was taken. Everything it made is removed when the test
// ends: the containers, the network and the volumes (and the image when
// the tests end).
func upCompose(t *testing.T, tool []string, extra []string, env ...string) *composeCluster {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	image := buildComposeImage(t, root)
	project := "actorkve2e" + randomHex() // lower case and digits: any Compose accepts it

	cc := &composeCluster{tool: tool, project: project, files: []string{filepath.Join(root, "deploy", "docker-compose.yml")}}
	for _, f := range extra {
		cc.files = append(cc.files, filepath.Join(root, "deploy", f))
	}
	t.Cleanup(func() {
		if out, err := cc.compose("down", "--volumes", "--remove-orphans", "--timeout", "10"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
		label := "label=com.docker.compose.project=" + project
		for _, kind := range []string{"container", "network", "volume"} {
			args := []string{kind, "ls", "--quiet", "--filter", label}
			if kind == "container" {
				args = []string{"ps", "--all", "--quiet", "--filter", label}
			}
			if left, err := exec.Command("docker", args...).CombinedOutput(); err != nil || len(strings.TrimSpace(string(left))) > 0 {
				t.Errorf("after compose down, the project's %ss: %q %v", kind, left, err)
			}
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := cc.compose("logs", "--no-color", "--tail", "60")
			t.Logf("compose logs:\n%s", logs)
		}
	})
	for attempt := 0; ; attempt++ {
		cc.cluster = &cluster{t: t}
		cc.env = append(append(os.Environ(), env...), "ACTORKV_IMAGE="+image)
		for id := range uint32(3) {
			n := &node{id: id, grpc: freePort(t), http: freePort(t)}
			cc.nodes = append(cc.nodes, n)
			cc.env = append(cc.env, fmt.Sprintf("ACTORKV_GRPC_%d=%s", id, port(n.grpc)), fmt.Sprintf("ACTORKV_HTTP_%d=%s", id, port(n.http)))
		}
		out, err := cc.compose("up", "--detach")
		if err == nil {
			break
		}
		if attempt == 0 && (strings.Contains(out, "port is already allocated") || strings.Contains(out, "address already in use")) {
			t.Logf("a port was taken, starting once more: %v", err)
			cc.mustCompose("down", "--volumes", "--remove-orphans", "--timeout", "10")
			continue
		}
		t.Fatal(err)
	}
	cc.containers()
	for _, n := range cc.nodes {
		n.kv = messages.NewKVClient(dial(t, n.grpc))
	}
	return cc
}

// containers looks up the id of each node's container.
func (cc *composeCluster) containers() {
	cc.t.Helper()
	cc.ids = cc.ids[:0]
	for _, n := range cc.nodes {
		id := cc.mustCompose("ps", "--quiet", fmt.Sprintf("kv%d", n.id))
		if id == "" || strings.ContainsAny(id, " \n") {
			cc.t.Fatalf("compose ps kv%d: %q, want one container id", n.id, id)
		}
		cc.ids = append(cc.ids, id)
	}
}

// needCompose skips the test, saying why, where Docker or Compose is
// absent, and returns the Compose command.
func needCompose(t *testing.T) []string {
	t.Helper()
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("skipping: Docker is not available here (docker info: %v: %s); this test runs deploy/docker-compose.yml on a Docker Engine with Compose", err, strings.TrimSpace(string(out)))
	}
	tool := composeTool()
	if tool == nil {
		t.Skip("skipping: neither docker compose nor docker-compose answers; this test runs deploy/docker-compose.yml")
	}
	return tool
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// TestComposeCluster brings deploy/docker-compose.yml up on an image built
// by scripts/image.sh and, under a write load through the published ports,
// kills the leader's container (docker kill), starts it again, disconnects
// the new leader's container from the cluster's network and reconnects it,
// and at last restarts every replica in a new container (compose down and up,
// the volumes kept): no acknowledged write is lost, the
// replicas converge to one digest, and Docker's health checks (kvserver
// probe of /readyz) follow each node's readiness. kvctl on the host reaches
// the containers. It skips where Docker or Compose is absent.
func TestComposeCluster(t *testing.T) {
	tool := needCompose(t)
	start := time.Now()
	cc := upCompose(t, tool, nil)
	cc.waitHealth("healthy", cc.nodes...)
	t.Logf("%s: image built and three containers healthy in %v", strings.Join(tool, " "), time.Since(start).Round(time.Millisecond))

	// Each container has a volume of its own at /data, and all are on one
	// network of the project's.
	for _, n := range cc.nodes {
		mounts := docker(t, "inspect", "--format", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}};{{end}}", cc.ids[n.id])
		if want := fmt.Sprintf("volume %s_kv%d-data /data;", cc.project, n.id); mounts != want {
			t.Fatalf("node %d mounts %q, want %q", n.id, mounts, want)
		}
		nets := docker(t, "inspect", "--format", "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}", cc.ids[n.id])
		if nets != cc.project+"_kvnet" {
			t.Fatalf("node %d is on networks %q, want %s_kvnet alone", n.id, nets, cc.project)
		}
		cc.network = nets
	}

	// kvctl on the host reaches the containers through the published ports.
	eps := cc.endpoints()
	if r := kvctl(t, "", "--endpoints", eps, "--timeout", "20s", "put", "compose/hello", "world"); r.code != 0 {
		t.Fatalf("kvctl put: %v", r)
	}
	for _, n := range cc.nodes {
		if r := kvctl(t, "", "--endpoints", n.grpc, "--timeout", "20s", "get", "compose/hello"); r.code != 0 || !strings.Contains(r.stdout, "world") {
			t.Fatalf("kvctl get through node %d: %v", n.id, r)
		}
	}

	var writers []*writer
	for i := range 4 {
		writers = append(writers, &writer{id: i})
	}
	l := startLoad(writers, cc.nodes...)
	l.waitAcks(t, 200, waitTimeout)

	// docker kill (SIGKILL) the leader's container: the others elect a
	// leader and writes go on; started again, it rejoins on its volume.
	old, term := cc.leader(0, cc.nodes...)
	var survivors []*node
	for _, n := range cc.nodes {
		if n != old {
			survivors = append(survivors, n)
		}
	}
	at := l.total.Load()
	killed := time.Now()
	docker(t, "kill", cc.ids[old.id])
	next, term := cc.leader(term, survivors...)
	l.waitAcks(t, at+200, waitTimeout)
	t.Logf("killed node %d's container at %d writes; node %d leads at term %d; 200 more acknowledged %v after the kill",
		old.id, at, next.id, term, time.Since(killed).Round(time.Millisecond))
	docker(t, "start", cc.ids[old.id])
	cc.waitHealth("healthy", old)

	// Disconnect the leader's container from the network: the others elect
	// a leader, writes go on, and its health check fails (its /readyz
	// answers 503 once it knows no leader). Reconnected under its service
	// name, it rejoins and is healthy again.
	at = l.total.Load()
	cut := time.Now()
	docker(t, "network", "disconnect", cc.network, cc.ids[next.id])
	var rest []*node
	for _, n := range cc.nodes {
		if n != next {
			rest = append(rest, n)
		}
	}
	third, term := cc.leader(term, rest...)
	l.waitAcks(t, at+200, waitTimeout)
	cc.waitHealth("unhealthy", next)
	t.Logf("disconnected node %d at %d writes; node %d leads at term %d; writes went on and node %d turned unhealthy %v after the cut",
		next.id, at, third.id, term, next.id, time.Since(cut).Round(time.Millisecond))
	docker(t, "network", "connect", "--alias", fmt.Sprintf("kv%d", next.id), cc.network, cc.ids[next.id])
	cc.waitHealth("healthy", next)
	l.waitAcks(t, l.total.Load()+100, waitTimeout)
	acks := l.stop(t)
	index := cc.converged()
	cc.checkAcks(acks)
	t.Logf("reconnected: %d nodes converged at applied index %d, all %d acknowledged writes on each", len(cc.nodes), index, len(acks))

	// Restart every replica in a new container: compose down (SIGTERM;
	// the volumes are kept) and up again. Each rejoins on its volume under
	// the same host name and Raft address, whatever its new IP address.
	restarted := time.Now()
	cc.mustCompose("down", "--timeout", "20")
	cc.mustCompose("up", "--detach")
	cc.containers()
	cc.waitHealth("healthy", cc.nodes...)
	if got := cc.converged(); got < index {
		t.Fatalf("after restarting every container the replicas are at applied index %d, before at %d", got, index)
	}
	cc.checkAcks(acks)
	r := kvctl(t, "", "--endpoints", eps, "--timeout", "20s", "verify", "--require-all", "--wait", "20s")
	if r.code != 0 || !strings.Contains(r.stdout, "replicas 0, 1, 2 at applied index") || !strings.HasSuffix(r.stdout, "OK\n") {
		t.Fatalf("kvctl verify after the restart: %v", r)
	}
	t.Logf("all recreated on their volumes and healthy in %v; every acknowledged write kept; %s", time.Since(restarted).Round(time.Millisecond), strings.TrimSpace(r.stdout))
}

// TestComposeTLS brings the cluster up with deploy/docker-compose.tls.yml
// on certificates made for the containers' names and the host's loopback:
// the containers become healthy only if Raft between them works over
// mutual TLS, kvctl with a client certificate of the CA is served, and
// kvctl in plaintext or without a client certificate is refused.
func TestComposeTLS(t *testing.T) {
	tool := needCompose(t)
	dir := t.TempDir()
	tlsFilesFor(t, dir, []string{"kv0", "kv1", "kv2", "127.0.0.1", "localhost"}, "client")
	// The containers run as uid 65532: let them into the directory and
	// read the node keys (as make compose-certs does).
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := os.Chmod(filepath.Join(dir, fmt.Sprintf("node-%d-key.pem", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	cc := upCompose(t, tool, []string{"docker-compose.tls.yml"}, "ACTORKV_CERTS="+dir)
	cc.waitHealth("healthy", cc.nodes...)
	t.Logf("three containers with TLS healthy in %v", time.Since(start).Round(time.Millisecond))
	eps := cc.endpoints()
	client := []string{"--endpoints", eps, "--timeout", "20s", "--cacert", filepath.Join(dir, "ca.pem"),
		"--cert", filepath.Join(dir, "client-client.pem"), "--key", filepath.Join(dir, "client-client-key.pem")}
	if r := kvctl(t, "", append(client, "put", "compose/tls", "yes")...); r.code != 0 {
		t.Fatalf("kvctl put over TLS: %v", r)
	}
	r := kvctl(t, "", append(client, "verify", "--require-all", "--wait", "20s")...)
	if r.code != 0 || !strings.Contains(r.stdout, "replicas 0, 1, 2 at applied index") || !strings.HasSuffix(r.stdout, "OK\n") {
		t.Fatalf("kvctl verify over TLS: %v", r)
	}
	for name, args := range map[string][]string{
		"plaintext":             {"--endpoints", eps, "--timeout", "1s"},
		"no client certificate": {"--endpoints", eps, "--timeout", "1s", "--cacert", filepath.Join(dir, "ca.pem")},
	} {
		if r := kvctl(t, "", append(args, "put", "compose/tls", "no")...); r.code == 0 || !strings.HasPrefix(r.stderr, "kvctl: UNAVAILABLE: ") {
			t.Errorf("%s: kvctl put answered %v, want UNAVAILABLE (refused)", name, r)
		}
	}
	if r := kvctl(t, "", append(client, "get", "compose/tls")...); r.stdout != "compose/tls\nyes\n" {
		t.Fatalf("compose/tls after the refused clients: %v", r)
	}
	t.Logf("served over TLS, refused without it, %v in all", time.Since(start).Round(time.Millisecond))
}
