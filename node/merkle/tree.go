package merkle

import (
	"fmt"
	"iter"
)

// Tree is the hash tree of one partition on one replica: a fixed shape
// whose leaf buckets hold the sum (mod 2^64) of the elements of their
// keys, element(key, digest), and whose inner nodes hold the sum of their
// children. A node's hash is therefore a hash of the set of (key, digest)
// pairs below it, whatever order they were added in.
//
// The replica that owns the partition owns its tree and keeps it in step
// with its records: Update on every change, Rebuild from a full scan. A
// Tree is not safe for concurrent use; nothing in it blocks.
type Tree struct {
	shape Shape
	shift int
	off   []int    // off[l]: index in nodes of level l's first node
	nodes []uint64 // level 0 (the root), then level 1, ..., the leaves last
}

// New returns an empty tree (every digest absent) of the given shape, or
// an error if the shape is not valid.
func New(s Shape) (*Tree, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	t := &Tree{shape: s, shift: s.shift(), off: make([]int, s.Depth+1)}
	n := 0
	for l := range t.off {
		t.off[l] = n
		n += s.Width(l)
	}
	t.nodes = make([]uint64, n)
	return t, nil
}

// Shape returns the tree's shape.
func (t *Tree) Shape() Shape { return t.shape }

// Bucket returns the leaf bucket of key (Shape.Bucket).
func (t *Tree) Bucket(key string) int { return t.shape.Bucket(key) }

// Update records that key's digest changed from old to new (0 for
// absent: a put of a new key has old 0, a purge new 0). It costs one
// key hash and Depth+1 additions, and allocates nothing. Updates
// commute: any order of the same updates gives the same tree, even one
// that applies a key's later change first. old must be the digest the
// tree was last told for key; a wrong one leaves the tree out of step
// with the records until RebuildBucket or Rebuild.
func (t *Tree) Update(key string, old, new uint64) {
	if old == new {
		return
	}
	kh := bucketHash(key)
	t.add(int(kh>>(64-t.shift*t.shape.Depth)), element(kh, new)-element(kh, old))
}

// add adds delta to a leaf and every node above it.
func (t *Tree) add(leaf int, delta uint64) {
	d := t.shape.Depth
	for l := d; l >= 0; l-- {
		t.nodes[t.off[l]+leaf>>(t.shift*(d-l))] += delta
	}
}

// Rebuild replaces the whole tree with the one for items, the partition's
// keys and their digests (a key with digest 0 is skipped): what a replica
// does from a full scan at start, or when it suspects its tree. Each key
// must appear once. It costs one key hash per item plus one pass over the
// nodes, and allocates nothing.
func (t *Tree) Rebuild(items iter.Seq2[string, uint64]) {
	clear(t.nodes)
	leaves := t.level(t.shape.Depth)
	for key, d := range items {
		if d != 0 {
			kh := bucketHash(key)
			leaves[kh>>(64-t.shift*t.shape.Depth)] += element(kh, d)
		}
	}
	t.sumUp()
}

// RebuildBucket replaces one leaf bucket with the one for items and
// updates the nodes above it: the repair for a tree found out of step
// with its records (an exchange found the bucket differing, the keys
// compared equal). items may hold keys of other buckets, so a scan of the
// whole partition can be passed as is; they are skipped. bucket must be
// in [0, Leaves()).
func (t *Tree) RebuildBucket(bucket int, items iter.Seq2[string, uint64]) {
	var sum uint64
	for key, d := range items {
		kh := bucketHash(key)
		if int(kh>>(64-t.shift*t.shape.Depth)) == bucket {
			sum += element(kh, d)
		}
	}
	t.add(bucket, sum-t.nodes[t.off[t.shape.Depth]+bucket])
}

// sumUp recomputes every inner node from the leaves.
func (t *Tree) sumUp() {
	for l := t.shape.Depth - 1; l >= 0; l-- {
		parents, children := t.level(l), t.level(l+1)
		for i := range parents {
			var s uint64
			for _, c := range children[i<<t.shift : (i+1)<<t.shift] {
				s += c
			}
			parents[i] = s
		}
	}
}

// Root returns the root hash: two replicas' trees of a partition have the
// same root exactly when they hold the same keys with the same digests
// (up to a 2^-64 chance).
func (t *Tree) Root() uint64 { return t.nodes[0] }

// Level returns a copy of the hashes of the nodes at level d, 0 (the
// root) to Depth (the leaf buckets), by node index. Node i at level d has
// the children i*Fanout to (i+1)*Fanout-1 at level d+1; leaf i is bucket
// i.
func (t *Tree) Level(d int) []uint64 {
	if d < 0 || d > t.shape.Depth {
		panic(fmt.Sprintf("merkle: level %d of a tree of depth %d", d, t.shape.Depth))
	}
	return append([]uint64(nil), t.level(d)...)
}

func (t *Tree) level(d int) []uint64 {
	return t.nodes[t.off[d] : t.off[d]+t.shape.Width(d)]
}

// Diff returns the leaf buckets, ascending, in which a and b differ: the
// buckets whose keys the caller compares. It descends only into the
// children of differing nodes, as an exchange does, and returns an error
// if the shapes differ.
func Diff(a, b *Tree) ([]int, error) {
	if a.shape != b.shape {
		return nil, fmt.Errorf("merkle: diff of shapes %v and %v", a.shape, b.shape)
	}
	nodes := []int{0}
	for l := 0; ; l++ {
		la, lb := a.level(l), b.level(l)
		var differ []int
		for _, i := range nodes {
			if la[i] != lb[i] {
				differ = append(differ, i)
			}
		}
		if l == a.shape.Depth || len(differ) == 0 {
			return differ, nil
		}
		nodes = a.children(differ)
	}
}

// children returns the children of the given nodes, in order.
func (t *Tree) children(nodes []int) []int {
	out := make([]int, 0, len(nodes)<<t.shift)
	for _, i := range nodes {
		for c := i << t.shift; c < (i+1)<<t.shift; c++ {
			out = append(out, c)
		}
	}
	return out
}
