package store

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kvmesh/kvmesh/protocol"
)

// scanChunk is how many records Scan reads per read transaction. Scan
// calls fn between transactions, so a slow consumer never holds one open
// (an open read transaction blocks the remap a growing file needs).
const scanChunk = 256

// Get returns the object stored for (p, key), or (nil, nil) if there is
// none. It reads a committed state and never waits for the committer. A
// record that does not decode is an error wrapping protocol.ErrInternal
// and protocol.ErrMalformed (or the validation error). The object belongs
// to the caller.
func (s *Store) Get(p int, key string) (*protocol.Object, error) {
	bk, err := dataKey(p, key)
	if err != nil {
		return nil, err
	}
	var o *protocol.Object
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketData).Get(bk)
		if v == nil {
			return nil
		}
		// DecodeObject copies what it keeps: v is only valid in the txn.
		o, err = decodeRecord(p, key, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// Scan calls fn for each record of partition p in key order until fn
// returns false. It reads in chunks of consecutive keys, each chunk in its
// own read transaction, and calls fn outside any transaction, so fn may
// take its time and may call the Store. Scan is therefore not a snapshot
// of the partition: a key written during the scan may or may not be seen,
// but each record seen is one that was committed. A corrupt record ends
// the scan: fn has seen every record before it, and Scan returns an error
// wrapping protocol.ErrInternal that names the key.
func (s *Store) Scan(p int, fn func(key string, o *protocol.Object) bool) error {
	prefix, err := partitionPrefix(p)
	if err != nil {
		return err
	}
	type record struct {
		key string
		o   *protocol.Object
	}
	recs := make([]record, 0, scanChunk)
	from := prefix
	for {
		recs = recs[:0]
		var next []byte // first key of the next chunk; nil at the end
		var bad error   // a corrupt record after recs
		err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketData).Cursor()
			for k, v := c.Seek(from); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if len(recs) == scanChunk {
					next = bytes.Clone(k)
					return nil
				}
				key := string(k[len(prefix):])
				o, err := decodeRecord(p, key, v)
				if err != nil {
					bad = err
					return nil
				}
				recs = append(recs, record{key, o})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range recs {
			if !fn(r.key, r.o) {
				return nil
			}
		}
		if bad != nil {
			return bad
		}
		if next == nil {
			return nil
		}
		from = next
	}
}

// GetMeta returns a copy of the metadata entry name, or (nil, nil) if
// there is none.
func (s *Store) GetMeta(name string) ([]byte, error) {
	if err := validMetaName(name); err != nil {
		return nil, err
	}
	var v []byte
	err := s.view(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucketMeta).Get([]byte(name)))
		return nil
	})
	return v, err
}

// PutMeta durably stores the metadata entry name. It runs its own write
// transaction and fsync, outside the write queue, so it is never refused
// for overload; it blocks while the committer holds bbolt's writer. It is
// meant for rare, small values (node identity, ring epoch), not for data.
func (s *Store) PutMeta(name string, v []byte) error {
	if err := validMetaName(name); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(name), v)
	})
	if err != nil {
		return s.dbError("put meta "+name, err)
	}
	return nil
}

// view runs fn in a read-only transaction and maps a closed database to
// ErrClosed.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	err := s.db.View(fn)
	if err != nil && errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

func (s *Store) dbError(what string, err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return fmt.Errorf("%w: store: %s: %w", protocol.ErrInternal, what, err)
}
