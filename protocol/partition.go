package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
)

// The key hash is part of the cluster's contract: every node and every
// smart client must map a key to the same partition, whatever process or
// Go version computes it. That rules out hash/maphash (seeded per process)
// and anything the runtime may change; FNV-1a 64 and the SplitMix64
// finalizer are fixed, published functions written out here in full.
// node/ring pins their values with golden tests.

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// KeyHash is the stable 64-bit hash of a key that PartitionOf reduces
// modulo the partition count: the SplitMix64 finalizer over FNV-1a 64 of
// the key's bytes. FNV-1a alone leaves the low bits poorly mixed for
// short, similar keys ("user:1", "user:2"); after the finalizer every
// output bit depends on every input bit, so "mod q" is uniform even for
// small q. It does not allocate.
func KeyHash(key string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= fnvPrime64
	}
	return Mix64(h)
}

// Mix64 is the SplitMix64 finalizer (Stafford's Mix13): every output bit
// depends on every input bit. KeyHash ends with it, and node/ring mixes
// its partition and rendezvous scores with it.
func Mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// PartitionOf returns the partition of key among partitions (Q), a number
// in [0, partitions). It is a pure function of its arguments, identical in
// every process, and does not allocate.
//
// partitions must be at least 1; like an integer division by zero,
// PartitionOf panics otherwise. A count that comes from the network must
// be checked first (DecodePlacement does).
func PartitionOf(key string, partitions int) int {
	if partitions < 1 {
		panic("protocol: PartitionOf with partitions < 1")
	}
	return int(KeyHash(key) % uint64(partitions))
}

// MaxPartitions is the largest partition count Q a store may have.
const MaxPartitions = 1 << 16

// Placement is the store's placement table as the placement endpoint
// (Subjects.Ring) sends it, in JSON so that `nats req kvmesh.kv.ring ""`
// is readable: which nodes own each partition, in preference order. A
// smart client sends a request straight to an owner of its key and saves
// the hop a non-owner takes to forward it.
//
// The table is advice, never a condition of correctness: any node
// coordinates any key (a non-owner forwards to an owner), so a client
// with an old or wrong table only pays hops.
//
// A Placement from NewPlacement or DecodePlacement is valid and must not
// be modified; it is then safe for concurrent use.
type Placement struct {
	V int `json:"v"` // protocol version (Version)
	// Node is the node that answered.
	Node string `json:"node"`
	// Epoch identifies the table: a hash of every field below, so two
	// tables with the same epoch place every key alike. See
	// PlacementEpoch.
	Epoch string `json:"epoch"`
	// Partitions is Q, the number of partitions of the key space.
	Partitions int `json:"partitions"`
	// Replicas is N, the store's replication factor.
	Replicas int `json:"replicas"`
	// Members are the ids of the store's nodes, sorted.
	Members []string `json:"members"`
	// Owners[p] are partition p's min(N, len(Members)) owners in
	// preference order (primary first), as indices into Members: a table
	// of 65,536 partitions still fits a message.
	Owners [][]int `json:"owners"`
	// Down are the members the answering node's failure detector holds
	// down, as indices into Members: a client sends to them last. It is
	// liveness, not placement, so it is not part of the epoch.
	Down []int `json:"down,omitempty"`

	ids [][]string // Owners resolved to ids, shared by all callers
}

// IsDown reports whether the table says member id is down.
func (pl *Placement) IsDown(id string) bool {
	for _, i := range pl.Down {
		if i >= 0 && i < len(pl.Members) && pl.Members[i] == id {
			return true
		}
	}
	return false
}

// NewPlacement builds the table node answers with: owners[p] are
// partition p's owners, primary first, each one of members. It returns
// ErrInvalidOption if the result would not pass DecodePlacement.
func NewPlacement(node string, partitions, replicas int, members []string, owners [][]string, down ...string) (*Placement, error) {
	pl := &Placement{V: Version, Node: node, Partitions: partitions, Replicas: replicas,
		Members: slices.Sorted(slices.Values(members))}
	index := make(map[string]int, len(pl.Members))
	for i, id := range pl.Members {
		index[id] = i
	}
	pl.Owners = make([][]int, len(owners))
	for p, list := range owners {
		pl.Owners[p] = make([]int, len(list))
		for j, id := range list {
			i, ok := index[id]
			if !ok {
				return nil, Errorf(ErrInvalidOption, "placement: owner %q of partition %d is not a member", Clip(id, 64), p)
			}
			pl.Owners[p][j] = i
		}
	}
	for _, id := range down {
		if i, ok := index[id]; ok {
			pl.Down = append(pl.Down, i)
		}
	}
	pl.Epoch = PlacementEpoch(pl)
	if err := pl.check(); err != nil {
		return nil, Errorf(ErrInvalidOption, "%v", err)
	}
	return pl, nil
}

// EncodePlacement encodes pl as JSON for the wire.
func EncodePlacement(pl *Placement) ([]byte, error) { return json.Marshal(pl) }

// DecodePlacement decodes and checks a placement table from the network:
// the version, Q in [1, MaxPartitions], N >= 1, 1..MaxMembers valid and
// sorted member ids, exactly Q owner lists of min(N, members) distinct
// members each, and the epoch. Anything else is ErrMalformed. Unknown JSON
// fields are ignored, so a newer node may add some.
func DecodePlacement(b []byte) (*Placement, error) {
	var pl Placement
	if err := json.Unmarshal(b, &pl); err != nil {
		return nil, Errorf(ErrMalformed, "placement: %v", err)
	}
	if err := pl.check(); err != nil {
		return nil, err
	}
	if e := PlacementEpoch(&pl); pl.Epoch != e {
		return nil, Errorf(ErrMalformed, "placement: epoch %q does not match its table (%s)", Clip(pl.Epoch, 32), e)
	}
	return &pl, nil
}

// check validates everything but the epoch and resolves the owner ids.
func (pl *Placement) check() error {
	switch {
	case pl.V != Version:
		return Errorf(ErrMalformed, "placement: protocol version %d, want %d", pl.V, Version)
	case pl.Partitions < 1 || pl.Partitions > MaxPartitions:
		return Errorf(ErrMalformed, "placement: %d partitions, want 1..%d", pl.Partitions, MaxPartitions)
	case pl.Replicas < 1 || pl.Replicas > MaxMembers:
		return Errorf(ErrMalformed, "placement: %d replicas, want 1..%d", pl.Replicas, MaxMembers)
	case len(pl.Members) < 1 || len(pl.Members) > MaxMembers:
		return Errorf(ErrMalformed, "placement: %d members, want 1..%d", len(pl.Members), MaxMembers)
	case len(pl.Owners) != pl.Partitions:
		return Errorf(ErrMalformed, "placement: %d owner lists for %d partitions", len(pl.Owners), pl.Partitions)
	case pl.Node != "" && ValidateNodeID(pl.Node) != nil:
		return Errorf(ErrMalformed, "placement: bad node id")
	case len(pl.Down) > len(pl.Members):
		return Errorf(ErrMalformed, "placement: %d down of %d members", len(pl.Down), len(pl.Members))
	}
	for _, i := range pl.Down {
		if i < 0 || i >= len(pl.Members) {
			return Errorf(ErrMalformed, "placement: down index %d out of range", i)
		}
	}
	for i, id := range pl.Members {
		if ValidateNodeID(id) != nil {
			return Errorf(ErrMalformed, "placement: bad member id %q", Clip(id, 64))
		}
		if i > 0 && id <= pl.Members[i-1] {
			return Errorf(ErrMalformed, "placement: members not sorted and distinct at %q", id)
		}
	}
	k := min(pl.Replicas, len(pl.Members))
	// Check the lengths before allocating: then the allocation is bounded
	// by the input, which holds every index.
	for p, list := range pl.Owners {
		if len(list) != k {
			return Errorf(ErrMalformed, "placement: partition %d has %d owners, want %d", p, len(list), k)
		}
	}
	seen := make([]int, len(pl.Members)) // seen[i] == p+1: member i owns p already
	ids := make([][]string, pl.Partitions)
	buf := make([]string, pl.Partitions*k)
	for p, list := range pl.Owners {
		ids[p] = buf[p*k : (p+1)*k : (p+1)*k]
		for j, i := range list {
			if i < 0 || i >= len(pl.Members) {
				return Errorf(ErrMalformed, "placement: partition %d: owner index %d out of range", p, i)
			}
			if seen[i] == p+1 {
				return Errorf(ErrMalformed, "placement: partition %d: owner %s twice", p, pl.Members[i])
			}
			seen[i] = p + 1
			ids[p][j] = pl.Members[i]
		}
	}
	pl.ids = ids
	return nil
}

// PlacementEpoch is the epoch of pl's table: the first 16 hex digits of a
// SHA-256 over its partitions, replicas, members and owners (not Node,
// V or Epoch). Nodes that see the same members compute the same epoch.
func PlacementEpoch(pl *Placement) string {
	h := sha256.New()
	var b [8]byte
	put := func(v int) {
		binary.BigEndian.PutUint64(b[:], uint64(v))
		h.Write(b[:])
	}
	h.Write([]byte("kvmesh placement " + strconv.Itoa(Version) + "\n"))
	put(pl.Partitions)
	put(pl.Replicas)
	put(len(pl.Members))
	for _, id := range pl.Members {
		put(len(id))
		h.Write([]byte(id))
	}
	put(len(pl.Owners))
	for _, list := range pl.Owners {
		put(len(list))
		for _, i := range list {
			put(i)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Partition returns the partition of key: PartitionOf(key, pl.Partitions).
// It returns -1 for a table without partitions, which OwnerIDs maps to
// nil.
func (pl *Placement) Partition(key string) int {
	if pl.Partitions < 1 {
		return -1
	}
	return PartitionOf(key, pl.Partitions)
}

// OwnerIDs returns partition p's owners, primary first, or nil if p is out
// of range or pl did not come from NewPlacement or DecodePlacement. The
// slice is shared: callers must not modify it.
func (pl *Placement) OwnerIDs(p int) []string {
	if p < 0 || p >= len(pl.ids) {
		return nil
	}
	return pl.ids[p]
}
