package node

import (
	"slices"

	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/protocol"
)

// Cluster-wide chores run on one node per data center, the chores owner:
// the member with the lowest id among those up in the data center whose
// heartbeats this node hears (itself included). Every node computes it
// from what it sees, with no election; during a partition each side may
// have its own owner, which is harmless because every chore is
// idempotent (removing a member twice, flipping a record twice, signs
// the same record).
//
// The chores today: removing members down longer than
// Config.AutoRemoveAfter (off by default). Ending transitions
// (membership.Flip) needs no owner: any node may, and they all sign the
// same record.

// choresOwner returns the id of this data center's chores owner as this
// node sees it, or "" if no member of it is up.
func (n *Node) choresOwner() string {
	var owners []string
	for _, r := range n.mem.records().Records() {
		if r.Status == protocol.MemberUp && r.DC == n.cfg.DataCenter && (r.ID == n.cfg.ID || n.live.state(r.ID) == membership.Alive) {
			owners = append(owners, r.ID)
		}
	}
	if len(owners) == 0 {
		return ""
	}
	return slices.Min(owners)
}

// runChores does the chores if this node owns them.
func (n *Node) runChores() {
	if n.cfg.AutoRemoveAfter <= 0 || n.choresOwner() != n.cfg.ID {
		return
	}
	now := n.clock.Now()
	for _, r := range n.mem.records().Records() {
		if r.ID == n.cfg.ID || r.Status != protocol.MemberUp && r.Status != protocol.MemberJoining || n.live.state(r.ID) != membership.Down {
			continue
		}
		n.live.mu.Lock()
		silent := n.live.d.Silent(r.ID, now)
		n.live.mu.Unlock()
		if silent < n.cfg.AutoRemoveAfter {
			continue
		}
		n.log.Warn("removing a member down longer than the auto-remove delay", "member", r.ID, "silent", silent, "after", n.cfg.AutoRemoveAfter)
		if err := n.Remove(r.ID); err != nil {
			n.log.Error("auto-remove failed", "member", r.ID, "err", err)
		}
	}
}
