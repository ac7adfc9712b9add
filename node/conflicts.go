package node

import (
	"cmp"
	"slices"
	"sync/atomic"

	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Last-writer-wins mode (Config.Conflicts "lww"): the merges that decide
// are version's (version.Conflicts: SyncLWW and UpdateLWW keep one
// sibling, the largest (Time, Dot)); this file is the node's part, the
// clock that makes a causally later write the larger.

// hlc is the node's hybrid logical clock (version.HLCNext). In
// last-writer-wins mode the issuer stamps each write it coordinates with
// it, past the latest time of the key's local object, so that a write
// that saw another wins over it whatever the physical clocks say; and
// the node observes the times of the objects it reads and stores, so
// that its writes come after everything it has seen. Safe for
// concurrent use.
type hlc struct{ last atomic.Int64 }

// stamp returns the timestamp of a write at physical time now (unix ns)
// that must come after seen.
func (h *hlc) stamp(now, seen int64) int64 {
	for {
		last := h.last.Load()
		t := version.HLCNext(last, now, seen)
		if h.last.CompareAndSwap(last, t) {
			return t
		}
	}
}

// observe makes the clock's next timestamps later than every sibling of
// o.
func (h *hlc) observe(o *protocol.Object) {
	t := version.MaxTime(o)
	for {
		last := h.last.Load()
		if t <= last || h.last.CompareAndSwap(last, t) {
			return
		}
	}
}

// observe feeds o's times to the node's clock in last-writer-wins mode.
func (n *Node) observe(o *protocol.Object) {
	if n.conflicts == version.LastWriterWins && o != nil {
		n.hlc.observe(o)
	}
}

// heartbeatConflicts is the mode a heartbeat carries: none for the
// default, so that the heartbeats of a default node are what they were
// before modes.
func (n *Node) heartbeatConflicts() string {
	if n.conflicts == version.KeepSiblings {
		return ""
	}
	return n.conflicts.String()
}

// checkConflicts notes a peer whose heartbeat shows another conflict mode
// than this node's: every node of a store must use the same
// (Config.Conflicts), or their replicas never converge. It is logged
// once per peer and mode, and listed in the status until the peer's
// heartbeats agree.
func (n *Node) checkConflicts(h *protocol.Heartbeat) {
	if c, err := version.ParseConflicts(h.Conflicts); err == nil && c == n.conflicts {
		n.otherConflicts.Delete(h.From)
		return
	}
	theirs := cmp.Or(h.Conflicts, version.KeepSiblings.String())
	if old, loaded := n.otherConflicts.Swap(h.From, theirs); !loaded || old != theirs {
		n.log.Error("a node of the store resolves concurrent writes in another mode: replicas of different modes never agree. Give every node the same --conflicts",
			"peer", h.From, "its mode", protocol.Clip(theirs, 16), "this node's", n.conflicts.String())
	}
}

// otherConflictsList is the status's list of peers in another mode, as
// sorted "id=mode".
func (n *Node) otherConflictsList() []string {
	var out []string
	n.otherConflicts.Range(func(id, mode any) bool {
		out = append(out, id.(string)+"="+protocol.Clip(mode.(string), 16))
		return true
	})
	slices.Sort(out)
	return out
}
