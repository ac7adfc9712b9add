package quorum

import (
	"maps"
	"slices"

	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// MergeReads merges the objects that replicas returned for one key, keyed
// by node id (a nil object: the replica has none), by the store's mode c
// (version.Sync, or version.SyncLWW: one value). It
// returns the merged object, nil if every reply was nil or empty, and the
// sorted ids of the replicas whose object is not version.Equal to it: they
// missed a write or still hold a superseded sibling, and need read repair
// (sending them the merged object). A replica that has no object while
// the merge is nil is not stale. MergeReads modifies none of the replies.
func MergeReads(c version.Conflicts, replies map[string]*protocol.Object) (merged *protocol.Object, stale []string) {
	nodes := slices.Sorted(maps.Keys(replies))
	var buf [4]*protocol.Object
	seen := buf[:0]
	for _, n := range nodes {
		// One object may stand for several replies (a digest read's
		// equal replicas): merging it again would change nothing.
		if o := replies[n]; o != nil && !slices.Contains(seen, o) {
			seen = append(seen, o)
			merged = c.Sync(merged, o)
		}
	}
	if merged != nil && len(merged.Clock) == 0 && len(merged.Siblings) == 0 {
		merged = nil
	}
	for _, n := range nodes {
		if !version.Equal(replies[n], merged) {
			stale = append(stale, n)
		}
	}
	return merged, stale
}
