package quorum

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

func put(t testing.TB, local *protocol.Object, ctx protocol.Clock, node, value string) *protocol.Object {
	t.Helper()
	o, err := version.Update(local, ctx, node, protocol.Sibling{Value: []byte(value)})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func deepCopy(o *protocol.Object) *protocol.Object {
	if o == nil {
		return nil
	}
	c := &protocol.Object{Clock: slices.Clone(o.Clock)}
	for _, s := range o.Siblings {
		s.Value = slices.Clone(s.Value)
		c.Siblings = append(c.Siblings, s)
	}
	return c
}

// identical is stricter than version.Equal: same sibling order too.
func identical(a, b *protocol.Object) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Clock, b.Clock) && slices.EqualFunc(a.Siblings, b.Siblings, func(x, y protocol.Sibling) bool {
		return x.Dot == y.Dot && string(x.Value) == string(y.Value) && x.Deleted == y.Deleted && x.Time == y.Time
	})
}

func TestMergeReads(t *testing.T) {
	v1 := put(t, nil, nil, "n1", "v1")
	v2 := put(t, v1, v1.Clock, "n1", "v2") // supersedes v1
	w := put(t, v1, nil, "n2", "w")        // concurrent with v2
	both := version.Sync(v2, w)
	reversed := &protocol.Object{Clock: both.Clock, Siblings: []protocol.Sibling{both.Siblings[1], both.Siblings[0]}}
	for _, tc := range []struct {
		name    string
		replies map[string]*protocol.Object
		want    *protocol.Object
		stale   []string
	}{
		{name: "no replies"},
		{name: "all absent", replies: map[string]*protocol.Object{"n1": nil, "n2": nil}},
		{name: "all empty", replies: map[string]*protocol.Object{"n1": {}, "n2": nil, "n3": {Siblings: []protocol.Sibling{}}}},
		{
			name:    "only one has it",
			replies: map[string]*protocol.Object{"n3": nil, "n1": v1, "n2": nil},
			want:    v1, stale: []string{"n2", "n3"},
		},
		{
			name:    "all agree",
			replies: map[string]*protocol.Object{"n1": v2, "n2": deepCopy(v2), "n3": deepCopy(v2)},
			want:    v2,
		},
		{
			name:    "one behind",
			replies: map[string]*protocol.Object{"n1": v2, "n2": v1, "n3": v2},
			want:    v2, stale: []string{"n2"},
		},
		{
			name:    "concurrent: everyone misses something",
			replies: map[string]*protocol.Object{"n1": v2, "n2": w},
			want:    both, stale: []string{"n1", "n2"},
		},
		{
			name:    "superseded sibling still held",
			replies: map[string]*protocol.Object{"n1": both, "n2": version.Sync(v1, w), "n3": w},
			want:    both, stale: []string{"n2", "n3"},
		},
		{
			name:    "sibling order does not make a replica stale",
			replies: map[string]*protocol.Object{"n1": both, "n2": reversed},
			want:    both,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := map[string]*protocol.Object{}
			for n, o := range tc.replies {
				before[n] = deepCopy(o)
			}
			got, stale := MergeReads(version.KeepSiblings, tc.replies)
			if (got == nil) != (tc.want == nil) || !version.Equal(got, tc.want) {
				t.Fatalf("merged = %+v, want %+v", got, tc.want)
			}
			if !slices.Equal(stale, tc.stale) {
				t.Fatalf("stale = %v, want %v", stale, tc.stale)
			}
			for n, o := range tc.replies {
				if !identical(o, before[n]) {
					t.Fatalf("MergeReads modified the reply of %s", n)
				}
			}
		})
	}
}

// TestMergeReadsProperties runs random histories of a key over five
// replicas and checks MergeReads on random subsets of their objects: the
// merge is the Sync of all replies in any order, it has seen every reply,
// every value it returns came from some reply, the stale list is exactly
// the replies that differ from it, and repairing them makes all agree.
func TestMergeReadsProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	nodes := []string{"n1", "n2", "n3", "n4", "n5"}
	rounds := 300
	if testing.Short() {
		rounds = 50
	}
	for round := range rounds {
		replicas := map[string]*protocol.Object{}
		var ctxs []protocol.Clock
		for step := range 40 {
			switch rng.Intn(3) {
			case 0: // write at a replica with some earlier context, replicate to some
				n := nodes[rng.Intn(len(nodes))]
				var ctx protocol.Clock
				if len(ctxs) > 0 && rng.Intn(3) > 0 {
					ctx = ctxs[rng.Intn(len(ctxs))]
				}
				o, err := version.Update(replicas[n], ctx, n, protocol.Sibling{Value: fmt.Appendf(nil, "r%d-s%d", round, step)})
				if err != nil {
					continue
				}
				replicas[n] = o
				ctxs = append(ctxs, o.Clock)
				for _, m := range nodes {
					if rng.Intn(2) == 0 {
						replicas[m] = version.Sync(replicas[m], o)
					}
				}
			case 1: // a read: its context may be used later
				merged, _ := MergeReads(version.KeepSiblings, replicas)
				if merged != nil {
					ctxs = append(ctxs, merged.Clock)
				}
			default: // anti-entropy
				a, b := nodes[rng.Intn(len(nodes))], nodes[rng.Intn(len(nodes))]
				m := version.Sync(replicas[a], replicas[b])
				replicas[a], replicas[b] = m, m
			}

			replies := map[string]*protocol.Object{}
			for _, n := range nodes {
				if rng.Intn(3) > 0 {
					replies[n] = replicas[n]
				}
			}
			merged, stale := MergeReads(version.KeepSiblings, replies)

			var want *protocol.Object
			for _, n := range rng.Perm(len(nodes)) {
				if o, ok := replies[nodes[n]]; ok {
					want = version.Sync(want, o)
				}
			}
			if !version.Equal(merged, want) {
				t.Fatalf("round %d step %d: merged differs from the Sync of the replies", round, step)
			}
			values := map[string]bool{}
			var wantStale []string
			for _, n := range nodes {
				o, ok := replies[n]
				if !ok {
					continue
				}
				if o != nil {
					if !version.Descends(merged.Clock, o.Clock) {
						t.Fatalf("round %d step %d: merged has not seen %s's clock", round, step, n)
					}
					for _, s := range o.Siblings {
						values[string(s.Value)] = true
					}
				}
				if !version.Equal(o, merged) {
					wantStale = append(wantStale, n)
				}
				if repaired := version.Sync(o, merged); !version.Equal(repaired, merged) {
					t.Fatalf("round %d step %d: read repair of %s does not converge", round, step, n)
				}
			}
			if !slices.Equal(stale, wantStale) {
				t.Fatalf("round %d step %d: stale = %v, want %v", round, step, stale, wantStale)
			}
			if merged != nil {
				for _, s := range merged.Siblings {
					if !values[string(s.Value)] {
						t.Fatalf("round %d step %d: merged value %q came from no reply", round, step, s.Value)
					}
				}
			}
		}
	}
}

var sinkObj *protocol.Object

func BenchmarkMergeReads(b *testing.B) {
	v1, _ := version.Update(nil, nil, "node-1", protocol.Sibling{Value: make([]byte, 64)})
	v2, _ := version.Update(v1, v1.Clock, "node-1", protocol.Sibling{Value: make([]byte, 64)})
	for _, bc := range []struct {
		name    string
		replies map[string]*protocol.Object
	}{
		{"agree/3", map[string]*protocol.Object{"node-1": v2, "node-2": v2, "node-3": v2}},
		{"one-stale/3", map[string]*protocol.Object{"node-1": v2, "node-2": v1, "node-3": v2}},
		{"one-absent/2", map[string]*protocol.Object{"node-1": v2, "node-2": nil}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkObj, _ = MergeReads(version.KeepSiblings, bc.replies)
			}
		})
	}
}

// TestMergeReadsLastWriterWins: in last-writer-wins mode the merge of
// replicas that took concurrent writes is one value, the latest, and
// every replica that does not hold exactly it is stale.
func TestMergeReadsLastWriterWins(t *testing.T) {
	x := &protocol.Object{Clock: protocol.Clock{{Node: "a", Counter: 1}}, Siblings: []protocol.Sibling{{Dot: protocol.Dot{Node: "a", Counter: 1}, Value: []byte("x"), Time: 5}}}
	y := &protocol.Object{Clock: protocol.Clock{{Node: "b", Counter: 1}}, Siblings: []protocol.Sibling{{Dot: protocol.Dot{Node: "b", Counter: 1}, Value: []byte("y"), Time: 6}}}
	replies := map[string]*protocol.Object{"a": x, "b": y, "c": nil}
	merged, stale := MergeReads(version.LastWriterWins, replies)
	if len(merged.Siblings) != 1 || string(merged.Siblings[0].Value) != "y" || len(merged.Clock) != 2 {
		t.Fatalf("merged %+v, want y under both clocks", merged)
	}
	if !slices.Equal(stale, []string{"a", "b", "c"}) {
		t.Fatalf("stale %v: b lacks a's clock entry, a and c the value", stale)
	}
	if merged, _ := MergeReads(version.KeepSiblings, replies); len(merged.Siblings) != 2 {
		t.Fatalf("KeepSiblings merged %+v, want both siblings", merged)
	}
	again, stale := MergeReads(version.LastWriterWins, map[string]*protocol.Object{"a": merged, "b": merged})
	if len(stale) != 0 || !version.Equal(again, merged) {
		t.Fatalf("repaired replicas: %+v stale %v", again, stale)
	}
}
