package merkle

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

func dot(node string, n uint64) protocol.Dot { return protocol.Dot{Node: node, Counter: n} }

func sib(node string, n uint64, value string, t int64) protocol.Sibling {
	return protocol.Sibling{Dot: dot(node, n), Value: []byte(value), Time: t}
}

// clone deep-copies an object, values included.
func clone(o *protocol.Object) *protocol.Object {
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

func TestDigestAbsentIsZero(t *testing.T) {
	for _, o := range []*protocol.Object{nil, {}, {Clock: protocol.Clock{}, Siblings: []protocol.Sibling{}}} {
		if d := Digest("k", o); d != 0 {
			t.Errorf("Digest(%+v) = %#x, want 0: version.Equal says it equals nil", o, d)
		}
	}
	// A clock alone (a purged key's memory) is not absent.
	if Digest("k", &protocol.Object{Clock: protocol.Clock{dot("a", 1)}}) == 0 {
		t.Error("an object with a clock has digest 0")
	}
}

// TestDigestGolden pins the digest and the bucket: replicas compare them,
// so they must not change between builds of kvmesh. The values were
// checked against an independent Python computation of the encoding.
func TestDigestGolden(t *testing.T) {
	o := &protocol.Object{
		Clock:    protocol.Clock{dot("n1", 2), dot("n2", 1)},
		Siblings: []protocol.Sibling{sib("n1", 2, "hello", 1700000000000000000), {Dot: dot("n2", 1), Deleted: true, Time: 1700000000000000001}},
	}
	if got, want := Digest("user/42", o), uint64(0x0d3be525e10e6894); got != want {
		t.Errorf("Digest = %#x, want %#x", got, want)
	}
	// A sibling with an expiry (issue 18) has flag bit 1 and the expiry
	// after the flags; one without hashes as before TTLs (above).
	o.Siblings[0].Expires = 1700000030000000000
	if got, want := Digest("user/42", o), uint64(0x357ae6dc13e29421); got != want {
		t.Errorf("Digest of an expiring sibling = %#x, want %#x", got, want)
	}
	for _, tc := range []struct {
		key  string
		want int
	}{{"user/42", 201}, {"", 2643}, {"a.b.c", 2960}} {
		if got := DefaultShape().Bucket(tc.key); got != tc.want {
			t.Errorf("Bucket(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

// TestDigestCanonical: what version.Equal ignores, the digest ignores.
func TestDigestCanonical(t *testing.T) {
	a := &protocol.Object{
		Clock:    protocol.Clock{dot("a", 3), dot("b", 1), dot("c", 2)},
		Siblings: []protocol.Sibling{sib("a", 3, "x", 5), sib("b", 1, "", 6), sib("c", 2, "z", 7), sib("c", 1, "w", 4), sib("a", 2, "v", 3)},
	}
	a.Siblings[1].Value = nil
	for i := range 20 {
		b := clone(a)
		rand.New(rand.NewPCG(uint64(i), 0)).Shuffle(len(b.Siblings), func(i, j int) {
			b.Siblings[i], b.Siblings[j] = b.Siblings[j], b.Siblings[i]
		})
		b.Siblings[slices.IndexFunc(b.Siblings, func(s protocol.Sibling) bool { return s.Dot == dot("b", 1) })].Value = []byte{}
		if !version.Equal(a, b) {
			t.Fatal("test bug: shuffled siblings are not Equal")
		}
		if Digest("k", a) != Digest("k", b) {
			t.Fatalf("siblings in another order (and a nil value as an empty one) change the digest: %v", b.Siblings)
		}
	}
	// version.Equal compares clocks in order; a valid clock is sorted, so
	// two valid equal objects never differ in clock order. The digest
	// follows Equal rather than sorting, so that it agrees with it on any
	// input.
	b := clone(a)
	b.Clock[0], b.Clock[1] = b.Clock[1], b.Clock[0]
	if version.Equal(a, b) != (Digest("k", a) == Digest("k", b)) {
		t.Errorf("clock in another order: Equal %v, digests equal %v", version.Equal(a, b), Digest("k", a) == Digest("k", b))
	}
}

// TestDigestSeesEveryField: every field version.Equal compares changes the
// digest, and so does the key.
func TestDigestSeesEveryField(t *testing.T) {
	base := func() *protocol.Object {
		return &protocol.Object{
			Clock:    protocol.Clock{dot("a", 2), dot("b", 1)},
			Siblings: []protocol.Sibling{sib("a", 2, "xy", 10), sib("b", 1, "z", 11)},
		}
	}
	expiring := base
	base = func() *protocol.Object {
		o := expiring()
		o.Siblings[0].Expires = 1700000000000000000
		return o
	}
	for name, mut := range map[string]func(o *protocol.Object){
		"value byte":   func(o *protocol.Object) { o.Siblings[0].Value[1] = 'Y' },
		"value length": func(o *protocol.Object) { o.Siblings[0].Value = o.Siblings[0].Value[:1] },
		"values swapped": func(o *protocol.Object) {
			o.Siblings[0].Value, o.Siblings[1].Value = o.Siblings[1].Value, o.Siblings[0].Value
		},
		"time":             func(o *protocol.Object) { o.Siblings[1].Time++ },
		"expiry set":       func(o *protocol.Object) { o.Siblings[1].Expires = 1 },
		"expiry moved":     func(o *protocol.Object) { o.Siblings[0].Expires = 1 << 62 },
		"tombstone":        func(o *protocol.Object) { o.Siblings[1].Deleted = true },
		"dot counter":      func(o *protocol.Object) { o.Siblings[0].Dot.Counter = 1 },
		"dot node":         func(o *protocol.Object) { o.Siblings[1].Dot.Node = "c" },
		"clock counter":    func(o *protocol.Object) { o.Clock[1].Counter = 2 },
		"clock node":       func(o *protocol.Object) { o.Clock[1].Node = "c" },
		"clock entry more": func(o *protocol.Object) { o.Clock = append(o.Clock, dot("c", 1)) },
		"clock entry less": func(o *protocol.Object) { o.Clock = o.Clock[:1] },
		"sibling less":     func(o *protocol.Object) { o.Siblings = o.Siblings[:1] },
		"sibling twice":    func(o *protocol.Object) { o.Siblings = append(o.Siblings, o.Siblings[1]) },
		"no siblings":      func(o *protocol.Object) { o.Siblings = nil },
		"node/value boundary": func(o *protocol.Object) {
			o.Siblings[1].Dot.Node, o.Siblings[1].Value = "bz", nil
		},
	} {
		o := base()
		mut(o)
		if version.Equal(base(), o) {
			t.Fatalf("%s: test bug, still Equal", name)
		}
		if Digest("k", o) == Digest("k", base()) {
			t.Errorf("%s: the digest did not change", name)
		}
	}
	if Digest("k", base()) == Digest("k2", base()) {
		t.Error("the key does not change the digest")
	}
}

// randObject draws from a small universe, so that equal objects come up
// often, with siblings in random order and values nil or empty at random.
func randObject(rng *rand.Rand) *protocol.Object {
	if rng.IntN(8) == 0 {
		return nil
	}
	o := &protocol.Object{}
	for _, n := range []string{"a", "b", "c"} {
		if rng.IntN(2) == 0 {
			o.Clock = append(o.Clock, dot(n, uint64(1+rng.IntN(2))))
		}
	}
	for range rng.IntN(3) {
		s := sib([]string{"a", "b"}[rng.IntN(2)], uint64(1+rng.IntN(2)), []string{"", "x"}[rng.IntN(2)], int64(rng.IntN(2)))
		if len(s.Value) == 0 && rng.IntN(2) == 0 {
			s.Value = nil
		}
		s.Deleted = rng.IntN(4) == 0
		if rng.IntN(3) == 0 {
			s.Expires = int64(1 + rng.IntN(2))
		}
		o.Siblings = append(o.Siblings, s)
	}
	return o
}

// TestDigestMatchesEqual is the contract as a property: over random pairs
// of possibly invalid objects, digests are equal exactly when
// version.Equal says the objects are.
func TestDigestMatchesEqual(t *testing.T) {
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 1))
		equal := 0
		for range 20000 {
			a, b := randObject(rng), randObject(rng)
			if rng.IntN(2) == 0 && a != nil {
				// A shuffled copy, to make Equal pairs common, and half the
				// time a near miss: one field of one sibling changed.
				b = clone(a)
				rng.Shuffle(len(b.Siblings), func(i, j int) { b.Siblings[i], b.Siblings[j] = b.Siblings[j], b.Siblings[i] })
				if len(b.Siblings) > 0 && rng.IntN(2) == 0 {
					s := &b.Siblings[rng.IntN(len(b.Siblings))]
					switch rng.IntN(5) {
					case 0: // same length if it can: the bytes must count
						if len(s.Value) > 0 {
							s.Value = []byte{s.Value[0] + 1}
						} else {
							s.Value = []byte("v")
						}
					case 1:
						s.Time++
					case 2:
						s.Deleted = !s.Deleted
					case 3:
						s.Expires = int64(rng.IntN(3))
					default:
						s.Dot.Counter++
					}
				}
			}
			eq := version.Equal(a, b)
			if eq {
				equal++
			}
			if got := Digest("k", a) == Digest("k", b); got != eq {
				t.Fatalf("seed %d: version.Equal %v but digests equal %v:\n%+v\n%+v", seed, eq, got, a, b)
			}
		}
		if equal < 4000 {
			t.Fatalf("seed %d: only %d equal pairs; the universe is too big to test anything", seed, equal)
		}
	}
}

func TestDigestDoesNotModify(t *testing.T) {
	o := &protocol.Object{
		Clock:    protocol.Clock{dot("a", 2), dot("b", 1)},
		Siblings: []protocol.Sibling{sib("b", 1, "z", 11), sib("a", 2, "xy", 10), sib("a", 1, "w", 9), sib("b", 0, "", 0), sib("c", 5, "q", 1)},
	}
	want := clone(o)
	Digest("k", o)
	if !slices.Equal(o.Clock, want.Clock) || fmt.Sprint(o.Siblings) != fmt.Sprint(want.Siblings) {
		t.Fatalf("Digest modified its input: %+v", o)
	}
}
