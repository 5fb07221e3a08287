package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/actorkv/actorkv/messages"
)

// node is one process of a three-process cluster: replica id of the group,
// with its data in dir and fixed addresses, so it restarts as the same
// member on the same data.
type node struct {
	id         uint32
	dir        string // base_path: the replica lives in dir/replica-<id>
	grpc, http string
	fromTOML   bool      // started with --config <file> rather than flags
	joins      []string  // gRPC endpoints it joins through (added to a running cluster)
	raft       string    // its Raft address, when it joins
	netns      string    // the network namespace it runs in ("": the test's)
	proc       *kvserver // the current process
	kv         messages.KVClient
}

// cluster is three kvserver processes, one replica each, Raft over TCP.
type cluster struct {
	t     *testing.T
	raft  []string // Raft addresses of the initial members, by replica id
	nodes []*node
	extra string // TOML every process also reads (e.g. a [raft] section)
	// tlsDir, when set, holds ca.pem and node-N.pem / node-N-key.pem: the
	// processes serve TLS, require client certificates and speak mutual
	// TLS between them; creds is how the test reaches them.
	tlsDir string
	creds  grpc.DialOption
}

// startCluster starts three kvserver processes, one replica each, and waits
// until each serves and answers /readyz. Replica 2 reads its deployment from
// a TOML file, the others from flags. The ports are picked free just before;
// if a process finds one taken, the whole cluster starts once more on new
// ports and fresh directories.
func startCluster(t *testing.T) *cluster { return startClusterWith(t, "") }

// startClusterWith starts the cluster with extra TOML in every process's
// configuration.
func startClusterWith(t *testing.T, extra string) *cluster {
	t.Helper()
	return startClusterOf(t, &cluster{extra: extra})
}

// startClusterOf starts the cluster proto describes (extra, TLS); with
// TLS every process reads its deployment from flags.
func startClusterOf(t *testing.T, proto *cluster) *cluster {
	t.Helper()
	for attempt := 0; ; attempt++ {
		c := &cluster{t: t, extra: proto.extra, tlsDir: proto.tlsDir, creds: proto.creds}
		for id := range uint32(3) {
			c.raft = append(c.raft, freePort(t))
			c.nodes = append(c.nodes, &node{id: id, dir: filepath.Join(t.TempDir(), fmt.Sprintf("node-%d", id)),
				grpc: freePort(t), http: freePort(t), fromTOML: id == 2 && c.tlsDir == ""})
		}
		for _, n := range c.nodes {
			c.launch(n)
		}
		err := c.waitReady(c.nodes...)
		if err == nil {
			for _, n := range c.nodes {
				n.kv = messages.NewKVClient(c.dial(n.grpc))
			}
			return c
		}
		taken := false
		for _, n := range c.nodes {
			taken = taken || strings.Contains(n.proc.log.String(), "address already in use")
		}
		if attempt == 0 && taken {
			t.Logf("a port was taken, starting the cluster again: %v", err)
			for _, n := range c.nodes {
				n.kill()
			}
			continue
		}
		for _, n := range c.nodes {
			t.Logf("node %d log:\n%s", n.id, n.proc.log.tail(6000))
		}
		t.Fatalf("cluster did not start: %v", err)
	}
}

// launch starts n's process (it does not wait for it).
func (c *cluster) launch(n *node) {
	t := c.t
	t.Helper()
	s := &kvserver{t: t, GRPC: n.grpc, HTTP: n.http, log: &logBuffer{}, netns: n.netns, creds: c.creds, done: make(chan struct{})}
	if n.fromTOML {
		conf := fmt.Sprintf(`[deployment]
mode = "replicated"
in_process = false
replica_endpoints = [%s]
instance_id = %d

[database]
base_path = %q

[server]
listen = %q
metrics = %q
shutdown_timeout = "10s"
admin = true
%s`, quoteAll(c.raft), n.id, n.dir, n.grpc, n.http, c.extra)
		path := filepath.Join(t.TempDir(), fmt.Sprintf("replica-%d.toml", n.id))
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		n.proc = spawn(t, s, "--config", path)
		return
	}
	args := c.flags(n)
	if c.extra != "" {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("extra-%d.toml", n.id))
		if err := os.WriteFile(path, []byte(c.extra), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", path}, args...)
	}
	n.proc = spawn(t, s, args...)
}

// dial connects to a process's gRPC server as the test's client.
func (c *cluster) dial(addr string) *grpc.ClientConn {
	if c.creds == nil {
		return dial(c.t, addr)
	}
	return dialWith(c.t, addr, c.creds)
}

// flags are the command-line flags that start n as the member it is.
func (c *cluster) flags(n *node) []string {
	f := c.deploymentFlags(n)
	if c.tlsDir != "" {
		f = append(f, "--tls-ca", filepath.Join(c.tlsDir, "ca.pem"), "--tls-require-client-cert",
			"--tls-cert", filepath.Join(c.tlsDir, fmt.Sprintf("node-%d.pem", n.id)),
			"--tls-key", filepath.Join(c.tlsDir, fmt.Sprintf("node-%d-key.pem", n.id)))
	}
	return f
}

func (c *cluster) deploymentFlags(n *node) []string {
	if len(n.joins) > 0 {
		return []string{"--admin", "--mode", "replicated", "--in-process=false", "--instance-id", fmt.Sprint(n.id), "--raft-address", n.raft,
			"--join", strings.Join(n.joins, ","), "--base-path", n.dir, "--listen", n.grpc, "--metrics", n.http}
	}
	return []string{"--admin", "--mode", "replicated", "--in-process=false", "--endpoints", strings.Join(c.raft, ","),
		"--instance-id", fmt.Sprint(n.id), "--base-path", n.dir, "--listen", n.grpc, "--metrics", n.http}
}

// waitReady waits until each of nodes serves (gRPC health SERVING) and
// answers /readyz 200.
func (c *cluster) waitReady(nodes ...*node) error {
	for _, n := range nodes {
		if err := n.proc.waitServing(); err != nil {
			return fmt.Errorf("node %d: %w", n.id, err)
		}
		deadline := time.Now().Add(waitTimeout)
		for {
			err := httpGetStatus(n.http, "/readyz", http.StatusOK)
			if err == nil {
				break
			}
			if n.proc.exited() || time.Now().After(deadline) {
				return fmt.Errorf("node %d: /readyz: %w", n.id, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// restart starts n again on its data and addresses, and waits until it is
// ready.
func (c *cluster) restart(n *node) {
	c.t.Helper()
	c.launch(n)
	if err := c.waitReady(n); err != nil {
		c.t.Fatalf("restart: %v\n%s", err, n.proc.log.tail(6000))
	}
}

// kill ends n's process with SIGKILL and waits for it to exit.
func (n *node) kill() {
	_ = n.proc.cmd.Process.Kill()
	<-n.proc.done
}

func (c *cluster) endpoints() string {
	eps := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		eps[i] = n.grpc
	}
	return strings.Join(eps, ",")
}

// localStatus asks n for its status: in a cluster, that of its own replica.
func (n *node) localStatus(digests bool) (*messages.ReplicaStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := n.kv.Status(ctx, &messages.StatusRequest{WithDigests: digests})
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", n.id, err)
	}
	if len(st.GetReplicas()) != 1 || st.GetReplicas()[0].GetReplicaId() != n.id {
		return nil, fmt.Errorf("node %d reports replicas %v, want its own only", n.id, st.GetReplicas())
	}
	r := st.GetReplicas()[0]
	if !r.GetRunning() {
		return nil, fmt.Errorf("node %d: replica not running: %s", n.id, r.GetError())
	}
	return r, nil
}

// leader waits until nodes agree on a leader among them at a term above
// after, which alone reports is_leader, and returns it.
func (c *cluster) leader(after uint64, nodes ...*node) (leader *node, term uint64) {
	c.t.Helper()
	eventually(c.t, waitTimeout, func() error {
		leader = nil
		sts := make([]*messages.ReplicaStatus, len(nodes))
		for i, n := range nodes {
			r, err := n.localStatus(false)
			if err != nil {
				return err
			}
			if !r.GetHasLeader() || r.GetTerm() <= after {
				return fmt.Errorf("node %d knows no leader above term %d: %v", n.id, after, r)
			}
			if i > 0 && (r.GetLeaderId() != sts[0].GetLeaderId() || r.GetTerm() != sts[0].GetTerm()) {
				return fmt.Errorf("nodes disagree: node %d: leader %d at term %d; node %d: leader %d at term %d",
					nodes[0].id, sts[0].GetLeaderId(), sts[0].GetTerm(), n.id, r.GetLeaderId(), r.GetTerm())
			}
			sts[i] = r
		}
		for i, n := range nodes {
			if sts[i].GetIsLeader() != (n.id == sts[0].GetLeaderId()) {
				return fmt.Errorf("node %d: is_leader %t, and the leader is %d", n.id, sts[i].GetIsLeader(), sts[0].GetLeaderId())
			}
			if sts[i].GetIsLeader() {
				leader = n
			}
		}
		if leader == nil {
			return fmt.Errorf("the leader, %d, is not among the nodes asked", sts[0].GetLeaderId())
		}
		term = sts[0].GetTerm()
		return nil
	})
	return leader, term
}

// converged waits until every node runs its replica at one applied index
// with the same digest, and returns that index.
func (c *cluster) converged() uint64 {
	c.t.Helper()
	var index uint64
	eventually(c.t, waitTimeout, func() error {
		var digest []byte
		for i, n := range c.nodes {
			r, err := n.localStatus(true)
			if err != nil {
				return err
			}
			if i > 0 && r.GetAppliedIndex() != index {
				return fmt.Errorf("node %d at applied index %d, node 0 at %d", n.id, r.GetAppliedIndex(), index)
			}
			if i > 0 && !bytes.Equal(r.GetDigest(), digest) {
				c.t.Fatalf("digest mismatch at applied index %d: node 0 %x, node %d %x", index, digest, n.id, r.GetDigest())
			}
			index, digest = r.GetAppliedIndex(), r.GetDigest()
		}
		return nil
	})
	return index
}

// checkAcks checks with a stale read on every node that each acknowledged
// write is there with its value; call it once the nodes converged.
func (c *cluster) checkAcks(acks []ack) {
	c.t.Helper()
	for _, n := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		got := map[string]string{}
		begin := []byte("load/")
		for {
			resp, err := n.kv.GetRange(ctx, &messages.GetRangeRequest{Begin: begin, End: []byte("load0"), Limit: 10_000, Consistency: messages.Consistency_STALE})
			if err != nil {
				cancel()
				c.t.Fatalf("node %d: stale range read: %v", n.id, err)
			}
			for _, kv := range resp.GetKvs() {
				got[string(kv.GetKey())] = string(kv.GetValue())
			}
			if len(resp.GetKvs()) < 10_000 {
				break
			}
			begin = append(resp.GetKvs()[len(resp.GetKvs())-1].GetKey(), 0)
		}
		cancel()
		lost := 0
		for _, a := range acks {
			if v, ok := got[a.key]; !ok || v != a.value {
				if lost++; lost <= 10 {
					c.t.Errorf("node %d: acknowledged write %s=%s (version %d) missing: found=%t value %q", n.id, a.key, a.value, a.version, ok, v)
				}
			}
		}
		if lost > 0 {
			c.t.Fatalf("node %d: %d of %d acknowledged writes missing", n.id, lost, len(acks))
		}
	}
}

// writer puts keys one at a time with request ids of its own client
// session (opened on its first put), over the endpoints it is given: an attempt answered UNAVAILABLE
// or TIMEOUT (or not answered within a second) is sent again, with the same
// request id, to the next endpoint.
type writer struct {
	id     int
	client uint64
	seq    uint64
	acks   []ack
	n      int // keys written so far
}

func (w *writer) put(ctx context.Context, kvs []messages.KVClient) error {
	for attempt := 0; w.client == 0; attempt++ {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := kvs[(w.id+attempt)%len(kvs)].OpenSession(actx, &messages.OpenSessionRequest{})
		cancel()
		switch {
		case err == nil:
			w.client = resp.GetClientId()
		case ctx.Err() != nil:
			return ctx.Err()
		case grpcstatus.Code(err) != codes.Unavailable && grpcstatus.Code(err) != codes.DeadlineExceeded:
			return fmt.Errorf("writer %d: open session: %w", w.id, err)
		}
	}
	w.seq++
	key := fmt.Sprintf("load/%d/%06d", w.id, w.n)
	value := fmt.Sprintf("v-%d-%d-%d", w.id, w.n, time.Now().UnixNano())
	req := &messages.PutRequest{Key: []byte(key), Value: []byte(value),
		RequestId: &messages.RequestId{ClientId: w.client, Seq: w.seq, RespondedTo: w.seq - 1}}
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := kvs[(w.id+attempt)%len(kvs)].Put(actx, req)
		cancel()
		if err == nil {
			w.n++
			w.acks = append(w.acks, ack{key, value, resp.GetVersion()})
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err() // outcome unknown; not acknowledged
		}
		switch grpcstatus.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded:
		default:
			return fmt.Errorf("writer %d: put %s: %w", w.id, key, err)
		}
		select { // back off a little before the next attempt
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// load runs writers against nodes until stopped, counting acknowledged
// writes.
type load struct {
	writers []*writer
	total   atomic.Int64
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errs    chan error
}

func startLoad(writers []*writer, nodes ...*node) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{writers: writers, cancel: cancel, errs: make(chan error, len(writers))}
	kvs := make([]messages.KVClient, len(nodes))
	for i, n := range nodes {
		kvs[i] = n.kv
	}
	for _, w := range writers {
		l.wg.Go(func() {
			for {
				err := w.put(ctx, kvs)
				if errors.Is(err, context.Canceled) {
					return
				}
				if err != nil {
					l.errs <- err
					return
				}
				l.total.Add(1)
			}
		})
	}
	return l
}

// waitAcks waits until n writes in all were acknowledged.
func (l *load) waitAcks(t *testing.T, n int64, d time.Duration) {
	t.Helper()
	eventually(t, d, func() error {
		select {
		case err := <-l.errs:
			t.Fatal(err)
		default:
		}
		if got := l.total.Load(); got < n {
			return fmt.Errorf("%d writes acknowledged, want %d", got, n)
		}
		return nil
	})
}

// stop stops the writers and returns every write they have had
// acknowledged so far, in this load and the earlier ones they ran in.
func (l *load) stop(t *testing.T) []ack {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	select {
	case err := <-l.errs:
		t.Fatal(err)
	default:
	}
	var acks []ack
	for _, w := range l.writers {
		acks = append(acks, w.acks...)
	}
	return acks
}

// TestCluster runs three kvserver processes, one replica each, Raft over
// TCP on loopback: writes through any process (a follower's go to the
// leader through dragonboat) and linearizable reads from every process;
// kill -9 of the leader during a write load (retries with the same request
// id on the survivors; a new leader among them; no acknowledged write lost);
// the killed process restarted on its data catches up; SIGTERM of a
// follower, writes go on, and it catches up after restarting. kvctl status
// and verify over the three endpoints show and compare every replica.
func TestCluster(t *testing.T) {
	start := time.Now()
	c := startCluster(t)
	t.Logf("cluster ready in %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	// A write through each process is read, linearizably, through each.
	for _, w := range c.nodes {
		key, value := fmt.Sprintf("via/%d", w.id), fmt.Sprintf("written through node %d", w.id)
		put, err := w.kv.Put(ctx, &messages.PutRequest{Key: []byte(key), Value: []byte(value)})
		if err != nil {
			t.Fatalf("put through node %d: %v", w.id, err)
		}
		for _, r := range c.nodes {
			got, err := r.kv.Get(ctx, &messages.GetRequest{Key: []byte(key)})
			if err != nil || !got.GetFound() || string(got.GetValue()) != value {
				t.Fatalf("get %s (version %d) through node %d: %v %v", key, put.GetVersion(), r.id, got, err)
			}
		}
		rv, err := w.kv.GetReadVersion(ctx, &messages.GetReadVersionRequest{})
		if err != nil || rv.GetVersion() < put.GetVersion() {
			t.Fatalf("read version through node %d: %v %v, want at least %d", w.id, rv, err, put.GetVersion())
		}
	}

	// kvctl sees every replica of the cluster.
	st := kvctl(t, "", "--endpoints", c.endpoints(), "--timeout", "20s", "-w", "json", "status")
	var sj struct {
		HasLeader bool `json:"has_leader"`
		Replicas  []struct {
			ID       uint32 `json:"id"`
			Running  bool   `json:"running"`
			Leader   bool   `json:"leader"`
			Endpoint string `json:"endpoint"`
		} `json:"replicas"`
		Unreachable []struct{} `json:"unreachable"`
	}
	mustJSON(t, st.stdout, &sj)
	leaders := 0
	for i, r := range sj.Replicas {
		if r.ID != uint32(i) || !r.Running || r.Endpoint != c.nodes[i].grpc {
			t.Errorf("kvctl status: replica %d: %+v", i, r)
		}
		if r.Leader {
			leaders++
		}
	}
	if st.code != 0 || !sj.HasLeader || len(sj.Replicas) != 3 || leaders != 1 || len(sj.Unreachable) != 0 {
		t.Fatalf("kvctl status over the cluster: %v", st)
	}

	// kill -9 the leader while clients write through the other two.
	old, term := c.leader(0, c.nodes...)
	var survivors []*node
	for _, n := range c.nodes {
		if n != old {
			survivors = append(survivors, n)
		}
	}
	t.Logf("leader: node %d at term %d", old.id, term)
	var writers []*writer
	for i := range 4 {
		writers = append(writers, &writer{id: i}) // each opens its session on its first put
	}
	l := startLoad(writers, survivors...)
	l.waitAcks(t, 200, waitTimeout)
	atKill := l.total.Load()
	killed := time.Now()
	old.kill()
	next, term2 := c.leader(term, survivors...)
	t.Logf("killed node %d after %d acknowledged writes; node %d leads at term %d after %v",
		old.id, atKill, next.id, term2, time.Since(killed).Round(time.Millisecond))
	l.waitAcks(t, atKill+200, waitTimeout)
	t.Logf("writes went on: %d acknowledged %v after the kill", l.total.Load()-atKill, time.Since(killed).Round(time.Millisecond))
	acks := l.stop(t)

	// The killed process restarts on its data and catches up.
	c.restart(old)
	index := c.converged()
	c.checkAcks(acks)
	t.Logf("node %d restarted and caught up: %d nodes at applied index %d, %d acknowledged writes on each", old.id, len(c.nodes), index, len(acks))
	r := kvctl(t, "", "--endpoints", c.endpoints(), "--timeout", "20s", "verify", "--require-all", "--wait", "20s")
	if r.code != 0 || !strings.Contains(r.stdout, "replicas 0, 1, 2 at applied index") || !strings.HasSuffix(r.stdout, "OK\n") {
		t.Fatalf("kvctl verify over the cluster: %v", r)
	}

	// SIGTERM a follower: it stops cleanly, writes go on without it, and it
	// catches up after restarting.
	lead, term3 := c.leader(0, c.nodes...)
	var follower *node
	var rest []*node
	for _, n := range c.nodes {
		if n != lead && follower == nil {
			follower = n
		} else {
			rest = append(rest, n)
		}
	}
	if code := follower.proc.terminate(30 * time.Second); code != 0 {
		t.Fatalf("node %d exited %d after SIGTERM\n%s", follower.id, code, follower.proc.log.tail(6000))
	}
	l = startLoad(writers, rest...)
	l.waitAcks(t, 100, waitTimeout)
	acks = l.stop(t)
	if now, t4 := c.leader(0, rest...); now != lead || t4 != term3 {
		t.Logf("leadership moved from node %d (term %d) to node %d (term %d) when a follower stopped", lead.id, term3, now.id, t4)
	}
	st = kvctl(t, "", "--endpoints", c.endpoints(), "--timeout", "20s", "status")
	if st.code != 0 || strings.Count(st.stdout, "\n") != 5 || !strings.Contains(st.stdout, "endpoint "+follower.grpc+": unreachable (UNAVAILABLE: ") {
		t.Fatalf("kvctl status with node %d down: %v", follower.id, st)
	}
	r = kvctl(t, "", "--endpoints", c.endpoints(), "--timeout", "20s", "verify", "--require-all", "--wait", "1s")
	checkFailure(t, r, "UNAVAILABLE", []string{"verify", "--require-all"})
	if !strings.Contains(r.stderr, follower.grpc) {
		t.Fatalf("kvctl verify --require-all with node %d down: %v", follower.id, r)
	}
	c.restart(follower)
	index = c.converged()
	c.checkAcks(acks)
	t.Logf("node %d stopped by SIGTERM, restarted and caught up: applied index %d, %d acknowledged writes on each",
		follower.id, index, len(acks))

	// kvctl fault over the three endpoints reaches the replica it names in
	// that replica's own process: its stale reads fail, the others' do not,
	// until --off.
	staleGets := func() []messages.StatusCode {
		codes := make([]messages.StatusCode, len(c.nodes))
		for i, n := range c.nodes {
			_, err := n.kv.Get(ctx, &messages.GetRequest{Key: []byte("via/0"), Consistency: messages.Consistency_STALE})
			codes[i] = messages.CodeOf(messages.FromGRPC(err))
		}
		return codes
	}
	named := c.nodes[2]
	f := kvctl(t, "", "--endpoints", c.endpoints(), "--timeout", "20s", "fault", "--replicas", "2", "--error-rate", "1")
	if f.code != 0 || f.stdout != "OK\n" {
		t.Fatalf("kvctl fault --replicas 2 over the cluster: %v", f)
	}
	if got, want := staleGets(), []messages.StatusCode{messages.StatusCode_OK, messages.StatusCode_OK, messages.StatusCode_INTERNAL}; !slices.Equal(got, want) {
		t.Fatalf("stale reads through nodes %d, %d, %d with replica 2 failing every read: %v, want %v", c.nodes[0].id, c.nodes[1].id, named.id, got, want)
	}
	if f := kvctl(t, "", "--endpoints", c.endpoints(), "--timeout", "20s", "fault", "--off"); f.code != 0 {
		t.Fatalf("kvctl fault --off over the cluster: %v", f)
	}
	if got := staleGets(); slices.ContainsFunc(got, func(c messages.StatusCode) bool { return c != messages.StatusCode_OK }) {
		t.Fatalf("stale reads after kvctl fault --off: %v", got)
	}
	t.Logf("%v in all", time.Since(start).Round(time.Millisecond))
}
