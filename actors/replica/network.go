package replica

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/lni/dragonboat/v3/config"
	chantransport "github.com/lni/dragonboat/v3/plugin/chan"
	"github.com/lni/dragonboat/v3/raftio"
	pb "github.com/lni/dragonboat/v3/raftpb"
)

// Network is the in-process transport between the NodeHosts of one group:
// dragonboat's channel transport, wrapped so that address validation does
// not panic (the plugin's Validate does) and so that tests can cut links and
// slow them down. Addresses only need to be unique within the process, so
// groups in parallel tests never clash on ports.
//
// A cut link drops messages silently, as a partitioned network would; Raft
// copes by retrying.
type Network struct {
	mu    sync.RWMutex
	cut   map[link]bool            // directed links that drop everything
	delay map[string]time.Duration // added latency of messages sent to an address
}

type link struct{ from, to string }

// NewNetwork returns a network with every link up.
func NewNetwork() *Network {
	return &Network{cut: map[link]bool{}, delay: map[string]time.Duration{}}
}

// Cut drops every message between a and b, both ways.
func (n *Network) Cut(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[link{a, b}] = true
	n.cut[link{b, a}] = true
}

// Isolate cuts addr off from every address in others.
func (n *Network) Isolate(addr string, others []string) {
	for _, o := range others {
		if o != addr {
			n.Cut(addr, o)
		}
	}
}

// Heal restores every link and removes every delay.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[link]bool{}
	n.delay = map[string]time.Duration{}
}

// Delay adds d to every message sent to addr (0 removes it).
func (n *Network) Delay(addr string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d <= 0 {
		delete(n.delay, addr)
		return
	}
	n.delay[addr] = d
}

// deliver reports whether a message from one address to another goes
// through, and after what delay.
func (n *Network) deliver(from, to string) (bool, time.Duration) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return !n.cut[link{from, to}], n.delay[to]
}

// Factory returns the dragonboat transport factory of this network, for
// NodeHostConfig.Expert.TransportFactory.
func (n *Network) Factory() config.TransportFactory { return &netFactory{n: n} }

type netFactory struct{ n *Network }

func (f *netFactory) Create(nhc config.NodeHostConfig, h raftio.MessageHandler, ch raftio.ChunkHandler) raftio.ITransport {
	return &netTransport{
		ITransport: chantransport.NewChanTransport(nhc, h, ch),
		n:          f.n,
		self:       nhc.RaftAddress,
	}
}

// Validate accepts any non-empty address: they are names, not host:port.
func (f *netFactory) Validate(addr string) bool { return addr != "" }

type netTransport struct {
	raftio.ITransport
	n    *Network
	self string
}

func (t *netTransport) GetConnection(ctx context.Context, target string) (raftio.IConnection, error) {
	c, err := t.ITransport.GetConnection(ctx, target)
	if err != nil {
		return nil, err
	}
	return &netConn{IConnection: c, t: t, target: target}, nil
}

func (t *netTransport) GetSnapshotConnection(ctx context.Context, target string) (raftio.ISnapshotConnection, error) {
	c, err := t.ITransport.GetSnapshotConnection(ctx, target)
	if err != nil {
		return nil, err
	}
	return &netSnapConn{ISnapshotConnection: c, t: t, target: target}, nil
}

// errLinkCut fails snapshot chunks over a cut link, so the sender aborts
// the stream and tries again later.
var errLinkCut = errors.New("replica: network link is cut")

type netConn struct {
	raftio.IConnection
	t      *netTransport
	target string
}

func (c *netConn) SendMessageBatch(b pb.MessageBatch) error {
	ok, d := c.t.n.deliver(c.t.self, c.target)
	if !ok {
		return nil // dropped
	}
	if d > 0 {
		time.Sleep(d)
	}
	return c.IConnection.SendMessageBatch(b)
}

type netSnapConn struct {
	raftio.ISnapshotConnection
	t      *netTransport
	target string
}

func (c *netSnapConn) SendChunk(ch pb.Chunk) error {
	ok, d := c.t.n.deliver(c.t.self, c.target)
	if !ok {
		return errLinkCut
	}
	if d > 0 {
		time.Sleep(d)
	}
	return c.ISnapshotConnection.SendChunk(ch)
}
