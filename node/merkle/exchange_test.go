package merkle

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// replicas builds two replicas' records of one partition: b is a copy of
// a (siblings reordered) with some keys missing, some a write ahead, some
// deleted (a tombstone against a value), some with a concurrent sibling
// and some a write a has not seen.
func replicas(t testing.TB, rng *rand.Rand, n, missing, newer, deleted, concurrent, extra int) (a, b map[string]*protocol.Object) {
	a, b = map[string]*protocol.Object{}, map[string]*protocol.Object{}
	write := func(o *protocol.Object, ctx protocol.Clock, node string, s protocol.Sibling) *protocol.Object {
		o, err := version.Update(o, ctx, node, s)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	val := func() []byte { return []byte(strconv.FormatUint(rng.Uint64(), 36)) }
	for i := range n {
		o := write(nil, nil, "n1", protocol.Sibling{Value: val(), Time: int64(i)})
		if i%5 == 0 { // two siblings
			o = write(o, nil, "n2", protocol.Sibling{Value: val(), Time: int64(i)})
		}
		a[key(i)] = o
		c := clone(o)
		slices.Reverse(c.Siblings)
		b[key(i)] = c
	}
	keys := slices.Sorted(maps.Keys(a))
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	take := func(k int) []string { s := keys[:k]; keys = keys[k:]; return s }
	for _, k := range take(missing) {
		delete(b, k)
	}
	for _, k := range take(newer) {
		b[k] = write(a[k], a[k].Clock, "n2", protocol.Sibling{Value: val()})
	}
	for _, k := range take(deleted) {
		b[k] = write(a[k], a[k].Clock, "n3", protocol.Sibling{Deleted: true})
	}
	for _, k := range take(concurrent) {
		b[k] = write(a[k], nil, "n3", protocol.Sibling{Value: val()})
	}
	for i := range extra {
		b[key(n+i)] = write(nil, nil, "n2", protocol.Sibling{Value: val()})
	}
	return a, b
}

func digests(m map[string]*protocol.Object) map[string]uint64 {
	out := map[string]uint64{}
	for k, o := range m {
		out[k] = Digest(k, o)
	}
	return out
}

// wantBuckets is the reference: the buckets of the keys whose objects are
// not version.Equal.
func wantBuckets(s Shape, a, b map[string]*protocol.Object) (buckets []int, keys []string) {
	for k := range maps.Keys(a) {
		if !version.Equal(a[k], b[k]) {
			keys = append(keys, k)
		}
	}
	for k := range maps.Keys(b) {
		if _, ok := a[k]; !ok && !version.Equal(nil, b[k]) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		buckets = append(buckets, s.Bucket(k))
	}
	slices.Sort(keys)
	return sortedUnique(buckets), keys
}

type scenario struct {
	name                                          string
	n, missing, newer, deleted, concurrent, extra int
}

var scenarios = []scenario{
	{"identical", 2000, 0, 0, 0, 0, 0},
	{"empty", 0, 0, 0, 0, 0, 0},
	{"a few missing", 2000, 5, 0, 0, 0, 0},
	{"a few newer", 2000, 0, 5, 0, 0, 0},
	{"tombstone vs value", 2000, 0, 0, 3, 0, 0},
	{"concurrent siblings", 2000, 0, 0, 0, 4, 0},
	{"b has more", 2000, 0, 0, 0, 0, 6},
	{"everything", 2000, 7, 7, 7, 7, 7},
	{"one key", 1, 0, 1, 0, 0, 0},
	{"half missing", 1000, 500, 0, 0, 0, 0},
}

// TestDiffFindsDifferingBuckets: Diff names exactly the buckets of the keys
// whose records differ, and DiffKeys over those buckets exactly the keys.
// a's tree is rebuilt from a scan, b's kept by updates.
func TestDiffFindsDifferingBuckets(t *testing.T) {
	for seed := range uint64(3) {
		for _, sc := range scenarios {
			rng := rand.New(rand.NewPCG(seed, 4))
			a, b := replicas(t, rng, sc.n, sc.missing, sc.newer, sc.deleted, sc.concurrent, sc.extra)
			da, db := digests(a), digests(b)
			for _, s := range testShapes {
				ta, tb := rebuilt(t, s, da), mustNew(t, s)
				for k, d := range db {
					tb.Update(k, 0, d)
				}
				buckets, keys := wantBuckets(s, a, b)
				for _, pair := range [][2]*Tree{{ta, tb}, {tb, ta}} {
					got, err := Diff(pair[0], pair[1])
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(got, buckets) {
						t.Fatalf("%v seed %d %s: Diff = %v, want %v", s, seed, sc.name, got, buckets)
					}
				}
				if (ta.Root() == tb.Root()) != (len(keys) == 0) {
					t.Fatalf("%s: roots equal %v with %d differing keys", sc.name, ta.Root() == tb.Root(), len(keys))
				}
				if got := DiffKeys(items(s, da, buckets), items(s, db, buckets)); !slices.Equal(got, keys) {
					t.Fatalf("%v seed %d %s: DiffKeys = %v, want %v", s, seed, sc.name, got, keys)
				}
			}
		}
	}
}

// items lists a replica's keys in the given buckets, as the other side
// would receive them.
func items(s Shape, m map[string]uint64, buckets []int) []Item {
	var out []Item
	for k, d := range m {
		if _, ok := slices.BinarySearch(buckets, s.Bucket(k)); ok {
			out = append(out, Item{k, d})
		}
	}
	return out
}

// exchange runs Start/Step between a and b, alternating sides, and counts
// the messages and the hashes they carry.
func exchange(t testing.TB, a, b *Tree) (diff []int, msgs, hashes int) {
	f := a.Start()
	msgs, hashes = 1, len(f.Hashes)
	side := [2]*Tree{b, a}
	for i := 0; ; i++ {
		next, d, err := side[i%2].Step(f)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if len(next.Nodes) == 0 {
			return d, msgs, hashes
		}
		if d != nil {
			t.Fatal("Step returned both a next frontier and a diff")
		}
		f = next
		msgs++
		hashes += len(f.Hashes)
	}
}

// TestExchangeMatchesDiff: the level-by-level exchange reaches the buckets
// Diff finds, in at most Depth+1 messages, carrying at most
// 1 + Depth*Fanout*(differing buckets) hashes: it never looks below a node
// the replicas agree on.
func TestExchangeMatchesDiff(t *testing.T) {
	for seed := range uint64(3) {
		for _, sc := range scenarios {
			rng := rand.New(rand.NewPCG(seed, 5))
			a, b := replicas(t, rng, sc.n, sc.missing, sc.newer, sc.deleted, sc.concurrent, sc.extra)
			da, db := digests(a), digests(b)
			for _, s := range testShapes {
				ta, tb := rebuilt(t, s, da), rebuilt(t, s, db)
				want, _ := Diff(ta, tb)
				for _, pair := range [][2]*Tree{{ta, tb}, {tb, ta}} {
					got, msgs, hashes := exchange(t, pair[0], pair[1])
					if !slices.Equal(got, want) {
						t.Fatalf("%v %s: exchange found %v, Diff %v", s, sc.name, got, want)
					}
					if msgs > s.Depth+1 {
						t.Errorf("%v %s: %d messages", s, sc.name, msgs)
					}
					if bound := 1 + s.Depth*s.Fanout*len(want); hashes > bound {
						t.Errorf("%v %s: %d hashes for %d differing buckets, bound %d", s, sc.name, hashes, len(want), bound)
					}
					if len(want) == 0 && (msgs != 1 || hashes != 1) {
						t.Errorf("%v %s: agreeing replicas exchanged %d messages, %d hashes", s, sc.name, msgs, hashes)
					}
				}
			}
		}
	}
}

func TestDiffShapeMismatch(t *testing.T) {
	if _, err := Diff(mustNew(t, DefaultShape()), mustNew(t, Shape{16, 2})); err == nil {
		t.Fatal("Diff of two shapes: no error")
	}
}

// TestStepRejectsMalformed: a frontier from the network that does not fit
// the tree is an error, never a panic or an out-of-range read.
func TestStepRejectsMalformed(t *testing.T) {
	tr := mustNew(t, DefaultShape())
	tr.Update("k", 0, 1)
	for name, f := range map[string]Frontier{
		"level -1":            {Level: -1, Nodes: []int{0}, Hashes: []uint64{0}},
		"level past leaves":   {Level: 4, Nodes: []int{0}, Hashes: []uint64{0}},
		"more hashes":         {Level: 1, Nodes: []int{0}, Hashes: []uint64{0, 1}},
		"fewer hashes":        {Level: 1, Nodes: []int{0, 1}, Hashes: []uint64{0}},
		"node past the level": {Level: 1, Nodes: []int{16}, Hashes: []uint64{0}},
		"negative node":       {Level: 2, Nodes: []int{-1}, Hashes: []uint64{0}},
		"repeated node":       {Level: 2, Nodes: []int{3, 3}, Hashes: []uint64{0, 0}},
		"descending nodes":    {Level: 2, Nodes: []int{4, 3}, Hashes: []uint64{0, 0}},
		"root twice":          {Level: 0, Nodes: []int{0, 0}, Hashes: []uint64{0, 0}},
	} {
		next, diff, err := tr.Step(f)
		if !errors.Is(err, protocol.ErrMalformed) || len(next.Nodes) != 0 || diff != nil {
			t.Errorf("%s: next %v, diff %v, err %v; want ErrMalformed", name, next, diff, err)
		}
	}
	// An empty frontier is well formed: nothing to compare.
	if next, diff, err := tr.Step(Frontier{Level: 2}); err != nil || len(next.Nodes) != 0 || diff != nil {
		t.Errorf("empty frontier: %v %v %v", next, diff, err)
	}
}

func TestDiffKeys(t *testing.T) {
	for _, tc := range []struct {
		name        string
		mine, their []Item
		want        []string
	}{
		{"both empty", nil, nil, nil},
		{"equal, any order", []Item{{"a", 1}, {"b", 2}}, []Item{{"b", 2}, {"a", 1}}, nil},
		{"other digest", []Item{{"a", 1}, {"b", 2}}, []Item{{"a", 1}, {"b", 3}}, []string{"b"}},
		{"mine only", []Item{{"a", 1}, {"c", 2}}, []Item{{"a", 1}}, []string{"c"}},
		{"theirs only", []Item{{"b", 1}}, []Item{{"a", 1}, {"b", 1}, {"c", 4}}, []string{"a", "c"}},
		{"digest 0 is absent", []Item{{"a", 0}, {"b", 0}}, []Item{{"b", 5}}, []string{"b"}},
		{"duplicate listing", []Item{{"a", 1}, {"a", 2}}, []Item{{"a", 1}}, []string{"a"}},
	} {
		mine := slices.Clone(tc.mine)
		if got := DiffKeys(tc.mine, tc.their); !slices.Equal(got, tc.want) {
			t.Errorf("%s: DiffKeys = %q, want %q", tc.name, got, tc.want)
		}
		if got := DiffKeys(tc.their, tc.mine); !slices.Equal(got, tc.want) {
			t.Errorf("%s reversed: DiffKeys = %q, want %q", tc.name, got, tc.want)
		}
		if !slices.Equal(mine, tc.mine) {
			t.Errorf("%s: DiffKeys modified its input", tc.name)
		}
	}
}

// FuzzStep: any frontier gets an error or an answer that stays inside the
// tree; never a panic.
func FuzzStep(f *testing.F) {
	f.Add(0, []byte{0, 0}, uint64(1), 1)
	f.Add(2, []byte{0, 3, 0, 4}, uint64(0), 2)
	f.Add(3, []byte{0x0f, 0xff}, uint64(7), 1)
	tr := mustNew(f, DefaultShape())
	for i := range 500 {
		tr.Update(key(i), 0, uint64(i)+1)
	}
	f.Fuzz(func(t *testing.T, level int, nodes []byte, h uint64, nh int) {
		fr := Frontier{Level: level}
		for i := 0; i+1 < len(nodes); i += 2 {
			fr.Nodes = append(fr.Nodes, int(int16(nodes[i])<<8|int16(nodes[i+1])))
		}
		for i := range min(max(nh, 0), 4096) {
			fr.Hashes = append(fr.Hashes, h+uint64(i))
		}
		next, diff, err := tr.Step(fr)
		if err != nil {
			return
		}
		leaves := tr.Shape().Leaves()
		for _, b := range diff {
			if b < 0 || b >= leaves {
				t.Fatalf("bucket %d", b)
			}
		}
		if len(next.Nodes) > 0 && (next.Level != level+1 || len(next.Nodes) != len(next.Hashes) || len(next.Nodes) > len(fr.Nodes)*16) {
			t.Fatalf("next %+v for %+v", next, fr)
		}
	})
}
