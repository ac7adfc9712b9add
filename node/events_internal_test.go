package node

import (
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

// TestExpiredLast: of a key's siblings, only the last to expire makes
// the expire event, and only once none is live.
func TestExpiredLast(t *testing.T) {
	a := protocol.Dot{Node: "a", Counter: 1}
	b := protocol.Dot{Node: "b", Counter: 1}
	sib := func(d protocol.Dot, exp int64) protocol.Sibling {
		return protocol.Sibling{Dot: d, Value: []byte("v"), Expires: exp}
	}
	obj := func(s ...protocol.Sibling) *protocol.Object { return &protocol.Object{Siblings: s} }
	for _, tc := range []struct {
		name string
		obj  *protocol.Object
		dot  protocol.Dot
		at   int64
		want bool
	}{
		{"alone", obj(sib(a, 10)), a, 10, true},
		{"not yet", obj(sib(a, 10)), a, 30, false},
		{"gone", obj(sib(b, 10)), a, 10, false},
		{"absent", nil, a, 10, false},
		{"other expiry", obj(sib(a, 11)), a, 10, false},
		{"earlier of two", obj(sib(a, 10), sib(b, 15)), a, 10, false},
		{"later of two", obj(sib(a, 10), sib(b, 15)), b, 15, true},
		{"tie, smaller dot", obj(sib(a, 15), sib(b, 15)), a, 15, false},
		{"tie, larger dot", obj(sib(a, 15), sib(b, 15)), b, 15, true},
		{"live sibling", obj(sib(a, 10), sib(b, 0)), a, 10, false},
		{"beside a tombstone", obj(sib(a, 10), protocol.Sibling{Dot: b, Deleted: true}), a, 10, true},
	} {
		now := int64(20)
		if tc.name == "not yet" {
			now = 25
		}
		if got := expiredLast(tc.obj, tc.dot, tc.at, now); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
