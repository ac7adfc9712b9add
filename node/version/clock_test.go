package version

import (
	"fmt"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

// clk parses "a:1 b:2" into a clock, in the order given (tests of unsorted
// input write it unsorted on purpose).
func clk(s string) protocol.Clock {
	var c protocol.Clock
	for _, f := range strings.Fields(s) {
		node, n, ok := strings.Cut(f, ":")
		if !ok {
			panic("clk: bad entry " + f)
		}
		v, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			panic(err)
		}
		c = append(c, protocol.Dot{Node: node, Counter: v})
	}
	return c
}

func dot(node string, n uint64) protocol.Dot { return protocol.Dot{Node: node, Counter: n} }

func fmtClock(c protocol.Clock) string {
	var b strings.Builder
	for i, d := range c {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", d.Node, d.Counter)
	}
	return "[" + b.String() + "]"
}

func TestGetCovers(t *testing.T) {
	c := clk("a:3 c:1 e:7")
	for _, tc := range []struct {
		node string
		want uint64
	}{
		{"a", 3}, {"b", 0}, {"c", 1}, {"d", 0}, {"e", 7}, {"f", 0}, {"", 0}, {"A", 0},
	} {
		if got := Get(c, tc.node); got != tc.want {
			t.Errorf("Get(%s, %q) = %d, want %d", fmtClock(c), tc.node, got, tc.want)
		}
	}
	if Get(nil, "a") != 0 {
		t.Error("Get(nil) != 0")
	}
	for _, tc := range []struct {
		d    protocol.Dot
		want bool
	}{
		{dot("a", 1), true}, {dot("a", 3), true}, {dot("a", 4), false},
		{dot("b", 1), false}, {dot("e", 7), true}, {dot("e", 8), false},
		{dot("z", 1), false},
	} {
		if got := Covers(c, tc.d); got != tc.want {
			t.Errorf("Covers(%s, %v) = %v, want %v", fmtClock(c), tc.d, got, tc.want)
		}
	}
	if Covers(nil, dot("a", 1)) {
		t.Error("the empty clock covers a dot")
	}
}

// TestGetLarge checks the binary search against a linear scan on a clock
// of the maximum size.
func TestGetLarge(t *testing.T) {
	var c protocol.Clock
	for i := range protocol.MaxClockEntries {
		c = append(c, dot(fmt.Sprintf("n%04d", 2*i), uint64(i+1)))
	}
	for i := range 2*protocol.MaxClockEntries + 1 {
		node := fmt.Sprintf("n%04d", i)
		want := uint64(0)
		if i%2 == 0 && i/2 < len(c) {
			want = uint64(i/2 + 1)
		}
		if got := Get(c, node); got != want {
			t.Fatalf("Get(%s) = %d, want %d", node, got, want)
		}
	}
}

func TestJoin(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"", "", ""},
		{"a:1", "", "a:1"},
		{"", "a:1", "a:1"},
		{"a:1", "a:1", "a:1"},
		{"a:1", "a:2", "a:2"},
		{"a:2", "a:1", "a:2"},
		{"a:1", "b:1", "a:1 b:1"},
		{"b:1", "a:1", "a:1 b:1"},
		{"a:1 c:5", "b:2 d:1", "a:1 b:2 c:5 d:1"},
		{"a:3 b:1", "a:1 b:3", "a:3 b:3"},
		{"a:1 b:2 c:3", "b:5", "a:1 b:5 c:3"},
		{"z:1", "a:1 b:1 c:1", "a:1 b:1 c:1 z:1"},
		{"a:4611686018427387904", "a:1", "a:4611686018427387904"},
	} {
		a, b := clk(tc.a), clk(tc.b)
		a0, b0 := slices.Clone(a), slices.Clone(b)
		got := Join(a, b)
		if !slices.Equal(got, clk(tc.want)) {
			t.Errorf("Join(%s, %s) = %s, want %s", fmtClock(a), fmtClock(b), fmtClock(got), tc.want)
		}
		if !slices.Equal(a, a0) || !slices.Equal(b, b0) {
			t.Errorf("Join(%s, %s) modified an input", tc.a, tc.b)
		}
		// The result owns its memory: writing it leaves the inputs alone.
		for i := range got {
			got[i].Counter = 99
		}
		if !slices.Equal(a, a0) || !slices.Equal(b, b0) {
			t.Errorf("Join(%s, %s) returned memory shared with an input", tc.a, tc.b)
		}
	}
}

func TestCompareDescends(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want Order
	}{
		{"", "", Same},
		{"a:1", "a:1", Same},
		{"a:1 b:2", "a:1 b:2", Same},
		{"", "a:1", Before},
		{"a:1", "", After},
		{"a:1", "a:2", Before},
		{"a:2", "a:1", After},
		{"a:1", "b:1", Concurrent},
		{"a:2 b:1", "a:1 b:2", Concurrent},
		{"a:1", "a:1 b:1", Before},
		{"a:1 b:1", "b:1", After},
		{"a:1 c:1", "b:1", Concurrent},
		{"a:1 c:1", "a:1 b:1 c:1", Before},
		{"a:1 b:1 c:1", "a:1 c:1", After},
		{"a:1 b:1 c:2", "a:1 b:2 c:1", Concurrent},
		{"a:5 z:1", "a:5", After},
		{"a:5", "a:5 z:1", Before},
		{"z:1", "a:1", Concurrent},
		// A zero counter is as good as no entry (never valid, but harmless).
		{"a:0", "", Same},
		{"a:0 b:1", "b:1", Same},
		{"b:1", "a:0 b:1 c:0", Same},
		{"a:0", "a:1", Before},
	} {
		a, b := clk(tc.a), clk(tc.b)
		if got := Compare(a, b); got != tc.want {
			t.Errorf("Compare(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		rev := map[Order]Order{Same: Same, Before: After, After: Before, Concurrent: Concurrent}[tc.want]
		if got := Compare(b, a); got != rev {
			t.Errorf("Compare(%s, %s) = %v, want %v", tc.b, tc.a, got, rev)
		}
		if got, want := Descends(a, b), tc.want == Same || tc.want == After; got != want {
			t.Errorf("Descends(%s, %s) = %v, want %v", tc.a, tc.b, got, want)
		}
		if got, want := Descends(b, a), tc.want == Same || tc.want == Before; got != want {
			t.Errorf("Descends(%s, %s) = %v, want %v", tc.b, tc.a, got, want)
		}
	}
}

func TestOrderString(t *testing.T) {
	for o, want := range map[Order]string{
		Same: "same", Before: "before", After: "after", Concurrent: "concurrent", 7: "Order(7)",
	} {
		if o.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(o), o.String(), want)
		}
	}
}

// randClock draws a clock over nodes a..e with small counters, so that
// equal and comparable pairs are common.
func randClock(rng *rand.Rand) protocol.Clock {
	var c protocol.Clock
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if v := rng.Intn(4); v > 0 {
			c = append(c, dot(n, uint64(v)))
		}
	}
	return c
}

// naiveGet is the reference for Get: a linear scan.
func naiveGet(c protocol.Clock, node string) uint64 {
	for _, d := range c {
		if d.Node == node {
			return d.Counter
		}
	}
	return 0
}

// TestClockLaws checks Join, Descends and Compare against pointwise
// definitions on random clocks: Join is the least upper bound and a
// commutative, associative, idempotent operation; Descends is a partial
// order; Compare agrees with Descends.
func TestClockLaws(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	nodes := []string{"a", "b", "c", "d", "e", "f"}
	for range 5000 {
		a, b, c := randClock(rng), randClock(rng), randClock(rng)
		j := Join(a, b)
		if err := j.Validate(); len(j) > 0 && err != nil {
			t.Fatalf("Join(%s, %s) = %s: %v", fmtClock(a), fmtClock(b), fmtClock(j), err)
		}
		ge := true // a >= b pointwise
		for _, n := range nodes {
			if got, want := Get(j, n), max(naiveGet(a, n), naiveGet(b, n)); got != want {
				t.Fatalf("Join(%s, %s)[%s] = %d, want %d", fmtClock(a), fmtClock(b), n, got, want)
			}
			ge = ge && naiveGet(a, n) >= naiveGet(b, n)
		}
		if Descends(a, b) != ge {
			t.Fatalf("Descends(%s, %s) = %v, want %v", fmtClock(a), fmtClock(b), !ge, ge)
		}
		if !slices.Equal(Join(a, b), Join(b, a)) {
			t.Fatalf("Join not commutative on %s, %s", fmtClock(a), fmtClock(b))
		}
		if !slices.Equal(Join(Join(a, b), c), Join(a, Join(b, c))) {
			t.Fatalf("Join not associative on %s, %s, %s", fmtClock(a), fmtClock(b), fmtClock(c))
		}
		if !slices.Equal(Join(a, a), a) {
			t.Fatalf("Join not idempotent on %s", fmtClock(a))
		}
		if !Descends(j, a) || !Descends(j, b) {
			t.Fatalf("Join(%s, %s) is not an upper bound", fmtClock(a), fmtClock(b))
		}
		if Descends(c, a) && Descends(c, b) && !Descends(c, j) {
			t.Fatalf("Join(%s, %s) is not the least upper bound (%s)", fmtClock(a), fmtClock(b), fmtClock(c))
		}
		// Partial order: reflexive, antisymmetric, transitive.
		if !Descends(a, a) {
			t.Fatalf("Descends not reflexive on %s", fmtClock(a))
		}
		if Descends(a, b) && Descends(b, a) && !slices.Equal(a, b) {
			t.Fatalf("Descends not antisymmetric on %s, %s", fmtClock(a), fmtClock(b))
		}
		if Descends(a, b) && Descends(b, c) && !Descends(a, c) {
			t.Fatalf("Descends not transitive on %s, %s, %s", fmtClock(a), fmtClock(b), fmtClock(c))
		}
		var want Order
		switch ab, ba := Descends(a, b), Descends(b, a); {
		case ab && ba:
			want = Same
		case ab:
			want = After
		case ba:
			want = Before
		default:
			want = Concurrent
		}
		if got := Compare(a, b); got != want {
			t.Fatalf("Compare(%s, %s) = %v, want %v", fmtClock(a), fmtClock(b), got, want)
		}
		// Covers is Descends of a one-entry clock.
		d := dot(nodes[rng.Intn(len(nodes))], uint64(1+rng.Intn(4)))
		if Covers(a, d) != Descends(a, protocol.Clock{d}) {
			t.Fatalf("Covers(%s, %v) disagrees with Descends", fmtClock(a), d)
		}
	}
}
