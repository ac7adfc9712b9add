package merkle

import (
	"maps"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

func benchDigests(n int) (keys []string, m map[string]uint64) {
	m = map[string]uint64{}
	for i := range n {
		k := key(i)
		keys = append(keys, k)
		m[k] = uint64(i)*0x9e3779b97f4a7c15 | 1
	}
	return keys, m
}

// BenchmarkUpdate: one overwrite in a tree of 10k keys.
func BenchmarkUpdate(b *testing.B) {
	keys, m := benchDigests(10000)
	tr := rebuilt(b, DefaultShape(), m)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[i%len(keys)]
		tr.Update(k, m[k], m[k]+2)
		m[k] += 2
		i++
	}
}

// BenchmarkRebuild: a tree from a scan of 10k keys' digests.
func BenchmarkRebuild(b *testing.B) {
	_, m := benchDigests(10000)
	tr := mustNew(b, DefaultShape())
	b.ReportAllocs()
	for b.Loop() {
		tr.Rebuild(maps.All(m))
	}
}

// BenchmarkDigest: a record of one 1 KiB value with a 3-entry clock.
func BenchmarkDigest(b *testing.B) {
	o := &protocol.Object{
		Clock:    protocol.Clock{dot("node-01", 7), dot("node-02", 3), dot("node-03", 9)},
		Siblings: []protocol.Sibling{{Dot: dot("node-03", 9), Value: make([]byte, 1024), Time: 1}},
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		Digest("tenant/3/obj/12345", o)
	}
}

// BenchmarkExchange: two trees of 10k keys that differ in 10.
func BenchmarkExchange(b *testing.B) {
	_, m := benchDigests(10000)
	ta := rebuilt(b, DefaultShape(), m)
	for i := range 10 {
		m[key(i*997)]++
	}
	tb := rebuilt(b, DefaultShape(), m)
	b.ReportAllocs()
	for b.Loop() {
		exchange(b, ta, tb)
	}
}
