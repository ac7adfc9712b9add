// Package ring decides where data lives: it maps keys to a fixed number of
// partitions and places each partition on N distinct nodes of the member
// set, with the ordered fallbacks a sloppy quorum tries when an owner is
// down.
//
// Placement is a pure function of the member set, the partition count and
// the replication factor: every node that sees the same members computes
// the same owners, in whatever order it learnt them, with no coordination.
// It is rendezvous (highest random weight) hashing with bounded loads:
// every node holds about 0.85 to 1.15 times its fair share of replicas,
// and a join or leave moves the joining or leaving node's share and little
// more: about 2% of all replicas beyond it at N=3. See place.go for the
// algorithm, and TestBalance and TestMovement for the measured figures.
//
// The mapping of keys (PartitionOf, defined in protocol so that clients
// share it) and the placement are part of the cluster's contract: nodes on
// different builds must agree on them, so both are pinned by golden tests
// and must never change silently.
//
// The package is pure: no goroutines, no clock, no randomness other than
// fixed hashes, no I/O; the standard library and protocol only.
package ring

import (
	"errors"
	"fmt"
	"slices"
)

// DefaultPartitions is the default number of partitions Q. It is part of a
// cluster's identity: changing it remaps every key.
const DefaultPartitions = 256

// MaxPartitions is the largest partition count New accepts. Building a
// ring takes time and memory in proportion to partitions × members.
const MaxPartitions = 1 << 16

// Errors returned by New.
var (
	// ErrNoMembers: the member set is empty.
	ErrNoMembers = errors.New("ring: no members")
	// ErrInvalidMember: a member id is empty.
	ErrInvalidMember = errors.New("ring: empty member id")
	// ErrDuplicateMember: a member id appears twice.
	ErrDuplicateMember = errors.New("ring: duplicate member id")
	// ErrInvalidPartitions: the partition count is not in [1, MaxPartitions].
	ErrInvalidPartitions = errors.New("ring: partition count out of range")
	// ErrInvalidReplicas: the replication factor is below 1.
	ErrInvalidReplicas = errors.New("ring: replication factor must be at least 1")
)

// Ring is an immutable placement of q partitions on a member set with
// replication factor n. It is built once by New (the zero Ring is not
// usable) and never changes: a membership change builds a new Ring, which
// callers swap in whole. All methods are safe for concurrent use and none
// blocks.
type Ring struct {
	q, n    int
	k       int      // owners per partition: min(n, len(members))
	members []string // sorted
	// prefs[p] is partition p's preference list, every member exactly
	// once: the k owners, primary first, then the fallbacks.
	prefs [][]string
	// partitionsOf[member] lists the partitions it owns, ascending.
	partitionsOf map[string][]int
}

// New builds the ring for members (node ids: non-empty, unique, in any
// order), q partitions (1 <= q <= MaxPartitions) and replication factor n
// (n >= 1). With fewer than n members every partition is owned by all of
// them. Invalid input gives an error wrapping one of the Err values above.
//
// New is a pure function of the member set, q and n; it does not keep
// members. For 50 members and 256 partitions it takes about a millisecond
// and a megabyte of short-lived allocations.
func New(members []string, q, n int) (*Ring, error) {
	if q < 1 || q > MaxPartitions {
		return nil, fmt.Errorf("new ring with %d partitions: %w", q, ErrInvalidPartitions)
	}
	if n < 1 {
		return nil, fmt.Errorf("new ring with n=%d: %w", n, ErrInvalidReplicas)
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("new ring: %w", ErrNoMembers)
	}
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	for i, id := range sorted {
		if id == "" {
			return nil, fmt.Errorf("new ring: %w", ErrInvalidMember)
		}
		if i > 0 && id == sorted[i-1] {
			return nil, fmt.Errorf("new ring: member %q: %w", id, ErrDuplicateMember)
		}
	}

	m := len(sorted)
	k := min(n, m)
	hashes := make([]uint64, m)
	for i, id := range sorted {
		hashes[i] = memberHash(id)
	}
	placed := place(hashes, q, k)

	r := &Ring{
		q:            q,
		n:            n,
		k:            k,
		members:      sorted,
		prefs:        make([][]string, q),
		partitionsOf: make(map[string][]int, m),
	}
	buf := make([]string, q*m)
	for p, pref := range placed {
		ids := buf[p*m : p*m+m : p*m+m]
		for j, i := range pref {
			ids[j] = sorted[i]
		}
		r.prefs[p] = ids
		for _, id := range ids[:k] {
			r.partitionsOf[id] = append(r.partitionsOf[id], p)
		}
	}
	return r, nil
}

// Partitions returns the number of partitions q.
func (r *Ring) Partitions() int { return r.q }

// N returns the replication factor the ring was built with. Owners returns
// fewer when there are fewer members.
func (r *Ring) N() int { return r.n }

// Members returns the member ids, sorted, in a new slice.
func (r *Ring) Members() []string { return slices.Clone(r.members) }

// Partition returns the partition of key: PartitionOf(key, r.Partitions()).
func (r *Ring) Partition(key string) int { return PartitionOf(key, r.q) }

// valid reports whether p is a partition of r. Partition numbers may come
// from the network, so an unknown one is answered, never a panic.
func (r *Ring) valid(p int) bool { return p >= 0 && p < r.q }

// Owners returns the min(N, members) distinct owners of partition p, the
// primary first. It returns nil if p is not in [0, Partitions()).
//
// The slice is the ring's own and is shared by every caller, so it does
// not allocate: callers must not modify it. (Appending to it is safe: its
// capacity ends at its length.)
func (r *Ring) Owners(p int) []string {
	if !r.valid(p) {
		return nil
	}
	return r.prefs[p][:r.k:r.k]
}

// Primary returns Owners(p)[0], the first node of partition p's
// preference list, or "" if p is out of range. Primaries are balanced
// like replicas (see place.go), so routing to them spreads load.
func (r *Ring) Primary(p int) string {
	if !r.valid(p) {
		return ""
	}
	return r.prefs[p][0]
}

// Fallbacks returns the members that do not own partition p, in the order
// a sloppy quorum should try them when owners are down. Owners and
// Fallbacks are disjoint and together hold every member once. It returns
// nil if p is out of range, and an empty slice if every member is an owner.
//
// The slice is shared and must not be modified, as for Owners.
func (r *Ring) Fallbacks(p int) []string {
	if !r.valid(p) {
		return nil
	}
	return r.prefs[p][r.k:]
}

// Preference returns partition p's whole preference list: Owners(p)
// followed by Fallbacks(p), every member once. It returns nil if p is out
// of range. The slice is shared and must not be modified.
func (r *Ring) Preference(p int) []string {
	if !r.valid(p) {
		return nil
	}
	return r.prefs[p]
}

// IsOwner reports whether node is one of the owners of partition p.
func (r *Ring) IsOwner(p int, node string) bool {
	return slices.Contains(r.Owners(p), node)
}

// PartitionsOf returns the partitions node owns (in any owner slot),
// ascending, in a new slice; nil if it owns none or is not a member.
func (r *Ring) PartitionsOf(node string) []int {
	return slices.Clone(r.partitionsOf[node])
}
