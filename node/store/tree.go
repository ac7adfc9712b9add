package store

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/kvmesh/kvmesh/node/merkle"
	"github.com/kvmesh/kvmesh/protocol"
)

// The anti-entropy hash trees (node/merkle) of the partitions this store
// holds, kept in step with the records.
//
// A partition's tree is built when first asked for, by the committer,
// between two batches: it scans the partition, memtables and bbolt, while
// no batch can commit, so the tree is exactly the records at that point.
// From then on the committer reports every change of the partition's
// records to it, after the change's log sync (the digests of the object
// it replaced and of the new one), so the tree stays exactly the durable
// records: the merkle package's sums make the order of the updates
// irrelevant. A drop (DropPartition) deletes records outside the
// committer; it forgets the partition's tree, which is built anew at the
// next use. A store thus pays for trees only for the partitions a node
// exchanges, and Open pays nothing.
//
// Memory: one tree per partition exchanged (34 KiB with the default shape,
// see node/merkle). Cost per write: two digests (SHA-256 of the old and the
// new record) on the committer, only for partitions with a tree.

// trees holds the built trees. mu guards the map and every tree in it:
// the committer updates them under it, exchanges read them under it.
type trees struct {
	shape merkle.Shape
	mu    sync.Mutex
	m     map[int]*merkle.Tree
	build chan treeRequest // to the committer
}

// treeChange is one record change of a batch, for the trees.
type treeChange struct {
	p        int
	key      string
	old, new uint64 // digests; 0: absent
}

// treeRequest asks the committer to build partition p's tree.
type treeRequest struct {
	p     int
	reply chan error // buffered
}

func newTrees(shape merkle.Shape) *trees {
	return &trees{shape: shape, m: make(map[int]*merkle.Tree), build: make(chan treeRequest)}
}

// has reports whether partition p has a tree, for the committer: only it
// adds trees, so a false answer stays true until it builds one.
func (t *trees) has(p int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[p] != nil
}

// apply reports a batch's changes to the trees.
func (t *trees) apply(changes []treeChange) {
	if len(changes) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range changes {
		if tr := t.m[c.p]; tr != nil {
			tr.Update(c.key, c.old, c.new)
		}
	}
}

// forget drops partition p's tree: it no longer matches the records.
func (t *trees) forget(p int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, p)
}

// buildTree runs on the committer, between batches: it scans partition p
// and installs its tree. No batch commits meanwhile, so the scan sees
// exactly the durable records (ScanFrom merges memtables over bbolt).
func (s *Store) buildTree(p int) error {
	if s.trees.has(p) {
		return nil
	}
	tr, err := merkle.New(s.trees.shape)
	if err != nil {
		return err
	}
	var items []merkle.Item
	err = s.Scan(p, func(key string, o *protocol.Object) bool {
		items = append(items, merkle.Item{Key: key, Digest: merkle.Digest(key, o)})
		return true
	})
	if err != nil {
		return fmt.Errorf("store: tree of partition %d: %w", p, err)
	}
	tr.Rebuild(func(yield func(string, uint64) bool) {
		for _, it := range items {
			if !yield(it.Key, it.Digest) {
				return
			}
		}
	})
	s.trees.mu.Lock()
	s.trees.m[p] = tr
	s.trees.mu.Unlock()
	return nil
}

// withTree calls fn with partition p's tree, under the trees' lock, built
// first if needed (which waits for the committer's current batch). fn
// must not keep the tree or call the Store.
func (s *Store) withTree(ctx context.Context, p int, fn func(*merkle.Tree)) error {
	if _, err := partitionPrefix(p); err != nil {
		return err
	}
	for {
		s.trees.mu.Lock()
		if tr := s.trees.m[p]; tr != nil {
			fn(tr)
			s.trees.mu.Unlock()
			return nil
		}
		s.trees.mu.Unlock()
		rq := treeRequest{p: p, reply: make(chan error, 1)}
		select {
		case s.trees.build <- rq:
		case <-s.exited:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case err := <-rq.reply:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		// A drop may have forgotten the tree again: look once more.
	}
}

// TreeRoot returns the root hash of partition p's tree: equal on two
// replicas exactly when they hold the same records of p (merkle.Tree.Root).
func (s *Store) TreeRoot(ctx context.Context, p int) (root uint64, err error) {
	err = s.withTree(ctx, p, func(t *merkle.Tree) { root = t.Root() })
	return root, err
}

// BuiltTreeRoot returns the root of partition p's tree if the store has
// built it (an anti-entropy exchange asked for it), without building it:
// what a status report shows without costing a scan of the partition,
// nor, from then on, two digests per write.
func (s *Store) BuiltTreeRoot(p int) (root uint64, ok bool) {
	s.trees.mu.Lock()
	defer s.trees.mu.Unlock()
	if tr := s.trees.m[p]; tr != nil {
		return tr.Root(), true
	}
	return 0, false
}

// TreeStart returns the first message of an exchange of partition p's
// tree (merkle.Tree.Start).
func (s *Store) TreeStart(ctx context.Context, p int) (f merkle.Frontier, err error) {
	err = s.withTree(ctx, p, func(t *merkle.Tree) { f = t.Start() })
	return f, err
}

// TreeStep answers the other replica's frontier f of partition p
// (merkle.Tree.Step): the next frontier, or the differing leaf buckets.
func (s *Store) TreeStep(ctx context.Context, p int, f merkle.Frontier) (next merkle.Frontier, diff []int, err error) {
	var serr error
	err = s.withTree(ctx, p, func(t *merkle.Tree) { next, diff, serr = t.Step(f) })
	if err == nil {
		err = serr
	}
	return next, diff, err
}

// TreeShape returns the shape of the store's trees.
func (s *Store) TreeShape() merkle.Shape { return s.trees.shape }

// BucketItems lists the keys of partition p in the given leaf buckets
// (ascending) with their digests, in key order, starting after the key
// after ("" for the partition's start), until the items' keys hold budget
// bytes: the second half of an exchange. It returns the cursor of the
// next page ("" once the partition is done). It scans the partition from
// the cursor, hashing the records of those buckets: a differing exchange
// costs a read of the partition.
func (s *Store) BucketItems(p int, buckets []int, after string, budget int) (items []merkle.Item, next string, err error) {
	shape := s.trees.shape
	size := 0
	err = s.ScanFrom(p, after, func(key string, o *protocol.Object) bool {
		if _, ok := slices.BinarySearch(buckets, shape.Bucket(key)); !ok {
			return true
		}
		if len(items) > 0 && size+len(key)+merkleItemOverhead > budget {
			next = items[len(items)-1].Key
			return false
		}
		items = append(items, merkle.Item{Key: key, Digest: merkle.Digest(key, o)})
		size += len(key) + merkleItemOverhead
		return true
	})
	return items, next, err
}

// merkleItemOverhead is what an item costs in a reply beyond its key's
// bytes: the key's header and the digest.
const merkleItemOverhead = 16

// RebuildTree builds partition p's tree anew from the records, on the
// committer: the repair for a tree an exchange found out of step (a
// bucket differed, its keys did not). It should never be needed; it is
// counted (Stats.TreeRebuilds).
func (s *Store) RebuildTree(ctx context.Context, p int) error {
	s.trees.forget(p)
	s.statsMu.Lock()
	s.stats.TreeRebuilds++
	s.statsMu.Unlock()
	return s.withTree(ctx, p, func(*merkle.Tree) {})
}
