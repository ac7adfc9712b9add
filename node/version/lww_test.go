package version

import (
	"errors"
	"math"
	"math/rand"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

// at is a sibling with a time.
func at(node string, n uint64, value string, t int64) protocol.Sibling {
	s := sib(node, n, value)
	s.Time = t
	return s
}

func TestParseConflicts(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want Conflicts
		ok   bool
	}{
		{"", KeepSiblings, true},
		{"siblings", KeepSiblings, true},
		{"lww", LastWriterWins, true},
		{"LWW", 0, false},
		{"last-writer-wins", 0, false},
		{" lww", 0, false},
	} {
		got, err := ParseConflicts(tc.s)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("ParseConflicts(%q) = %v, %v", tc.s, got, err)
		}
		if tc.ok && tc.s != "" && got.String() != tc.s {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.s)
		}
	}
}

func TestWinner(t *testing.T) {
	for _, tc := range []struct {
		name string
		sibs []protocol.Sibling
		want protocol.Sibling
	}{
		{"one", []protocol.Sibling{at("a", 1, "x", 5)}, at("a", 1, "x", 5)},
		{"later time", []protocol.Sibling{at("b", 9, "x", 5), at("a", 1, "y", 6)}, at("a", 1, "y", 6)},
		{"later time last", []protocol.Sibling{at("a", 1, "y", 6), at("b", 9, "x", 5)}, at("a", 1, "y", 6)},
		{"a tie goes to the larger node", []protocol.Sibling{at("b", 1, "x", 5), at("a", 2, "y", 5)}, at("b", 1, "x", 5)},
		{"then the larger counter", []protocol.Sibling{at("a", 2, "x", 5), at("a", 3, "y", 5)}, at("a", 3, "y", 5)},
		{"a later tombstone deletes", []protocol.Sibling{at("a", 1, "x", 5), {Dot: dot("b", 1), Deleted: true, Time: 7}}, protocol.Sibling{Dot: dot("b", 1), Deleted: true, Time: 7}},
		{"an earlier tombstone loses", []protocol.Sibling{at("a", 1, "x", 8), {Dot: dot("b", 1), Deleted: true, Time: 7}}, at("a", 1, "x", 8)},
		{"a duplicate dot: by content", []protocol.Sibling{at("a", 1, "x", 5), at("a", 1, "y", 5)}, at("a", 1, "y", 5)},
		{"negative times", []protocol.Sibling{at("a", 1, "x", math.MinInt64), at("a", 2, "y", -1)}, at("a", 2, "y", -1)},
	} {
		got, ok := Winner(tc.sibs)
		if !ok || cmpSibling(got, tc.want) != 0 {
			t.Errorf("%s: Winner = %+v, want %+v", tc.name, got, tc.want)
		}
		rev := make([]protocol.Sibling, len(tc.sibs))
		for i, s := range tc.sibs {
			rev[len(rev)-1-i] = s
		}
		if got, _ := Winner(rev); cmpSibling(got, tc.want) != 0 {
			t.Errorf("%s: Winner depends on the order", tc.name)
		}
	}
	if _, ok := Winner(nil); ok {
		t.Error("Winner of nothing")
	}
}

func TestSyncLWW(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b *protocol.Object
		want *protocol.Object
	}{
		{"one absent", obj("a:1", at("a", 1, "x", 5)), nil, obj("a:1", at("a", 1, "x", 5))},
		{"concurrent: the later wins", obj("a:1", at("a", 1, "x", 5)), obj("b:1", at("b", 1, "y", 6)), obj("a:1 b:1", at("b", 1, "y", 6))},
		{"concurrent, same time: the larger dot", obj("a:1", at("a", 1, "x", 5)), obj("b:1", at("b", 1, "y", 5)), obj("a:1 b:1", at("b", 1, "y", 5))},
		{"a later write supersedes", obj("a:1", at("a", 1, "x", 5)), obj("a:2", at("a", 2, "y", 6)), obj("a:2", at("a", 2, "y", 6))},
		// Causality enters by the timestamps alone: a write stamped
		// earlier than one it saw loses to it (a clock stamped without
		// HLCNext), the same way in every order.
		{"a causally later write stamped earlier loses", obj("a:1", at("a", 1, "x", 9)), obj("a:2", at("a", 2, "y", 6)), obj("a:2", at("a", 1, "x", 9))},
		{"siblings of the other mode collapse", obj("a:2 b:1", at("a", 1, "x", 5), at("a", 2, "z", 7), at("b", 1, "y", 6)), obj("c:1", at("c", 1, "w", 1)), obj("a:2 b:1 c:1", at("a", 2, "z", 7))},
		{"a later delete", obj("a:1", at("a", 1, "x", 5)), obj("a:1 b:1", protocol.Sibling{Dot: dot("b", 1), Deleted: true, Time: 6}), obj("a:1 b:1", protocol.Sibling{Dot: dot("b", 1), Deleted: true, Time: 6})},
		{"clocks only", obj("a:3"), obj("b:1"), obj("a:3 b:1")},
	} {
		for _, swap := range []bool{false, true} {
			a, b := tc.a, tc.b
			if swap {
				a, b = b, a
			}
			a0, b0 := clone(a), clone(b)
			got := SyncLWW(a, b)
			if !identical(got, tc.want) {
				t.Errorf("%s: SyncLWW(%s, %s) = %s, want %s", tc.name, fmtObj(a), fmtObj(b), fmtObj(got), fmtObj(tc.want))
			}
			if !identical(a, a0) || !identical(b, b0) {
				t.Fatalf("%s: SyncLWW modified its input", tc.name)
			}
			if !identical(LastWriterWins.Sync(a, b), got) {
				t.Fatalf("%s: LastWriterWins.Sync is not SyncLWW", tc.name)
			}
		}
	}
	if SyncLWW(nil, nil) != nil {
		t.Fatal("SyncLWW(nil, nil) is not nil")
	}
	if got, want := KeepSiblings.Sync(obj("a:1", at("a", 1, "x", 5)), obj("b:1", at("b", 1, "y", 6))), 2; len(got.Siblings) != want {
		t.Fatalf("KeepSiblings.Sync kept %d siblings, want %d", len(got.Siblings), want)
	}
}

// TestSyncLWWLaws: over random valid objects, SyncLWW is commutative,
// associative and idempotent (Equal-wise, as Sync), keeps at most one
// sibling, and that one is the largest of all the inputs held: replicas
// that exchanged in any order agree on one value.
func TestSyncLWWLaws(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	var pool []*protocol.Object
	for len(pool) < 500 {
		o := randObject(rng)
		if o == nil {
			continue
		}
		for i := range o.Siblings {
			o.Siblings[i].Time = int64(rng.Intn(4))
		}
		pool = append(pool, SyncLWW(o, nil))
	}
	for range 20000 {
		a, b, c := pool[rng.Intn(len(pool))], pool[rng.Intn(len(pool))], pool[rng.Intn(len(pool))]
		ab := SyncLWW(a, b)
		if len(ab.Siblings) > 1 {
			t.Fatalf("SyncLWW kept %s", fmtObj(ab))
		}
		checkValid(t, ab)
		if !Equal(ab, SyncLWW(b, a)) {
			t.Fatalf("not commutative: %s, %s", fmtObj(a), fmtObj(b))
		}
		if !Equal(SyncLWW(a, a), a) || !Equal(SyncLWW(ab, a), ab) {
			t.Fatalf("not idempotent: %s, %s", fmtObj(a), fmtObj(b))
		}
		if !Equal(SyncLWW(ab, c), SyncLWW(a, SyncLWW(b, c))) {
			t.Fatalf("not associative: %s, %s, %s", fmtObj(a), fmtObj(b), fmtObj(c))
		}
		all := append(append(append([]protocol.Sibling(nil), a.Siblings...), b.Siblings...), c.Siblings...)
		want, ok := Winner(all)
		abc := SyncLWW(ab, c)
		if ok != (len(abc.Siblings) == 1) || ok && cmpSibling(abc.Siblings[0], want) != 0 {
			t.Fatalf("the merge of %s, %s, %s is %s, want %+v", fmtObj(a), fmtObj(b), fmtObj(c), fmtObj(abc), want)
		}
	}
}

func TestUpdateLWW(t *testing.T) {
	for _, tc := range []struct {
		name  string
		local *protocol.Object
		ctx   string
		s     protocol.Sibling
		want  *protocol.Object
	}{
		{"first write", nil, "", at("", 0, "new", 5), obj("a:1", at("a", 1, "new", 5))},
		{"a blind later write replaces", obj("a:1", at("a", 1, "x", 5)), "", at("", 0, "new", 6), obj("a:2", at("a", 2, "new", 6))},
		{"with the context", obj("b:1", at("b", 1, "x", 5)), "b:1", at("", 0, "new", 6), obj("a:1 b:1", at("a", 1, "new", 6))},
		{"stamped earlier than a write it did not see: lost at once", obj("b:1", at("b", 1, "x", 9)), "", at("", 0, "new", 6), obj("a:1 b:1", at("b", 1, "x", 9))},
		{"superseded by the context even if stamped earlier", obj("b:1", at("b", 1, "x", 9)), "b:1", at("", 0, "new", 6), obj("a:1 b:1", at("a", 1, "new", 6))},
		{"siblings of the other mode", obj("b:2 c:1", at("b", 1, "x", 5), at("b", 2, "y", 7), at("c", 1, "z", 6)), "", at("", 0, "new", 8), obj("a:1 b:2 c:1", at("a", 1, "new", 8))},
		{"a delete", obj("a:1", at("a", 1, "x", 5)), "a:1", protocol.Sibling{Deleted: true, Time: 6}, obj("a:2", protocol.Sibling{Dot: dot("a", 2), Deleted: true, Time: 6})},
	} {
		l0 := clone(tc.local)
		got, err := UpdateLWW(tc.local, clk(tc.ctx), "a", tc.s)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !identical(got, tc.want) {
			t.Errorf("%s: UpdateLWW(%s) = %s, want %s", tc.name, fmtObj(tc.local), fmtObj(got), fmtObj(tc.want))
		}
		if !identical(tc.local, l0) {
			t.Fatalf("%s: UpdateLWW modified its input", tc.name)
		}
		checkValid(t, got)
		if g2, _ := LastWriterWins.Update(tc.local, clk(tc.ctx), "a", tc.s); !identical(g2, got) {
			t.Fatalf("%s: LastWriterWins.Update is not UpdateLWW", tc.name)
		}
	}
	// The same errors as Update.
	if _, err := UpdateLWW(nil, protocol.Clock{{Node: "b", Counter: 0}}, "a", at("", 0, "v", 1)); !errors.Is(err, protocol.ErrInvalidContext) {
		t.Fatalf("a bad context: %v", err)
	}
	// Many siblings of the other mode never make a write fail.
	if _, err := UpdateLWW(manySiblings("b", protocol.MaxSiblings), nil, "a", at("", 0, "v", 1)); err != nil {
		t.Fatalf("a write on %d siblings: %v", protocol.MaxSiblings, err)
	}
	if _, err := KeepSiblings.Update(manySiblings("b", protocol.MaxSiblings), nil, "a", at("", 0, "v", 1)); !errors.Is(err, protocol.ErrTooManySiblings) {
		t.Fatalf("KeepSiblings.Update is not Update: %v", err)
	}
}

func TestHLCNext(t *testing.T) {
	const M = math.MaxInt64
	for _, tc := range []struct {
		name            string
		last, now, seen int64
		want            int64
	}{
		{"follows the physical clock", 10, 20, 5, 20},
		{"never goes back", 30, 20, 5, 31},
		{"never repeats", 20, 20, 5, 21},
		{"after what the event saw", 10, 20, 40, 41},
		{"after what it saw, equal to now", 10, 40, 40, 41},
		{"nothing seen", 10, 20, math.MinInt64, 20},
		{"saturates", M, 20, 5, M},
		{"saturates on seen", 0, 20, M, M},
		{"a clock before 1970", -5, -10, math.MinInt64, -4},
	} {
		if got := HLCNext(tc.last, tc.now, tc.seen); got != tc.want {
			t.Errorf("%s: HLCNext(%d, %d, %d) = %d, want %d", tc.name, tc.last, tc.now, tc.seen, got, tc.want)
		}
	}
	// A chain of causally dependent events gets increasing timestamps,
	// whatever the physical clocks of the nodes that stamp them say.
	rng := rand.New(rand.NewSource(1))
	clocks := make([]int64, 3) // each node's last timestamp
	var prev int64 = math.MinInt64
	for range 10000 {
		n := rng.Intn(len(clocks))
		now := rng.Int63n(1000) // skewed, jumping physical clocks
		ts := HLCNext(clocks[n], now, prev)
		if ts <= prev || ts <= clocks[n] {
			t.Fatalf("timestamp %d after %d (node's last %d)", ts, prev, clocks[n])
		}
		clocks[n], prev = ts, ts
	}
	if got := MaxTime(obj("a:2", at("a", 1, "x", 7), at("a", 2, "y", -3))); got != 7 {
		t.Fatalf("MaxTime = %d", got)
	}
	if got := MaxTime(nil); got != math.MinInt64 {
		t.Fatalf("MaxTime(nil) = %d", got)
	}
}
