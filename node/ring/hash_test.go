package ring

import (
	"fmt"
	"math"
	"testing"
)

// The key hash is part of the wire contract: a node on another Go version,
// or a smart client, must find the same partition. These values are fixed
// forever; a change here remaps every key in every cluster.
func TestPartitionOfGolden(t *testing.T) {
	tests := []struct {
		key    string
		hash   uint64
		q256   int
		q7     int
		q1     int
		q1024  int
		q65536 int
	}{
		{"", 0xf52a15e9a9b5e89b, 155, 5, 0, 155, 59547},
		{"a", 0x02c0bdbf481420f8, 248, 3, 0, 248, 8440},
		{"user:1", 0x3290bc1a92ad86c2, 194, 2, 0, 706, 34498},
		{"user:2", 0x78c78a5c53b3ed30, 48, 2, 0, 304, 60720},
		{"kvmesh", 0x21fdbc6bceda8ea8, 168, 5, 0, 680, 36520},
		{"ключ", 0x95f04555fa3bf374, 116, 5, 0, 884, 62324},
		{"a/b/c?x=1", 0xb0d661d81124bbd1, 209, 5, 0, 977, 48081},
	}
	for _, tt := range tests {
		if got := keyHash(tt.key); got != tt.hash {
			t.Errorf("keyHash(%q) = %#016x, want %#016x", tt.key, got, tt.hash)
		}
		for _, c := range []struct{ q, want int }{{256, tt.q256}, {7, tt.q7}, {1, tt.q1}, {1024, tt.q1024}, {65536, tt.q65536}} {
			if got := PartitionOf(tt.key, c.q); got != c.want {
				t.Errorf("PartitionOf(%q, %d) = %d, want %d", tt.key, c.q, got, c.want)
			}
		}
	}
}

// mix64 is the SplitMix64 output function: fed the generator's state it
// reproduces the published SplitMix64 sequence for seed 0.
func TestMix64IsSplitMix64(t *testing.T) {
	want := []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f}
	var state uint64
	for i, w := range want {
		state += 0x9e3779b97f4a7c15
		if got := mix64(state); got != w {
			t.Errorf("splitmix64 output %d = %#016x, want %#016x", i, got, w)
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

func TestPartitionOfPanicsOnInvalidQ(t *testing.T) {
	for _, q := range []int{0, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("PartitionOf(key, %d) did not panic", q)
				}
			}()
			PartitionOf("key", q)
		}()
	}
}

func TestPartitionOfDoesNotAllocate(t *testing.T) {
	key := "some/key/of/moderate/length"
	if n := testing.AllocsPerRun(100, func() { PartitionOf(key, DefaultPartitions) }); n != 0 {
		t.Errorf("PartitionOf allocates %v times per call", n)
	}
}
