package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/node/merkle"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Anti-entropy: every Config.AntiEntropy, each node compares each
// partition it owns with every other owner that is alive, by their hash
// trees (node/merkle, kept by the store), and syncs the keys that differ
// both ways with the replica merge. It is what brings back a replica that
// missed writes while it was down, or that lost its data dir, with no
// client traffic: hints and read repair only cover some of that.
//
// A round, per peer:
//
//  1. roots: one message holding the root of every partition the two
//     nodes share (RPCTree at level 0), one reply; on an idle store that
//     is all, so the background cost is one round trip per peer and
//     round;
//  2. for each partition whose roots differ: the rest of the tree
//     exchange (a round trip per two levels), then the keys and digests
//     of the differing buckets (RPCBuckets, paged), compared with this
//     node's (merkle.DiffKeys);
//  3. for each differing key: read the peer's object, merge it into the
//     local one (durably), and write the merged object back to the peer
//     when it holds something the peer's did not. Keys are synced a few
//     at a time and at most Config.AntiEntropyRate a second.
//
// A partition this node holds nothing of (its replica was wiped), or
// whose buckets differ nearly all over, is pulled whole first, page by page (pullPartition), then
// exchanged again for what the peer lacks.
//
// Both owners of a pair start exchanges, each on its own round: twice
// the root messages of one side's, and a wiped node refills itself from
// its own first round.

const (
	// aeParallel bounds the keys of one exchange synced at once.
	aeParallel = 8
	// aePullFraction: when more than this fraction of the buckets
	// differ, pull the whole partition rather than key by key.
	aePullFraction = 4
)

// antiEntropy is the node's anti-entropy state, for the status.
type antiEntropy struct {
	mu   sync.Mutex
	last map[int]time.Time // partition -> start of the last round that compared it with every other owner

	rounds    atomic.Int64
	exchanges atomic.Int64 // partition exchanges with a peer
	differed  atomic.Int64 // of which the trees differed
	pulled    atomic.Int64 // records merged here from a peer
	pushed    atomic.Int64 // records written to a peer
	rebuilt   atomic.Int64 // trees rebuilt: buckets differed, keys did not
	lastRound atomic.Int64 // unix nanoseconds of the last round's end
}

// startAntiEntropy starts the anti-entropy loop; it stops with the node.
func (n *Node) startAntiEntropy() {
	n.ae.last = make(map[int]time.Time)
	n.compacted.candidates = make(map[int]map[string]bool)
	n.compacted.scanned = make(map[int]time.Time)
	if n.cfg.AntiEntropy <= 0 {
		return
	}
	n.spawn(func(ctx context.Context) {
		// The first round once the peers' heartbeats had time to come in:
		// a node restarted after missing writes starts repairing at once.
		pause := min(n.cfg.AntiEntropy, 2*n.cfg.Heartbeat)
		for n.sleep(ctx, pause) {
			n.antiEntropyRound(ctx)
			pause = n.cfg.AntiEntropy
		}
	})
}

// sleep waits d on the node's clock; false when ctx ended first.
func (n *Node) sleep(ctx context.Context, d time.Duration) bool {
	wake := make(chan struct{})
	t := n.clock.AfterFunc(d, func() { close(wake) })
	defer t.Stop()
	select {
	case <-wake:
		return true
	case <-ctx.Done():
		return false
	}
}

// antiEntropyRound exchanges every partition this node owns with every
// other owner that is alive, once.
func (n *Node) antiEntropyRound(ctx context.Context) {
	start := n.clock.Now()
	r := n.mem.ring()
	owned := r.PartitionsOf(n.cfg.ID)
	byPeer := map[string][]int{}
	complete := make(map[int]bool, len(owned)) // compared with every other owner
	for _, p := range owned {
		complete[p] = true
		for _, o := range r.Owners(p) {
			if o == n.cfg.ID {
				continue
			}
			if n.live.state(o) != membership.Alive || !n.hasHeard(o) {
				complete[p] = false
				continue
			}
			byPeer[o] = append(byPeer[o], p)
		}
	}
	peers := make([]string, 0, len(byPeer))
	for o := range byPeer {
		peers = append(peers, o)
	}
	slices.Sort(peers)
	for _, peer := range peers {
		for _, p := range n.exchangeWith(ctx, peer, byPeer[peer]) {
			complete[p] = false
		}
		if ctx.Err() != nil {
			return
		}
	}
	n.ae.mu.Lock()
	for p, ok := range complete {
		if ok {
			n.ae.last[p] = start
		}
	}
	n.ae.mu.Unlock()
	for _, p := range owned {
		if !complete[p] {
			continue
		}
		if _, err := n.compactPartition(ctx, p); err != nil && ctx.Err() == nil {
			n.log.Warn("tombstone compaction", "partition", p, "err", err)
		}
	}
	n.ae.rounds.Add(1)
	n.ae.lastRound.Store(n.clock.Now().UnixNano())
}

// hasHeard reports whether a heartbeat of id arrived since start.
func (n *Node) hasHeard(id string) bool {
	_, ok := n.heard.Load(id)
	return ok
}

// exchangeWith exchanges partitions parts with peer and returns those
// whose exchange failed.
func (n *Node) exchangeWith(ctx context.Context, peer string, parts []int) (failed []int) {
	items := make([]protocol.Item, 0, len(parts))
	for _, p := range parts {
		f, err := n.st.TreeStart(ctx, p)
		if err != nil {
			n.log.Warn("anti-entropy: tree", "partition", p, "err", err)
			return parts
		}
		items = append(items, treeItem(p, f))
	}
	results, errs := n.requestItems(ctx, peer, items)
	for i, p := range parts {
		n.ae.exchanges.Add(1)
		err := errs[i]
		if err == nil {
			err = n.syncPartition(ctx, p, peer, results[i])
		}
		if err != nil {
			n.log.Debug("anti-entropy: exchange", "partition", p, "peer", peer, "err", err)
			failed = append(failed, p)
		}
	}
	return failed
}

func treeItem(p int, f merkle.Frontier) protocol.Item {
	return protocol.Item{Op: protocol.RPCTree, Partition: p, Level: f.Level, Nodes: f.Nodes, Hashes: f.Hashes}
}

// syncPartition finishes the exchange of partition p with peer, whose
// answer to this node's root was first, and syncs the keys that differ.
func (n *Node) syncPartition(ctx context.Context, p int, peer string, first *protocol.Result) error {
	diff, err := n.treeDiff(ctx, p, peer, first)
	if err != nil || len(diff) == 0 {
		return err
	}
	n.ae.differed.Add(1)
	root, err := n.st.TreeRoot(ctx, p)
	if err != nil {
		return err
	}
	if root == 0 || len(diff) > n.st.TreeShape().Leaves()/aePullFraction {
		// This replica holds nothing of p (its data dir was wiped), or
		// differs nearly everywhere. Copy the peer's partition in pages, then exchange again
		// for what the peer lacks.
		_, err := n.pullPartition(ctx, p, peer, "", func(keys, _ int, _ string) {
			n.ae.pulled.Add(int64(keys))
			n.take(ctx, &n.aePace, n.cfg.AntiEntropyRate, keys)
		})
		if err != nil {
			return err
		}
		f, err := n.st.TreeStart(ctx, p)
		if err != nil {
			return err
		}
		res, err := n.request(ctx, peer, treeItem(p, f))
		if err != nil {
			return err
		}
		if diff, err = n.treeDiff(ctx, p, peer, res); err != nil || len(diff) == 0 {
			return err
		}
	}
	keys, err := n.differingKeys(ctx, p, peer, diff)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		// The trees differ where the records do not: this node's tree is
		// out of step (the peer checks its own when it starts an
		// exchange). Should never happen; counted.
		n.ae.rebuilt.Add(1)
		n.log.Warn("anti-entropy: rebuilding a tree out of step with its records", "partition", p, "peer", peer)
		return n.st.RebuildTree(ctx, p)
	}
	return n.syncKeys(ctx, p, peer, keys)
}

// treeDiff walks the trees of partition p down from the peer's answer
// res, alternating steps with it, and returns the differing leaf buckets
// (none when the trees agree).
func (n *Node) treeDiff(ctx context.Context, p int, peer string, res *protocol.Result) ([]int, error) {
	shape := n.st.TreeShape()
	for steps := 0; ; steps++ {
		if len(res.Diff) > 0 {
			if res.Diff[len(res.Diff)-1] >= shape.Leaves() {
				return nil, protocol.Errorf(protocol.ErrMalformed, "%s: bucket %d of a tree of %d", peer, res.Diff[len(res.Diff)-1], shape.Leaves())
			}
			return res.Diff, nil
		}
		if len(res.Nodes) == 0 {
			return nil, nil
		}
		if steps > shape.Depth {
			return nil, protocol.Errorf(protocol.ErrMalformed, "%s: a tree exchange longer than the tree is deep", peer)
		}
		next, diff, err := n.st.TreeStep(ctx, p, merkle.Frontier{Level: res.Level, Nodes: res.Nodes, Hashes: res.Hashes})
		if err != nil || diff != nil {
			return diff, err
		}
		if len(next.Nodes) == 0 {
			return nil, nil
		}
		if res, err = n.request(ctx, peer, treeItem(p, next)); err != nil {
			return nil, err
		}
	}
}

// differingKeys lists the keys of partition p in buckets whose records
// differ between this node and peer (merkle.DiffKeys): the peer's pages,
// then this node's.
func (n *Node) differingKeys(ctx context.Context, p int, peer string, buckets []int) ([]string, error) {
	var theirs []merkle.Item
	shape := n.st.TreeShape()
	partition := n.mem.ring().Partition
	after := ""
	for {
		res, err := n.request(ctx, peer, protocol.Item{Op: protocol.RPCBuckets, Partition: p, Buckets: buckets, After: after, Budget: n.pageBudget})
		if err != nil {
			return nil, err
		}
		for i, k := range res.Keys {
			if _, ok := slices.BinarySearch(buckets, shape.Bucket(k)); !ok || partition(k) != p || k <= after {
				return nil, protocol.Errorf(protocol.ErrMalformed, "%s: key %q is not one of the buckets asked for after %q", peer, protocol.Clip(k, 64), protocol.Clip(after, 64))
			}
			theirs = append(theirs, merkle.Item{Key: k, Digest: res.Digests[i]})
		}
		if res.Next == "" {
			break
		}
		if len(res.Keys) == 0 || res.Next != res.Keys[len(res.Keys)-1] {
			return nil, protocol.Errorf(protocol.ErrMalformed, "%s: a bucket page that does not move its cursor", peer)
		}
		after = res.Next
	}
	mine, _, err := n.st.BucketItems(p, buckets, "", int(^uint(0)>>1))
	if err != nil {
		return nil, err
	}
	return merkle.DiffKeys(mine, theirs), nil
}

// syncKeys syncs each key with peer, aeParallel at a time: the peer's
// object is merged here, and the merged one written back to the peer
// when the peer's lacked something of it.
func (n *Node) syncKeys(ctx context.Context, p int, peer string, keys []string) error {
	sem := make(chan struct{}, aeParallel)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, key := range keys {
		if !n.take(ctx, &n.aePace, n.cfg.AntiEntropyRate, 1) {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := n.syncKey(ctx, p, peer, key); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// syncKey merges peer's object of key into this node's, and writes the
// result back to peer when it differs from what peer holds.
func (n *Node) syncKey(ctx context.Context, p int, peer, key string) error {
	res, err := n.request(ctx, peer, protocol.Item{Op: protocol.RPCRead, Key: key})
	if err != nil {
		return fmt.Errorf("read %q: %w", protocol.Clip(key, 64), err)
	}
	theirs := res.Obj
	merged, changed, err := n.mergeLocal(ctx, p, key, theirs)
	if err != nil {
		return err
	}
	if changed {
		n.ae.pulled.Add(1)
	}
	if merged == nil || theirs != nil && version.Equal(merged, theirs) {
		return nil
	}
	if _, err := n.request(ctx, peer, protocol.Item{Op: protocol.RPCWrite, Key: key, Obj: merged}); err != nil {
		return fmt.Errorf("write %q: %w", protocol.Clip(key, 64), err)
	}
	n.ae.pushed.Add(1)
	return nil
}

// mergeLocal merges obj (nil: nothing) into the local object of key and
// returns the result once durable, and whether it changed.
func (n *Node) mergeLocal(ctx context.Context, p int, key string, obj *protocol.Object) (*protocol.Object, bool, error) {
	type res struct {
		obj     *protocol.Object
		changed bool
		err     error
	}
	ch := make(chan res, 1)
	changed := false // written by the merge, read by done: both on the committer
	merge := func(old *protocol.Object) (*protocol.Object, error) {
		if obj == nil {
			return nil, nil
		}
		m, err := syncInto(n.conflicts, obj)(old)
		changed = m != nil
		return m, err
	}
	if err := n.st.Apply(p, key, merge, func(o *protocol.Object, err error) { ch <- res{o, changed, err} }); err != nil {
		return nil, false, err
	}
	select {
	case r := <-ch:
		return r.obj, r.changed, r.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// serveTree answers one step of a tree exchange (RPCTree) on a reader
// goroutine: building a tree waits for the store's committer.
func (n *Node) serveTree(it *protocol.Item, add func(protocol.Result)) {
	tag, p := it.Tag, it.Partition
	if p >= n.cfg.Partitions {
		add(protocol.ResultError(tag, protocol.Errorf(protocol.ErrInvalidOption, "tree of partition %d: the store has %d", p, n.cfg.Partitions)))
		return
	}
	f := merkle.Frontier{Level: it.Level, Nodes: it.Nodes, Hashes: it.Hashes}
	n.queueRead(readJob{task: &task{
		run: func() protocol.Result {
			ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
			defer cancel()
			next, diff, err := n.st.TreeStep(ctx, p, f)
			if err != nil {
				return protocol.ResultError(0, err)
			}
			return protocol.Result{Level: next.Level, Nodes: next.Nodes, Hashes: next.Hashes, Diff: diff}
		},
		done: func(res protocol.Result) { res.Tag = tag; add(res) }}})
}

// serveBuckets answers a page of the keys of some buckets (RPCBuckets)
// on a reader goroutine.
func (n *Node) serveBuckets(it *protocol.Item, add func(protocol.Result)) {
	tag, p, buckets, after := it.Tag, it.Partition, it.Buckets, it.After
	if p >= n.cfg.Partitions {
		add(protocol.ResultError(tag, protocol.Errorf(protocol.ErrInvalidOption, "buckets of partition %d: the store has %d", p, n.cfg.Partitions)))
		return
	}
	budget := protocol.ScanBudget(int64(n.cfg.MaxPayload))
	if it.Budget > 0 {
		budget = min(it.Budget, budget)
	}
	n.queueRead(readJob{task: &task{
		run: func() protocol.Result {
			items, next, err := n.st.BucketItems(p, buckets, after, budget)
			if err != nil {
				return protocol.ResultError(0, err)
			}
			res := protocol.Result{Next: next, Keys: make([]string, len(items)), Digests: make([]uint64, len(items))}
			for i, x := range items {
				res.Keys[i], res.Digests[i] = x.Key, x.Digest
			}
			return res
		},
		done: func(res protocol.Result) { res.Tag = tag; add(res) }}})
}

// antiEntropyStatus is the node's anti-entropy in its status: the root of
// each partition it owns whose tree an exchange built (its own rounds,
// or a peer's with it, so also when its own are off). A status never
// builds a tree: that costs a scan of the partition and, from then on,
// two digests per write.
func (n *Node) antiEntropyStatus() *protocol.AntiEntropyStatus {
	ae := &n.ae
	interval := "off"
	if n.cfg.AntiEntropy > 0 {
		interval = n.cfg.AntiEntropy.String()
	}
	st := &protocol.AntiEntropyStatus{
		Interval: interval, Rounds: ae.rounds.Load(), LastRound: ae.lastRound.Load(),
		Exchanges: ae.exchanges.Load(), Differed: ae.differed.Load(), Pulled: ae.pulled.Load(),
		Pushed: ae.pushed.Load(), Rebuilt: ae.rebuilt.Load(), Purged: n.compacted.purged.Load(),
	}
	ae.mu.Lock()
	last := make(map[int]time.Time, len(ae.last))
	for p, t := range ae.last {
		last[p] = t
	}
	ae.mu.Unlock()
	for _, p := range n.mem.ring().PartitionsOf(n.cfg.ID) {
		ps := protocol.PartitionAE{P: p}
		if t, ok := last[p]; ok {
			ps.Last = t.UnixNano()
		}
		if root, ok := n.st.BuiltTreeRoot(p); ok {
			ps.Root = fmt.Sprintf("%016x", root)
		}
		st.Partitions = append(st.Partitions, ps)
	}
	return st
}
