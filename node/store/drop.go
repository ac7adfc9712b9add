package store

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// dropChunk bounds the keys one transaction of DropPartition looks at
// (and so deletes): like checkpointChunk, it bounds the dirty pages of a
// transaction and how long it holds bbolt's writer, which a checkpoint
// waits for.
const dropChunk = 2048

// DropPartition removes every record of partition p, durably, and returns
// how many it removed. A node calls it for a partition it no longer owns,
// once its new owners hold the data.
//
// It blocks until done or until ctx ends, and is safe for concurrent use
// with every other method; drops run one at a time. It never stops the
// committer: it first has the records still in memory checkpointed into
// bbolt (the cut, below), then deletes the partition's keys in bbolt
// transactions of up to dropChunk keys, checking ctx, and Close, between
// them. Records of other partitions are never touched.
//
// The cut is a point between two of the committer's batches, during the
// call. A write of p committed before it is removed (unless rewritten
// after it); one committed after it is kept, whole, as its newest
// version: so every write acknowledged before DropPartition was called is
// gone, and every write acknowledged after it returned survives. A write
// after the cut may have merged onto the record it replaces, if that one
// was not deleted yet: it is then a newer version holding the old one's
// siblings, which a later drop removes like any other.
//
// Durability: each transaction is a bbolt commit, so what it deleted stays
// deleted after a crash or a power loss, and the log cannot bring it back
// (see cut). A crash during a drop leaves some of p's records deleted and
// the others intact; calling DropPartition again finishes the job. If it
// returns an error (ctx's, ErrClosed, the store's failure), dropped
// records are still gone.
func (s *Store) DropPartition(ctx context.Context, p int) (dropped int, err error) {
	return s.DropPartitionAfter(ctx, p, nil)
}

// DropPartitionAfter is DropPartition with a step between the cut and
// the deletes: once every record of p committed before the cut is in
// bbolt, it calls cut (if not nil), and deletes them only if cut returns
// nil; otherwise it returns cut's error and deletes nothing. A hinted
// handoff pushes the partition to its owners in cut: what it pushed
// includes every record the drop deletes, and a hinted write committed
// after the cut, which the push may have missed, stays with its hint.
func (s *Store) DropPartitionAfter(ctx context.Context, p int, cut func(context.Context) error) (dropped int, err error) {
	prefix, err := partitionPrefix(p)
	if err != nil {
		return 0, err
	}
	if s.closed.Load() {
		return 0, ErrClosed
	}
	select {
	case s.dropSem <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("store: drop partition %d: %w", p, ctx.Err())
	}
	defer func() { <-s.dropSem }()

	d := &drop{prefix: prefix, kept: make(map[string]struct{})}
	defer s.dropping.CompareAndSwap(d, nil)
	// The deletes below do not go through the committer, so they do not
	// update the partition's tree: forget it once they are done (tree.go).
	defer s.trees.forget(p)
	if err := s.cutFor(ctx, d); err != nil {
		return 0, fmt.Errorf("store: drop partition %d: %w", p, err)
	}
	if cut != nil {
		if err := cut(ctx); err != nil {
			return 0, err
		}
	}
	if s.hooks.dropChunk != nil {
		s.hooks.dropChunk(0)
	}
	for from, chunks := prefix, 1; from != nil; chunks++ {
		if err := ctx.Err(); err != nil {
			return dropped, fmt.Errorf("store: drop partition %d: %d records dropped: %w", p, dropped, err)
		}
		if s.closed.Load() {
			return dropped, ErrClosed
		}
		n, next, err := s.deleteChunk(d, from)
		if err != nil {
			return dropped, fmt.Errorf("store: drop partition %d: %d records dropped: %w", p, dropped, s.dbError("delete", err))
		}
		dropped += n
		from = next
		if s.hooks.dropChunk != nil {
			s.hooks.dropChunk(chunks)
		}
	}
	return dropped, nil
}

// drop is a DropPartition in progress. From the cut on, the committer
// adds to kept the key of every record of the partition it commits,
// before the record can reach bbolt; the drop leaves those keys alone.
// kept holds only the writes that arrive during the drop, which the caller
// stopped sending before: a few late ones.
type drop struct {
	prefix []byte

	mu   sync.Mutex
	kept map[string]struct{}
}

// keep notes the keys of the partition among a batch's records.
func (d *drop) keep(changes []memEntry) {
	for _, e := range changes {
		if bytes.HasPrefix(e.bkey, d.prefix) {
			d.mu.Lock()
			d.kept[string(e.bkey)] = struct{}{}
			d.mu.Unlock()
		}
	}
}

func (d *drop) isKept(bkey []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.kept[string(bkey)]
	return ok
}

// cutRequest asks the committer for a drop's cut.
type cutRequest struct {
	d     *drop
	reply chan cutResult // buffered: the committer never waits on it
}

// cutResult is the committer's answer: retry once wait is closed (a
// checkpoint was running), or wait for t's checkpoint (nil: nothing to
// checkpoint), or err.
type cutResult struct {
	wait <-chan struct{}
	t    *memtable
	err  error
}

// cutFor makes the cut of d: once it returns nil, every record committed
// before the cut is in bbolt, and every log segment holding one is
// covered by a checkpoint, so Open never replays it. That is why a drop
// only has to delete from bbolt, and why a crash at any point after the
// cut cannot resurrect a deleted record from the log.
//
// A checkpoint rather than a drop marker in the log: the marker would
// change the log format, and recovery would have to delete a whole
// partition from bbolt before replaying what follows it, or keep it from
// being replayed; the checkpoint reuses a path every crash test already
// covers, and costs one checkpoint per drop.
func (s *Store) cutFor(ctx context.Context, d *drop) error {
	for {
		c := cutRequest{d: d, reply: make(chan cutResult, 1)}
		select {
		case s.cuts <- c:
		case <-s.exited:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
		r := <-c.reply
		switch {
		case r.err != nil:
			return r.err
		case r.wait != nil:
			select {
			case <-r.wait:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		case r.t != nil:
			select {
			case <-r.t.flushed:
				return r.t.err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
}

// cut runs on the committer, between batches. It starts tracking d's
// writes and checkpoints the active memtable, whose records (and those of
// the checkpoints before it) are then all the records before the cut. It
// never waits: while a checkpoint runs it asks the drop to come back.
func (s *Store) cut(d *drop, flushes chan<- *memtable) cutResult {
	if s.flushing != nil {
		select {
		case <-s.flushing.flushed:
			s.reap()
		default:
			return cutResult{wait: s.flushing.flushed}
		}
	}
	if err := s.broken(); err != nil {
		return cutResult{err: err}
	}
	s.dropping.Store(d)
	if len(s.active.m) == 0 {
		// The active segment holds no record and every older one is
		// covered: everything is in bbolt already.
		return cutResult{}
	}
	t := s.startCheckpoint(flushes)
	if t == nil {
		return cutResult{err: s.broken()}
	}
	return cutResult{t: t}
}

// deleteChunk deletes, in one transaction, the records of d's partition
// among the first dropChunk keys from the bbolt key from on, but those
// d keeps. It returns how many it deleted and where the next chunk
// starts (nil: the partition is done).
func (s *Store) deleteChunk(d *drop, from []byte) (n int, next []byte, err error) {
	limit := s.dropChunk
	err = s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketData)
		var del [][]byte
		next = nil
		c := b.Cursor()
		seen := 0
		for k, _ := c.Seek(from); k != nil && bytes.HasPrefix(k, d.prefix); k, _ = c.Next() {
			if seen == limit {
				next = bytes.Clone(k)
				break
			}
			seen++
			if !d.isKept(k) {
				del = append(del, bytes.Clone(k)) // deleting under a cursor moves it
			}
		}
		for _, k := range del {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(del)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return n, next, nil
}
