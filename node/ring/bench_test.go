package ring

import (
	"fmt"
	"testing"
)

func BenchmarkPartitionOf(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("tenant/%d/object/%08d", i%7, i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		PartitionOf(keys[i%len(keys)], DefaultPartitions)
		i++
	}
}

func BenchmarkOwners(b *testing.B) {
	r := mustNew(b, idSets()[0].ids[:10], DefaultPartitions, 3)
	b.ReportAllocs()
	p := 0
	for b.Loop() {
		r.Owners(p % DefaultPartitions)
		p++
	}
}

func BenchmarkIsOwner(b *testing.B) {
	r := mustNew(b, idSets()[0].ids[:10], DefaultPartitions, 3)
	b.ReportAllocs()
	p := 0
	for b.Loop() {
		r.IsOwner(p%DefaultPartitions, "n7")
		p++
	}
}

func BenchmarkNew(b *testing.B) {
	for _, m := range []int{3, 5, 50} {
		ids := idSets()[0].ids[:m]
		b.Run(fmt.Sprintf("members=%d", m), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := New(ids, DefaultPartitions, 3); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
