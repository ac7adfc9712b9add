package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kvmesh/kvmesh/protocol"
)

// scanChunk is how many records Scan reads per read transaction. Scan
// calls fn between transactions, so a slow consumer never holds one open
// (an open read transaction blocks the remap a growing file needs).
const scanChunk = 256

// Get returns the object stored for (p, key), or (nil, nil) if there is
// none. It reads a durable state (from the memtables, else bbolt) and
// never waits for the committer. A record that does not decode is an
// error wrapping protocol.ErrInternal and protocol.ErrMalformed (or the
// validation error). The object belongs to the caller.
func (s *Store) Get(p int, key string) (*protocol.Object, error) {
	bk, err := dataKey(p, key)
	if err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if e, ok := s.memLookup(bk); ok {
		return clone(e.obj), nil
	}
	var o *protocol.Object
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketData).Get(bk)
		if v == nil {
			return nil
		}
		// DecodeObject copies what it keeps: v is only valid in the txn.
		o, err = decodeRecord(p, key, bk, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// memLookup finds bkey in the memtables.
func (s *Store) memLookup(bkey []byte) (memEntry, bool) {
	s.memMu.RLock()
	defer s.memMu.RUnlock()
	return lookup(s.active, s.frozen, bkey)
}

// Scan calls fn for each record of partition p in key order until fn
// returns false: ScanFrom from the partition's first key.
func (s *Store) Scan(p int, fn func(key string, o *protocol.Object) bool) error {
	return s.ScanFrom(p, "", fn)
}

// ScanFrom calls fn for each record of partition p whose key sorts after
// the cursor after ("" for all of them), in key order, until fn returns
// false. It seeks to the cursor, so a page of a transfer costs what it
// reads, not a read of the partition up to it.
//
// It reads in chunks of consecutive keys, each chunk in its own read
// transaction, and calls fn outside any transaction, so fn may take its
// time and may call the Store. ScanFrom is therefore not a snapshot of
// the partition: a key written during the scan may or may not be seen,
// but each record seen is one that was durable. The partition's records
// still in memory are taken when ScanFrom starts and win over bbolt's
// for the same key. A corrupt record ends the scan: fn has seen every
// record before it, and ScanFrom returns an error wrapping
// protocol.ErrInternal that names the key. Records before the cursor are
// not read, so a corrupt one there goes unnoticed.
func (s *Store) ScanFrom(p int, after string, fn func(key string, o *protocol.Object) bool) error {
	prefix, err := partitionPrefix(p)
	if err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	// The first key after the cursor is at least the cursor followed by
	// a zero byte: the smallest string that sorts after it.
	from := prefix
	if after != "" {
		from = append(append(bytes.Clone(prefix), after...), 0)
	}
	mem := s.memPartition(prefix, from)
	type record struct {
		key string
		o   *protocol.Object
	}
	recs := make([]record, 0, scanChunk)
	// emit hands fn the in-memory records before bk (all of them when bk
	// is nil), then the record of bk unless memory has a newer one.
	emit := func(bk []byte, key string, o *protocol.Object) bool {
		for len(mem) > 0 && (bk == nil || bytes.Compare(mem[0].bkey, bk) <= 0) {
			e := mem[0]
			mem = mem[1:]
			if !fn(string(e.bkey[len(prefix):]), clone(e.obj)) {
				return false
			}
			if bk != nil && bytes.Equal(e.bkey, bk) {
				return true
			}
		}
		return bk == nil || fn(key, o)
	}
	for {
		recs = recs[:0]
		var next []byte // first key of the next chunk; nil at the end
		var bad error   // a corrupt record after recs
		var badKey []byte
		err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketData).Cursor()
			for k, v := c.Seek(from); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if len(recs) == scanChunk {
					next = bytes.Clone(k)
					return nil
				}
				key := string(k[len(prefix):])
				if _, ok := findEntry(mem, k); ok {
					// Memory has a newer record: the bbolt one, even if
					// corrupt, is not what the key holds.
					recs = append(recs, record{key, nil})
					continue
				}
				o, err := decodeRecord(p, key, k, v)
				if err != nil {
					bad, badKey = err, bytes.Clone(k)
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
			if !emit(append(bytes.Clone(prefix), r.key...), r.key, r.o) {
				return nil
			}
		}
		if bad != nil {
			// Memory's records before the corrupt one come first, like
			// bbolt's.
			for len(mem) > 0 && bytes.Compare(mem[0].bkey, badKey) < 0 {
				e := mem[0]
				mem = mem[1:]
				if !fn(string(e.bkey[len(prefix):]), clone(e.obj)) {
					return nil
				}
			}
			return bad
		}
		if next == nil {
			emit(nil, "", nil)
			return nil
		}
		from = next
	}
}

// memPartition returns the in-memory records of the partition with the
// given prefix from the bbolt key from on, newest per key, in key order.
func (s *Store) memPartition(prefix, from []byte) []memEntry {
	s.memMu.RLock()
	byKey := make(map[string]memEntry)
	for _, t := range []*memtable{s.frozen, s.active} { // active last: it wins
		if t == nil {
			continue
		}
		for k, e := range t.m {
			if bytes.HasPrefix(e.bkey, prefix) && bytes.Compare(e.bkey, from) >= 0 {
				byKey[k] = e
			}
		}
	}
	s.memMu.RUnlock()
	es := make([]memEntry, 0, len(byKey))
	for _, e := range byKey {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b memEntry) int { return bytes.Compare(a.bkey, b.bkey) })
	return es
}

// findEntry finds bkey in es, sorted by key.
func findEntry(es []memEntry, bkey []byte) (memEntry, bool) {
	i, ok := slices.BinarySearchFunc(es, bkey, func(e memEntry, k []byte) int { return bytes.Compare(e.bkey, k) })
	if !ok {
		return memEntry{}, false
	}
	return es[i], true
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
	err := s.update(func(tx *bolt.Tx) error {
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
	err := recovered(s.path, func() error { return s.db.View(fn) })
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

// Cached returns the object of key in partition p if the store's memory
// (the memtables of writes not yet checkpointed) holds it: a lookup that
// never touches the disk. ok is false when it must be read from bbolt
// (Get).
func (s *Store) Cached(p int, key string) (obj *protocol.Object, ok bool, err error) {
	bk, err := dataKey(p, key)
	if err != nil {
		return nil, false, err
	}
	if s.closed.Load() {
		return nil, false, ErrClosed
	}
	if e, ok := s.memLookup(bk); ok {
		return clone(e.obj), true, nil
	}
	return nil, false, nil
}
