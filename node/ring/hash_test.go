package ring

import (
	"fmt"
	"math"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

// The key hash is part of the wire contract, pinned by protocol's golden
// test; the ring must place keys exactly as protocol.PartitionOf does.
func TestPartitionOfIsProtocols(t *testing.T) {
	for _, key := range []string{"", "a", "user:1", "ключ", "a/b/c?x=1"} {
		for _, q := range []int{1, 7, 256, 1024, 65536} {
			if got, want := PartitionOf(key, q), protocol.PartitionOf(key, q); got != want {
				t.Errorf("PartitionOf(%q, %d) = %d, protocol says %d", key, q, got, want)
			}
		}
	}
}

// Keys that differ only in a trailing counter, the common case, spread
// evenly over partitions for any q, including small powers of two where
// FNV's weak low bits would show. A chi-squared test; the keys are fixed,
// so it cannot flake.
func TestPartitionOfUniform(t *testing.T) {
	const n = 100000
	for _, format := range []string{"user:%d", "%d", "tenant/42/order/%08d"} {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf(format, i)
		}
		for _, q := range []int{2, 3, 4, 7, 8, 16, 64, 256, 1000, 1024} {
			counts := make([]int, q)
			for _, key := range keys {
				p := PartitionOf(key, q)
				if p < 0 || p >= q {
					t.Fatalf("PartitionOf(%q, %d) = %d, out of range", key, q, p)
				}
				counts[p]++
			}
			expected := float64(n) / float64(q)
			chi2 := 0.0
			for _, c := range counts {
				d := float64(c) - expected
				chi2 += d * d / expected
			}
			// chi2 has mean q-1 and variance 2(q-1); allow 6 standard
			// deviations, plus a floor for tiny q.
			df := float64(q - 1)
			if limit := df + 6*math.Sqrt(2*df) + 10; chi2 > limit {
				t.Errorf("q=%d keys %q: chi2 = %.1f, want <= %.1f", q, format, chi2, limit)
			}
		}
	}
}

func TestPartitionOfDoesNotAllocate(t *testing.T) {
	key := "some/key/of/moderate/length"
	if n := testing.AllocsPerRun(100, func() { PartitionOf(key, DefaultPartitions) }); n != 0 {
		t.Errorf("PartitionOf allocates %v times per call", n)
	}
}
