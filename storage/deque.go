package storage

// deque is a growable ring buffer: push at the back, drop from the front, in
// amortised O(1) and without reallocating in a steady state. The conflict
// history and the versions kept for snapshot reads are windows that move
// forward with every write, which a plain slice would keep reallocating.
type deque[T any] struct {
	buf  []T
	head int // index in buf of the oldest element
	n    int
}

// Len is the number of elements.
func (d *deque[T]) Len() int { return d.n }

// At returns the i-th oldest element (0 is the oldest).
func (d *deque[T]) At(i int) *T { return &d.buf[(d.head+i)%len(d.buf)] }

// PushBack appends v.
func (d *deque[T]) PushBack(v T) {
	if d.n == len(d.buf) {
		grown := make([]T, max(16, 2*len(d.buf)))
		for i := range d.n {
			grown[i] = *d.At(i)
		}
		d.buf, d.head = grown, 0
	}
	d.buf[(d.head+d.n)%len(d.buf)] = v
	d.n++
}

// DropFront removes the k oldest elements.
func (d *deque[T]) DropFront(k int) {
	var zero T
	for range min(k, d.n) {
		d.buf[d.head] = zero // let the collector have what it referenced
		d.head = (d.head + 1) % len(d.buf)
		d.n--
	}
}

// Reset removes every element.
func (d *deque[T]) Reset() { *d = deque[T]{} }

// search returns the smallest i in [0, Len) for which f(At(i)) is true, or
// Len when there is none; f must be false then true along the deque.
func (d *deque[T]) search(f func(*T) bool) int {
	lo, hi := 0, d.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if !f(d.At(mid)) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
