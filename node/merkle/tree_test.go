package merkle

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

func mustNew(t testing.TB, s Shape) *Tree {
	t.Helper()
	tr, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// rebuilt is the reference: the tree of a key -> digest map.
func rebuilt(t testing.TB, s Shape, m map[string]uint64) *Tree {
	tr := mustNew(t, s)
	tr.Rebuild(maps.All(m))
	return tr
}

// sameTree compares every node, and checks the inner nodes are the sums
// of their children.
func sameTree(t testing.TB, got, want *Tree) {
	t.Helper()
	for l := 0; l <= got.shape.Depth; l++ {
		g, w := got.Level(l), want.Level(l)
		for i := range g {
			if g[i] != w[i] {
				t.Fatalf("level %d node %d: %#x, want %#x", l, i, g[i], w[i])
			}
		}
	}
	c := &Tree{shape: got.shape, shift: got.shift, off: got.off, nodes: slices.Clone(got.nodes)}
	c.sumUp()
	if !slices.Equal(c.nodes, got.nodes) {
		t.Fatal("an inner node is not the sum of its children")
	}
}

// TestNewSizes: New allocates every level, and refuses a bad shape.
func TestNewSizes(t *testing.T) {
	if tr := mustNew(t, DefaultShape()); len(tr.nodes) != 4369 {
		t.Errorf("default tree: %d nodes, want 4369", len(tr.nodes))
	}
	if _, err := New(Shape{Fanout: 3, Depth: 2}); err == nil {
		t.Error("New of an invalid shape: no error")
	}
}

var testShapes = []Shape{DefaultShape(), {Fanout: 2, Depth: 5}, {Fanout: 4, Depth: 2}, {Fanout: 256, Depth: 1}}

// TestIncrementalEqualsRebuild: a tree kept by Update through thousands of
// random puts, overwrites, no-op writes and deletes is the tree a rebuild
// from the final records gives.
func TestIncrementalEqualsRebuild(t *testing.T) {
	for _, s := range testShapes {
		for seed := range uint64(4) {
			rng := rand.New(rand.NewPCG(seed, 2))
			tr := mustNew(t, s)
			m := map[string]uint64{}
			for op := range 5000 {
				k := key(rng.IntN(600))
				old := m[k]
				var d uint64
				switch p := rng.IntN(10); {
				case p < 6: // put or overwrite
					d = rng.Uint64() | 1
				case p < 7: // a write that leaves the record as it was
					d = old
				default: // delete (purge): absent again
					d = 0
				}
				tr.Update(k, old, d)
				if d == 0 {
					delete(m, k)
				} else {
					m[k] = d
				}
				if op%1000 == 999 {
					sameTree(t, tr, rebuilt(t, s, m))
				}
			}
			if len(m) < 100 {
				t.Fatalf("only %d keys at the end", len(m))
			}
			// And with real digests: equal records, equal trees.
			tr2 := mustNew(t, s)
			for k := range m {
				o := &protocol.Object{Clock: protocol.Clock{dot("a", 1)}, Siblings: []protocol.Sibling{sib("a", 1, k, 1)}}
				tr2.Update(k, 0, Digest(k, o))
				tr.Update(k, m[k], Digest(k, o))
				m[k] = Digest(k, o)
			}
			sameTree(t, tr, tr2)
			sameTree(t, tr, rebuilt(t, s, m))
		}
	}
}

// TestOrderIndependence: the same updates in any order give the same tree,
// even when a key's later change is applied before its earlier one (the
// sum of its deltas is the same).
func TestOrderIndependence(t *testing.T) {
	type upd struct {
		key      string
		old, new uint64
	}
	for _, s := range testShapes {
		for seed := range uint64(3) {
			rng := rand.New(rand.NewPCG(seed, 3))
			var ups []upd
			final := map[string]uint64{}
			for i := range 300 {
				k, cur := key(i), uint64(0)
				for range rng.IntN(5) {
					d := uint64(0)
					if rng.IntN(4) > 0 {
						d = rng.Uint64() | 1
					}
					ups = append(ups, upd{k, cur, d})
					cur = d
				}
				if cur != 0 {
					final[k] = cur
				}
			}
			want := rebuilt(t, s, final)
			// Interleavings that keep each key's order, and one that does not.
			for round := range 4 {
				order := slices.Clone(ups)
				if round < 3 {
					order = interleave(rng, ups, func(u upd) string { return u.key })
				} else {
					rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				}
				tr := mustNew(t, s)
				for _, u := range order {
					tr.Update(u.key, u.old, u.new)
				}
				sameTree(t, tr, want)
			}
		}
	}
}

// interleave returns a random merge of the per-key subsequences of s,
// each kept in its order.
func interleave[T any](rng *rand.Rand, s []T, key func(T) string) []T {
	queues := map[string][]T{}
	var keys []string
	for _, x := range s {
		k := key(x)
		if _, ok := queues[k]; !ok {
			keys = append(keys, k)
		}
		queues[k] = append(queues[k], x)
	}
	var out []T
	for len(keys) > 0 {
		i := rng.IntN(len(keys))
		q := queues[keys[i]]
		out = append(out, q[0])
		if queues[keys[i]] = q[1:]; len(q) == 1 {
			keys = slices.Delete(keys, i, i+1)
		}
	}
	return out
}

// TestRebuildBucket: a tree out of step with its records (a change
// reported with the wrong old digest) is found by Diff against the
// records' tree and set right bucket by bucket from a full scan.
func TestRebuildBucket(t *testing.T) {
	s := DefaultShape()
	m := map[string]uint64{}
	for i := range 2000 {
		m[key(i)] = uint64(i) + 1
	}
	tr := rebuilt(t, s, m)
	tr.Update(key(5), 999, 7) // should have been 6 -> 7
	m[key(5)] = 7
	tr.Update(key(9), 0, 11) // reported twice
	diff, err := Diff(tr, rebuilt(t, s, m))
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{s.Bucket(key(5)), s.Bucket(key(9))}; !slices.Equal(diff, sortedUnique(want)) {
		t.Fatalf("Diff = %v, want %v", diff, want)
	}
	for _, b := range diff {
		tr.RebuildBucket(b, maps.All(m))
	}
	sameTree(t, tr, rebuilt(t, s, m))
}

func sortedUnique(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// TestSumsKeepDuplicatesAndKeys: two mistakes a set hash could hide. A
// change reported twice must not cancel out (an XOR would make the key
// look absent, like a replica that truly lacks it), and two keys of one
// bucket swapping digests is a difference (the element mixes in the key).
func TestSumsKeepDuplicatesAndKeys(t *testing.T) {
	s := DefaultShape()
	twice, none := mustNew(t, s), mustNew(t, s)
	twice.Update("k", 0, 42)
	twice.Update("k", 0, 42)
	if d, _ := Diff(twice, none); len(d) != 1 {
		t.Errorf("a key reported twice looks like no key: Diff = %v", d)
	}

	var k1, k2 string
	for i := 0; k2 == ""; i++ { // two keys of one bucket
		if k := key(i); k1 == "" {
			k1 = k
		} else if s.Bucket(k) == s.Bucket(k1) {
			k2 = k
		}
	}
	a, b := mustNew(t, s), mustNew(t, s)
	a.Update(k1, 0, 1)
	a.Update(k2, 0, 2)
	b.Update(k1, 0, 2)
	b.Update(k2, 0, 1)
	if d, _ := Diff(a, b); !slices.Equal(d, []int{s.Bucket(k1)}) {
		t.Errorf("keys of one bucket swapping digests: Diff = %v", d)
	}
}
