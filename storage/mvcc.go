package storage

import (
	"bytes"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/linxGnu/grocksdb"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// Snapshot reads at a version V are served from a checkpoint (a RocksDB
// snapshot taken after some applied batch, at version C <= V) overlaid with
// the mutations of the versions in (C, V], kept in memory. Checkpoints are
// taken at most every checkpointInterval or checkpointOps writes, so memory
// and RocksDB snapshot counts stay bounded at any write rate.
//
// Version V is readable while no write after it is older than the retention
// window (the state at V was still current within the window). This is a
// local decision of the replica serving the read, on its own clock; the
// atomic commit's window is decided in the state machine from log time.
const (
	checkpointInterval = 2 * time.Millisecond
	checkpointOps      = 64
)

type versionOps struct {
	version uint64
	at      time.Time // when this replica applied it
	muts    packedMutations
}

// versionBytes is what one kept version costs: its packed mutations and
// its slot in the history.
func versionBytes(o *versionOps) int { return len(o.muts) + int(unsafe.Sizeof(*o)) }

type checkpoint struct {
	version uint64
	snap    *grocksdb.Snapshot
	refs    int  // readers using it; guarded by mvcc.mu
	retired bool // pruned: release when refs reaches 0
}

type mvcc struct {
	e           *Engine
	mu          sync.Mutex
	ops         deque[versionOps] // write versions above the oldest checkpoint, ascending
	checkpoints []*checkpoint     // ascending by version; never empty while open
	floor       uint64            // versions below it are too old
	sinceCkpt   int               // writes since the newest checkpoint
	lastCkpt    time.Time
	bytes       int // the versionBytes of ops
}

func newMVCC(e *Engine, applied uint64) *mvcc {
	m := &mvcc{e: e}
	m.reset(applied)
	return m
}

// reset drops every version and starts over with a checkpoint at applied
// (after open or a snapshot recovery).
func (m *mvcc) reset(applied uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.checkpoints {
		m.retire(c)
	}
	m.ops.Reset()
	m.bytes = 0
	m.floor = applied
	m.checkpoints = []*checkpoint{{version: applied, snap: m.e.db.NewSnapshot()}}
	m.sinceCkpt = 0
	m.lastCkpt = time.Now()
}

// pruneIdle drops the kept versions of a burst of writes once they have
// left the retention window: writes prune them as they come, but after the
// last write of a burst its versions (up to VersionMemoryBytes per replica)
// would stay until the next one. When no write came for a whole window it
// checkpoints the current state as the last kept version's, so that no
// kept version is needed any more. It also releases the backups left idle.
// It runs from Open until Close.
func (e *Engine) pruneIdle() {
	defer close(e.pruned)
	window := e.cfg.RetentionWindow
	t := time.NewTicker(max(window/2, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-e.stopPrune:
			return
		case now := <-t.C:
			e.releaseIdleBackups(now)
			m := e.mvcc
			m.mu.Lock()
			idle := m.ops.Len() > 0 && now.Sub(m.ops.At(m.ops.Len()-1).at) > window
			m.mu.Unlock()
			if !idle { // the write path's lock only when there is work
				continue
			}
			e.applyMu.Lock() // no batch half-applied: the state is the applied index's
			m.mu.Lock()
			if n := m.ops.Len(); n > 0 && now.Sub(m.ops.At(n-1).at) > window && !e.broken.Load() {
				// The state now is the state at the last kept version: the
				// entries applied since changed no data (each data write
				// is a kept version). So is the state of a checkpoint taken
				// after it (at the end of a batch of no data writes): it
				// stands for the last version too.
				last := m.ops.At(n - 1).version
				for i := len(m.checkpoints) - 1; i >= 0 && m.checkpoints[i].version > last; i-- {
					m.checkpoints[i].version = last
				}
				if m.checkpoints[len(m.checkpoints)-1].version < last {
					m.checkpoints = append(m.checkpoints, &checkpoint{version: last, snap: e.db.NewSnapshot()})
					m.sinceCkpt, m.lastCkpt = 0, now
				}
				m.prune(now)
			}
			m.mu.Unlock()
			e.applyMu.Unlock()
		}
	}
}

// appendBatch records the writes of an applied batch ending at last.
func (m *mvcc) appendBatch(ops []versionOps, last uint64, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range ops {
		ops[i].at = now
		m.bytes += versionBytes(&ops[i])
		m.ops.PushBack(ops[i])
	}
	m.sinceCkpt += len(ops)
	if m.sinceCkpt > 0 && (m.sinceCkpt >= checkpointOps || now.Sub(m.lastCkpt) >= checkpointInterval) {
		m.checkpoints = append(m.checkpoints, &checkpoint{version: last, snap: m.e.db.NewSnapshot()})
		m.sinceCkpt = 0
		m.lastCkpt = now
	}
	m.prune(now)
}

// prune moves the floor past writes older than the window — or, when the
// kept mutations exceed the memory budget, past as many of the oldest as it
// takes to fit (the window shrinks under a burst of writes rather than the
// memory growing) — and drops the checkpoints and mutations no readable
// version needs.
func (m *mvcc) prune(now time.Time) {
	cutoff := now.Add(-m.e.cfg.RetentionWindow)
	over := m.bytes - m.e.cfg.VersionMemoryBytes
	for i := range m.ops.Len() {
		op := m.ops.At(i)
		if !op.at.Before(cutoff) && over <= 0 {
			break
		}
		over -= versionBytes(op)
		m.floor = max(m.floor, op.version)
	}
	// keep the newest checkpoint at or below the floor, and all after it
	base := 0
	for i, c := range m.checkpoints {
		if c.version <= m.floor {
			base = i
		}
	}
	for _, c := range m.checkpoints[:base] {
		m.retire(c)
	}
	m.checkpoints = m.checkpoints[base:]
	keepFrom := m.checkpoints[0].version
	n := 0
	for n < m.ops.Len() && m.ops.At(n).version <= keepFrom {
		m.bytes -= versionBytes(m.ops.At(n))
		n++
	}
	m.ops.DropFront(n)
}

func (m *mvcc) retire(c *checkpoint) {
	c.retired = true
	if c.refs == 0 && c.snap != nil {
		m.e.db.ReleaseSnapshot(c.snap)
		c.snap = nil
	}
}

// releaseAll frees every RocksDB snapshot; no reader may be active (Close).
func (m *mvcc) releaseAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.checkpoints {
		c.refs = 0
		m.retire(c)
	}
	m.checkpoints = nil
	m.ops.Reset()
	m.bytes = 0
}

// view is what a snapshot read at one version reads: a checkpoint and the
// mutations after it, up to the version.
type view struct {
	m       *mvcc
	ckpt    *checkpoint
	overlay []versionOps
}

// open returns the view at version for a read of r. The caller must close
// it.
//
// A version below the floor is readable where the state at it can be
// proved to be the state of a later version that this replica holds: when
// no write after it, up to the floor, touched r. That covers a replica
// whose history is gone — it restarted or installed a snapshot since (the
// floor starts at the applied index then) — and versions the memory budget
// pushed out early. The machine state's conflict history, replicated and
// persisted with the data, holds the ranges of every write inside the
// window of log time (see Engine.untouched); reads of a range that was
// written since answer TRANSACTION_TOO_OLD.
func (m *mvcc) open(version uint64, r keyRange) (*view, error) {
	m.mu.Lock()
	m.prune(time.Now())
	if version >= m.floor {
		defer m.mu.Unlock()
		return m.viewAt(version)
	}
	floor, c := m.floor, m.checkpoints[0] // the oldest kept checkpoint; at or below the floor
	var v *view
	if c.version <= version {
		v, _ = m.viewAt(version) // the mutations after c are kept: the exact state
	} else {
		c.refs++
		v = &view{m: m, ckpt: c} // r's state at c, if untouched since version
	}
	m.mu.Unlock()
	if err := m.e.untouched(version, floor, r); err != nil {
		v.close()
		return nil, err
	}
	return v, nil
}

// viewAt returns the view at version from the newest checkpoint at or
// below it and the mutations after it. Called with mu held.
func (m *mvcc) viewAt(version uint64) (*view, error) {
	var c *checkpoint
	for _, ck := range m.checkpoints {
		if ck.version <= version {
			c = ck
		}
	}
	if c == nil {
		return nil, messages.Errorf(messages.StatusCode_TRANSACTION_TOO_OLD, "version %d is older than the oldest kept version", version)
	}
	lo := m.ops.search(func(o *versionOps) bool { return o.version > c.version })
	hi := m.ops.search(func(o *versionOps) bool { return o.version > version })
	overlay := make([]versionOps, 0, hi-lo)
	for i := lo; i < hi; i++ {
		overlay = append(overlay, *m.ops.At(i))
	}
	c.refs++
	return &view{m: m, ckpt: c, overlay: overlay}, nil
}

func (v *view) close() {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	v.ckpt.refs--
	if v.ckpt.retired {
		v.m.retire(v.ckpt)
	}
}

// effect is what the overlay says about one key: decided (and then present
// with value, or absent) or undecided (read the checkpoint).
type effect struct {
	decided bool
	present bool
	value   []byte
}

// pointEffect returns the overlay's effect on key of column family cf: the
// newest version that touched the key decides, and within a version the
// last mutation that touched it.
func (v *view) pointEffect(cf string, key []byte) effect {
	for i := len(v.overlay) - 1; i >= 0; i-- {
		var eff effect
		for m := range v.overlay[i].muts.all() {
			if string(m.cf) != cf {
				continue
			}
			switch m.typ {
			case messages.MutationType_SET:
				if bytes.Equal(m.key, key) {
					eff = effect{decided: true, present: true, value: m.value}
				}
			case messages.MutationType_DELETE:
				if bytes.Equal(m.key, key) {
					eff = effect{decided: true}
				}
			case messages.MutationType_CLEAR_RANGE:
				if rangeOf(cf, m.key, m.end).contains(key) {
					eff = effect{decided: true}
				}
			}
		}
		if eff.decided {
			return eff
		}
	}
	return effect{}
}

// rangeKeys returns the keys in [begin, end) that the overlay sets, sorted
// and without duplicates: the keys a range read must consider besides the
// checkpoint's.
func (v *view) rangeKeys(cf string, begin, end []byte) [][]byte {
	r := rangeOf(cf, begin, end)
	var keys [][]byte
	for _, op := range v.overlay {
		for m := range op.muts.all() {
			if m.typ == messages.MutationType_SET && string(m.cf) == cf && r.contains(m.key) {
				keys = append(keys, m.key)
			}
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	return slices.CompactFunc(keys, bytes.Equal)
}

func cfName(cf string) string {
	if cf == "" {
		return kv.DefaultColumnFamily
	}
	return cf
}
