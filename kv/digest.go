package kv

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/actorkv/actorkv/messages"
)

// A replica's digest of its contents is one SHA-256 per column family over
// its entries in key order, each key and value length-prefixed so that no
// two sequences of entries hash the same stream, and a combined SHA-256 over
// the families in their order (the configured families, sorted by name):
// name, a zero byte, the family's digest. It depends on the contents only,
// not on the versions or the log that made them, so a backup restored
// through the log into another group has the digests of its source.

// NewFamilyHash returns the hash of one column family's digest.
func NewFamilyHash() hash.Hash { return sha256.New() }

// HashEntry feeds one key and value of a column family to its digest.
func HashEntry(h hash.Hash, k, v []byte) {
	var lb [binary.MaxVarintLen64]byte
	h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(k)))])
	h.Write(k)
	h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(v)))])
	h.Write(v)
}

// CombinedDigest is the digest of a replica's whole contents from the
// digests of its families, in their order.
func CombinedDigest(families []*messages.ColumnFamilyDigest) []byte {
	h := sha256.New()
	for _, f := range families {
		h.Write([]byte(f.GetColumnFamily()))
		h.Write([]byte{0})
		h.Write(f.GetSha256())
	}
	return h.Sum(nil)
}
