package storage

import (
	"bytes"
	"context"
	"testing"

	"github.com/actorkv/actorkv/messages"
)

// FuzzRecoverSnapshot feeds arbitrary bytes to a replica's snapshot
// recovery: it installs a snapshot whole or refuses it, and a refused one
// leaves the engine exactly as it was (same applied index and digest), still
// serving.
func FuzzRecoverSnapshot(f *testing.F) {
	src := openEngine(f, detConfig(f.TempDir()))
	log, _ := genLog(3, 120)
	applyAll(f, src, log)
	snap := saveSnapshot(f, src)
	f.Add(snap)
	f.Add(snap[:len(snap)/2])
	f.Add(append(bytes.Clone(snap[:len(snap)-8]), 0, 0, 0, 0, 0, 0, 0, 1))
	f.Add([]byte{})
	cfg := detConfig(f.TempDir())
	e, err := Open(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = closeEngine(e) })
	applyAll(f, e, log[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		before := mustDigest(t, e)
		err := e.RecoverSnapshot(bytes.NewReader(data), nil)
		switch {
		case err == nil:
			mustDigest(t, e) // installed: it serves
		case !e.broken.Load():
			// Refused before the old state was touched: it stands.
			after := mustDigest(t, e)
			if after.AppliedIndex != before.AppliedIndex || !bytes.Equal(after.Combined, before.Combined) {
				t.Fatalf("a refused snapshot (%v) changed the engine: applied %d -> %d", err, before.AppliedIndex, after.AppliedIndex)
			}
		default:
			// Failed half-way: nothing is served until the engine is
			// reopened, which wipes the partial state.
			if _, derr := e.Digest(context.Background()); messages.CodeOf(derr) != messages.StatusCode_UNAVAILABLE {
				t.Fatalf("an engine left by a failed install (%v) answered %v, want UNAVAILABLE", err, derr)
			}
			if err := closeEngine(e); err != nil {
				t.Fatal(err)
			}
			if e, err = Open(cfg); err != nil {
				t.Fatalf("reopen after a failed install: %v", err)
			}
			if d := mustDigest(t, e); d.AppliedIndex != 0 {
				t.Fatalf("reopened after a failed install at applied index %d, want 0 (wiped)", d.AppliedIndex)
			}
		}
	})
}
