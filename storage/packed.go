package storage

import (
	"encoding/binary"
	"iter"
	"math/bits"

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
		rest := []byte(p)
		field := func() []byte {
			n, w := binary.Uvarint(rest)
			b := rest[w : w+int(n) : w+int(n)]
			rest = rest[w+int(n):]
			return b
		}
		for len(rest) > 0 {
			var m packedMutation
			m.typ = messages.MutationType(rest[0])
			rest = rest[1:]
			m.cf, m.key, m.value, m.end = field(), field(), field(), field()
			if !yield(m) {
				return
			}
		}
	}
}
