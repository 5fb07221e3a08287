package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/actorkv/actorkv/deploy/certs"
	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
)

// tlsFiles makes, in dir, a CA (ca.pem), node certificates node-0..2 for
// 127.0.0.1 and client certificates client-NAME for each of clients.
func tlsFiles(t *testing.T, dir string, clients ...string) {
	t.Helper()
	tlsFilesFor(t, dir, []string{"127.0.0.1", "localhost"}, clients...)
}

// tlsFilesFor is tlsFiles with node certificates valid for hosts.
func tlsFilesFor(t *testing.T, dir string, hosts []string, clients ...string) {
	t.Helper()
	ca, err := certs.NewCA("e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.WriteCA(dir); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		p, err := ca.Node(fmt.Sprintf("node-%d", i), hosts)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.Write(dir, fmt.Sprintf("node-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range clients {
		p, err := ca.Client(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.Write(dir, "client-"+c); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTLSCluster runs the three-process cluster with TLS: gRPC with
// required client certificates, mutual TLS between the Raft transports,
// and admin operations for CN=admin only. kvctl with a certificate of the
// cluster's CA is served; without TLS, without a client certificate, or
// with a certificate of another CA it is refused. A session belongs to
// the identity that opened it: another identity's request ids are refused,
// so no one can answer or poison someone else's writes.
func TestTLSCluster(t *testing.T) {
	dir, otherDir := t.TempDir(), t.TempDir()
	tlsFiles(t, dir, "admin", "alice", "mallory")
	tlsFiles(t, otherDir, "admin") // the same name, from another CA
	file := func(d, name string) string { return filepath.Join(d, name) }
	adminTLS, err := kvclient.TLSConfig(file(dir, "ca.pem"), file(dir, "client-admin.pem"), file(dir, "client-admin-key.pem"), false)
	if err != nil {
		t.Fatal(err)
	}
	c := startClusterOf(t, &cluster{extra: "[server]\nadmins = [\"CN=admin\"]\n", tlsDir: dir, creds: kvclient.Credentials(adminTLS)})
	eps := c.endpoints()
	as := func(d, who string) []string {
		return []string{"--endpoints", eps, "--timeout", "10s", "--cacert", file(d, "ca.pem"),
			"--cert", file(d, "client-"+who+".pem"), "--key", file(d, "client-"+who+"-key.pem")}
	}
	run := func(args ...string) result { return kvctl(t, "", args...) }

	// Served with a certificate of the cluster's CA, through every process.
	if r := run(append(as(dir, "alice"), "put", "tls/k", "v1")...); r.code != 0 || !strings.HasPrefix(r.stdout, "OK version ") {
		t.Fatalf("kvctl put as alice: %v", r)
	}
	for _, n := range c.nodes {
		args := []string{"--endpoints", n.grpc, "--timeout", "10s", "--cacert", file(dir, "ca.pem"),
			"--cert", file(dir, "client-alice.pem"), "--key", file(dir, "client-alice-key.pem"), "get", "tls/k"}
		if r := run(args...); r.code != 0 || r.stdout != "tls/k\nv1\n" {
			t.Fatalf("kvctl get through node %d: %v", n.id, r)
		}
	}

	// Refused: plaintext, TLS without a client certificate, another CA's
	// client certificate (with a name the cluster trusts), and a server
	// certificate checked against another CA.
	for name, args := range map[string][]string{
		"plaintext":                    {"--endpoints", eps, "--timeout", "1s"},
		"no client certificate":        {"--endpoints", eps, "--timeout", "1s", "--cacert", file(dir, "ca.pem")},
		"another CA's client cert":     {"--endpoints", eps, "--timeout", "1s", "--cacert", file(dir, "ca.pem"), "--cert", file(otherDir, "client-admin.pem"), "--key", file(otherDir, "client-admin-key.pem")},
		"server checked by another CA": {"--endpoints", eps, "--timeout", "1s", "--cacert", file(otherDir, "ca.pem"), "--cert", file(dir, "client-admin.pem"), "--key", file(dir, "client-admin-key.pem")},
	} {
		r := run(append(args, "put", "tls/k", "evil")...)
		if r.code == 0 || !strings.HasPrefix(r.stderr, "kvctl: UNAVAILABLE: ") {
			t.Errorf("%s: kvctl put answered %v, want UNAVAILABLE (refused)", name, r)
		}
	}
	if r := run(append(as(dir, "alice"), "get", "tls/k")...); r.stdout != "tls/k\nv1\n" {
		t.Fatalf("tls/k after the refused clients: %v", r)
	}

	// Admin operations: CN=admin only.
	r := run(append(as(dir, "alice"), "fault", "--fail-after", "1")...)
	checkFailure(t, r, "PERMISSION_DENIED", []string{"fault", "as alice"})
	if !strings.Contains(r.stderr, `"CN=alice" is not in server.admins`) {
		t.Fatalf("kvctl fault as alice: %v", r)
	}
	if r := run(append(as(dir, "admin"), "verify", "--require-all", "--wait", "30s")...); r.code != 0 || !strings.HasSuffix(r.stdout, "OK\n") {
		t.Fatalf("kvctl verify as admin: %v", r)
	}

	// Sessions belong to their identity.
	client := func(who string) messages.KVClient {
		tc, err := kvclient.TLSConfig(file(dir, "ca.pem"), file(dir, "client-"+who+".pem"), file(dir, "client-"+who+"-key.pem"), false)
		if err != nil {
			t.Fatal(err)
		}
		return messages.NewKVClient(dialWith(t, c.nodes[0].grpc, kvclient.Credentials(tc)))
	}
	alice, mallory := client("alice"), client("mallory")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := alice.OpenSession(ctx, &messages.OpenSessionRequest{Owner: "CN=mallory"}) // the server says whose it is
	if err != nil {
		t.Fatal(err)
	}
	id := sess.GetClientId()
	put := func(kv messages.KVClient, value string, seq, responded uint64) (*messages.PutResponse, error) {
		return kv.Put(ctx, &messages.PutRequest{Key: []byte("tls/acct"), Value: []byte(value),
			RequestId: &messages.RequestId{ClientId: id, Seq: seq, RespondedTo: responded, Owner: "CN=alice"}})
	}
	if _, err := put(mallory, "from-mallory", 1, 0); grpcstatus.Code(err) != codes.PermissionDenied {
		t.Fatalf("mallory's write under alice's session, seq 1: %v, want PermissionDenied", err)
	}
	first, err := put(alice, "from-alice", 1, 0)
	if err != nil {
		t.Fatalf("alice's seq 1 after mallory took it first: %v", err)
	}
	if _, err := put(mallory, "from-mallory", 1<<40, 1<<40-1); grpcstatus.Code(err) != codes.PermissionDenied {
		t.Fatalf("mallory's write with a huge responded_to: %v, want PermissionDenied", err)
	}
	again, err := put(alice, "from-alice", 1, 0)
	if err != nil || again.GetVersion() != first.GetVersion() {
		t.Fatalf("alice's retry of seq 1: %v, %v; want version %d", again, err, first.GetVersion())
	}
	second, err := put(alice, "from-alice-2", 2, 1)
	if err != nil || second.GetVersion() <= first.GetVersion() {
		t.Fatalf("alice's seq 2: %v, %v", second, err)
	}
	got, err := alice.Get(ctx, &messages.GetRequest{Key: []byte("tls/acct")})
	if err != nil || string(got.GetValue()) != "from-alice-2" {
		t.Fatalf("tls/acct: %v, %v; want alice's last write", got, err)
	}

	// Raft between the processes is mutual TLS: plaintext on a Raft port
	// is refused, and the refusal logged.
	conn, err := net.DialTimeout("tcp", c.raft[1], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte("akvraftm\x00\x00\x00\x10garbage........"))
	conn.Close()
	eventually(t, waitTimeout, func() error {
		if !strings.Contains(c.nodes[1].proc.log.String(), "raftnet: TLS handshake failed") {
			return fmt.Errorf("node 1 did not log the refused plaintext Raft connection")
		}
		return nil
	})
	c.converged()
}
