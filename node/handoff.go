package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/node/ring"
	"github.com/kvmesh/kvmesh/protocol"
)

// Hinted handoff: a node holding hints (hints.go) delivers each hinted
// partition to the owner it was meant for once that owner is back: alive
// to the failure detector and an owner of the partition in the serving
// ring. It pushes the partition's records (scan pages, as a transfer
// reads them: transfer.go) in batches of replica writes that the owner
// merges durably and acknowledges, paced at Config.HintRate records a
// second, and then deletes the hint unless a hinted write arrived
// meanwhile. If the owner is no member any more, or owns the partition no
// longer, the partition goes to its current owners instead.
//
// A partition this node does not own is dropped once every hint it holds
// is delivered, without losing a hinted write that arrives during the
// handoff: the push runs between the drop's cut and its deletes
// (store.DropPartitionAfter), so it covers everything the drop deletes,
// and what commits after the cut stays, with its hint. The handoff works
// only while the ring is settled (no transition under way): a transition
// moves partitions, and dropOrphans leaves alone the partitions that
// hold hints (or a hinted write under way).
//
// A hinted record whose newest sibling is older than the tombstone grace
// period is not delivered (counted as stale): every owner may have purged
// a tombstone that superseded it, and delivering it would bring the
// deleted value back (Cassandra bounds its hint window below
// gc_grace_seconds for the same reason). The write it held is still on
// the other nodes that acknowledged it, which anti-entropy spreads.
//
// A node that leaves hands its hints over before it says it is ready
// (handOver): each hinted partition goes to its owner if that owner is
// alive, or else, still hinted, to the next live fallback of the ring it
// leaves for. A leaving node takes no hinted writes.

// pushItems bounds the records of one handoff batch: with their items'
// envelopes they must fit a message.
const pushItems = 256

// startHandoff starts the handoff loop: a round every heartbeat, or at
// once when a member's liveness or the members change. It stops with
// the node.
func (n *Node) startHandoff() {
	n.spawn(func(context.Context) {
		defer n.hints.failAll(n.shuttingDown())
		for {
			select {
			case <-n.stop:
				return
			case <-n.hints.wake:
				n.hints.write(n.st)
			}
		}
	})
	n.spawn(func(ctx context.Context) {
		t := n.clock.NewTicker(n.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
			case <-n.mem.changedCh():
			}
			if n.mem.targetRing() == n.mem.ring() && len(*n.mem.prev.Load()) == 0 {
				n.handoffRound(ctx, n.mem.ring())
			}
		}
	})
}

// handoffRound delivers what can be delivered of every hint held.
func (n *Node) handoffRound(ctx context.Context, serving *ring.Ring) {
	hs := n.hints.list()
	for i := 0; i < len(hs) && ctx.Err() == nil; {
		p := hs[i].p
		j := i
		for j < len(hs) && hs[j].p == p {
			j++
		}
		if err := n.deliverPartition(ctx, serving, p, hs[i:j]); err != nil && ctx.Err() == nil {
			n.log.Warn("hinted handoff stalled; it tries again", "partition", p, "err", err)
		}
		i = j
	}
}

// hintTargets returns where hint k is delivered in the serving ring: its
// owner while that owns the partition, else the partition's owners but
// this node (none: a hint for this node, now an owner, needs no
// delivery); and whether every one of them is alive and heard.
func (n *Node) hintTargets(serving *ring.Ring, k hintKey) ([]string, bool) {
	var to []string
	switch {
	case !serving.IsOwner(k.p, k.owner):
		to = slices.DeleteFunc(slices.Clone(serving.Owners(k.p)), func(o string) bool { return o == n.cfg.ID })
	case k.owner != n.cfg.ID:
		to = []string{k.owner}
	}
	for _, o := range to {
		if n.live.state(o) != membership.Alive {
			return nil, false
		}
		if _, heard := n.heard.Load(o); !heard {
			return nil, false
		}
	}
	return to, true
}

// errHintsChanged stops a drop whose partition took a hinted write for
// an owner the round did not deliver to.
var errHintsChanged = errors.New("hints changed during the handoff")

// deliverPartition delivers partition p to the owners of the hints hs
// (all of p's) that are back, and drops p when this node does not own it
// and every hint is delivered.
func (n *Node) deliverPartition(ctx context.Context, serving *ring.Ring, p int, hs []hintKey) error {
	var ready []hintKey
	var to []string
	for _, k := range hs {
		if t, ok := n.hintTargets(serving, k); ok {
			ready = append(ready, k)
			for _, o := range t {
				if !slices.Contains(to, o) {
					to = append(to, o)
				}
			}
		}
	}
	if len(ready) == 0 {
		return nil
	}
	seqs := make([]uint64, len(ready))
	snapshot := func() {
		for i, k := range ready {
			seqs[i], _ = n.hints.seq(k)
		}
	}
	if len(to) == 0 {
		// Every owner but this node is gone: it holds the partition for them.
		snapshot()
		n.forgetHints(ready, seqs)
		return nil
	}
	if len(ready) < len(hs) || serving.IsOwner(p, n.cfg.ID) {
		snapshot()
		if err := n.pushPartition(ctx, p, to, ""); err != nil {
			return err
		}
		n.forgetHints(ready, seqs)
		return nil
	}
	// Every hint of a partition this node does not own: push, then drop.
	_, err := n.st.DropPartitionAfter(ctx, p, func(ctx context.Context) error {
		owners, underway := n.hints.owners(p)
		if underway || slices.ContainsFunc(owners, func(o string) bool { return !slices.Contains(hs, hintKey{p, o}) }) {
			return errHintsChanged
		}
		snapshot()
		return n.pushPartition(ctx, p, to, "")
	})
	if errors.Is(err, errHintsChanged) {
		return nil // the next round sees the new hint
	}
	if err != nil {
		return err
	}
	n.forgetHints(ready, seqs)
	return nil
}

// forgetHints deletes the hints delivered whose count did not move.
func (n *Node) forgetHints(ks []hintKey, seqs []uint64) {
	for i, k := range ks {
		if n.hints.forget(k, seqs[i]) {
			n.log.Info("hinted handoff: delivered", "partition", k.p, "owner", k.owner)
		}
	}
}

// pushPartition sends every record of partition p to each node of to as
// replica writes (naming hint as the owner they stand in for, when not
// ""), a page at a time, and returns once all of them acknowledged every
// record, or with the first error. It paces itself to Config.HintRate.
func (n *Node) pushPartition(ctx context.Context, p int, to []string, hint string) error {
	limit := n.pageBudget - 512
	budget := max(n.pageBudget-pushItems*96, n.pageBudget/3)
	items := pushItems
	if r := n.cfg.HintRate; r > 0 {
		items = max(1, min(items, r/4))
	}
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page := scanPage(n.st, p, after, budget, limit)
		if err := page.Error(); err != nil {
			return err
		}
		recs := page.Recs
		next := page.Next
		if len(recs) > items {
			recs = recs[:items]
			next = recs[len(recs)-1].Key
		}
		batch := make([]protocol.Item, 0, len(recs))
		for _, r := range recs {
			if n.staleHint(r.Obj) {
				n.hints.stale.Add(1)
				continue
			}
			batch = append(batch, protocol.Item{Op: protocol.RPCWrite, Key: r.Key, Obj: r.Obj, Hint: hint})
		}
		recs = recs[:len(batch)] // for the counts below
		if len(batch) > 0 {
			if !n.take(ctx, &n.hintPace, n.cfg.HintRate, len(batch)*len(to)) {
				return ctx.Err()
			}
			var wg sync.WaitGroup
			errs := make([]error, len(to))
			for i, o := range to {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = n.requestWrites(ctx, o, batch)
				}()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("push partition %d: %w", p, err)
			}
			n.hints.records.Add(int64(len(recs) * len(to)))
		}
		if next == "" {
			return nil
		}
		after = next
	}
}

// staleHint reports whether a hinted record is too old to deliver: its
// newest sibling was written more than the tombstone grace ago.
func (n *Node) staleHint(o *protocol.Object) bool {
	if n.cfg.TombstoneGrace <= 0 || o == nil {
		return false
	}
	cutoff := n.clock.Now().Add(-n.cfg.TombstoneGrace).UnixNano()
	for _, s := range o.Siblings {
		if s.Time >= cutoff {
			return false
		}
	}
	return len(o.Siblings) > 0
}

// pacer paces records to a rate on the node's clock, shared by all who
// take from it: each take books its records after those booked before,
// and an idle pacer saves no credit. The handoff has one (HintRate),
// anti-entropy another (AntiEntropyRate).
type pacer struct {
	mu   sync.Mutex
	next time.Time // when the next records may go
}

// take books k records of p at rate a second (<= 0: unlimited) and waits
// until their turn; false if ctx ended first.
func (n *Node) take(ctx context.Context, p *pacer, rate, k int) bool {
	if rate <= 0 {
		return true
	}
	p.mu.Lock()
	now := n.clock.Now()
	at := p.next
	if at.Before(now) {
		at = now
	}
	p.next = at.Add(time.Duration(k) * time.Second / time.Duration(rate))
	p.mu.Unlock()
	return !at.After(now) || n.sleep(ctx, at.Sub(now))
}

// requestWrites sends items (replica writes) to node to in one message
// and waits until each is acknowledged (requestItems); it returns the
// first failure.
func (n *Node) requestWrites(ctx context.Context, to string, items []protocol.Item) error {
	_, errs := n.requestItems(ctx, to, items)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// handOver hands the hints of a leaving node to others before it says
// it is ready: each hinted partition goes to its owner if that owner is
// alive, or else, hinted still, to the first live node of target's
// preference list for it that is neither this node nor the owner. It
// reports whether no hint is left.
func (n *Node) handOver(ctx context.Context, target *ring.Ring) bool {
	for _, k := range n.hints.list() {
		if ctx.Err() != nil {
			return false
		}
		seq, ok := n.hints.seq(k)
		if !ok {
			continue
		}
		alive := func(id string) bool {
			_, heard := n.heard.Load(id)
			return id != n.cfg.ID && heard && n.live.state(id) == membership.Alive
		}
		var err error
		switch {
		case target.IsOwner(k.p, k.owner) && alive(k.owner):
			err = n.pushPartition(ctx, k.p, []string{k.owner}, "")
		case !target.IsOwner(k.p, k.owner):
			to := slices.DeleteFunc(slices.Clone(target.Owners(k.p)), func(o string) bool { return !alive(o) })
			if len(to) == 0 {
				continue
			}
			err = n.pushPartition(ctx, k.p, to, "")
		default:
			i := slices.IndexFunc(target.Preference(k.p), func(o string) bool { return o != k.owner && alive(o) })
			if i < 0 {
				continue
			}
			err = n.pushPartition(ctx, k.p, []string{target.Preference(k.p)[i]}, k.owner)
		}
		if err != nil {
			n.log.Warn("could not hand a hint over; the leave waits", "partition", k.p, "owner", k.owner, "err", err)
			continue
		}
		if n.hints.forget(k, seq) {
			n.log.Info("hint handed over before leaving", "partition", k.p, "owner", k.owner)
		}
	}
	h, _, _ := n.hints.pending()
	return h == 0
}
