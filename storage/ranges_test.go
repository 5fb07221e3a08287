package storage

import "testing"

// TestKeyRanges pins the interval logic every conflict check, clear range
// and snapshot read relies on: [begin, end) with an empty end open, and a
// range with begin == end empty — it holds no key and intersects nothing.
func TestKeyRanges(t *testing.T) {
	r := func(begin, end string) keyRange { return rangeOf("", []byte(begin), []byte(end)) }
	for _, c := range []struct {
		name       string
		a, b       keyRange
		intersects bool
	}{
		{"overlapping", r("a", "m"), r("k", "z"), true},
		{"nested", r("a", "z"), r("k", "l"), true},
		{"touching: end is exclusive", r("a", "m"), r("m", "z"), false},
		{"disjoint", r("a", "b"), r("x", "z"), false},
		{"open end reaches everything after", r("m", ""), r("x", "y"), true},
		{"open end starts at begin", r("m", ""), r("a", "m"), false},
		{"whole key space", r("", ""), r("k", "l"), true},
		{"point ranges", r("k", "k\x00"), r("k", "k\x00"), true},
		{"empty inside a range", r("m", "m"), r("a", "z"), false},
		{"empty at a range's begin", r("a", "a"), r("a", "z"), false},
		{"empty against the whole key space", r("q", "q"), r("", ""), false},
		{"empty against an open end", r("q", "q"), r("a", ""), false},
		{"two equal empty ranges", r("m", "m"), r("m", "m"), false},
		{"empty against a point", r("k", "k"), r("k", "k\x00"), false},
		{"other column family", rangeOf("users", []byte("a"), []byte("z")), r("a", "z"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.a.intersects(c.b); got != c.intersects {
				t.Errorf("%v intersects %v = %v, want %v", c.a, c.b, got, c.intersects)
			}
			if got := c.b.intersects(c.a); got != c.intersects {
				t.Errorf("%v intersects %v = %v, want %v (not symmetric)", c.b, c.a, got, c.intersects)
			}
		})
	}
	for _, c := range []struct {
		r     keyRange
		empty bool
		in    []string
		out   []string
	}{
		{r("m", "m"), true, nil, []string{"m", "a", "z"}},
		{r("a", "c"), false, []string{"a", "b", "bzzz"}, []string{"c", "0"}},
		{r("a", ""), false, []string{"a", "zzz", "\xff"}, []string{"0"}},
		{r("", ""), false, []string{"a", "\x00"}, nil},
	} {
		if c.r.empty() != c.empty {
			t.Errorf("%v empty = %v, want %v", c.r, c.r.empty(), c.empty)
		}
		for _, k := range c.in {
			if !c.r.contains([]byte(k)) {
				t.Errorf("%v does not contain %q", c.r, k)
			}
		}
		for _, k := range c.out {
			if c.r.contains([]byte(k)) {
				t.Errorf("%v contains %q", c.r, k)
			}
		}
	}
}
