package merkle

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"slices"

	"github.com/kvmesh/kvmesh/protocol"
)

// digestDomain starts every digest's input, so that a future digest
// function (v2) cannot collide with this one by accident.
const digestDomain = "kvmesh/merkle/digest/v1\x00"

// Digest returns the digest of key's record: equal on two replicas
// exactly when version.Equal says their objects are equal (up to a 2^-64
// chance of collision). It hashes the key, the clock entries in their
// order (version.Equal compares clocks in order, and a valid clock is
// sorted, so the order is canonical) and the multiset of siblings (dot,
// value, tombstone flag, time, expiry) in any order, as version.Equal
// does; a nil and an empty value are the same. A nil object, or one with neither
// clock nor siblings, has digest 0: absent, no contribution to a tree.
// Any other object has a digest other than 0.
//
// The digest is the first 8 bytes of a SHA-256 over a length-prefixed
// encoding: stable across processes and Go versions (it is compared
// between nodes), and a record's bytes cannot be chosen to collide with
// another's. Digest reads the values once; it does not modify o and is
// safe to call concurrently.
func Digest(key string, o *protocol.Object) uint64 {
	if o == nil || len(o.Clock) == 0 && len(o.Siblings) == 0 {
		return 0
	}
	var scratch [64]byte
	h := sha256.New()
	b := append(scratch[:0], digestDomain...)
	b = appendString(b, key)
	b = binary.BigEndian.AppendUint64(b, uint64(len(o.Clock)))
	h.Write(b)
	for _, d := range o.Clock {
		h.Write(appendDot(scratch[:0], d))
	}

	// Siblings are a multiset: hash each on its own and sort the hashes,
	// which is canonical without a comparator over megabyte values.
	var small [4][sha256.Size]byte
	sums := small[:0]
	if len(o.Siblings) > len(small) {
		sums = make([][sha256.Size]byte, 0, len(o.Siblings))
	}
	sh := sha256.New()
	for i := range o.Siblings {
		sums = append(sums, siblingSum(sh, &o.Siblings[i]))
	}
	slices.SortFunc(sums, func(x, y [sha256.Size]byte) int { return bytes.Compare(x[:], y[:]) })
	h.Write(binary.BigEndian.AppendUint64(scratch[:0], uint64(len(sums))))
	for i := range sums {
		h.Write(sums[i][:])
	}

	var out [sha256.Size]byte
	d := binary.BigEndian.Uint64(h.Sum(out[:0]))
	if d == 0 {
		d = 1 // 0 means absent
	}
	return d
}

// siblingSum hashes one sibling: dot, time, flags, expiry, value. The
// flags byte has bit 0 for a tombstone and bit 1 for an expiry, which
// follows it; a sibling without one hashes as it did before TTLs, so
// that replicas of different versions agree on what they both hold.
func siblingSum(h hash.Hash, s *protocol.Sibling) (sum [sha256.Size]byte) {
	var scratch [64]byte
	h.Reset()
	b := appendDot(scratch[:0], s.Dot)
	b = binary.BigEndian.AppendUint64(b, uint64(s.Time))
	var flags byte
	if s.Deleted {
		flags |= 1
	}
	if s.Expires != 0 {
		flags |= 2
	}
	b = append(b, flags)
	if s.Expires != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(s.Expires))
	}
	b = binary.BigEndian.AppendUint64(b, uint64(len(s.Value)))
	h.Write(b)
	h.Write(s.Value)
	h.Sum(sum[:0])
	return sum
}

func appendDot(b []byte, d protocol.Dot) []byte {
	return binary.BigEndian.AppendUint64(appendString(b, d.Node), d.Counter)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}
