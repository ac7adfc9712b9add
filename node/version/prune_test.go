package version

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

// runActors returns n actors of node, made at seconds 1..n, oldest first.
func runActors(node string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = protocol.NewActorID(node, int64(i+1), uint64(i))
	}
	return out
}

func clockOf(actors ...string) protocol.Clock {
	c := make(protocol.Clock, len(actors))
	for i, a := range actors {
		c[i] = protocol.Dot{Node: a, Counter: uint64(i + 1)}
	}
	slices.SortFunc(c, func(a, b protocol.Dot) int { return cmpDot(a, b) })
	return c
}

// TestPruneDropsOldestRetired: past the limit the oldest retired actors
// go; a node's newest actor and the actors of live siblings stay.
func TestPruneDropsOldestRetired(t *testing.T) {
	n1 := runActors("n1", 300)
	clock := clockOf(append(slices.Clone(n1), "n2", "n3")...)
	sibs := []protocol.Sibling{{Dot: protocol.Dot{Node: n1[3], Counter: 4}}}
	got := Prune(clock, sibs)
	if len(got) != protocol.MaxClockEntries {
		t.Fatalf("pruned to %d entries, want %d", len(got), protocol.MaxClockEntries)
	}
	has := func(a string) bool { return Get(got, a) > 0 }
	if !has(n1[299]) || !has(n1[3]) || !has("n2") || !has("n3") {
		t.Fatal("dropped a newest actor or one with a live sibling")
	}
	// The oldest went first: n1[0..2] and n1[4..46], the 46 too many.
	for i, a := range n1[:299] {
		if want := i == 3 || i >= 47; has(a) != want {
			t.Fatalf("actor %d of n1 kept = %v", i, has(a))
		}
	}
	if short := clockOf(n1[:10]...); !slices.Equal(Prune(short, nil), short) {
		t.Fatal("a clock under the limit was pruned")
	}
}

// TestSyncOfFullObjectsConverges is finding 5 of issue 15: two valid
// objects could merge into a 257-entry clock that replicas refused, so
// they never converged. Now the merge prunes: it is a valid object, it
// keeps every sibling, and it is the same whichever way round.
func TestSyncOfFullObjectsConverges(t *testing.T) {
	n1 := runActors("n1", 400)
	a := &protocol.Object{Clock: clockOf(n1[:256]...)}
	b := &protocol.Object{Clock: clockOf(n1[144:]...)}
	a.Siblings = []protocol.Sibling{{Dot: protocol.Dot{Node: n1[10], Counter: 11}, Value: []byte("a")}}
	b.Siblings = []protocol.Sibling{{Dot: protocol.Dot{Node: n1[399], Counter: 400 - 144}, Value: []byte("b")}}
	for _, o := range []*protocol.Object{a, b} {
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	ab, ba := Sync(a, b), Sync(b, a)
	if err := ab.Validate(); err != nil {
		t.Fatalf("merge of two valid objects is invalid: %v", err)
	}
	if !Equal(ab, ba) || len(ab.Siblings) != 2 {
		t.Fatalf("merge: %d siblings, commutative %v", len(ab.Siblings), Equal(ab, ba))
	}
	if !Equal(Sync(ab, ab), ab) {
		t.Fatal("merge is not idempotent")
	}
}

// TestPruneProperties: over random clocks, Prune keeps every entry a
// sibling needs and each node's newest actor, never grows a clock, and
// reaches the limit whenever enough entries are retired.
func TestPruneProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var actors []string
		for n := range 1 + rng.IntN(8) {
			for _, a := range runActors(fmt.Sprintf("n%d", n), 1+rng.IntN(120)) {
				if rng.IntN(4) > 0 {
					actors = append(actors, a)
				}
			}
		}
		clock := clockOf(actors...)
		var sibs []protocol.Sibling
		for _, d := range clock {
			if rng.IntN(40) == 0 {
				sibs = append(sibs, protocol.Sibling{Dot: d})
			}
		}
		got := Prune(clock, sibs)
		if len(got) > len(clock) {
			t.Fatal("Prune grew a clock")
		}
		for _, s := range sibs {
			if !Covers(got, s.Dot) {
				t.Fatalf("Prune dropped the entry of sibling %v", s.Dot)
			}
		}
		newest := map[string]string{}
		for _, d := range clock {
			n := protocol.ActorNode(d.Node)
			if d.Node > newest[n] {
				newest[n] = d.Node
			}
		}
		for _, a := range newest {
			if Get(got, a) == 0 {
				t.Fatalf("Prune dropped the newest actor %s", a)
			}
		}
		if len(got) > protocol.MaxClockEntries && len(got) > len(newest)+len(sibs) {
			t.Fatalf("pruned to %d entries with %d nodes and %d siblings", len(got), len(newest), len(sibs))
		}
	}
}
