package server

import "testing"

// TestQuantile checks the quantile estimate of bucketed observations
// against hand-computed ones (linear inside a bucket, as Prometheus's
// histogram_quantile).
func TestQuantile(t *testing.T) {
	bounds := []float64{1, 2, 4}
	for _, c := range []struct {
		name       string
		cumulative []uint64
		n          uint64
		q, want    float64
	}{
		{"none", []uint64{0, 0, 0}, 0, 0.5, 0},
		{"all in the first bucket", []uint64{10, 10, 10}, 10, 0.5, 0.5},
		{"median in the second bucket", []uint64{2, 6, 10}, 10, 0.5, 1.75},
		{"p99 in the last bucket", []uint64{0, 0, 100}, 100, 0.99, 2 + 2*0.99},
		{"past the last bound", []uint64{0, 0, 5}, 10, 0.99, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := quantile(c.q, bounds, c.cumulative, c.n); got != c.want {
				t.Fatalf("quantile(%v) = %v, want %v", c.q, got, c.want)
			}
		})
	}
}
