package store

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// benchValue is the size of the value each benchmark write stores.
const benchValue = 128

// benchPut stores a fresh one-sibling object: the cost of a first write.
func benchPut(i int64) MergeFunc {
	v := fmt.Sprintf("%0*d", benchValue, i)
	return put(v)
}

func benchKey(i int64) (int, string) {
	return int(i % 1024), "bench/" + strconv.FormatInt(i, 10)
}

// BenchmarkUpdateSerial is one writer waiting for each write: every write
// is its own batch, so ns/op is the commit-and-fsync latency.
func BenchmarkUpdateSerial(b *testing.B) {
	s, _ := openTest(b, Options{})
	ctx := context.Background()
	before := s.Stats()
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		p, key := benchKey(i)
		if _, err := s.Update(ctx, p, key, benchPut(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	report(b, i, before, s.Stats())
}

// BenchmarkUpdateParallel runs exactly 16 or 64 writers, each waiting for
// its write before the next, as concurrent coordinators would: writes
// queue during each fsync and share the next one.
func BenchmarkUpdateParallel(b *testing.B) {
	for _, writers := range []int{16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, _ := openTest(b, Options{})
			ctx := context.Background()
			before := s.Stats()
			b.ReportAllocs()
			b.ResetTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						p, key := benchKey(i)
						if _, err := s.Update(ctx, p, key, benchPut(i)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			report(b, int64(b.N), before, s.Stats())
		})
	}
}

// report adds throughput and batching to the benchmark line.
func report(b *testing.B, ops int64, before, after Stats) {
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(float64(ops)/sec, "ops/s")
	}
	if n := after.Batches - before.Batches; n > 0 {
		b.ReportMetric(float64(after.Ops-before.Ops)/float64(n), "ops/batch")
	}
}
