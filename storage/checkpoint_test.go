package storage

import (
	"bytes"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// TestEncodeCheckpointMatchesProto applies a generated log (sessions with
// retries, conflicting commits, every kind of write) and checks, after every
// batch, that the streamed checkpoint encoding is byte for byte the
// deterministic protobuf encoding of the checkpoint message, and that it
// decodes back to the same state.
func TestEncodeCheckpointMatchesProto(t *testing.T) {
	e := openEngine(t, detConfig(t.TempDir()))
	log, _ := genLog(11, 2000)
	checked := 0
	for i := 0; i < len(log); i += 40 {
		mustApply(t, e, cloneEntries(log[i:min(i+40, len(log))]))
		s := e.sm
		got, err := s.encodeCheckpoint(0)
		if err != nil {
			t.Fatalf("encodeCheckpoint: %v", err)
		}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(s.checkpoint())
		if err != nil {
			t.Fatalf("marshal checkpoint: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("after %d entries: streamed checkpoint (%d bytes) differs from proto.Marshal (%d bytes)", i+40, len(got), len(want))
		}
		c := &messages.MachineCheckpoint{}
		if err := proto.Unmarshal(got, c); err != nil {
			t.Fatalf("decode streamed checkpoint: %v", err)
		}
		again, err := stateFromCheckpoint(c).encodeCheckpoint(16)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("checkpoint does not survive decode and re-encode (err %v)", err)
		}
		if s.conflicts.Len() > 0 && len(s.sessions) > 0 {
			checked++
		}
	}
	if checked == 0 {
		t.Fatalf("no checkpoint had both conflict history and sessions; the test checked nothing interesting")
	}
}

// checkpoint builds the state as a MachineCheckpoint message, field by
// field: the oracle TestEncodeCheckpointMatchesProto holds encodeCheckpoint to.
func (s *machineState) checkpoint() *messages.MachineCheckpoint {
	c := &messages.MachineCheckpoint{Index: s.applied, MaxTimestampUnixNanos: s.maxTs, Horizon: s.horizon, SessionLimits: s.limits}
	for i := range s.conflicts.Len() {
		ce := s.conflicts.At(i)
		c.Conflicts = append(c.Conflicts, &messages.ConflictEntry{Version: ce.version, TimestampUnixNanos: ce.ts, Writes: rangesToProto(slices.Collect(ce.writes.all()))})
	}
	for el := s.lru.Front(); el != nil; el = el.Next() {
		sess := el.Value.(*session)
		st := &messages.SessionState{ClientId: sess.client, Owner: sess.owner, RespondedTo: sess.respondedTo, LastActiveUnixNanos: sess.lastActive, LastIndex: sess.lastIndex}
		seqs := make([]uint64, 0, len(sess.results))
		for seq := range sess.results {
			seqs = append(seqs, seq)
		}
		slices.Sort(seqs)
		for _, seq := range seqs {
			st.Results = append(st.Results, &messages.SessionResult{Seq: seq, Result: sess.results[seq]})
		}
		c.Sessions = append(c.Sessions, st)
	}
	return c
}
