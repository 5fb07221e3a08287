package storage

import (
	"github.com/actorkv/actorkv/messages"
)

// Sizes reports each column family's size from RocksDB's properties, the
// configured families sorted and then the engine's internal one (the applied
// index, sessions and versions kept for snapshot reads). It reads counters
// RocksDB keeps; it scans nothing.
func (e *Engine) Sizes() ([]*messages.ColumnFamilySize, error) {
	done, err := e.enter(nil)
	if err != nil {
		return nil, err
	}
	defer done()
	names, hs := e.families()
	out := make([]*messages.ColumnFamilySize, len(names))
	for i, h := range hs {
		prop := func(name string) uint64 {
			v, _ := e.db.GetIntPropertyCF(name, h) // 0 when RocksDB does not know it
			return v
		}
		out[i] = &messages.ColumnFamilySize{
			ColumnFamily:  names[i],
			SstBytes:      prop("rocksdb.total-sst-files-size"),
			LiveDataBytes: prop("rocksdb.estimate-live-data-size"),
			MemtableBytes: prop("rocksdb.cur-size-all-mem-tables"),
		}
	}
	return out, nil
}
