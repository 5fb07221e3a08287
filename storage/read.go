package storage

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/linxGnu/grocksdb"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

// Reads see the latest applied state (Get, GetRange, ListKeys) or the state
// at a version (SnapshotRead, SnapshotGetRange). They run concurrently with
// ApplyBatch, never with a snapshot recovery (see enterRead). The consistency option does not apply to one engine: the
// replicated group decides it before it reads a replica's engine.

// Serve answers a read request of the KV API (a messages.Read or
// messages.SnapshotRead operation) from this engine's state; the replicated
// group has decided its consistency before. It is the engine's one place
// that turns read requests into reads.
func (e *Engine) Serve(ctx context.Context, req proto.Message) messages.Statused {
	switch r := req.(type) {
	case *messages.GetRequest:
		v, found, err := e.Get(ctx, r.GetKey(), kv.WithColumnFamily(r.GetColumnFamily()))
		return &messages.GetResponse{Status: messages.StatusOf(err), Found: found, Value: v}
	case *messages.GetRangeRequest:
		kvs, err := e.GetRange(ctx, r.GetBegin(), r.GetEnd(), int(r.GetLimit()), r.GetReverse(), kv.WithColumnFamily(r.GetColumnFamily()))
		return &messages.GetRangeResponse{Status: messages.StatusOf(err), Kvs: kvs}
	case *messages.ListKeysRequest:
		keys, err := e.ListKeys(ctx, r.GetPrefix(), int(r.GetLimit()), kv.WithColumnFamily(r.GetColumnFamily()))
		return &messages.ListKeysResponse{Status: messages.StatusOf(err), Keys: keys}
	case *messages.GetReadVersionRequest:
		v, err := e.GetReadVersion(ctx)
		return &messages.GetReadVersionResponse{Status: messages.StatusOf(err), Version: v}
	case *messages.SnapshotReadRequest:
		v, found, err := e.SnapshotRead(ctx, r.GetKey(), r.GetVersion(), kv.WithColumnFamily(r.GetColumnFamily()))
		return &messages.SnapshotReadResponse{Status: messages.StatusOf(err), Found: found, Value: v}
	case *messages.SnapshotGetRangeRequest:
		kvs, err := e.SnapshotGetRange(ctx, r.GetBegin(), r.GetEnd(), int(r.GetLimit()), r.GetReverse(), r.GetVersion(), kv.WithColumnFamily(r.GetColumnFamily()))
		return &messages.SnapshotGetRangeResponse{Status: messages.StatusOf(err), Kvs: kvs}
	}
	err := messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "%T is not a read of the KV API", req)
	if resp := messages.ErrorResponse(req, err); resp != nil {
		return resp.(messages.Statused)
	}
	return &messages.GetResponse{Status: messages.StatusOf(err)}
}

// Get implements Database.
func (e *Engine) Get(ctx context.Context, key []byte, opts ...kv.Option) ([]byte, bool, error) {
	o := kv.ApplyOptions(opts)
	done, err := e.enterRead(ctx)
	if err != nil {
		return nil, false, err
	}
	defer done()
	h, err := e.readPrecheck(ctx, o.ColumnFamily)
	if err != nil {
		return nil, false, err
	}
	if err := e.validator.Key(key); err != nil {
		return nil, false, err
	}
	return e.get(e.ro, h, key)
}

func (e *Engine) get(ro *grocksdb.ReadOptions, h *grocksdb.ColumnFamilyHandle, key []byte) ([]byte, bool, error) {
	v, err := e.db.GetPinnedCF(ro, h, key)
	if err != nil {
		return nil, false, fmt.Errorf("storage: get: %w: %v", messages.ErrInternal, err)
	}
	defer v.Destroy()
	if !v.Exists() {
		return nil, false, nil
	}
	return bytes.Clone(v.Data()), true, nil
}

// readPrecheck applies injected read faults and resolves the column family.
func (e *Engine) readPrecheck(ctx context.Context, cf string) (*grocksdb.ColumnFamilyHandle, error) {
	h, err := e.handle(cf)
	if err != nil {
		return nil, err
	}
	if err := e.faults.beforeRead(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// GetRange implements Database.
func (e *Engine) GetRange(ctx context.Context, begin, end []byte, limit int, reverse bool, opts ...kv.Option) ([]*messages.KeyValue, error) {
	return e.rangeRead(ctx, begin, end, limit, reverse, nil, false, opts)
}

// ListKeys implements Database.
func (e *Engine) ListKeys(ctx context.Context, prefix []byte, limit int, opts ...kv.Option) ([][]byte, error) {
	if len(prefix) > e.validator.Limits().MaxKeySize {
		return nil, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "prefix is over the key limit of %d bytes", e.validator.Limits().MaxKeySize)
	}
	var end []byte
	if len(prefix) > 0 {
		end = prefixEnd(prefix) // nil (open) when prefix is all 0xff
	}
	kvs, err := e.rangeRead(ctx, prefix, end, limit, false, nil, true, opts)
	if err != nil {
		return nil, err
	}
	keys := make([][]byte, len(kvs))
	for i, kv := range kvs {
		keys[i] = kv.Key
	}
	return keys, nil
}

// SnapshotRead implements Database.
func (e *Engine) SnapshotRead(ctx context.Context, key []byte, version uint64, opts ...kv.Option) ([]byte, bool, error) {
	o := kv.ApplyOptions(opts)
	done, err := e.enterRead(ctx)
	if err != nil {
		return nil, false, err
	}
	defer done()
	h, err := e.readPrecheck(ctx, o.ColumnFamily)
	if err != nil {
		return nil, false, err
	}
	if err := e.validator.Key(key); err != nil {
		return nil, false, err
	}
	v, err := e.openVersion(version, rangeOf(o.ColumnFamily, key, pointEnd(key)))
	if err != nil {
		return nil, false, err
	}
	defer v.close()
	if eff := v.pointEffect(o.ColumnFamily, key); eff.decided {
		return bytes.Clone(eff.value), eff.present, nil
	}
	ro := grocksdb.NewDefaultReadOptions()
	defer ro.Destroy()
	ro.SetSnapshot(v.ckpt.snap)
	return e.get(ro, h, key)
}

// SnapshotGetRange implements Database.
func (e *Engine) SnapshotGetRange(ctx context.Context, begin, end []byte, limit int, reverse bool, version uint64, opts ...kv.Option) ([]*messages.KeyValue, error) {
	return e.rangeRead(ctx, begin, end, limit, reverse, &version, false, opts)
}

// GetReadVersion implements Database: the latest applied version.
func (e *Engine) GetReadVersion(ctx context.Context) (uint64, error) {
	done, err := e.enterRead(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	if err := e.faults.beforeRead(ctx); err != nil {
		return 0, err
	}
	return e.applied.Load(), nil
}

// openVersion opens the view at version for a read of r.
func (e *Engine) openVersion(version uint64, r keyRange) (*view, error) {
	if latest := e.applied.Load(); version > latest {
		return nil, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "version %d is beyond the latest committed version %d", version, latest)
	}
	return e.mvcc.open(version, r)
}

// rangeRead reads [begin, end) at the latest state, or at *version.
func (e *Engine) rangeRead(ctx context.Context, begin, end []byte, limit int, reverse bool, version *uint64, keysOnly bool, opts []kv.Option) ([]*messages.KeyValue, error) {
	o := kv.ApplyOptions(opts)
	done, err := e.enterRead(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	h, err := e.readPrecheck(ctx, o.ColumnFamily)
	if err != nil {
		return nil, err
	}
	if err := e.validator.Range(begin, end); err != nil {
		return nil, err
	}
	if limit, err = e.validator.Limit(limit); err != nil {
		return nil, err
	}
	ro := grocksdb.NewDefaultReadOptions()
	defer ro.Destroy()
	var ix *overlayIndex
	if version != nil {
		v, err := e.openVersion(*version, rangeOf(o.ColumnFamily, begin, end))
		if err != nil {
			return nil, err
		}
		defer v.close()
		ro.SetSnapshot(v.ckpt.snap)
		ix = newOverlayIndex(v, o.ColumnFamily, begin, end)
	}
	if len(begin) > 0 {
		ro.SetIterateLowerBound(begin)
	}
	if len(end) > 0 {
		ro.SetIterateUpperBound(end)
	}
	if len(end) > 0 && bytes.Equal(begin, end) {
		return nil, nil
	}
	it := e.db.NewIteratorCF(ro, h)
	defer it.Close()
	if reverse {
		it.SeekToLast()
	} else if len(begin) > 0 {
		it.Seek(begin)
	} else {
		it.SeekToFirst()
	}
	step := it.Next
	if reverse {
		step = it.Prev
	}
	out := make([]*messages.KeyValue, 0, min(limit, 64))
	extra := ix.keys(reverse) // overlay keys not yet merged, in iteration order
	size, maxSize := 0, e.validator.Limits().MaxRangeBytes
	// emit adds an entry; false: the entries are over maxSize.
	emit := func(k, v []byte) bool {
		kv := &messages.KeyValue{Key: k}
		size += len(k)
		if !keysOnly {
			kv.Value = v
			size += len(v)
		}
		out = append(out, kv)
		return size <= maxSize
	}
	tooLarge := func() error {
		return messages.Errorf(messages.StatusCode_TOO_LARGE, "the entries read are over %d bytes (limits.max_range_bytes): ask for fewer", maxSize)
	}
	// before reports whether overlay key a comes before base key b in
	// iteration order.
	before := func(a, b []byte) bool {
		if reverse {
			return bytes.Compare(a, b) > 0
		}
		return bytes.Compare(a, b) < 0
	}
	for len(out) < limit {
		var key, val []byte
		if it.Valid() {
			ks, vs := it.Key(), it.Value()
			key = bytes.Clone(ks.Data())
			if !keysOnly || ix != nil {
				val = bytes.Clone(vs.Data())
			}
			ks.Free()
			vs.Free()
		}
		// overlay keys that sort before the base key come first
		for len(extra) > 0 && len(out) < limit && (key == nil || before(extra[0], key)) {
			if eff := ix.effect(extra[0]); eff.present && !emit(bytes.Clone(extra[0]), bytes.Clone(eff.value)) {
				return nil, tooLarge()
			}
			extra = extra[1:]
		}
		if key == nil || len(out) >= limit {
			break
		}
		if len(extra) > 0 && bytes.Equal(extra[0], key) {
			extra = extra[1:]
		}
		ok := true
		if eff := ix.effect(key); eff.decided {
			if eff.present {
				ok = emit(key, bytes.Clone(eff.value))
			}
		} else {
			ok = emit(key, val)
		}
		if !ok {
			return nil, tooLarge()
		}
		step()
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("storage: range read: %w: %v", messages.ErrInternal, err)
	}
	return out, nil
}

// overlayIndex answers, for the keys of one range, what the mutations of a
// view's overlay did to them. A nil index decides nothing.
type overlayIndex struct {
	points map[string]seqEffect
	clears []seqRange
	sets   [][]byte // keys the overlay sets, ascending
}

type seqEffect struct {
	seq int
	eff effect
}

type seqRange struct {
	seq int
	r   keyRange
}

func newOverlayIndex(v *view, cf string, begin, end []byte) *overlayIndex {
	ix := &overlayIndex{points: map[string]seqEffect{}, sets: v.rangeKeys(cf, begin, end)}
	seq := 0
	for _, op := range v.overlay {
		for m := range op.muts.all() {
			seq++
			if string(m.cf) != cf {
				continue
			}
			switch m.typ {
			case messages.MutationType_SET:
				ix.points[string(m.key)] = seqEffect{seq, effect{decided: true, present: true, value: m.value}}
			case messages.MutationType_DELETE:
				ix.points[string(m.key)] = seqEffect{seq, effect{decided: true}}
			case messages.MutationType_CLEAR_RANGE:
				ix.clears = append(ix.clears, seqRange{seq, rangeOf(cf, m.key, m.end)})
			}
		}
	}
	return ix
}

func (ix *overlayIndex) effect(key []byte) effect {
	if ix == nil {
		return effect{}
	}
	p, ok := ix.points[string(key)]
	clearSeq := 0
	for _, c := range ix.clears {
		if c.seq > clearSeq && c.r.contains(key) {
			clearSeq = c.seq
		}
	}
	switch {
	case ok && p.seq > clearSeq:
		return p.eff
	case clearSeq > 0:
		return effect{decided: true}
	}
	return effect{}
}

func (ix *overlayIndex) keys(reverse bool) [][]byte {
	if ix == nil {
		return nil
	}
	keys := slices.Clone(ix.sets)
	if reverse {
		slices.Reverse(keys)
	}
	return keys
}
