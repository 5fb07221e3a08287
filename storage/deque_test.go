package storage

import (
	"math/rand/v2"
	"testing"
)

// TestDequeMatchesSlice drives a deque and a plain slice with the same
// random pushes and drops and checks they always hold the same elements.
func TestDequeMatchesSlice(t *testing.T) {
	var d deque[int]
	var want []int
	rng := rand.New(rand.NewPCG(1, 2))
	next := 0
	for step := range 20_000 {
		if rng.IntN(3) > 0 {
			d.PushBack(next)
			want = append(want, next)
			next++
		} else {
			k := rng.IntN(5)
			d.DropFront(k)
			want = want[min(k, len(want)):]
		}
		if d.Len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, d.Len(), len(want))
		}
		for i, w := range want {
			if got := *d.At(i); got != w {
				t.Fatalf("step %d: At(%d) = %d, want %d", step, i, got, w)
			}
		}
		if len(want) > 0 {
			probe := want[rng.IntN(len(want))]
			if i := d.search(func(v *int) bool { return *v >= probe }); *d.At(i) != probe {
				t.Fatalf("step %d: search(%d) found index %d holding %d", step, probe, i, *d.At(i))
			}
		}
	}
	d.Reset()
	if d.Len() != 0 {
		t.Fatal("Reset left elements")
	}
}
