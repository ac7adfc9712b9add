package node

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/node/ring"
	"github.com/kvmesh/kvmesh/protocol"
)

// Rebalancing: how a membership change moves partitions without a window
// in which a quorum read misses an acknowledged write
// (membership/plan.go). A node reads from its serving ring; while the
// target ring differs, or some member may still read from a previous
// serving ring (prev), its writes are joint over all of them
// (coord.NewJointWrite). Each node says in its heartbeats which epochs it
// serves, targets and is ready for. The loop here:
//
//  1. forgets the prev rings once every member serves the current one;
//  2. once every member targets the same ring, and a request timeout
//     later (writes started before then have ended), copies each
//     partition it gains from a majority of its serving owners: every
//     write acknowledged before the joint writes began is on a majority
//     of them, and every later one reached this node's quorum directly;
//  3. says it is ready for that target (a leaving node once it has
//     handed its hints over: handoff.go), and once every member of the
//     target ring, and every leaving member not down, is, flips the joining members to up and the leaving
//     ones to left (membership.Flip): the serving ring becomes the
//     target ring;
//  4. once every member serves it, drops its copies of the partitions
//     it does not own (store.DropPartition): nobody reads them any more,
//     and each partition is on its N owners only.
//
// A member that is down holds a transition at step 2 until it is back
// or removed, except a leaving one (a removed node is leaving, and
// dead). A node that leaves stops serving once its record is left.

// epochs are a member's epochs, as its last accepted heartbeat said.
type epochs struct{ serving, target, ready, settled uint64 }

// rebalance is the node's rebalancing state.
type rebalance struct {
	mu    sync.Mutex
	peers map[string]epochs // member id -> its epochs
	// since is when every member was first seen targeting target.
	target uint64
	since  time.Time
	// cursors are where the pulls of the current target stopped, by
	// partition and source, so that a stalled transfer resumes there.
	cursors map[pullFrom]string
	done    map[pullFrom]bool
	// settledSince is when every member was first seen writing to the
	// serving ring alone (the loop's own).
	settledSince time.Time
	// leftAt is when this node saw its own record left.
	leftAt time.Time

	ready   atomic.Uint64 // the target epoch this node holds every partition it gains for
	dropped atomic.Uint64 // the serving epoch this node dropped the partitions it does not own for

	// Progress of the current target's transfers, for status.
	partitions, partitionsDone atomic.Int64
	keys, bytes                atomic.Int64
	started, finished          atomic.Int64 // unix nanoseconds; 0: none, not yet
}

type pullFrom struct {
	p    int
	from string
}

// heard records a member's epochs from its heartbeat.
func (rb *rebalance) heard(id string, e epochs) {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if rb.peers == nil {
		rb.peers = make(map[string]epochs)
	}
	rb.peers[id] = e
}

// reporters returns the members whose epochs a transition waits for:
// every member but this node and those left, except a leaving member the
// failure detector holds down (a dead node being removed).
func (n *Node) reporters() []string {
	var out []string
	for _, r := range n.mem.records().Records() {
		if r.ID == n.cfg.ID || r.Status == protocol.MemberLeft {
			continue
		}
		if r.Status == protocol.MemberLeaving && n.live.state(r.ID) == membership.Down {
			continue
		}
		out = append(out, r.ID)
	}
	return out
}

// all reports whether every member in ids reported an epoch that ok
// accepts.
func (rb *rebalance) all(ids []string, ok func(epochs) bool) bool {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	for _, id := range ids {
		if e, heard := rb.peers[id]; !heard || !ok(e) {
			return false
		}
	}
	return true
}

// startRebalance starts the rebalancing loop; it stops with the node.
func (n *Node) startRebalance() {
	n.spawn(func(ctx context.Context) {
		t := n.clock.NewTicker(n.cfg.Heartbeat)
		defer t.Stop()
		for {
			n.rebalanceStep(ctx)
			n.runChores()
			select {
			case <-ctx.Done():
				return
			case <-t.C():
			case <-n.mem.changedCh():
			}
		}
	})
}

// rebalanceStep does what the state of the rings calls for, once.
func (n *Node) rebalanceStep(ctx context.Context) {
	rb := &n.rebal
	serving, target := n.mem.ring(), n.mem.targetRing()
	eS, eT := membership.Epoch(serving.Members()), membership.Epoch(target.Members())
	reporters := n.reporters()
	n.checkLeft(reporters, eS)
	if len(*n.mem.prev.Load()) > 0 && rb.all(reporters, func(e epochs) bool { return e.serving == eS }) {
		n.mem.clearPrev()
		n.log.Info("every member serves the new ring", "members", serving.Members())
	}
	if eT == eS {
		if rb.ready.Swap(eT) != eT {
			n.heartbeat()
		}
		// Drop the partitions this node does not own once no member
		// writes to a previous ring any more, and a request timeout later
		// (joint writes under way have ended).
		if len(*n.mem.prev.Load()) > 0 || rb.dropped.Load() == eS {
			return
		}
		if !rb.all(reporters, func(e epochs) bool { return e.settled == eS }) {
			rb.settledSince = time.Time{}
			return
		}
		if rb.settledSince.IsZero() {
			rb.settledSince = n.clock.Now()
		}
		if n.clock.Now().Sub(rb.settledSince) >= n.cfg.RequestTimeout && n.dropOrphans(ctx, serving) {
			rb.dropped.Store(eS)
		}
		return
	}
	if rb.ready.Load() != eT {
		if !rb.all(reporters, func(e epochs) bool { return e.target == eT }) {
			return
		}
		now := n.clock.Now()
		rb.mu.Lock()
		if rb.target != eT {
			rb.target, rb.since = eT, now
			rb.cursors, rb.done = map[pullFrom]string{}, map[pullFrom]bool{}
			rb.started.Store(0)
			rb.finished.Store(0)
		}
		since := rb.since
		rb.mu.Unlock()
		if now.Sub(since) < n.cfg.RequestTimeout {
			return
		}
		if !n.pullGains(ctx, eT, membership.Gains(serving, target, n.cfg.ID)) {
			return
		}
		if own, ok := n.mem.records().Get(n.cfg.ID); ok && own.Status == protocol.MemberLeaving && !n.handOver(ctx, target) {
			return // its hints would leave with it
		}
		rb.ready.Store(eT)
		n.heartbeat()
	}
	// Every member of the target ring holds what it gains, and every
	// leaving member that is not down has handed its hints over: end
	// the transitions.
	var others []string
	for _, id := range target.Members() {
		if id != n.cfg.ID {
			others = append(others, id)
		}
	}
	for _, id := range reporters {
		if r, ok := n.mem.records().Get(id); ok && r.Status == protocol.MemberLeaving && !slices.Contains(others, id) {
			others = append(others, id)
		}
	}
	if !rb.all(others, func(e epochs) bool { return e.ready == eT }) {
		return
	}
	var flips []protocol.MemberRecord
	for _, r := range n.mem.records().Records() {
		if f, ok := membership.Flip(r); ok {
			if f, err := membership.Sign(f, n.clusterKey); err == nil {
				flips = append(flips, f)
			}
		}
	}
	if len(flips) > 0 && n.mem.apply(flips...) {
		n.log.Info("transfers done: the serving ring is the target ring", "members", target.Members())
		n.gossip.full.Store(true)
		n.heartbeat()
	}
}

// pullGains copies every partition in gains from a majority of its
// serving owners, resuming where earlier tries stopped; it reports
// whether all are copied.
func (n *Node) pullGains(ctx context.Context, eT uint64, gains []membership.Move) bool {
	rb := &n.rebal
	if rb.started.Load() == 0 {
		rb.started.Store(n.clock.Now().UnixNano())
		rb.partitions.Store(int64(len(gains)))
		rb.keys.Store(0)
		rb.bytes.Store(0)
		if len(gains) > 0 {
			n.log.Info("copying the partitions this node gains", "partitions", len(gains), "target", eT)
		}
	}
	complete, copied := true, 0
	for _, g := range gains {
		need := len(g.From)/2 + 1
		got := 0
		for _, from := range n.live.order(g.From) {
			if got == need || ctx.Err() != nil {
				break
			}
			k := pullFrom{g.Partition, from}
			rb.mu.Lock()
			done, after := rb.done[k], rb.cursors[k]
			rb.mu.Unlock()
			if done {
				got++
				continue
			}
			cursor, err := n.pullPartition(ctx, g.Partition, from, after, func(keys, bytes int, _ string) {
				rb.keys.Add(int64(keys))
				rb.bytes.Add(int64(bytes))
			})
			rb.mu.Lock()
			if rb.target == eT {
				rb.cursors[k] = cursor
				rb.done[k] = err == nil
			}
			rb.mu.Unlock()
			if err != nil {
				n.log.Warn("partition transfer stalled; it resumes where it stopped", "partition", g.Partition, "from", from, "err", err)
				continue
			}
			got++
		}
		if got < need {
			complete = false
			continue
		}
		copied++
		rb.partitionsDone.Store(int64(copied))
	}
	if complete {
		rb.finished.Store(n.clock.Now().UnixNano())
	}
	if complete && len(gains) > 0 {
		d := time.Duration(n.clock.Now().UnixNano() - rb.started.Load())
		n.log.Info("copied the partitions this node gains", "partitions", len(gains), "keys", rb.keys.Load(), "bytes", rb.bytes.Load(),
			"seconds", d.Seconds(), "MB/s", float64(rb.bytes.Load())/1e6/max(d.Seconds(), 1e-9))
	}
	return complete
}

// Leave hands this node's partitions off and leaves the store: its
// record becomes leaving, the members that gain its partitions copy them,
// and then its record is left and Left is closed. It returns once the
// leave is under way.
func (n *Node) Leave() error { return n.setLeaving(n.cfg.ID) }

// Remove declares member id gone for good (a dead node): its record
// becomes leaving, the members that gain its partitions copy them from
// the remaining owners (the seed's stabilization), and then it is left.
// Any member may remove any other; it returns once the removal is under
// way.
func (n *Node) Remove(id string) error { return n.setLeaving(id) }

func (n *Node) setLeaving(id string) error {
	r, ok := n.mem.records().Get(id)
	switch {
	case !ok:
		return protocol.Errorf(protocol.ErrInvalidOption, "%s is not a member", protocol.Clip(id, 64))
	case r.Status == protocol.MemberLeaving || r.Status == protocol.MemberLeft:
		return nil // under way, or done
	}
	r.Status, r.Version, r.Sig = protocol.MemberLeaving, r.Version+1, nil
	signed, err := membership.Sign(r, n.clusterKey)
	if err != nil {
		return err
	}
	n.mem.apply(signed)
	n.log.Info("member leaving: its partitions move to the others", "member", id)
	n.gossip.full.Store(true)
	n.heartbeat()
	return nil
}

// Settled reports whether this node holds members up and every other
// record left, serves and targets their ring, knows that every member
// serves it too (no previous ring left to write to), and has dropped
// the partitions it does not own.
func (n *Node) Settled(members []string) bool {
	for _, r := range n.mem.records().Records() {
		up := r.Status == protocol.MemberUp
		if slices.Contains(members, r.ID) != up || !up && r.Status != protocol.MemberLeft {
			return false
		}
	}
	want := slices.Sorted(slices.Values(members))
	return slices.Equal(n.mem.ring().Members(), want) && n.mem.targetRing() == n.mem.ring() && len(*n.mem.prev.Load()) == 0 &&
		n.rebal.dropped.Load() == membership.Epoch(want)
}

// dropOrphans drops this node's copies of the partitions it does not own
// in serving; it reports whether all are gone.
func (n *Node) dropOrphans(ctx context.Context, serving *ring.Ring) bool {
	for p := range serving.Partitions() {
		if serving.IsOwner(p, n.cfg.ID) || ctx.Err() != nil || n.hints.busy(p) {
			continue // hinted partitions are the handoff's to drop (handoff.go)
		}
		held := false
		if err := n.st.Scan(p, func(string, *protocol.Object) bool { held = true; return false }); err != nil || !held {
			continue
		}
		// A hinted write may have come since: it is for the handoff to
		// deliver, and this partition for the handoff to drop.
		dropped, err := n.st.DropPartitionAfter(ctx, p, func(context.Context) error {
			if n.hints.busy(p) {
				return errHintsChanged
			}
			return nil
		})
		if errors.Is(err, errHintsChanged) {
			continue
		}
		if err != nil {
			n.log.Warn("could not drop a partition this node no longer owns; it tries again", "partition", p, "err", err)
			return false
		}
		n.log.Info("dropped a partition this node no longer owns", "partition", p, "records", dropped)
	}
	return ctx.Err() == nil
}

// leftGrace bounds, in heartbeats, how long a node that has left waits
// for the others to stop writing to it before Left closes anyway (the
// others drop its routes a little later: dropLeftRoutes).
const leftGrace = 8

// checkLeft closes Left once this node's record is left and every other
// member writes to a ring without it (it reports settled at eS, which no
// longer names this node), or leftGrace heartbeats after the node saw it
// had left. Exiting earlier would fail the joint writes still under way
// on the partitions it owned.
func (n *Node) checkLeft(reporters []string, eS uint64) {
	own, ok := n.mem.records().Get(n.cfg.ID)
	if !ok || own.Status != protocol.MemberLeft || own.Key != n.publicKey {
		return
	}
	rb := &n.rebal
	rb.mu.Lock()
	if rb.leftAt.IsZero() {
		rb.leftAt = n.clock.Now()
	}
	since := n.clock.Now().Sub(rb.leftAt)
	rb.mu.Unlock()
	if rb.all(reporters, func(e epochs) bool { return e.settled == eS }) || since >= leftGrace*n.cfg.Heartbeat {
		n.leftOnce.Do(func() { close(n.left) })
	}
}
