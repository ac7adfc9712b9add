package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Tombstone compaction. A value whose TTL expired counts as a tombstone
// dated at its expiry. A delete leaves a tombstone: the key's clock and
// a deleted sibling, which supersede the values it deleted on every
// replica they reach. A replica purges (deletes the record of) a key
// whose siblings are all tombstones once both hold:
//
//   - the replica held it, purgeable, at the end of an anti-entropy
//     round that compared the partition with every other owner
//     (antientropy.go), and the next such round has ended since: that
//     round, started after the replica held the tombstone, pushed it to
//     every owner that lacked it, so every replica holds it or something
//     newer, and no replica still holds a value it deleted;
//   - the newest tombstone is older than Config.TombstoneGrace;
//
// (the scan that takes candidates and purges the previous ones runs at
// the end of a complete round, at most every compactEvery: it reads
// every record of the partition)
//   - no membership change is under way (a partition changing owners
//     has owners the round did not compare).
//
// That is how kvmesh avoids Cassandra's zombies: a replica that was down,
// partitioned away or unreachable for longer than the grace period keeps
// the partition's rounds incomplete, so nobody purges what it may lack,
// and when it is back the next complete round gives it the tombstone
// first. Read repair and anti-entropy then have no old value anywhere to
// bring back. Each replica purges on its own; until the last one has, an
// exchange may copy a tombstone back to one that purged it, which purges
// it again at its next round.
//
// A purged clock takes with it the counters of this node's actor in it:
// a new write of the key, issued from nothing, would reuse a counter that
// a replica still holding the tombstone has seen, and be dropped there
// as old. So before purging, the node raises its purge floor (durable,
// per actor) to the highest such counter, and the issuer issues a key
// without an object from the floor (issue.go).

// metaPurgeFloor is the store metadata entry of the purge floor: the
// actor, then its floor as 8 big-endian bytes.
const metaPurgeFloor = "purge-floor"

// compaction is tombstone compaction's state: owned by the anti-entropy
// loop, but the counter.
type compaction struct {
	// candidates, per partition, are the keys found purgeable at the end
	// of its last complete round: purged at the end of the next one.
	candidates map[int]map[string]bool
	scanned    map[int]time.Time // when each partition was last scanned
	purged     atomic.Int64
}

// compactEvery is how often compaction scans a partition: a scan reads
// and decodes every record, so not at every anti-entropy round, but a few
// times per grace period (at most every 10 minutes), and never more often
// than the rounds.
func (n *Node) compactEvery() time.Duration {
	return max(n.cfg.AntiEntropy, min(n.cfg.TombstoneGrace/4, 10*time.Minute))
}

// loadPurgeFloor sets the issuer's floor from the store, if it is the
// current actor's (a new actor has issued nothing yet).
func (n *Node) loadPurgeFloor() error {
	raw, err := n.st.GetMeta(metaPurgeFloor)
	if err != nil || len(raw) < 8 {
		return err
	}
	if string(raw[8:]) == n.actor {
		n.issuer.floor.Store(binary.BigEndian.Uint64(raw))
	}
	return nil
}

// raisePurgeFloor makes the floor at least f, durably.
func (n *Node) raisePurgeFloor(f uint64) error {
	if f <= n.issuer.floor.Load() {
		return nil
	}
	b := binary.BigEndian.AppendUint64(nil, f)
	if err := n.st.PutMeta(metaPurgeFloor, append(b, n.actor...)); err != nil {
		return err
	}
	n.issuer.floor.Store(f)
	return nil
}

// purgeable reports whether o is all tombstones written before cutoff
// (unix nanoseconds), or values that expired before it (a put with a
// TTL: its expiry is a tombstone every replica agrees on).
func purgeable(o *protocol.Object, cutoff int64) bool {
	if o == nil || len(o.Siblings) == 0 {
		return false
	}
	for i := range o.Siblings {
		s := &o.Siblings[i]
		if !(s.Deleted && s.Time < cutoff || s.Expired(cutoff)) {
			return false
		}
	}
	return true
}

// compactPartition runs at the end of an anti-entropy round that
// compared partition p with every other owner: it purges the tombstones
// that were candidates at the end of the previous such round and still
// are, and takes the new candidates. It returns how many it purged.
func (n *Node) compactPartition(ctx context.Context, p int) (int, error) {
	c := &n.compacted
	if n.cfg.TombstoneGrace <= 0 || !n.mem.stable() {
		delete(c.candidates, p) // a change under way: start over after it
		return 0, nil
	}
	now := n.clock.Now()
	if last, ok := c.scanned[p]; ok && now.Sub(last) < n.compactEvery() {
		return 0, nil // the candidates wait for the next scan: rounds ended meanwhile
	}
	c.scanned[p] = now
	cutoff := now.Add(-n.cfg.TombstoneGrace).UnixNano()
	prev := c.candidates[p]
	next := map[string]bool{}
	var keys []string
	var floor uint64
	err := n.st.Scan(p, func(key string, o *protocol.Object) bool {
		if purgeable(o, cutoff) {
			if prev[key] {
				keys = append(keys, key)
				floor = max(floor, version.Get(o.Clock, n.actor))
			} else {
				next[key] = true
			}
		}
		return ctx.Err() == nil
	})
	if err != nil {
		return 0, err
	}
	c.candidates[p] = next
	if len(keys) == 0 {
		return 0, nil
	}
	if err := n.raisePurgeFloor(floor); err != nil {
		return 0, fmt.Errorf("purge floor: %w", err)
	}
	purged, err := n.st.PurgeKeys(ctx, p, keys, func(_ string, o *protocol.Object) bool {
		// Checked again on the record as deleted: a write since the scan
		// may have brought a value back, or a newer tombstone, whose
		// counter the floor does not cover.
		return purgeable(o, cutoff) && version.Get(o.Clock, n.actor) <= floor
	})
	c.purged.Add(int64(purged))
	return purged, err
}
