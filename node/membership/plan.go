package membership

import (
	"slices"
	"strings"

	"github.com/kvmesh/kvmesh/node/ring"
	"github.com/kvmesh/kvmesh/protocol"
)

// A change of membership moves partitions between nodes, so for a while
// there are two rings (DESIGN.md, "Durability, repair, rebalancing"):
//
//   - the serving ring, of the members up or leaving: reads ask its
//     owners, and only its owners coordinate writes;
//   - the target ring, of the members up or joining: where the
//     partitions are going.
//
// While they differ, writes are joint (they need a quorum among the
// owners of each ring), and every node that owns a partition in the
// target ring and not in the serving one copies it from the serving
// owners (Gains). Once every member has copied what it gains, the joining
// members become up and the leaving ones left, and the serving ring is
// the target ring.

// Serving returns the ids of the members that serve reads, sorted: those
// up or leaving.
func (s Set) Serving() []string {
	return s.ids(func(st protocol.MemberStatus) bool { return st == protocol.MemberUp || st == protocol.MemberLeaving })
}

// Target returns the ids of the members the partitions are going to,
// sorted: those up or joining.
func (s Set) Target() []string {
	return s.ids(func(st protocol.MemberStatus) bool { return st == protocol.MemberUp || st == protocol.MemberJoining })
}

func (s Set) ids(keep func(protocol.MemberStatus) bool) []string {
	var out []string
	for id, r := range s.recs {
		if keep(r.Status) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Epoch names a member list: equal lists (in any order) have the same
// epoch, and nodes tell each other in heartbeats which epoch they serve,
// target and have copied their partitions for. Zero is no list.
func Epoch(ids []string) uint64 {
	if len(ids) == 0 {
		return 0
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	return max(protocol.KeyHash(strings.Join(sorted, "\n")), 1)
}

// Move is a partition a node gains: it owns it in the target ring and
// not in the serving one, and copies it from From, its serving owners.
type Move struct {
	Partition int
	From      []string
}

// Gains returns the partitions self owns in target and not in serving,
// ascending, each with its serving owners.
func Gains(serving, target *ring.Ring, self string) []Move {
	var out []Move
	for _, p := range target.PartitionsOf(self) {
		if !serving.IsOwner(p, self) {
			out = append(out, Move{Partition: p, From: serving.Owners(p)})
		}
	}
	return out
}

// Flip returns the record that ends r's transition once every member has
// copied its partitions: a joining member becomes up, a leaving one left,
// one version later; ok is false for a record in no transition. It is a
// pure function of r, so the nodes that flip the same record sign the
// same bytes (ed25519 signatures are deterministic): whichever node
// flips it first, the result is one record.
func Flip(r protocol.MemberRecord) (protocol.MemberRecord, bool) {
	switch r.Status {
	case protocol.MemberJoining:
		r.Status = protocol.MemberUp
	case protocol.MemberLeaving:
		r.Status = protocol.MemberLeft
	default:
		return r, false
	}
	r.Version++
	r.Sig = nil
	return r, true
}
