package replica

import (
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/actorkv/actorkv/messages"
)

// counters are a node's running totals for ReplicaStatus.counters; the
// replica actor, the write waiter's goroutine and dragonboat's snapshot
// goroutines add to them, the replica actor reads them.
type counters struct {
	proposalsDropped atomic.Uint64

	snapshotsSent, snapshotBytesSent         atomic.Uint64
	snapshotSendNanos                        atomic.Int64
	snapshotsReceived, snapshotBytesReceived atomic.Uint64
	snapshotReceiveNanos                     atomic.Int64
}

// proto returns the totals as sent in ReplicaStatus.
func (c *counters) proto() *messages.ReplicaCounters {
	return &messages.ReplicaCounters{
		ProposalsDropped:       c.proposalsDropped.Load(),
		SnapshotsSent:          c.snapshotsSent.Load(),
		SnapshotBytesSent:      c.snapshotBytesSent.Load(),
		SnapshotSendSeconds:    time.Duration(c.snapshotSendNanos.Load()).Seconds(),
		SnapshotsReceived:      c.snapshotsReceived.Load(),
		SnapshotBytesReceived:  c.snapshotBytesReceived.Load(),
		SnapshotReceiveSeconds: time.Duration(c.snapshotReceiveNanos.Load()).Seconds(),
	}
}

// sent records a snapshot streamed to a follower (dragonboat's
// SaveSnapshot, finished or not: its bytes and time were spent either way).
func (c *counters) sent(bytes int64, took time.Duration) {
	c.snapshotsSent.Add(1)
	c.snapshotBytesSent.Add(uint64(bytes))
	c.snapshotSendNanos.Add(int64(took))
}

// received records a snapshot read from the leader and installed
// (RecoverFromSnapshot, finished or not).
func (c *counters) received(bytes int64, took time.Duration) {
	c.snapshotsReceived.Add(1)
	c.snapshotBytesReceived.Add(uint64(bytes))
	c.snapshotReceiveNanos.Add(int64(took))
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// dirBytes is the size of the regular files under dir (0 for files that
// vanish meanwhile: the log database compacts while we look).
func dirBytes(dir string) (uint64, error) {
	var total uint64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		total += uint64(info.Size())
		return nil
	})
	return total, err
}
