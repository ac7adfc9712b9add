package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/node/store"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Key listing. A page of the keys with a prefix after a cursor is built
// by the node a client asked (the coordinator) in rounds:
//
//  1. It asks every owner that is not held down for a page of its
//     records of the partitions it owns (protocol.RPCKeys): at most the
//     keys still wanted, in key order across those partitions, without
//     their values. Its own store it reads itself.
//  2. A partition is listed only when at least r of its owners answered
//     (the read quorum, a majority by default); else the page fails
//     with ErrQuorumNotReached.
//  3. Each owner's page is complete up to its last key when it has more
//     (its Next), to the end when not. So every key up to the smallest
//     such last key (the bound) has been seen by every owner that
//     answered: for those keys the coordinator merges the owners'
//     objects as a read does (version.Conflicts.Sync) and lists the key
//     when the merge holds a live value at its clock now (not deleted,
//     not expired). A delete acknowledged by a quorum therefore hides the
//     key even from an owner that missed it.
//  4. When the page is full, or every owner is done, it answers; else
//     the next round starts after the bound.
//
// Nothing is loaded beyond a round: each owner's reply holds at most
// min(wanted, protocol.MaxScanRecords) records that fit a message, and
// the coordinator holds those of every owner for one round (records
// without values: a key, its clock and its siblings' dots).

// keysRounds bounds the rounds of one page: a page of keys mostly
// deleted ends short, with a cursor, rather than keep the client waiting.
const keysRounds = 8

// Listers: goroutines that build pages of keys (listKeys waits for the
// owners), fed through a bounded queue so that a delivery goroutine
// never waits, as the readers are (reads.go).
const (
	listers     = 2
	listBacklog = 64
)

// keysQuery is a page of keys to list: those starting with prefix after
// the key after, at most limit of them, listed when r owners of their
// partition answered.
type keysQuery struct {
	prefix, after string
	limit, r      int
}

// listedKey is one key of a page and its merged object (values left
// out), for the client's details: its live siblings, context, expiry.
type listedKey struct {
	key string
	obj *protocol.Object
}

// startListers starts the lister goroutines; they stop with the node.
func (n *Node) startListers() {
	n.lists = make(chan func(), listBacklog)
	for range listers {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for {
				select {
				case <-n.stop:
					return
				case job := <-n.lists:
					job()
				}
			}
		}()
	}
}

// queueList hands job to the listers, or returns ErrOverloaded at once
// when their queue is full. It never blocks. A job still queued when
// the node stops is dropped: its client's request times out.
func (n *Node) queueList(job func()) error {
	select {
	case n.lists <- job:
		return nil
	default:
		return protocol.Errorf(protocol.ErrOverloaded, "node %s: %d listings queued", n.cfg.ID, listBacklog)
	}
}

// keyPage is one owner's answer to a round.
type keyPage struct {
	recs []protocol.Record
	next string // the last key when it has more, "" when done
	err  error
}

// listKeys builds one page of q: the listed keys in order, and the
// cursor to continue after ("" when no key remains). It blocks for at
// most keysRounds rounds of owners' answers.
func (n *Node) listKeys(ctx context.Context, q keysQuery) ([]listedKey, string, error) {
	rg := n.mem.ring()
	down := n.live.in(membership.Down)
	parts := map[string][]int{} // owner -> the partitions it owns, ascending
	owners := make([][]string, rg.Partitions())
	for p := range owners {
		owners[p] = rg.Owners(p)
		if q.r < 1 || q.r > len(owners[p]) {
			return nil, "", protocol.Errorf(protocol.ErrQuorumNotReached, "keys: r=%d with %d owners", q.r, len(owners[p]))
		}
		for _, o := range owners[p] {
			parts[o] = append(parts[o], p)
		}
	}
	var listed []listedKey
	after := q.after
	for range keysRounds {
		want := min(q.limit-len(listed), protocol.MaxScanRecords)
		pages := n.fetchKeys(ctx, parts, down, q.prefix, after, want)
		for p, os := range owners {
			ok := 0
			for _, o := range os {
				if pg, in := pages[o]; in && pg.err == nil {
					ok++
				}
			}
			if ok < q.r {
				var errs []error
				for _, o := range os {
					if pg, in := pages[o]; in && pg.err != nil {
						errs = append(errs, pg.err)
					}
				}
				return nil, "", quorumError(p, ok, q.r, down, errs)
			}
		}
		keys, next := mergeKeyPages(n.conflicts, pages, q.prefix, after, n.clock.Now().UnixNano(), q.limit-len(listed))
		listed = append(listed, keys...)
		if len(listed) == q.limit || next == "" || ctx.Err() != nil {
			return listed, next, nil
		}
		after = next
	}
	return listed, after, nil
}

// quorumError says why partition p cannot be listed.
func quorumError(p, ok, r int, down []string, errs []error) error {
	msg := "keys: partition %d: %d owners answered, r=%d"
	if len(down) > 0 {
		msg += " (down: " + strings.Join(down, ", ") + ")"
	}
	err := protocol.Errorf(protocol.ErrQuorumNotReached, msg, p, ok, r)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", err, errors.Join(errs...))
	}
	return err
}

// fetchKeys asks every owner in parts that is not down for its page,
// this node from its own store, the others at once over the node RPC,
// and waits for them all (each at most the request timeout).
func (n *Node) fetchKeys(ctx context.Context, parts map[string][]int, down []string, prefix, after string, want int) map[string]keyPage {
	budget := protocol.ScanBudget(int64(n.cfg.MaxPayload))
	pages := make(map[string]keyPage, len(parts))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, ps := range parts {
		if slices.Contains(down, id) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pg keyPage
			if id == n.cfg.ID {
				res := keysPage(n.st, ps, prefix, after, want, budget)
				pg = keyPage{recs: res.Recs, next: res.Next, err: res.Error()}
			} else {
				it := protocol.Item{Op: protocol.RPCKeys, Parts: ps, Prefix: prefix, After: after, Limit: want, Budget: budget}
				res, err := n.request(ctx, id, it)
				switch {
				case err != nil:
					pg.err = err
				case res.Error() != nil:
					pg.err = res.Error()
				default:
					pg = keyPage{recs: res.Recs, next: res.Next}
				}
			}
			mu.Lock()
			pages[id] = pg
			mu.Unlock()
		}()
	}
	wg.Wait()
	return pages
}

// mergeKeyPages merges one round's pages (keyPage.err set: left out) of
// a listing of the keys with prefix after the cursor: the keys up to the
// bound (the smallest last key of the pages that have more), each
// merged across the pages that hold it by c and listed when a value of
// the merge is live at now, at most limit of them. next is where the
// listing goes on: after the last key listed when the limit cut the
// round short, else after the bound, and "" when every page is done. A
// record outside the listing (a peer's bug) is ignored. It is pure:
// listKeys' decisions, testable alone.
func mergeKeyPages(c version.Conflicts, pages map[string]keyPage, prefix, after string, now int64, limit int) (listed []listedKey, next string) {
	var bound string
	var all []protocol.Record
	for _, pg := range pages {
		if pg.err == nil && pg.next != "" && (bound == "" || pg.next < bound) {
			bound = pg.next
		}
	}
	for _, pg := range pages {
		if pg.err != nil {
			continue
		}
		for _, r := range pg.recs {
			if r.Obj != nil && strings.HasPrefix(r.Key, prefix) && r.Key > after && (bound == "" || r.Key <= bound) {
				all = append(all, r)
			}
		}
	}
	slices.SortStableFunc(all, func(a, b protocol.Record) int { return strings.Compare(a.Key, b.Key) })
	for i := 0; i < len(all); {
		j, merged := i+1, all[i].Obj
		for ; j < len(all) && all[j].Key == all[i].Key; j++ {
			if !version.Equal(merged, all[j].Obj) { // owners mostly agree: no merge to build
				merged = c.Sync(merged, all[j].Obj)
			}
		}
		if merged != nil && len(merged.LiveAt(now)) > 0 {
			if len(listed) == limit {
				return listed, listed[len(listed)-1].key
			}
			listed = append(listed, listedKey{key: all[i].Key, obj: merged})
		}
		i = j
	}
	return listed, bound
}

// serveKeysItem queues the page an RPCKeys item asks for to the readers;
// add gets the page or the error, under the item's tag. It never blocks.
func (n *Node) serveKeysItem(it *protocol.Item, add func(protocol.Result)) {
	tag := it.Tag
	for _, p := range it.Parts {
		if p >= n.cfg.Partitions {
			add(protocol.ResultError(tag, protocol.Errorf(protocol.ErrInvalidOption, "keys of partition %d: the store has %d", p, n.cfg.Partitions)))
			return
		}
	}
	limit := protocol.ScanBudget(int64(n.cfg.MaxPayload))
	budget := limit
	if it.Budget > 0 {
		budget = min(it.Budget, limit)
	}
	count := protocol.MaxScanRecords
	if it.Limit > 0 {
		count = it.Limit
	}
	parts, prefix, after := it.Parts, it.Prefix, it.After
	n.queueRead(readJob{task: &task{
		run:  func() protocol.Result { return keysPage(n.st, parts, prefix, after, count, budget) },
		done: func(res protocol.Result) { res.Tag = tag; add(res) }}})
}

// keysPage reads one owner's page of a listing: the records of parts
// with the prefix after the cursor, in key order, values left out
// (store.ScanKeys), at
// most count of them and while they fit in budget bytes
// (protocol.Record.Size; the first whatever its size). Next is the
// page's last key when records may remain after it, else "". A store
// error before any record is the result's error; after some, it ends
// the page early, so that the next page is the one that fails.
func keysPage(st *store.Store, parts []int, prefix, after string, count, budget int) protocol.Result {
	var res protocol.Result
	size, more := 0, false
	err := st.ScanKeys(parts, prefix, after, count+1, func(_ int, key string, o *protocol.Object) bool {
		rec := protocol.Record{Key: key, Obj: o}
		s := rec.Size()
		if len(res.Recs) == count || len(res.Recs) > 0 && size+s > budget {
			more = true
			return false
		}
		res.Recs = append(res.Recs, rec)
		size += s
		return true
	})
	switch {
	case err != nil && len(res.Recs) == 0:
		return protocol.ResultError(0, err)
	case err != nil || more:
		res.Next = res.Recs[len(res.Recs)-1].Key
	}
	return res
}
