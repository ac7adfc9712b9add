package version

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/kvmesh/kvmesh/protocol"
)

// digestDomain starts every digest's input, so that a later digest
// function cannot collide with this one by accident.
const digestDomain = "kvmesh/version/digest/v1\x00"

// Digest returns a digest of the writes key's object o holds, for digest
// reads (coord.Read): its clock and, for each sibling in dot order, the
// dot, time, tombstone flag, expiry and value length. A dot names one
// write, whose value never changes (node/identity.go: an actor never
// issues a dot twice), so two replicas with the same digest hold the same
// object, up to a 2^-64 chance of collision, and the values are not
// hashed: a digest costs the same for any value size. A nil object, or
// one with neither clock nor siblings, has digest 0; any other has a
// digest other than 0. The anti-entropy trees hash the values as well
// (node/merkle.Digest). Digest does not modify o and is safe to call
// concurrently; it is stable across processes and versions.
func Digest(key string, o *protocol.Object) uint64 {
	clk, sibs := parts(o)
	if len(clk) == 0 && len(sibs) == 0 {
		return 0
	}
	var scratch [256]byte
	b := append(scratch[:0], digestDomain...)
	b = appendDigestString(b, key)
	b = binary.BigEndian.AppendUint64(b, uint64(len(clk)))
	for _, d := range clk {
		b = appendDigestDot(b, d)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(len(sibs)))
	for _, s := range sortedSiblings(sibs) {
		b = appendDigestDot(b, s.Dot)
		b = binary.BigEndian.AppendUint64(b, uint64(s.Time))
		var flags byte
		if s.Deleted {
			flags |= 1
		}
		b = append(b, flags)
		b = binary.BigEndian.AppendUint64(b, uint64(s.Expires))
		b = binary.BigEndian.AppendUint64(b, uint64(len(s.Value)))
	}
	sum := sha256.Sum256(b)
	d := binary.BigEndian.Uint64(sum[:8])
	if d == 0 {
		d = 1 // 0 means absent
	}
	return d
}

func appendDigestDot(b []byte, d protocol.Dot) []byte {
	return binary.BigEndian.AppendUint64(appendDigestString(b, d.Node), d.Counter)
}

func appendDigestString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}
