package node

import (
	"github.com/kvmesh/kvmesh/node/store"
	"github.com/kvmesh/kvmesh/protocol"
)

// The serving side of a partition transfer (RPCScan, protocol/scan.go):
// a peer asks for the records of a partition after a cursor, and gets one
// page of them. A page reads up to a payload's worth of records from
// bbolt, so a reader goroutine serves it (reads.go), never the delivery
// goroutine; and each scan item is answered in a reply of its own
// (HandleRequest), so the page alone has to fit the max payload.
//
// The node serves whatever its store holds of the partition, owner or
// not: a fallback holding hinted writes has data worth copying too.

// serveScan queues the page an RPCScan item asks for to the readers; add
// gets the page or the error, under the item's tag. It never blocks.
func (n *Node) serveScan(it *protocol.Item, add func(protocol.Result)) {
	tag := it.Tag
	if it.Partition >= n.cfg.Partitions {
		add(protocol.ResultError(tag, protocol.Errorf(protocol.ErrInvalidOption, "scan of partition %d: the store has %d", it.Partition, n.cfg.Partitions)))
		return
	}
	limit := protocol.ScanBudget(int64(n.cfg.MaxPayload))
	budget := limit
	if it.Budget > 0 {
		budget = min(it.Budget, limit)
	}
	p, after := it.Partition, it.After
	n.queueRead(readJob{task: &task{
		run:  func() protocol.Result { return scanPage(n.st, p, after, budget, limit) },
		done: func(res protocol.Result) { res.Tag = tag; add(res) }}})
}

// scanPage reads one page of partition p after the cursor: records in key
// order, tombstones included, while they fit in budget bytes
// (protocol.Record.Size) and number at most protocol.MaxScanRecords,
// the first one whatever its size up to limit. Next is the page's last
// key when records remain after it, else "". A record that fits no reply
// is an error naming it; so is a store error before any record, while one
// after some records ends the page early, so that the next page is the
// one that fails.
func scanPage(st *store.Store, p int, after string, budget, limit int) protocol.Result {
	var res protocol.Result
	size, more := 0, false
	var tooLarge error
	err := st.ScanFrom(p, after, func(key string, o *protocol.Object) bool {
		rec := protocol.Record{Key: key, Obj: o}
		s := rec.Size()
		if len(res.Recs) > 0 && (size+s > budget || len(res.Recs) == protocol.MaxScanRecords) {
			more = true
			return false
		}
		if s > limit {
			tooLarge = protocol.Errorf(protocol.ErrValueTooLarge, "scan of partition %d: record %q is %d bytes, a page holds %d", p, protocol.Clip(key, 64), s, limit)
			return false
		}
		res.Recs = append(res.Recs, rec)
		size += s
		return true
	})
	if err == nil {
		err = tooLarge
	}
	switch {
	case err != nil && len(res.Recs) == 0:
		return protocol.ResultError(0, err)
	case err != nil || more:
		res.Next = res.Recs[len(res.Recs)-1].Key
	}
	return res
}
