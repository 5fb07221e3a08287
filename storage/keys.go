package storage

import (
	"bytes"
	"encoding/binary"

	"github.com/actorkv/actorkv/kv"
)

// Key layout of the internal column family. Everything here is replicated
// state: it is written in the same write batch as the data it describes and
// travels in snapshots.
var (
	keyApplied    = []byte("m/applied")    // uint64: last applied index
	keyCheckpoint = []byte("m/checkpoint") // MachineCheckpoint: machine state at some index
	keyRecovering = []byte("m/recovering") // present while a snapshot is being recovered

	prefixDelta = []byte("d/") // d/<last index of batch>: MachineDelta after the checkpoint
)

// maxKeyBound is larger than every key the engine accepts; clear ranges with
// an open end, and wipes, delete up to it.
var maxKeyBound = bytes.Repeat([]byte{0xff}, kv.MaxKeySizeCeiling+1)

func deltaKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefixDelta...), index)
}

// prefixEnd returns the smallest key greater than every key with prefix p, or
// nil when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// pointEnd returns the end of the single-key range [key, pointEnd(key)).
func pointEnd(key []byte) []byte {
	return append(bytes.Clone(key), 0)
}

// upperBound returns end, or maxKeyBound when end is empty (open).
func upperBound(end []byte) []byte {
	if len(end) == 0 {
		return maxKeyBound
	}
	return end
}
