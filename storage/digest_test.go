package storage

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
)

func TestDigest(t *testing.T) {
	ctx := context.Background()
	const n = 40
	key := func(i int) []byte { return fmt.Appendf(nil, "key-%03d", i) }

	// A writes in order, one write per key; B writes in reverse, in one
	// atomic commit per ten keys, after first writing values it overwrites
	// and keys it deletes again.
	a := openEngine(t, testConfig(t.TempDir()))
	for i := range n {
		if _, err := db(a).Put(ctx, key(i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db(a).Put(ctx, []byte("u"), []byte("users"), kv.WithColumnFamily(usersCF)); err != nil {
		t.Fatal(err)
	}

	b := openEngine(t, testConfig(t.TempDir()))
	for i := range n {
		if _, err := db(b).Put(ctx, key(i), []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db(b).Put(ctx, []byte("gone"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	for hi := n; hi > 0; hi -= 10 {
		c := &messages.AtomicCommit{}
		for i := hi - 1; i >= hi-10; i-- {
			c.Mutations = append(c.Mutations, &messages.Mutation{Type: messages.MutationType_SET, Key: key(i), Value: fmt.Appendf(nil, "v%d", i)})
		}
		if _, err := db(b).AtomicCommit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db(b).Delete(ctx, []byte("gone")); err != nil {
		t.Fatal(err)
	}
	if _, err := db(b).Put(ctx, []byte("u"), []byte("users"), kv.WithColumnFamily(usersCF)); err != nil {
		t.Fatal(err)
	}

	da, dB := mustDigest(t, a), mustDigest(t, b)
	if !bytes.Equal(da.Combined, dB.Combined) {
		t.Fatalf("same contents, different digests: %s / %s", familySummary(da), familySummary(dB))
	}
	if da.AppliedIndex == dB.AppliedIndex {
		t.Fatalf("test setup: both engines at index %d", da.AppliedIndex)
	}
	if da.AppliedIndex != a.AppliedIndex() {
		t.Fatalf("Digest.AppliedIndex = %d, engine at %d", da.AppliedIndex, a.AppliedIndex())
	}
	wantKeys := map[string]uint64{kv.DefaultColumnFamily: n, usersCF: 1}
	for _, d := range []*Digest{da, dB} {
		if len(d.Families) != 2 {
			t.Fatalf("digest has %d families, want 2", len(d.Families))
		}
		for _, f := range d.Families {
			if f.GetKeys() != wantKeys[f.GetColumnFamily()] {
				t.Fatalf("family %s counts %d keys, want %d", f.GetColumnFamily(), f.GetKeys(), wantKeys[f.GetColumnFamily()])
			}
		}
	}

	cases := []struct {
		name    string
		change  func(e *Engine) error
		changed string // the family whose digest must change
	}{
		{"one value differs", func(e *Engine) error { _, err := db(e).Put(ctx, key(7), []byte("v7!")); return err }, kv.DefaultColumnFamily},
		{"a key is missing", func(e *Engine) error { _, err := db(e).Delete(ctx, key(0)); return err }, kv.DefaultColumnFamily},
		{"an extra empty value", func(e *Engine) error {
			_, err := db(e).Put(ctx, []byte("v"), nil, kv.WithColumnFamily(usersCF))
			return err
		}, usersCF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := openEngine(t, testConfig(t.TempDir()))
			if err := e.RecoverSnapshot(bytes.NewReader(saveSnapshot(t, a)), nil); err != nil {
				t.Fatal(err)
			}
			if err := c.change(e); err != nil {
				t.Fatal(err)
			}
			d := mustDigest(t, e)
			if bytes.Equal(d.Combined, da.Combined) {
				t.Fatal("different contents, same combined digest")
			}
			for i, f := range d.Families {
				same := bytes.Equal(f.GetSha256(), da.Families[i].GetSha256())
				if same == (f.GetColumnFamily() == c.changed) {
					t.Fatalf("family %s: digest unchanged = %v", f.GetColumnFamily(), same)
				}
			}
		})
	}

	t.Run("key and value boundaries are part of the digest", func(t *testing.T) {
		// "ab"="c" and "a"="bc" must not hash alike.
		x := openEngine(t, testConfig(t.TempDir()))
		y := openEngine(t, testConfig(t.TempDir()))
		mustPut(t, x, "ab", "c")
		mustPut(t, y, "a", "bc")
		if bytes.Equal(mustDigest(t, x).Combined, mustDigest(t, y).Combined) {
			t.Fatal("digest ignores where a key ends")
		}
	})
	t.Run("family names are part of the digest", func(t *testing.T) {
		x := openEngine(t, testConfig(t.TempDir()))
		y := openEngine(t, testConfig(t.TempDir()))
		mustPut(t, x, "k", "v")
		mustPut(t, y, "k", "v", kv.WithColumnFamily(usersCF))
		if bytes.Equal(mustDigest(t, x).Combined, mustDigest(t, y).Combined) {
			t.Fatal("digest ignores which family holds a key")
		}
	})
}
