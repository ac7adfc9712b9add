package store

import (
	"bytes"
	"slices"

	"github.com/kvmesh/kvmesh/protocol"
)

// memtable holds the records of one log segment that are not in bbolt
// yet: the newest object of each key written to it.
//
// The committer owns the active memtable and is the only goroutine that
// changes it, under Store.memMu; readers look up under memMu read-locked.
// When it is checkpointed it is frozen and never changes again.
type memtable struct {
	seq   uint64 // the log segment holding its records
	m     map[string]memEntry
	bytes int // roughly the memory its entries hold

	// flushed is closed once the checkpoint of this memtable ended; err
	// is its error, set before.
	flushed chan struct{}
	err     error
}

// memEntry is a key's newest object and its encoding. Neither is ever
// modified: readers get copies, done callbacks read only.
type memEntry struct {
	bkey []byte
	obj  *protocol.Object
	enc  []byte
}

// memEntryOverhead approximates the map slot, the entry, the key string
// and the object's headers, beyond the key and encoding bytes.
const memEntryOverhead = 160

func newMemtable(seq uint64) *memtable {
	return &memtable{seq: seq, m: make(map[string]memEntry), flushed: make(chan struct{})}
}

func (t *memtable) put(e memEntry) {
	if old, ok := t.m[string(e.bkey)]; ok {
		t.bytes -= len(old.enc)
	} else {
		t.bytes += 2*len(e.bkey) + memEntryOverhead
	}
	t.bytes += len(e.enc)
	t.m[string(e.bkey)] = e
}

// sorted returns the entries in bbolt key order.
func (t *memtable) sorted() []memEntry {
	es := make([]memEntry, 0, len(t.m))
	for _, e := range t.m {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b memEntry) int { return bytes.Compare(a.bkey, b.bkey) })
	return es
}

// lookup finds bkey in the active memtable, then in the frozen one. The
// caller holds memMu (or is the committer, for active).
func lookup(active, frozen *memtable, bkey []byte) (memEntry, bool) {
	if e, ok := active.m[string(bkey)]; ok {
		return e, true
	}
	if frozen != nil {
		if e, ok := frozen.m[string(bkey)]; ok {
			return e, true
		}
	}
	return memEntry{}, false
}
