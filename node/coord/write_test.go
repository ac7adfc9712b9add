package coord

import (
	"slices"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

// TestWriteContext: a write's reply context covers the new write whenever
// that cannot supersede a live value the client did not see, and only
// then. Each case is an object as Update leaves it after a write by n1.
func TestWriteContext(t *testing.T) {
	live := func(node string, c uint64) protocol.Sibling {
		return protocol.Sibling{Dot: protocol.Dot{Node: node, Counter: c}, Value: []byte("v")}
	}
	tomb := func(node string, c uint64) protocol.Sibling {
		return protocol.Sibling{Dot: protocol.Dot{Node: node, Counter: c}, Deleted: true}
	}
	sent := protocol.Clock{{Node: "n2", Counter: 1}}
	cases := []struct {
		name string
		obj  *protocol.Object
		want protocol.Clock
	}{
		{"no object: the context sent", nil, sent},
		{"the only sibling: the whole clock",
			&protocol.Object{Clock: protocol.Clock{{Node: "n1", Counter: 4}, {Node: "n2", Counter: 3}}, Siblings: []protocol.Sibling{live("n1", 4)}},
			protocol.Clock{{Node: "n1", Counter: 4}, {Node: "n2", Counter: 3}}},
		{"beside tombstones only (a put after a delete): the whole clock",
			&protocol.Object{Clock: protocol.Clock{{Node: "n1", Counter: 4}, {Node: "n2", Counter: 3}}, Siblings: []protocol.Sibling{tomb("n1", 3), live("n1", 4), tomb("n2", 3)}},
			protocol.Clock{{Node: "n1", Counter: 4}, {Node: "n2", Counter: 3}}},
		{"a delete that leaves no live value: the whole clock",
			&protocol.Object{Clock: protocol.Clock{{Node: "n1", Counter: 2}}, Siblings: []protocol.Sibling{tomb("n1", 2)}},
			protocol.Clock{{Node: "n1", Counter: 2}}},
		{"beside another node's live sibling: the context sent and this node's entry",
			&protocol.Object{Clock: protocol.Clock{{Node: "n1", Counter: 4}, {Node: "n3", Counter: 7}}, Siblings: []protocol.Sibling{tomb("n1", 3), live("n1", 4), live("n3", 7)}},
			protocol.Clock{{Node: "n1", Counter: 4}, {Node: "n2", Counter: 1}}},
		{"beside a live sibling of this node: only the context sent",
			&protocol.Object{Clock: protocol.Clock{{Node: "n1", Counter: 4}}, Siblings: []protocol.Sibling{live("n1", 3), live("n1", 4)}},
			sent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := WriteContext(tc.obj, sent, "n1"); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
