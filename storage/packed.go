package storage

import (
	"encoding/binary"
	"iter"
	"math/bits"
	"unsafe"

	"github.com/actorkv/actorkv/messages"
)

// packedMutations is one version's mutations encoded back to back in a
// single pointer-free buffer. The versions kept for snapshot reads hold
// these rather than the decoded commands: a decoded mutation is half a dozen
// allocations full of pointers that every garbage collection would scan
// (with three replicas under load, most of the live heap), while a packed
// one is one buffer the collector skips, and its length is what the memory
// budget counts.
//
// Each record is the mutation type (one byte), then the column family (its
// name; the default family spelled out), key, value and end, each a uvarint
// length and the bytes.
type packedMutations []byte

// packedMutation is one decoded record; its slices alias the buffer, which
// is never modified once built.
type packedMutation struct {
	typ             messages.MutationType
	cf              []byte
	key, value, end []byte
}

// packMutations encodes muts in one buffer of exactly the needed size.
func packMutations(muts []*messages.Mutation) packedMutations {
	n := 0
	for _, m := range muts {
		n += 1 + fieldSize(len(cfName(m.GetColumnFamily()))) + fieldSize(len(m.GetKey())) +
			fieldSize(len(m.GetValue())) + fieldSize(len(m.GetEnd()))
	}
	buf := make([]byte, 0, n)
	for _, m := range muts {
		buf = append(buf, byte(m.GetType()))
		buf = appendField(buf, []byte(cfName(m.GetColumnFamily())))
		buf = appendField(buf, m.GetKey())
		buf = appendField(buf, m.GetValue())
		buf = appendField(buf, m.GetEnd())
	}
	return buf
}

// fieldSize is the encoded size of a field of n bytes: its uvarint length
// (seven bits a byte) and the bytes.
func fieldSize(n int) int { return (bits.Len64(uint64(n)|1)+6)/7 + n }

func appendField(buf, b []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

// all yields the mutations in the order they were packed. The buffer is
// only ever built by packMutations, so it always decodes.
func (p packedMutations) all() iter.Seq[packedMutation] {
	return func(yield func(packedMutation) bool) {
		r := fieldReader(p)
		for len(r) > 0 {
			m := packedMutation{typ: messages.MutationType(r[0])}
			r = r[1:]
			m.cf, m.key, m.value, m.end = r.next(), r.next(), r.next(), r.next()
			if !yield(m) {
				return
			}
		}
	}
}

// packedRanges is one write version's ranges in the conflict history,
// packed for the same reasons as packedMutations: each range is its column
// family, begin and end (empty: open), each a uvarint length and the bytes.
type packedRanges []byte

// packRanges encodes rs in one buffer of exactly the needed size.
func packRanges(rs []keyRange) packedRanges {
	n := 0
	for _, r := range rs {
		n += fieldSize(len(r.cf)) + fieldSize(len(r.begin)) + fieldSize(len(r.end))
	}
	buf := make([]byte, 0, n)
	for _, r := range rs {
		buf = appendField(buf, []byte(r.cf))
		buf = appendField(buf, r.begin)
		buf = appendField(buf, r.end)
	}
	return buf
}

// all yields the ranges in the order they were packed. Their slices and
// column family alias the buffer, which is never modified once built.
func (p packedRanges) all() iter.Seq[keyRange] {
	return func(yield func(keyRange) bool) {
		r := fieldReader(p)
		for len(r) > 0 {
			cf, begin, end := r.next(), r.next(), r.next()
			if len(end) == 0 {
				end = nil
			}
			if !yield(keyRange{cf: unsafe.String(unsafe.SliceData(cf), len(cf)), begin: begin, end: end}) {
				return
			}
		}
	}
}

// fieldReader reads the length-prefixed fields of a packed buffer.
type fieldReader []byte

func (r *fieldReader) next() []byte {
	n, w := binary.Uvarint(*r)
	end := w + int(n)
	b := (*r)[w:end:end]
	*r = (*r)[end:]
	return b
}
