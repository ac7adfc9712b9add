package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/kvmesh/kvmesh/protocol"
)

// Hints: a fallback that takes a write in place of a down owner (sloppy
// quorum) stores the object as a record of its partition, like any
// other, and a hint (partition, owner) saying that the partition holds
// writes that owner must get. Hints are few and change rarely (a hint is
// put when a partition first takes a hinted write for an owner, and
// deleted once the partition was delivered to it), so each change is its
// own bbolt transaction and fsync, in a bucket of its own, outside the
// log and the memtables.

var bucketHints = []byte("hints")

// Hint names a partition holding writes meant for Owner.
type Hint struct {
	Partition int
	Owner     string
}

// hintKey is the bbolt key of h: the partition prefix, then the owner id.
func hintKey(h Hint) ([]byte, error) {
	prefix, err := partitionPrefix(h.Partition)
	if err != nil {
		return nil, err
	}
	if err := protocol.ValidateNodeID(h.Owner); err != nil {
		return nil, fmt.Errorf("store: hint owner: %w", err)
	}
	return append(prefix, h.Owner...), nil
}

// PutHints durably records hints: once it returns nil they survive a
// crash. Recording one held already is harmless. It blocks for a bbolt
// transaction and its fsync, outside the write queue.
func (s *Store) PutHints(hints ...Hint) error {
	return s.changeHints(hints, func(b *bolt.Bucket, k []byte) error { return b.Put(k, nil) })
}

// DeleteHints durably deletes hints; deleting one not held is harmless.
// It blocks like PutHints.
func (s *Store) DeleteHints(hints ...Hint) error {
	return s.changeHints(hints, func(b *bolt.Bucket, k []byte) error { return b.Delete(k) })
}

func (s *Store) changeHints(hints []Hint, f func(*bolt.Bucket, []byte) error) error {
	if len(hints) == 0 {
		return nil
	}
	keys := make([][]byte, len(hints))
	for i, h := range hints {
		k, err := hintKey(h)
		if err != nil {
			return err
		}
		keys[i] = k
	}
	if s.closed.Load() {
		return ErrClosed
	}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketHints)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := f(b, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.dbError("hints", err)
	}
	return nil
}

// Hints returns every hint held, by partition then owner. A key that is
// not a valid hint (a damaged file) is an error wrapping
// protocol.ErrInternal.
func (s *Store) Hints() ([]Hint, error) {
	var out []Hint
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHints)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			h := Hint{}
			if len(k) > 2 {
				h = Hint{Partition: int(binary.BigEndian.Uint16(k)), Owner: string(bytes.Clone(k[2:]))}
			}
			if protocol.ValidateNodeID(h.Owner) != nil {
				return fmt.Errorf("%w: store: bad hint key %x", protocol.ErrInternal, k)
			}
			out = append(out, h)
			return nil
		})
	})
	return out, err
}
