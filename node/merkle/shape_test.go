package merkle

import (
	"strconv"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

func key(i int) string { return "tenant/" + strconv.Itoa(i%7) + "/obj/" + strconv.Itoa(i) }

func TestShapeValidate(t *testing.T) {
	for _, tc := range []struct {
		s  Shape
		ok bool
	}{
		{DefaultShape(), true}, {Shape{2, 1}, true}, {Shape{2, 16}, true}, {Shape{256, 2}, true}, {Shape{16, 4}, true},
		{Shape{0, 3}, false}, {Shape{1, 3}, false}, {Shape{3, 3}, false}, {Shape{512, 1}, false}, {Shape{-16, 3}, false},
		{Shape{16, 0}, false}, {Shape{16, -1}, false}, {Shape{2, 17}, false}, {Shape{16, 5}, false}, {Shape{256, 3}, false},
		{Shape{2, 1 << 62}, false},
	} {
		if err := tc.s.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v, want ok %v", tc.s, err, tc.ok)
		}
	}
	if s := DefaultShape(); s.Leaves() != 4096 || s.Width(2) != 256 {
		t.Errorf("default shape: %d leaves, %d nodes at level 2", s.Leaves(), s.Width(2))
	}
}

// TestBucketSpread: the keys of one partition spread over all buckets,
// because the bucket hash is independent of the partition hash.
func TestBucketSpread(t *testing.T) {
	const q = 256
	s := Shape{Fanout: 16, Depth: 2}
	counts := make([]int, s.Leaves())
	n := 0
	for i := 0; n < 40*s.Leaves(); i++ {
		k := key(i)
		if protocol.PartitionOf(k, q) == 7 {
			counts[s.Bucket(k)]++
			n++
		}
	}
	// Chi-square with 255 degrees of freedom: mean 255, sd about 23.
	mean := float64(n) / float64(len(counts))
	chi := 0.0
	for _, c := range counts {
		chi += (float64(c) - mean) * (float64(c) - mean) / mean
	}
	if chi > 255+6*23 {
		t.Fatalf("keys of one partition crowd the buckets: chi-square %.0f, counts %v", chi, counts)
	}
}
