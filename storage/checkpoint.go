package storage

import (
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// encodeCheckpoint returns the state as the wire encoding of a
// messages.MachineCheckpoint — the bytes proto.Marshal gives for that
// message (checkpoint_test.go holds it to that) — without building the
// message. With a long
// conflict history (a write burst fills the retention window with ranges)
// the message's objects were the apply path's largest transient allocation,
// tens of MiB per replica, on every replica at about the same log position.
// sizeHint is the capacity to start with (the previous checkpoint's size is
// a good guess): growing the buffer by appending was the apply path's
// largest allocation, twice the checkpoint's size.
func (s *machineState) encodeCheckpoint(sizeHint int) ([]byte, error) {
	b := make([]byte, 0, sizeHint)
	var entry, kr, sess, res []byte
	b = appendVarintField(b, 1, s.applied)
	b = appendVarintField(b, 2, uint64(s.maxTs))
	b = appendVarintField(b, 3, s.horizon)
	for i := range s.conflicts.Len() {
		ce := s.conflicts.At(i)
		entry = appendVarintField(entry[:0], 1, ce.version)
		entry = appendVarintField(entry, 2, uint64(ce.ts))
		for r := range ce.writes.all() {
			kr = kr[:0]
			if r.cf != "" {
				kr = protowire.AppendTag(kr, 1, protowire.BytesType)
				kr = protowire.AppendString(kr, r.cf)
			}
			kr = appendBytesField(kr, 2, r.begin)
			kr = appendBytesField(kr, 3, r.end)
			entry = appendMessageField(entry, 3, kr)
		}
		b = appendMessageField(b, 4, entry)
	}
	for el := s.lru.Front(); el != nil; el = el.Next() {
		st := el.Value.(*session)
		sess = appendVarintField(sess[:0], 1, st.client)
		sess = appendVarintField(sess, 2, st.respondedTo)
		sess = appendVarintField(sess, 3, uint64(st.lastActive))
		sess = appendVarintField(sess, 4, st.lastIndex)
		seqs := make([]uint64, 0, len(st.results))
		for seq := range st.results {
			seqs = append(seqs, seq)
		}
		slices.Sort(seqs)
		for _, seq := range seqs {
			res = appendVarintField(res[:0], 1, seq)
			if r := st.results[seq]; r != nil {
				enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
				if err != nil {
					return nil, err
				}
				res = appendMessageField(res, 2, enc)
			}
			sess = appendMessageField(sess, 5, res)
		}
		if st.owner != "" {
			sess = protowire.AppendTag(sess, 6, protowire.BytesType)
			sess = protowire.AppendString(sess, st.owner)
		}
		b = appendMessageField(b, 5, sess)
	}
	if l := s.limits; l != nil {
		lim := appendVarintField(nil, 1, l.GetMaxSessions())
		lim = appendVarintField(lim, 2, uint64(l.GetTtlNanos()))
		b = appendMessageField(b, 6, lim)
	}
	return b, nil
}

// The proto3 field encoders of encodeCheckpoint: a zero or empty value is
// not written, as proto.Marshal does.

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendMessageField writes an embedded message, even an empty one.
func appendMessageField(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}
