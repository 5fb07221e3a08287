package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/actorkv/actorkv/messages"
)

// netLab gives each process of a cluster a host of its own: a network
// namespace with two interfaces, one on a Raft network and one on a client
// network. Both networks are bridges in a hub namespace, so nothing of this
// host's own firewall (Docker's FORWARD policy, say) is in their way; the
// test reaches the client network through a veth of its own. Cutting a
// host's Raft link (its port on the Raft bridge, down) partitions its
// replica from the others while the test can still ask it what it
// answers; tc's token bucket thins a link.
type netLab struct {
	t     *testing.T
	tag   string   // names this lab's namespaces and links
	octet int      // the Raft network is 10.201.octet.0/24, the client network 10.202.octet.0/24
	hub   string   // namespace of the two bridges
	hosts []string // namespace of each host
}

// newNetLab makes n hosts, or skips the test where network namespaces
// cannot be made (not root, no ip, a sandbox that forbids them).
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("partition tests give each process a network namespace of its own, which needs root: skipped")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("partition tests need iproute2's ip (apt-get install iproute2): skipped")
	}
	tag := fmt.Sprintf("%04x", rand.IntN(0x10000))
	lab := &netLab{t: t, tag: tag, octet: 20 + rand.IntN(200), hub: "akv" + tag + "h"}
	if out, err := exec.Command("ip", "netns", "add", lab.hub).CombinedOutput(); err != nil {
		t.Skipf("network namespaces are not permitted here (ip netns add: %v: %s): skipped", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(lab.destroy)
	h := lab.hub
	lab.run("-n", h, "link", "set", "lo", "up")
	for _, br := range []string{"raftbr", "clientbr"} {
		lab.run("-n", h, "link", "add", br, "type", "bridge")
		lab.run("-n", h, "link", "set", br, "up")
	}
	// The test's own door to the client network.
	door := "akv" + tag + "c"
	lab.run("link", "add", door, "type", "veth", "peer", "name", "test", "netns", h)
	lab.run("addr", "add", fmt.Sprintf("10.202.%d.1/24", lab.octet), "dev", door)
	lab.run("link", "set", door, "up")
	lab.run("-n", h, "link", "set", "test", "master", "clientbr", "up")
	for i := range n {
		ns := fmt.Sprintf("akv%sn%d", tag, i)
		lab.run("netns", "add", ns)
		lab.hosts = append(lab.hosts, ns)
		lab.run("-n", ns, "link", "set", "lo", "up")
		for _, l := range []struct{ port, dev, bridge, net string }{
			{fmt.Sprintf("raft%d", i), "raft", "raftbr", "10.201"},
			{fmt.Sprintf("client%d", i), "client", "clientbr", "10.202"},
		} {
			lab.run("-n", h, "link", "add", l.port, "type", "veth", "peer", "name", l.dev, "netns", ns)
			lab.run("-n", h, "link", "set", l.port, "master", l.bridge, "up")
			lab.run("-n", ns, "addr", "add", fmt.Sprintf("%s.%d.%d/24", l.net, lab.octet, 10+i), "dev", l.dev)
			lab.run("-n", ns, "link", "set", l.dev, "up")
		}
	}
	return lab
}

// run runs ip with args, failing the test if it fails.
func (l *netLab) run(args ...string) {
	l.t.Helper()
	l.cmd("ip", args...)
}

func (l *netLab) cmd(name string, args ...string) {
	l.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// destroy deletes the namespaces, and with them every link of the lab.
func (l *netLab) destroy() {
	for _, ns := range append(l.hosts, l.hub) {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	}
}

func (l *netLab) raftAddr(i int) string { return fmt.Sprintf("10.201.%d.%d:6001", l.octet, 10+i) }
func (l *netLab) grpcAddr(i int) string { return fmt.Sprintf("10.202.%d.%d:7070", l.octet, 10+i) }
func (l *netLab) httpAddr(i int) string { return fmt.Sprintf("10.202.%d.%d:9100", l.octet, 10+i) }

// cut partitions host i from the Raft network; heal joins it again.
func (l *netLab) cut(i uint32)  { l.run("-n", l.hub, "link", "set", fmt.Sprintf("raft%d", i), "down") }
func (l *netLab) heal(i uint32) { l.run("-n", l.hub, "link", "set", fmt.Sprintf("raft%d", i), "up") }

// thin limits host i's Raft link to rate in both directions (tc tbf: the
// kernel here has no netem); unthin lifts the limit.
func (l *netLab) thin(i uint32, rate string) {
	for _, side := range [][]string{{l.hub, fmt.Sprintf("raft%d", i)}, {l.hosts[i], "raft"}} {
		l.cmd("tc", "-n", side[0], "qdisc", "add", "dev", side[1], "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "200ms")
	}
}

func (l *netLab) unthin(i uint32) {
	for _, side := range [][]string{{l.hub, fmt.Sprintf("raft%d", i)}, {l.hosts[i], "raft"}} {
		l.cmd("tc", "-n", side[0], "qdisc", "del", "dev", side[1], "root")
	}
}

// cluster starts three kvserver processes, one on each host, with extra
// TOML in each one's configuration, and waits until they are ready.
func (l *netLab) cluster(extra string) *cluster {
	t := l.t
	t.Helper()
	c := &cluster{t: t, extra: extra}
	for i := range 3 {
		c.raft = append(c.raft, l.raftAddr(i))
		c.nodes = append(c.nodes, &node{id: uint32(i), dir: filepath.Join(t.TempDir(), fmt.Sprintf("node-%d", i)),
			grpc: l.grpcAddr(i), http: l.httpAddr(i), netns: l.hosts[i], fromTOML: i == 2})
	}
	for _, n := range c.nodes {
		c.launch(n)
	}
	if err := c.waitReady(c.nodes...); err != nil {
		for _, n := range c.nodes {
			t.Logf("node %d log:\n%s", n.id, n.proc.log.tail(6000))
		}
		t.Fatalf("cluster did not start: %v", err)
	}
	for _, n := range c.nodes {
		n.kv = messages.NewKVClient(dial(t, n.grpc))
	}
	return c
}
