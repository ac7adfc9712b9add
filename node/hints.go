package node

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/kvmesh/kvmesh/node/store"
	"github.com/kvmesh/kvmesh/protocol"
)

// The fallback's side of a sloppy quorum: a replica write that names an
// owner it stands in for (Item.Hint) is stored as a record of its
// partition, like any other, and acknowledged only once a hint
// (partition, owner) is durable too (store.PutHints), so that the
// handoff (handoff.go) delivers the partition to the owner even after a
// restart. A hint is put only when its partition first takes a hinted
// write for that owner; the writes after it find it held.
//
// Each held hint counts the hinted writes noted since it was put (seq).
// The handoff reads the count before it reads the partition and deletes
// the hint only if the count did not move: a write is noted after its
// record is durable, so a write noted before the count was read is in
// what the handoff pushed, and one noted after keeps the hint for the
// next round. A hinted write under way (begun, not noted yet) keeps the
// whole partition from being dropped (hintBook.busy).

// hintKey is one hint: partition p holds writes for owner.
type hintKey struct {
	p     int
	owner string
}

// hintEntry is a hint the book holds: durable once its put committed;
// waiters are the acknowledgements of the writes waiting for that.
type hintEntry struct {
	seq     uint64
	durable bool
	waiters []func(error)
}

// hintChange is one put or delete of a hint for the writer, in order.
type hintChange struct {
	k   hintKey
	del bool
}

// hintBook is the node's hints: held in memory, mirrored durably in the
// store by its writer goroutine, in the order the changes were made. It
// is safe for concurrent use; its methods never block on the disk.
type hintBook struct {
	mu       sync.Mutex
	held     map[hintKey]*hintEntry
	inflight map[int]int // partition -> hinted writes begun and not noted yet
	queue    []hintChange
	wake     chan struct{} // capacity 1: the writer has work

	stored    atomic.Int64 // hinted writes this node took as a fallback
	delivered atomic.Int64 // hints delivered (and deleted)
	records   atomic.Int64 // records pushed to owners by the handoff
	stale     atomic.Int64 // records not pushed: older than the tombstone grace
}

// loadHints returns the book of the hints st holds.
func loadHints(st *store.Store) (*hintBook, error) {
	b := &hintBook{held: map[hintKey]*hintEntry{}, inflight: map[int]int{}, wake: make(chan struct{}, 1)}
	hs, err := st.Hints()
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		b.held[hintKey{h.Partition, h.Owner}] = &hintEntry{durable: true}
	}
	return b, nil
}

// begin marks a hinted write of partition p under way: its record is
// about to be applied. end or note follows, once.
func (b *hintBook) begin(p int) {
	b.mu.Lock()
	b.inflight[p]++
	b.mu.Unlock()
}

// end forgets a hinted write begun that stored nothing.
func (b *hintBook) end(p int) {
	b.mu.Lock()
	b.done(p)
	b.mu.Unlock()
}

func (b *hintBook) done(p int) {
	if b.inflight[p]--; b.inflight[p] <= 0 {
		delete(b.inflight, p)
	}
}

// note records a hinted write of k whose record is durable, and calls
// ack once the hint is durable too (at once when it is held already),
// with the error if it could not be stored. It never blocks.
func (b *hintBook) note(k hintKey, ack func(error)) {
	b.mu.Lock()
	b.done(k.p)
	b.stored.Add(1)
	e := b.held[k]
	if e == nil {
		e = &hintEntry{}
		b.held[k] = e
		b.enqueue(hintChange{k: k})
	}
	e.seq++
	if e.durable {
		b.mu.Unlock()
		ack(nil)
		return
	}
	e.waiters = append(e.waiters, ack)
	b.mu.Unlock()
}

// enqueue queues a change for the writer; b.mu is held.
func (b *hintBook) enqueue(c hintChange) {
	b.queue = append(b.queue, c)
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// seq returns k's count of hinted writes, and whether k is held and
// durable.
func (b *hintBook) seq(k hintKey) (uint64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.held[k]
	if e == nil || !e.durable {
		return 0, false
	}
	return e.seq, true
}

// forget deletes hint k if no hinted write was noted since its count
// was seq, and reports whether it did. The delete reaches the store
// after every change queued before it.
func (b *hintBook) forget(k hintKey, seq uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.held[k]
	if e == nil || !e.durable || e.seq != seq {
		return false
	}
	delete(b.held, k)
	b.enqueue(hintChange{k: k, del: true})
	b.delivered.Add(1)
	return true
}

// list returns the hints held, by partition then owner.
func (b *hintBook) list() []hintKey {
	b.mu.Lock()
	out := make([]hintKey, 0, len(b.held))
	for k := range b.held {
		out = append(out, k)
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(x, y hintKey) int {
		if x.p != y.p {
			return x.p - y.p
		}
		return compareStrings(x.owner, y.owner)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// busy reports whether partition p holds a hint, or a hinted write is
// under way in it: it must not be dropped.
func (b *hintBook) busy(p int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.busyLocked(p)
}

func (b *hintBook) busyLocked(p int) bool {
	if b.inflight[p] > 0 {
		return true
	}
	for k := range b.held {
		if k.p == p {
			return true
		}
	}
	return false
}

// owners returns the owners partition p holds hints for, and whether a
// hinted write is under way in it.
func (b *hintBook) owners(p int) (owners []string, underway bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.held {
		if k.p == p {
			owners = append(owners, k.owner)
		}
	}
	return owners, b.inflight[p] > 0
}

// pending returns the hints held, the partitions they are in and the
// hinted writes they took since the node started.
func (b *hintBook) pending() (hints, partitions int, writes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ps := map[int]bool{}
	for k, e := range b.held {
		ps[k.p] = true
		writes += int64(e.seq)
	}
	return len(b.held), len(ps), writes
}

// write mirrors the queued changes into st, in order, consecutive ones
// of a kind in one transaction, and acknowledges the writes that waited
// for their hint. A put that fails fails its waiters and is forgotten,
// so that the next hinted write of the key tries again.
func (b *hintBook) write(st *store.Store) {
	b.mu.Lock()
	q := b.queue
	b.queue = nil
	b.mu.Unlock()
	for len(q) > 0 {
		i := 1
		for i < len(q) && q[i].del == q[0].del {
			i++
		}
		run := q[:i]
		q = q[i:]
		hs := make([]store.Hint, len(run))
		for j, c := range run {
			hs[j] = store.Hint{Partition: c.k.p, Owner: c.k.owner}
		}
		if run[0].del {
			_ = st.DeleteHints(hs...) // a hint left behind is delivered again: harmless
			continue
		}
		err := st.PutHints(hs...)
		var acks []func(error)
		b.mu.Lock()
		for _, c := range run {
			e := b.held[c.k]
			if e == nil || e.durable {
				continue // deleted since (a later change in the queue), or put before
			}
			acks = append(acks, e.waiters...)
			e.waiters = nil
			if err != nil {
				delete(b.held, c.k)
			} else {
				e.durable = true
			}
		}
		b.mu.Unlock()
		for _, ack := range acks {
			ack(err)
		}
	}
}

// failAll fails every write waiting for its hint (the node is closing).
func (b *hintBook) failAll(err error) {
	b.mu.Lock()
	var acks []func(error)
	for k, e := range b.held {
		if !e.durable {
			acks = append(acks, e.waiters...)
			delete(b.held, k)
		}
	}
	b.mu.Unlock()
	for _, ack := range acks {
		ack(err)
	}
}

// serveHinted stores a replica write that stands in for owner it.Hint:
// the record, then the hint, then the acknowledgement. A leaving node
// takes none (it would have to hand it over again): the coordinator's
// next fallback does.
func (n *Node) serveHinted(p int, it *protocol.Item, add func(protocol.Result)) {
	if own, ok := n.mem.records().Get(n.cfg.ID); ok && (own.Status == protocol.MemberLeaving || own.Status == protocol.MemberLeft) {
		add(protocol.ResultError(it.Tag, protocol.Errorf(protocol.ErrNodeUnavailable, "%s is leaving: it takes no hinted writes", n.cfg.ID)))
		return
	}
	k := hintKey{p, it.Hint}
	tag := it.Tag
	n.hints.begin(p)
	err := n.st.Apply(p, it.Key, syncInto(n.conflicts, it.Obj), func(_ *protocol.Object, err error) {
		if err != nil {
			n.hints.end(p)
			add(protocol.ResultError(tag, err))
			return
		}
		n.hints.note(k, func(err error) {
			if err != nil {
				add(protocol.ResultError(tag, err))
				return
			}
			add(protocol.Result{Tag: tag})
		})
	})
	if err != nil {
		n.hints.end(p)
		add(protocol.ResultError(tag, err))
	}
}
