package merkle

import (
	"cmp"
	"slices"

	"github.com/kvmesh/kvmesh/protocol"
)

// Frontier is one message of an exchange between two replicas of a
// partition: the sender's hashes of some nodes at one level of its tree.
// An exchange starts with the root (Tree.Start); each side answers the
// other's frontier with Tree.Step, which sends back only the children of
// the nodes that differ, until no node differs or the leaves are reached.
type Frontier struct {
	Level  int      // 0 (the root) to Depth (the leaf buckets)
	Nodes  []int    // node indexes within the level, strictly ascending
	Hashes []uint64 // the sender's hash of each node
}

// Start returns the first message of an exchange: the root.
func (t *Tree) Start() Frontier {
	return Frontier{Level: 0, Nodes: []int{0}, Hashes: []uint64{t.Root()}}
}

// Step answers the other replica's frontier f. It compares f's hashes with
// this tree's at the same nodes and returns:
//
//   - no differing node: an empty next and no diff; the trees agree below
//     f and the exchange is over;
//   - f at the leaf level: an empty next and diff, the differing leaf
//     buckets (ascending), whose keys the replicas then compare
//     (DiffKeys);
//   - otherwise next, the children of the differing nodes with this
//     tree's hashes, to send back.
//
// So an exchange is at most Depth+1 messages, alternating sides, and each
// message holds at most Fanout hashes per differing leaf bucket.
//
// f comes from the network: Step checks it (level in range, as many
// hashes as nodes, nodes strictly ascending within the level) and returns
// an error wrapping protocol.ErrMalformed otherwise; its work is bounded
// by len(f.Nodes) times Fanout. The tree may change between steps (writes
// go on); the exchange then reports a bucket too many or too few, which
// the key comparison or the next exchange sets right.
func (t *Tree) Step(f Frontier) (next Frontier, diff []int, err error) {
	if f.Level < 0 || f.Level > t.shape.Depth {
		return Frontier{}, nil, protocol.Errorf(protocol.ErrMalformed, "merkle frontier: level %d not in [0, %d]", f.Level, t.shape.Depth)
	}
	if len(f.Nodes) != len(f.Hashes) {
		return Frontier{}, nil, protocol.Errorf(protocol.ErrMalformed, "merkle frontier: %d nodes, %d hashes", len(f.Nodes), len(f.Hashes))
	}
	mine := t.level(f.Level)
	var differ []int
	for k, i := range f.Nodes {
		if i < 0 || i >= len(mine) || k > 0 && i <= f.Nodes[k-1] {
			return Frontier{}, nil, protocol.Errorf(protocol.ErrMalformed,
				"merkle frontier: nodes not ascending within the %d of level %d", len(mine), f.Level)
		}
		if mine[i] != f.Hashes[k] {
			differ = append(differ, i)
		}
	}
	if len(differ) == 0 {
		return Frontier{}, nil, nil
	}
	if f.Level == t.shape.Depth {
		return Frontier{}, differ, nil
	}
	nodes := t.children(differ)
	level := t.level(f.Level + 1)
	hashes := make([]uint64, len(nodes))
	for k, i := range nodes {
		hashes[k] = level[i]
	}
	return Frontier{Level: f.Level + 1, Nodes: nodes, Hashes: hashes}, nil, nil
}

// Item is one key of a differing bucket and its digest, as a replica
// lists them for the other side.
type Item struct {
	Key    string
	Digest uint64 // 0: absent, as a missing item
}

// DiffKeys returns the keys, ascending, whose digests differ between two
// replicas' lists of the same buckets: present on one side only, or with
// other digests. Those are the keys to sync. The lists may come in any
// order; neither is modified. A key listed twice on one side counts as
// differing unless every listing agrees with the other side's.
func DiffKeys(mine, theirs []Item) []string {
	mine, theirs = sortedItems(mine), sortedItems(theirs)
	var out []string
	add := func(k string) {
		if len(out) == 0 || out[len(out)-1] != k {
			out = append(out, k)
		}
	}
	i, j := 0, 0
	for i < len(mine) || j < len(theirs) {
		var c int
		switch {
		case i == len(mine):
			c = 1
		case j == len(theirs):
			c = -1
		default:
			c = cmp.Compare(mine[i].Key, theirs[j].Key)
		}
		switch {
		case c < 0:
			if mine[i].Digest != 0 {
				add(mine[i].Key)
			}
			i++
		case c > 0:
			if theirs[j].Digest != 0 {
				add(theirs[j].Key)
			}
			j++
		default:
			if mine[i].Digest != theirs[j].Digest {
				add(mine[i].Key)
			}
			i++
			j++
		}
	}
	return out
}

func cmpItem(x, y Item) int {
	if c := cmp.Compare(x.Key, y.Key); c != 0 {
		return c
	}
	return cmp.Compare(x.Digest, y.Digest)
}

// sortedItems returns s if it is sorted, else a sorted copy.
func sortedItems(s []Item) []Item {
	if slices.IsSortedFunc(s, cmpItem) {
		return s
	}
	s = slices.Clone(s)
	slices.SortFunc(s, cmpItem)
	return s
}
