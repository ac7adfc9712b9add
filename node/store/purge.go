package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/kvmesh/kvmesh/protocol"
)

// PurgeKeys deletes the records of the given keys of partition p for
// which ok, called with the record as it is when it is deleted, says
// yes, and returns how many it deleted: tombstone compaction (the node
// decides which tombstones every replica holds and are old enough). ok
// must be quick and must not call the Store.
//
// It works as DropPartition does, and shares its one-at-a-time slot: a
// cut first (every record committed before it is in bbolt, and no log
// segment Open would replay holds one), then bbolt transactions of up to
// dropChunk keys. A key written after the cut is left alone, whatever ok
// would say: the write that came after the tombstone wins. Durability is
// DropPartition's: what a transaction deleted stays deleted after a
// crash or a power loss. The partition's tree is rebuilt at its next use.
func (s *Store) PurgeKeys(ctx context.Context, p int, keys []string, ok func(key string, o *protocol.Object) bool) (purged int, err error) {
	prefix, err := partitionPrefix(p)
	if err != nil {
		return 0, err
	}
	if len(keys) == 0 {
		return 0, nil
	}
	if s.closed.Load() {
		return 0, ErrClosed
	}
	select {
	case s.dropSem <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("store: purge in partition %d: %w", p, ctx.Err())
	}
	defer func() { <-s.dropSem }()

	d := &drop{prefix: prefix, kept: make(map[string]struct{})}
	defer s.dropping.CompareAndSwap(d, nil)
	defer s.trees.forget(p) // deletes outside the committer: see DropPartition
	if err := s.cutFor(ctx, d); err != nil {
		return 0, fmt.Errorf("store: purge in partition %d: %w", p, err)
	}
	bkeys := make([][]byte, 0, len(keys))
	for _, k := range keys {
		bkeys = append(bkeys, append(bytes.Clone(prefix), k...))
	}
	slices.SortFunc(bkeys, bytes.Compare)
	for start := 0; start < len(bkeys); start += s.dropChunk {
		if err := ctx.Err(); err != nil {
			return purged, fmt.Errorf("store: purge in partition %d: %d purged: %w", p, purged, err)
		}
		if s.closed.Load() {
			return purged, ErrClosed
		}
		chunk := bkeys[start:min(start+s.dropChunk, len(bkeys))]
		n := 0
		err := s.update(func(tx *bolt.Tx) error {
			n = 0
			b := tx.Bucket(bucketData)
			for _, bk := range chunk {
				v := b.Get(bk)
				if v == nil || d.isKept(bk) {
					continue
				}
				key := string(bk[len(prefix):])
				o, err := decodeRecord(p, key, bk, v)
				if err != nil {
					return err
				}
				if !ok(key, o) {
					continue
				}
				if err := b.Delete(bk); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return purged, fmt.Errorf("store: purge in partition %d: %d purged: %w", p, purged, s.dbError("delete", err))
		}
		purged += n
	}
	s.statsMu.Lock()
	s.stats.Purged += uint64(purged)
	s.statsMu.Unlock()
	return purged, nil
}
