package node

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kvmesh/kvmesh/protocol"
)

// The pulling side of a partition transfer: a node that gains a partition
// (a join, a leave, the removal of a dead node) copies it from a current
// owner, one page (scan.go) at a time. Who pulls what and when is the
// membership side's; anti-entropy will reuse the primitive.

// pullPartition copies partition p from peer from into this node's store,
// starting after the cursor after ("" for the whole partition). It asks
// for a page, merges each of its records into the local object of its key
// with the merge replica writes use (syncInto: version.Sync of dotted
// version vectors, so a record never overwrites a newer local version and
// concurrent ones become siblings), waits until they are all durable, and
// only then asks for the next page: memory holds one page at a time.
// progress, if not nil, is called after each page with its records, their
// bytes (protocol.Record.Size) and the cursor reached.
//
// It returns "" once the partition is done. When ctx ends, the peer fails
// or does not answer a page within Config.RequestTimeout, or a write
// fails, it returns the error and the cursor reached: every record up to
// it is durable here, and a pull from that cursor resumes the transfer.
// It blocks; it is safe to call concurrently, for any partitions.
func (n *Node) pullPartition(ctx context.Context, p int, from string, after string, progress func(keys, bytes int, cursor string)) (cursor string, err error) {
	if p < 0 || p >= n.cfg.Partitions {
		return after, protocol.Errorf(protocol.ErrInvalidOption, "pull of partition %d: the store has %d", p, n.cfg.Partitions)
	}
	for {
		if err := ctx.Err(); err != nil {
			return after, fmt.Errorf("pull partition %d from %s: %w", p, from, err)
		}
		res, err := n.request(ctx, from, protocol.Item{Op: protocol.RPCScan, Partition: p, After: after, Budget: n.pageBudget})
		if err == nil {
			err = checkPage(n.mem.ring().Partition, p, after, res)
		}
		var bytes int
		if err == nil {
			bytes, err = n.applyPage(ctx, p, res.Recs)
		}
		if err != nil {
			return after, fmt.Errorf("pull partition %d from %s after %q: %w", p, from, protocol.Clip(after, 64), err)
		}
		after = res.Next
		if progress != nil {
			progress(len(res.Recs), bytes, after)
		}
		if after == "" {
			return "", nil
		}
	}
}

// checkPage checks what the decoder cannot know of a page asked of
// partition p after the cursor after: its records belong to p and follow
// the cursor (the decoder checked their order), and its next cursor is
// its last key, so that the pages that follow miss nothing; a page that
// does not move the cursor would loop forever.
func checkPage(partition func(string) int, p int, after string, res *protocol.Result) error {
	for _, r := range res.Recs {
		if partition(r.Key) != p {
			return protocol.Errorf(protocol.ErrMalformed, "page of partition %d holds %q of partition %d", p, protocol.Clip(r.Key, 64), partition(r.Key))
		}
	}
	if len(res.Recs) > 0 && res.Recs[0].Key <= after {
		return protocol.Errorf(protocol.ErrMalformed, "page after %q starts at %q", protocol.Clip(after, 64), protocol.Clip(res.Recs[0].Key, 64))
	}
	if res.Next != "" && (len(res.Recs) == 0 || res.Next != res.Recs[len(res.Recs)-1].Key) {
		return protocol.Errorf(protocol.ErrMalformed, "page of %d records continues after %q", len(res.Recs), protocol.Clip(res.Next, 64))
	}
	return nil
}

// applyPage merges recs into the store and returns once all of them are
// durable, with their bytes. A full store queue makes it wait for the
// page's writes queued so far and try again; ctx ending stops the wait
// (the writes queued may still commit: merging them again is harmless).
func (n *Node) applyPage(ctx context.Context, p int, recs []protocol.Record) (int, error) {
	done := make(chan error, len(recs)) // never blocks the committer
	queued, bytes := 0, 0
	var errs []error
	wait := func() error {
		for ; queued > 0; queued-- {
			select {
			case err := <-done:
				if err != nil {
					errs = append(errs, err)
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return errors.Join(errs...)
	}
	for i := range recs {
		r := &recs[i]
		bytes += r.Size()
		for {
			err := n.st.Apply(p, r.Key, syncInto(n.conflicts, r.Obj), func(_ *protocol.Object, err error) { done <- err })
			if err == nil {
				queued++
				break
			}
			if !errors.Is(err, protocol.ErrOverloaded) || queued == 0 {
				return bytes, errors.Join(fmt.Errorf("merge %q: %w", protocol.Clip(r.Key, 64), err), wait())
			}
			if err := wait(); err != nil {
				return bytes, err
			}
		}
	}
	return bytes, wait()
}

// request sends item to peer to, alone in its message, and waits for its
// result, at most Config.RequestTimeout: requestItems of one item.
func (n *Node) request(ctx context.Context, to string, item protocol.Item) (*protocol.Result, error) {
	res, errs := n.requestItems(ctx, to, []protocol.Item{item})
	return res[0], errs[0]
}

// requestItems sends items to peer to in one message and waits for all
// their results, at most Config.RequestTimeout: results[i] answers
// items[i], or errs[i] says why it did not (the peer's error result
// included). It goes through the node's RPC machinery (a tag per item in
// the pending map, transport.Send, the reply inbox) but not through the
// outbox: the items go alone in their message, so a peer too old to know
// an op, which refuses the whole message with one error, fails only
// them, and at once. Partition scans and anti-entropy use it; their items
// are few and their replies big, and they wait for each answer.
func (n *Node) requestItems(ctx context.Context, to string, items []protocol.Item) (results []*protocol.Result, errs []error) {
	results, errs = make([]*protocol.Result, len(items)), make([]error, len(items))
	ch := make(chan itemAnswer, len(items))
	out := make([]outItem, len(items))
	for i := range items {
		w := &itemWait{i: i, ch: ch}
		tag := n.pending.add(w)
		defer n.pending.remove(tag)
		out[i] = outItem{item: items[i], op: w}
		out[i].item.Tag = tag
	}
	timeout := make(chan struct{})
	timer := n.clock.AfterFunc(n.cfg.RequestTimeout, func() { close(timeout) })
	defer timer.Stop()
	n.flush(to, out)
	for left := len(items); left > 0; left-- {
		var err error
		select {
		case a := <-ch:
			results[a.i], errs[a.i] = a.res, a.err
			continue
		case <-timeout:
			err = protocol.Errorf(protocol.ErrNodeUnavailable, "%s: no answer within %v", to, n.cfg.RequestTimeout)
		case <-ctx.Done():
			err = ctx.Err()
		case <-n.stop:
			err = n.shuttingDown()
		}
		for i := range items {
			if results[i] == nil && errs[i] == nil {
				errs[i] = err
			}
		}
		return results, errs
	}
	return results, errs
}

// itemWait is one item of requestItems in the pending map: the first of
// its result and a failure of its message answers.
type itemWait struct {
	once sync.Once
	i    int
	ch   chan itemAnswer // buffered for every item
}

type itemAnswer struct {
	i   int
	res *protocol.Result
	err error
}

func (w *itemWait) result(_ string, res *protocol.Result, err error) {
	if err == nil && res != nil {
		err = res.Error()
	}
	if err == nil && res == nil {
		err = protocol.Errorf(protocol.ErrInternal, "no result")
	}
	if err != nil {
		res = nil
	}
	w.once.Do(func() { w.ch <- itemAnswer{w.i, res, err} })
}

func (w *itemWait) abort(err error) { w.result("", nil, err) }
