package ring

import "github.com/kvmesh/kvmesh/protocol"

// The hashes are part of the cluster's contract: every node and every
// smart client must map a key to the same partition, and every node must
// place partitions alike, whatever process or Go version computes them.
// That rules out hash/maphash (seeded per process) and anything the
// runtime may change; FNV-1a 64 and the SplitMix64 finalizer are fixed,
// published functions written out in full.
//
// The key hash and the SplitMix64 finalizer live in protocol, the one
// definition nodes and clients share, with their golden tests. Member ids
// hash the same way. The partition and score hashes below are the ring's
// own: no client computes placement, it fetches the table
// (protocol.Placement).

// PartitionOf returns the partition of key among q partitions, a number in
// [0, q): protocol.PartitionOf, the definition clients use too. It is a
// pure function of key and q, identical in every process, and does not
// allocate.
//
// q must be at least 1; it comes from configuration, never from the
// network, and PartitionOf panics otherwise as an integer division by zero
// would.
func PartitionOf(key string, q int) int { return protocol.PartitionOf(key, q) }

// memberHash is the hash of a node id that seeds its rendezvous scores:
// the key hash (SplitMix64's finalizer over FNV-1a) of the id.
func memberHash(id string) uint64 { return protocol.KeyHash(id) }

// partitionHash is the per-partition salt of the rendezvous scores. The
// golden-ratio offset keeps partition 0 away from Mix64's fixed point 0.
func partitionHash(p int) uint64 {
	return protocol.Mix64(uint64(p) + 0x9e3779b97f4a7c15)
}

// score is the rendezvous (highest random weight) score of a member for a
// partition: the member with the highest score is the partition's first
// choice. It depends on the pair only, never on the rest of the member set,
// which is what keeps a join or leave from disturbing other pairs.
func score(member, partition uint64) uint64 {
	return protocol.Mix64(member ^ partition)
}
