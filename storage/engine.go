package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linxGnu/grocksdb"
	"golang.org/x/sync/singleflight"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// internalColumnFamily holds the engine's own records: the applied index,
// log time, conflict history and client sessions (keys.go).
const internalColumnFamily = "__actorkv"

// Config configures an Engine.
type Config struct {
	// Dir is the RocksDB directory; it is created when missing.
	Dir string
	// ColumnFamilies are the column families besides "default"; each is
	// created on open when missing.
	ColumnFamilies []string
	// Limits bound the accepted input.
	Limits kv.Limits
	// RetentionWindow is how long an overwritten version stays readable by
	// snapshot reads and checkable by atomic commits (default 5 s).
	RetentionWindow time.Duration
	// SyncWrites makes every ApplyBatch fsync the RocksDB WAL before it
	// is acknowledged. The replicated group leaves it off: the Raft log is
	// already durable and the applied index makes re-application exact.
	SyncWrites bool
	// VersionMemoryBytes bounds the memory of the mutations kept for snapshot
	// reads, packed; past it the oldest versions leave the window early
	// (they answer TRANSACTION_TOO_OLD) rather than memory growing (default
	// 16 MiB: a version holding a SET of a 16-byte key and a 128-byte value
	// costs 213 bytes, so at 15,000 such writes a second it holds ~5 s, the
	// default retention window).
	VersionMemoryBytes int
	// MinCheckpointBytes is the volume of machine-state deltas below which
	// no checkpoint of the machine state is written; above it one is
	// written once the deltas outgrow twice the last checkpoint, so loading
	// replays at most about that much (default 1 MiB).
	MinCheckpointBytes int
	// MemtableBytes bounds the memtables of all column families together
	// (default 32 MiB).
	MemtableBytes uint64
	// BlockCacheBytes is the size of the block cache (default 32 MiB).
	BlockCacheBytes uint64
	// WriteBufferBytes is the memtable size of each column family
	// (default 8 MiB).
	WriteBufferBytes uint64
}

// DefaultConfig returns the defaults of every field but Dir.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:                dir,
		Limits:             kv.DefaultLimits(),
		RetentionWindow:    5 * time.Second,
		SyncWrites:         true,
		BlockCacheBytes:    32 << 20,
		WriteBufferBytes:   8 << 20,
		VersionMemoryBytes: 16 << 20,
		MemtableBytes:      32 << 20,
		MinCheckpointBytes: 1 << 20,
	}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig(c.Dir)
	if c.Limits == (kv.Limits{}) {
		c.Limits = d.Limits
	}
	if c.RetentionWindow == 0 {
		c.RetentionWindow = d.RetentionWindow
	}
	if c.BlockCacheBytes == 0 {
		c.BlockCacheBytes = d.BlockCacheBytes
	}
	if c.WriteBufferBytes == 0 {
		c.WriteBufferBytes = d.WriteBufferBytes
	}
	if c.VersionMemoryBytes == 0 {
		c.VersionMemoryBytes = d.VersionMemoryBytes
	}
	if c.MemtableBytes == 0 {
		c.MemtableBytes = d.MemtableBytes
	}
	if c.MinCheckpointBytes == 0 {
		c.MinCheckpointBytes = d.MinCheckpointBytes
	}
	return c
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.Dir == "" {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "storage config: dir is empty")
	}
	seen := map[string]bool{kv.DefaultColumnFamily: true}
	for _, cf := range c.ColumnFamilies {
		switch {
		case cf == "":
			return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "storage config: column_families has an empty name")
		case strings.HasPrefix(cf, "__"):
			return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "storage config: column family %q: names starting with __ are reserved", cf)
		case seen[cf] && cf != kv.DefaultColumnFamily:
			return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "storage config: column family %q is listed twice", cf)
		}
		seen[cf] = true
	}
	if c.RetentionWindow < 0 {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "storage config: retention_window %v is negative", c.RetentionWindow)
	}
	if c.VersionMemoryBytes < 0 {
		return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "storage config: version_memory_bytes %d is negative", c.VersionMemoryBytes)
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("storage config: %w", err)
	}
	return nil
}

// ErrClosed is returned by every operation on a closed Engine (and by the
// standalone service after Close): UNAVAILABLE, not retried by a kv.Client.
var ErrClosed = kv.ErrClosed

var errBroken = &messages.Error{Code: messages.StatusCode_UNAVAILABLE, Message: "unavailable: storage engine state is incomplete after an interrupted snapshot recovery; reopen it"}

// ErrInjectedFault is the failure produced by fault injection.
var ErrInjectedFault = &messages.Error{Code: messages.StatusCode_INTERNAL, Message: "internal error: injected fault"}

// Engine is the RocksDB storage engine: the data, the state machine's
// persisted state, and the versions snapshot reads need. Its only writes
// are ApplyBatch — fed by a replica's executor in the replicated group, by
// the writer of Standalone on its own — and snapshot recovery; its reads
// answer the read requests of the KV API (Serve).
//
// Writes are serialised (one writer at a time, through ApplyBatch); reads run
// concurrently with writes and with each other.
type Engine struct {
	// digestMu guards digestLast, the last whole digest; digestFlight
	// shares one scan among concurrent Digest callers.
	digestMu     sync.Mutex
	digestLast   *Digest
	digestFlight singleflight.Group
	cfg          Config
	validator    *kv.Validator

	db       *grocksdb.DB
	opts     *grocksdb.Options
	cfOpts   *grocksdb.Options
	bbto     *grocksdb.BlockBasedTableOptions
	cache    *grocksdb.Cache
	ro       *grocksdb.ReadOptions  // default read options, no snapshot
	wo       *grocksdb.WriteOptions // writes of ApplyBatch
	cfs      map[string]*grocksdb.ColumnFamilyHandle
	cfNames  []string // configured user families, sorted
	internal *grocksdb.ColumnFamilyHandle
	handles  []*grocksdb.ColumnFamilyHandle // every open handle, for Close

	applyMu    sync.Mutex    // serialises ApplyBatch and snapshot recovery
	sm         *machineState // deterministic state; guarded by applyMu
	deltaBytes int           // machine deltas written since the checkpoint; guarded by applyMu
	ckptBytes  int           // size of the last checkpoint; guarded by applyMu
	applied    atomic.Uint64 // last applied index (= latest version)
	mvcc       *mvcc         // versions kept for snapshot reads
	backups    backups       // backups in progress (views pinned for kvctl snapshot save)
	// pruneIdle's stop signal and its end: it drops the versions that left
	// the retention window while no write comes to drop them.
	stopPrune, pruned chan struct{}

	faults faultState

	closeMu sync.RWMutex // held for reading by every operation, for writing by Close
	closed  bool
	// installMu is held for reading by every read and for writing by a
	// snapshot recovery, which rewrites the data in several RocksDB writes:
	// no read may see a mixture of the old state and the new.
	installMu  sync.RWMutex
	installing atomic.Bool // a snapshot recovery runs (or waits for readers to finish)
	broken     atomic.Bool // a snapshot recovery failed half-way; only reopening helps
}

// Open opens (creating when missing) the engine in cfg.Dir. A second Open of
// the same directory, in this process or another, fails while the first is
// open.
func Open(cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", cfg.Dir, err)
	}
	e := &Engine{
		cfg:       cfg,
		validator: kv.NewValidator(cfg.Limits, cfg.ColumnFamilies),
		cfs:       map[string]*grocksdb.ColumnFamilyHandle{},
	}
	if err := e.openDB(); err != nil {
		e.freeOptions()
		return nil, err
	}
	sm, err := loadMachineState(e)
	if err != nil {
		e.closeDB()
		return nil, err
	}
	e.sm = sm
	e.applied.Store(sm.applied)
	e.mvcc = newMVCC(e, sm.applied)
	e.stopPrune, e.pruned = make(chan struct{}), make(chan struct{})
	go e.pruneIdle()
	return e, nil
}

func (e *Engine) openDB() error {
	e.cache = grocksdb.NewLRUCache(e.cfg.BlockCacheBytes)
	e.bbto = grocksdb.NewDefaultBlockBasedTableOptions()
	e.bbto.SetBlockCache(e.cache)
	e.bbto.SetFilterPolicy(grocksdb.NewBloomFilter(10))

	e.opts = grocksdb.NewDefaultOptions()
	e.opts.SetCreateIfMissing(true)
	e.opts.SetCreateIfMissingColumnFamilies(true)
	e.opts.SetMaxBackgroundJobs(2)
	e.opts.SetKeepLogFileNum(2)
	e.opts.SetInfoLogLevel(grocksdb.WarnInfoLogLevel)
	e.opts.SetBlockBasedTableFactory(e.bbto)
	e.opts.SetWriteBufferSize(e.cfg.WriteBufferBytes)
	e.opts.SetMaxWriteBufferNumber(3)
	e.opts.SetMaxTotalWalSize(4 * e.cfg.WriteBufferBytes)
	e.opts.SetDbWriteBufferSize(e.cfg.MemtableBytes)
	// Start writing back SST and WAL data every MiB instead of leaving it
	// to the kernel's bursts: with three replicas on one disk those bursts
	// stall the Raft logs' fdatasyncs (put at 64 clients: p99 22-25 ms
	// against 25-37 ms, throughput +2 to +17 % in interleaved runs).
	e.opts.SetBytesPerSync(1 << 20)
	e.opts.SetWALBytesPerSync(1 << 20)
	e.cfOpts = e.opts

	want := append([]string{kv.DefaultColumnFamily}, e.cfg.ColumnFamilies...)
	want = append(want, internalColumnFamily)
	existing, err := grocksdb.ListColumnFamilies(e.opts, e.cfg.Dir)
	if err != nil {
		existing = nil // a new database has none yet
	}
	names := slices.Clone(want)
	for _, n := range existing {
		if !slices.Contains(names, n) {
			names = append(names, n) // RocksDB must open every family it has
		}
	}
	names = slices.Compact(names)
	cfOpts := make([]*grocksdb.Options, len(names))
	for i := range cfOpts {
		cfOpts[i] = e.cfOpts
	}
	db, handles, err := grocksdb.OpenDbColumnFamilies(e.opts, e.cfg.Dir, names, cfOpts)
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return messages.Errorf(messages.StatusCode_UNAVAILABLE, "storage: data directory %s is in use by another engine: %v", e.cfg.Dir, err)
		}
		return fmt.Errorf("storage: open %s: %w", e.cfg.Dir, err)
	}
	e.db = db
	e.handles = handles
	for i, n := range names {
		switch {
		case n == internalColumnFamily:
			e.internal = handles[i]
		case slices.Contains(want, n):
			e.cfs[n] = handles[i]
		case e.holdsData(handles[i]):
			// Serving without it would hide its data (reads answer
			// UNKNOWN_COLUMN_FAMILY, digests leave it out): refuse.
			e.closeDB()
			return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT,
				"storage: %s: column family %q holds data but is not configured (database.column_families): add it back; its data is kept", e.cfg.Dir, n)
		}
	}
	for n := range e.cfs {
		e.cfNames = append(e.cfNames, n)
	}
	slices.Sort(e.cfNames)
	e.ro = grocksdb.NewDefaultReadOptions()
	e.wo = grocksdb.NewDefaultWriteOptions()
	e.wo.SetSync(e.cfg.SyncWrites)
	return nil
}

// holdsData reports whether column family h has any key.
func (e *Engine) holdsData(h *grocksdb.ColumnFamilyHandle) bool {
	ro := grocksdb.NewDefaultReadOptions()
	defer ro.Destroy()
	it := e.db.NewIteratorCF(ro, h)
	defer it.Close()
	it.SeekToFirst()
	return it.Valid()
}

// Close stops the writer, releases every snapshot and closes RocksDB. It is
// idempotent; operations after it fail with ErrClosed.
func (e *Engine) Close() error {
	e.closeMu.Lock()
	if e.closed {
		e.closeMu.Unlock()
		return nil
	}
	e.closed = true
	e.closeMu.Unlock()
	close(e.stopPrune)
	<-e.pruned
	// No operation holds closeMu now and none can start: free everything.
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	e.mvcc.releaseAll()
	e.releaseBackups()
	e.closeDB()
	return nil
}

func (e *Engine) closeDB() {
	for _, h := range e.handles {
		h.Destroy()
	}
	e.handles = nil
	if e.db != nil {
		e.db.Close()
		e.db = nil
	}
	if e.ro != nil {
		e.ro.Destroy()
		e.ro = nil
	}
	if e.wo != nil {
		e.wo.Destroy()
		e.wo = nil
	}
	e.freeOptions()
}

func (e *Engine) freeOptions() {
	if e.opts != nil {
		e.opts.Destroy()
		e.opts = nil
	}
	if e.bbto != nil {
		e.bbto.Destroy()
		e.bbto = nil
	}
	if e.cache != nil {
		e.cache.Destroy()
		e.cache = nil
	}
}

// enter marks the start of an operation; it fails when the engine is closed
// or ctx is done. The returned function marks its end.
func (e *Engine) enter(ctx context.Context) (func(), error) {
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return nil, contextError(err)
		}
	}
	e.closeMu.RLock()
	if e.closed {
		e.closeMu.RUnlock()
		return nil, ErrClosed
	}
	if e.broken.Load() {
		e.closeMu.RUnlock()
		return nil, errBroken
	}
	return e.closeMu.RUnlock, nil
}

// ErrInstalling is returned by reads while the engine installs a snapshot;
// it is retryable (another replica, or this one a moment later, answers).
var ErrInstalling = &messages.Error{Code: messages.StatusCode_UNAVAILABLE, Message: "unavailable: the replica is installing a snapshot"}

// enterRead is enter for a read: it also refuses, at once, to read while a
// snapshot is being installed, and holds the installation off until the
// read is done.
func (e *Engine) enterRead(ctx context.Context) (func(), error) {
	done, err := e.enter(ctx)
	if err != nil {
		return nil, err
	}
	if !e.installMu.TryRLock() {
		done()
		return nil, ErrInstalling
	}
	return func() {
		e.installMu.RUnlock()
		done()
	}, nil
}

// Installing reports whether a snapshot is being installed: reads are
// refused meanwhile (the replica is not ready).
func (e *Engine) Installing() bool { return e.installing.Load() }

// contextError converts a context error to its status error.
func contextError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return messages.Errorf(messages.StatusCode_TIMEOUT, "%v", err)
	}
	return messages.Errorf(messages.StatusCode_CANCELLED, "%v", err)
}

// Validator returns the validator of this engine's limits and families.
func (e *Engine) Validator() *kv.Validator { return e.validator }

// ColumnFamilies returns the configured user column families, sorted.
func (e *Engine) ColumnFamilies() []string { return slices.Clone(e.cfNames) }

// AppliedIndex returns the index (version) of the last applied entry.
func (e *Engine) AppliedIndex() uint64 { return e.applied.Load() }

func (e *Engine) publishApplied(index uint64) { e.applied.Store(index) }

func (e *Engine) handle(cf string) (*grocksdb.ColumnFamilyHandle, error) {
	if cf == "" {
		cf = kv.DefaultColumnFamily
	}
	h, ok := e.cfs[cf]
	if !ok {
		return nil, e.validator.ColumnFamily(cf)
	}
	return h, nil
}

// Sync makes every applied batch durable (flushes and fsyncs the WAL).
func (e *Engine) Sync() error {
	done, err := e.enter(nil)
	if err != nil {
		return err
	}
	defer done()
	if err := e.db.FlushWAL(true); err != nil {
		return fmt.Errorf("storage: sync: %w", err)
	}
	return nil
}

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func putU64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}
