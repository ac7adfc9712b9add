package store

import (
	"bytes"
	"container/heap"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/kvmesh/kvmesh/protocol"
)

// ScanKeys calls fn for each record of the partitions parts whose key
// starts with prefix and sorts after the cursor after ("" for all of
// them), in key order across the partitions, until fn returns false.
// It is what a key listing reads: the partitions are merged as they are
// read, a cursor each seeking to the first key it may list, so a page
// costs what it reads plus one seek per partition, never a read of whole
// partitions, and holds no more than fn keeps.
//
// The records still in memory are taken when ScanKeys starts and win over
// bbolt's for the same key, as in ScanFrom. fn runs inside one bbolt read
// transaction: it must be quick (a page, not a whole store) and must not
// call the Store. A corrupt record ends the scan with an error wrapping
// protocol.ErrInternal that names the key, after fn saw the records
// before it.
func (s *Store) ScanKeys(parts []int, prefix, after string, fn func(p int, key string, o *protocol.Object) bool) error {
	pps := make([][]byte, len(parts))
	for i, p := range parts {
		pp, err := partitionPrefix(p)
		if err != nil {
			return err
		}
		pps[i] = pp
	}
	if s.closed.Load() {
		return ErrClosed
	}
	// The first key to list: the prefix, or the smallest string after
	// the cursor, whichever is larger.
	start := prefix
	if after != "" && after+"\x00" > start {
		start = after + "\x00"
	}
	if len(parts) == 0 || !strings.HasPrefix(start, prefix) {
		return nil // the cursor is past every key with the prefix
	}
	mem := s.memKeys(parts, prefix, start)
	return s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketData)
		h := make(keyHeap, 0, len(parts))
		for i, p := range parts {
			c := b.Cursor()
			k, v := c.Seek(append(slices.Clip(pps[i]), start...))
			if k != nil && bytes.HasPrefix(k, pps[i]) && bytes.HasPrefix(k[2:], []byte(prefix)) {
				h = append(h, &partCursor{p: p, pp: pps[i], c: c, k: k, v: v})
			}
		}
		heap.Init(&h)
		for len(h) > 0 || len(mem) > 0 {
			var pc *partCursor
			if len(h) > 0 {
				pc = h[0]
			}
			if len(mem) > 0 && (pc == nil || bytes.Compare(mem[0].bkey[2:], pc.k[2:]) <= 0) {
				e := mem[0]
				mem = mem[1:]
				if pc != nil && bytes.Equal(e.bkey[2:], pc.k[2:]) {
					pc.next(prefix, &h) // memory has a newer record of the key
				}
				if !fn(partitionOf(e.bkey), string(e.bkey[2:]), clone(e.obj)) {
					return nil
				}
				continue
			}
			key := string(pc.k[2:])
			o, err := decodeRecord(pc.p, key, pc.k, pc.v)
			if err != nil {
				return err
			}
			p := pc.p
			pc.next(prefix, &h)
			if !fn(p, key, o) {
				return nil
			}
		}
		return nil
	})
}

// partitionOf returns the partition of a bbolt key.
func partitionOf(bkey []byte) int { return int(bkey[0])<<8 | int(bkey[1]) }

// memKeys returns the in-memory records of the partitions parts whose
// key starts with prefix and is at least start, newest per key, in key
// order.
func (s *Store) memKeys(parts []int, prefix, start string) []memEntry {
	want := make(map[int]bool, len(parts))
	for _, p := range parts {
		want[p] = true
	}
	s.memMu.RLock()
	byKey := make(map[string]memEntry)
	for _, t := range []*memtable{s.frozen, s.active} { // active last: it wins
		if t == nil {
			continue
		}
		for k, e := range t.m {
			key := k[2:]
			if strings.HasPrefix(key, prefix) && key >= start && want[partitionOf(e.bkey)] {
				byKey[k] = e
			}
		}
	}
	s.memMu.RUnlock()
	es := make([]memEntry, 0, len(byKey))
	for _, e := range byKey {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b memEntry) int { return bytes.Compare(a.bkey[2:], b.bkey[2:]) })
	return es
}

// partCursor is one partition's place in a ScanKeys merge: its bbolt
// cursor and the record under it.
type partCursor struct {
	p    int
	pp   []byte // the partition's key prefix
	c    *bolt.Cursor
	k, v []byte
}

// next moves pc to its partition's next record with the prefix, or out
// of h when there is none; pc is h[0].
func (pc *partCursor) next(prefix string, h *keyHeap) {
	pc.k, pc.v = pc.c.Next()
	if pc.k == nil || !bytes.HasPrefix(pc.k, pc.pp) || !bytes.HasPrefix(pc.k[2:], []byte(prefix)) {
		heap.Pop(h)
		return
	}
	heap.Fix(h, 0)
}

// keyHeap orders partition cursors by their current key, without the
// partition prefix.
type keyHeap []*partCursor

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return bytes.Compare(h[i].k[2:], h[j].k[2:]) < 0 }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(*partCursor)) }
func (h *keyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
