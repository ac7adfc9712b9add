package version

import (
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

// fuzzObject builds an object from bytes with no regard for validity:
// clocks may be unsorted, repeat nodes or hold zero counters, siblings may
// repeat dots or lie outside the clock. Every function here must survive
// such input (it comes from the network and the disk) without panicking
// or modifying it.
func fuzzObject(b []byte) *protocol.Object {
	if len(b) == 0 {
		return nil
	}
	nodes := []string{"a", "b", "c", "d"}
	o := &protocol.Object{}
	for len(b) >= 2 {
		x, y := b[0], b[1]
		b = b[2:]
		d := protocol.Dot{Node: nodes[x&3], Counter: uint64(y & 7)}
		if x&4 == 0 {
			o.Clock = append(o.Clock, d)
		} else {
			o.Siblings = append(o.Siblings, protocol.Sibling{Dot: d, Value: []byte{y >> 3}, Deleted: x&8 != 0, Expires: int64(x >> 4)})
		}
	}
	return o
}

func FuzzSyncUpdate(f *testing.F) {
	f.Add([]byte{0, 1, 4, 1}, []byte{1, 2, 5, 2}, []byte{0, 1})
	f.Add([]byte{1, 1, 0, 1, 4, 9, 4, 9}, []byte{}, []byte{0, 7})
	f.Fuzz(func(t *testing.T, ab, bb, cb []byte) {
		a, b, ctx := fuzzObject(ab), fuzzObject(bb), fuzzObject(cb)
		var c protocol.Clock
		if ctx != nil {
			c = ctx.Clock
		}
		a0, b0, c0 := clone(a), clone(b), clone(ctx)
		s := Sync(a, b)
		_ = Equal(a, b)
		if a != nil && b != nil {
			_ = Compare(a.Clock, b.Clock)
			_ = Join(a.Clock, b.Clock)
		}
		u, err := Update(a, c, "a", protocol.Sibling{Value: []byte("new")})
		if !identical(a, a0) || !identical(b, b0) || !identical(ctx, c0) {
			t.Fatal("an input was modified")
		}
		if err == nil && c.Validate() != nil {
			t.Fatalf("Update accepted the invalid context %s", fmtClock(c))
		}
		if err == nil && !Covers(u.Clock, protocol.Dot{Node: "a", Counter: Get(u.Clock, "a")}) {
			t.Fatal("Update result does not cover its own dot")
		}
		// On valid inputs the laws hold, whatever else the bytes say.
		valid := func(o *protocol.Object) bool {
			if o == nil {
				return true
			}
			if len(o.Clock) > 0 && o.Clock.Validate() != nil {
				return false
			}
			seen := map[protocol.Dot]bool{}
			for _, x := range o.Siblings {
				if x.Dot.Counter == 0 || !Covers(o.Clock, x.Dot) || seen[x.Dot] {
					return false
				}
				seen[x.Dot] = true
			}
			return true
		}
		if valid(a) && valid(b) {
			checkValid(t, s)
			if !Equal(s, Sync(b, a)) || !Equal(Sync(a, a), a) || !Equal(Sync(s, a), s) {
				t.Fatalf("laws fail on %s and %s", fmtObj(a), fmtObj(b))
			}
			if valid(ctx) && !Equal(Sync(s, ctx), Sync(a, Sync(b, ctx))) {
				t.Fatalf("associativity fails on %s, %s, %s", fmtObj(a), fmtObj(b), fmtObj(ctx))
			}
		}
	})
}
