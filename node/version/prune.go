package version

import (
	"cmp"
	"slices"

	"github.com/kvmesh/kvmesh/protocol"
)

// Prune bounds a clock. While clock has more than protocol.MaxClockEntries
// entries it drops retired actors' entries, oldest first: an actor is
// retired if another actor of the same node, made in a later second, is
// in the clock too (a node makes a new actor only when it could not keep
// its last one, and never goes back to an older one: node/identity.go),
// and its entry may go only if no sibling carries its dot. A node's newest
// actor and every actor with a live sibling stay, so no actor that may
// still issue a dot loses its counter (a reissued dot could replace an
// acknowledged write), and every sibling keeps its clock entry.
//
// What pruning can cost: a replica (or a message) that still holds a
// sibling of a pruned actor's, superseded everywhere else, brings it back
// as a sibling when it merges, since no clock covers it any more. A
// superseded value may reappear; no acknowledged write is lost. It takes
// more than MaxClockEntries actors on one key to get there: a key gains
// one per machine restart, restore or disk loss of a node that
// coordinated a write of it.
//
// Prune is a pure function of the clock and the siblings, so replicas
// that merge the same objects prune the same way. It returns clock
// itself when nothing is dropped, else a new slice.
func Prune(clock protocol.Clock, sibs []protocol.Sibling) protocol.Clock {
	excess := len(clock) - protocol.MaxClockEntries
	if excess <= 0 {
		return clock
	}
	newest := make(map[string]int64) // node id -> creation second of its newest actor here
	for _, d := range clock {
		n := protocol.ActorNode(d.Node)
		if t := protocol.ActorCreated(d.Node); t > newest[n] {
			newest[n] = t
		}
	}
	live := make(map[string]bool, len(sibs))
	for _, s := range sibs {
		live[s.Dot.Node] = true
	}
	var retired []protocol.Dot
	for _, d := range clock {
		if !live[d.Node] && protocol.ActorCreated(d.Node) < newest[protocol.ActorNode(d.Node)] {
			retired = append(retired, d)
		}
	}
	slices.SortFunc(retired, func(a, b protocol.Dot) int {
		if c := cmp.Compare(protocol.ActorCreated(a.Node), protocol.ActorCreated(b.Node)); c != 0 {
			return c
		}
		return cmp.Compare(a.Node, b.Node)
	})
	drop := make(map[string]bool, excess)
	for _, d := range retired[:min(excess, len(retired))] {
		drop[d.Node] = true
	}
	out := make(protocol.Clock, 0, len(clock)-len(drop))
	for _, d := range clock {
		if !drop[d.Node] {
			out = append(out, d)
		}
	}
	return out
}
