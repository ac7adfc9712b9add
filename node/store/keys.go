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
// them), in key order across the partitions, until fn returns false or
// has seen limit records (limit > 0; the memtables' share of a scan is
// gathered up front, and limit bounds it, so a listing of a store whose
// records are all in memory still holds a page, not the memtables).
// The objects fn gets are the records' without their values (every
// Sibling.Value nil): their clocks and tombstones are what a listing
// merges, and values are neither copied nor kept. They are fn's.
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
func (s *Store) ScanKeys(parts []int, prefix, after string, limit int, fn func(p int, key string, o *protocol.Object) bool) error {
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
	mem := s.memKeys(parts, prefix, start, limit)
	seen := 0
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
				if seen++; !fn(partitionOf(e.bkey), string(e.bkey[2:]), cloneMeta(e.obj)) || seen == limit {
					return nil
				}
				continue
			}
			key := string(pc.k[2:])
			o, err := decodeRecordMeta(pc.p, key, pc.k, pc.v)
			if err != nil {
				return err
			}
			p := pc.p
			pc.next(prefix, &h)
			if seen++; !fn(p, key, o) || seen == limit {
				return nil
			}
		}
		return nil
	})
}

// cloneMeta copies o without its values.
func cloneMeta(o *protocol.Object) *protocol.Object {
	c := &protocol.Object{Clock: slices.Clone(o.Clock), Siblings: slices.Clone(o.Siblings)}
	for i := range c.Siblings {
		c.Siblings[i].Value = nil
	}
	return c
}

// partitionOf returns the partition of a bbolt key.
func partitionOf(bkey []byte) int { return int(bkey[0])<<8 | int(bkey[1]) }

// memKeys returns the in-memory records of the partitions parts whose
// key starts with prefix and is at least start, newest per key, in key
// order: the first limit of them, kept in a bounded heap as the
// memtables are walked, so that memory holds limit entries, not all
// that match.
func (s *Store) memKeys(parts []int, prefix, start string, limit int) []memEntry {
	want := make(map[int]bool, len(parts))
	for _, p := range parts {
		want[p] = true
	}
	h := memHeap{limit: limit}
	s.memMu.RLock()
	for k, e := range s.active.m {
		if key := k[2:]; strings.HasPrefix(key, prefix) && key >= start && want[partitionOf(e.bkey)] {
			h.offer(e)
		}
	}
	if s.frozen != nil {
		for k, e := range s.frozen.m {
			if _, newer := s.active.m[k]; newer {
				continue // active wins
			}
			if key := k[2:]; strings.HasPrefix(key, prefix) && key >= start && want[partitionOf(e.bkey)] {
				h.offer(e)
			}
		}
	}
	s.memMu.RUnlock()
	es := h.es
	slices.SortFunc(es, func(a, b memEntry) int { return bytes.Compare(a.bkey[2:], b.bkey[2:]) })
	return es
}

// memHeap keeps the limit smallest entries offered, by key without the
// partition prefix: a max-heap whose root is the largest kept.
type memHeap struct {
	es    []memEntry
	limit int
}

func (h *memHeap) Len() int           { return len(h.es) }
func (h *memHeap) Less(i, j int) bool { return bytes.Compare(h.es[i].bkey[2:], h.es[j].bkey[2:]) > 0 }
func (h *memHeap) Swap(i, j int)      { h.es[i], h.es[j] = h.es[j], h.es[i] }
func (h *memHeap) Push(x any)         { h.es = append(h.es, x.(memEntry)) }
func (h *memHeap) Pop() any {
	x := h.es[len(h.es)-1]
	h.es = h.es[:len(h.es)-1]
	return x
}

func (h *memHeap) offer(e memEntry) {
	switch {
	case h.limit <= 0 || len(h.es) < h.limit:
		heap.Push(h, e)
	case bytes.Compare(e.bkey[2:], h.es[0].bkey[2:]) < 0:
		h.es[0] = e
		heap.Fix(h, 0)
	}
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
