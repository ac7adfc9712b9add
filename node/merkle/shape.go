package merkle

import (
	"fmt"
	"math/bits"

	"github.com/kvmesh/kvmesh/protocol"
)

// MaxLeaves bounds the leaf buckets of a shape: 65536 leaves make a tree
// of 0.5 to 1 MiB (by fanout), already more than a partition needs.
const MaxLeaves = 1 << maxLeafBits

const maxLeafBits = 16

// Shape is the fixed geometry of a tree: Depth levels of Fanout children
// below the root, so Fanout^Depth leaf buckets. Both sides of an exchange
// must use the same shape; it is a store-wide setting, not a per-tree one.
type Shape struct {
	Fanout int // children per inner node: a power of two in [2, 256]
	Depth  int // levels below the root, at least 1
}

// DefaultShape is fanout 16, depth 3: 4096 leaf buckets, 4369 nodes,
// about 34 KiB per tree (see the package comment for why).
func DefaultShape() Shape { return Shape{Fanout: 16, Depth: 3} }

// Validate checks that the fanout is a power of two in [2, 256], the
// depth at least 1 and the leaf count at most MaxLeaves.
func (s Shape) Validate() error {
	if s.Fanout < 2 || s.Fanout > 256 || s.Fanout&(s.Fanout-1) != 0 {
		return fmt.Errorf("merkle: fanout %d is not a power of two in [2, 256]", s.Fanout)
	}
	if s.Depth < 1 || s.Depth > maxLeafBits || s.Depth*s.shift() > maxLeafBits {
		return fmt.Errorf("merkle: depth %d with fanout %d is not in [1, %d leaves]", s.Depth, s.Fanout, MaxLeaves)
	}
	return nil
}

// Leaves returns the number of leaf buckets, Fanout^Depth.
func (s Shape) Leaves() int { return s.Width(s.Depth) }

// Width returns the number of nodes at a level: Fanout^level.
func (s Shape) Width(level int) int { return 1 << (s.shift() * level) }

// Bucket returns the leaf bucket of key, in [0, Leaves()). It is part of
// the cluster contract (every replica must put a key in the same bucket)
// and is pinned by a golden test. The shape must be valid.
//
// The bucket comes from the top bits of a second hash of the key, not
// from protocol.KeyHash directly: the keys of one partition share
// KeyHash's value modulo the partition count, so its low bits would
// crowd them into a fraction of the buckets.
func (s Shape) Bucket(key string) int {
	return int(bucketHash(key) >> (64 - s.shift()*s.Depth))
}

func (s Shape) shift() int { return bits.TrailingZeros(uint(s.Fanout)) }

// Salts that derive the bucket hash and the element hash from the key
// hash and the digest: arbitrary odd constants (the fractional digits of
// sqrt(2) and sqrt(3)), fixed forever as part of the contract.
const (
	bucketSalt  = 0x6a09e667f3bcc908
	elementSalt = 0xbb67ae8584caa73b
)

// bucketHash is the key's hash that places it in a bucket and keys its
// element.
func bucketHash(key string) uint64 { return protocol.Mix64(protocol.KeyHash(key) ^ bucketSalt) }

// element is what a key with digest d adds to its bucket: 0 when absent,
// else a hash of the key and the digest together, so that two keys
// swapping digests still change the bucket.
func element(kh, d uint64) uint64 {
	if d == 0 {
		return 0
	}
	return protocol.Mix64(kh ^ protocol.Mix64(d^elementSalt))
}
