package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kvmesh/kvmesh/node/merkle"
	"github.com/kvmesh/kvmesh/protocol"
)

// op is one queued write and, once applied, its outcome.
type op struct {
	p      int
	key    string // for error messages
	bkey   []byte // partition prefix + key
	f      MergeFunc
	logged func()
	done   func(*protocol.Object, error)

	res *protocol.Object
	err error
}

// run is the committer: the only goroutine that writes records. It owns
// the log, the active memtable and the checkpointer goroutine. Between
// batches it also makes the cuts of DropPartition (drop.go). It returns
// once Close has closed the queue, every accepted write is done, and the
// last checkpoint has ended.
func (s *Store) run() {
	defer close(s.exited)
	flushes := make(chan *memtable, 1)
	flusherDone := make(chan struct{})
	go func() {
		defer close(flusherDone)
		for t := range flushes {
			s.checkpoint(t)
		}
	}()
	batch := make([]*op, 0, s.opts.MaxBatch)
committing:
	for {
		var first *op
		select {
		case o, ok := <-s.queue:
			if !ok {
				break committing
			}
			first = o
		case c := <-s.cuts:
			c.reply <- s.cut(c.d, flushes)
			continue
		case rq := <-s.trees.build:
			rq.reply <- s.buildTree(rq.p)
			continue
		}
		batch = s.drain(append(batch[:0], first))
		s.commit(batch)
		clear(batch) // let the ops and their results be collected
		s.maybeCheckpoint(flushes)
	}
	// Closing: let a running checkpoint end, then put the rest in bbolt
	// too, so that the next Open has nothing to replay.
	if s.flushing != nil {
		<-s.flushing.flushed
		s.reap()
	}
	close(flushes)
	<-flusherDone
	if s.broken() == nil && len(s.active.m) > 0 {
		s.memMu.Lock()
		s.frozen = s.active
		s.memMu.Unlock()
		s.checkpoint(s.active)
		s.closeErr = s.active.err
	}
	if err := s.wal.close(); err != nil && s.closeErr == nil {
		s.closeErr = fmt.Errorf("store: close: %w", err)
	}
	if s.closeErr == nil && s.broken() == nil {
		// Everything is in bbolt: the segment can go.
		if err := removeSegments(s.fs, s.path, s.wal.seq); err != nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
	}
	if s.closeErr == nil {
		s.closeErr = s.broken()
	}
}

// drain appends the writes already queued, without waiting for more, up to
// MaxBatch. Not waiting is what lets a lone write commit at once; under
// load the queue refills during each fsync, so batches grow by themselves.
func (s *Store) drain(batch []*op) []*op {
	for len(batch) < s.opts.MaxBatch {
		select {
		case o, ok := <-s.queue:
			if !ok {
				return batch
			}
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// commit merges batch in memory, appends the resulting records to the log
// as one frame, calls the logged callbacks, syncs the log, makes the
// records visible in the memtable, then calls the done callbacks in
// queue order.
func (s *Store) commit(batch []*op) {
	err := s.broken()
	w := batchTxn{s: s, cur: make(map[string]*protocol.Object, len(batch)), buf: beginFrame(s.buf[:0])}
	if err == nil {
		for _, o := range batch {
			o.res, o.err = w.apply(o)
			if o.err != nil {
				w.failed++
			}
		}
		w.endRead()
		if s.hooks.inTxn != nil {
			err = s.hooks.inTxn()
		}
	}
	if err == nil {
		s.plantedEarlyAck(batch)
	}
	if err == nil && len(w.changes) > 0 {
		sealFrame(w.buf, 0, s.wal.nonce)
		if err = s.wal.write(w.buf); err == nil {
			for _, o := range batch {
				if o.logged != nil && o.err == nil {
					o.logged()
				}
			}
			if s.hooks.beforeSync != nil {
				s.hooks.beforeSync(s.wal.size == segHeaderLen+int64(len(w.buf)))
			}
			if s.opts.OnSync != nil {
				t := time.Now()
				err = s.wal.sync()
				s.opts.OnSync(time.Since(t))
			} else {
				err = s.wal.sync()
			}
		}
		if err != nil {
			// What reached the file is unknown, and a frame appended
			// after a torn one would read as corruption: no more writes.
			s.fail(err)
		}
	} else if err == nil {
		for _, o := range batch { // nothing new to log: what they saw is durable
			if o.logged != nil && o.err == nil {
				o.logged()
			}
		}
	}
	if cap(w.buf) <= maxKeptBuffer {
		s.buf = w.buf[:0]
	}
	if err == nil {
		if d := s.dropping.Load(); d != nil {
			d.keep(w.changes) // before the records can reach bbolt
		}
		s.memMu.Lock()
		for _, e := range w.changes {
			s.active.put(e)
		}
		s.memMu.Unlock()
		s.trees.apply(w.digests)
		if s.hooks.afterCommit != nil {
			s.hooks.afterCommit()
		}
	}

	s.statsMu.Lock()
	if err != nil {
		s.stats.CommitErrors++
	} else {
		s.stats.Batches++
		s.stats.Ops += uint64(len(batch))
		s.stats.Failed += uint64(w.failed)
	}
	s.statsMu.Unlock()
	// Free the slots before the callbacks, so that a caller woken by one
	// can write again at once.
	s.pending.Add(-int64(len(batch)))

	if err != nil {
		err = fmt.Errorf("%w: store: commit of a batch of %d writes: %w", protocol.ErrInternal, len(batch), err)
	}
	for _, o := range batch {
		if o.done == nil {
			continue
		}
		if err != nil {
			o.done(nil, err)
		} else {
			o.done(o.res, o.err)
		}
	}
}

// maxKeptBuffer bounds the log buffer the committer keeps between
// batches; a bigger one (a batch of large values) is left to the GC.
const maxKeptBuffer = 1 << 20

// maybeCheckpoint, after a batch, notices a checkpoint that ended and
// starts the next one when the active memtable has grown past
// MemtableBytes, or its log segment past logFactor times that (writes
// that keep rewriting a few keys grow the log, not the memtable). While
// one runs, the active memtable may grow to twice that; then the
// committer waits for it, which stalls writes (and fills the queue, so
// Apply refuses with ErrOverloaded) rather than let memory or the log
// grow without bound.
func (s *Store) maybeCheckpoint(flushes chan<- *memtable) {
	if s.flushing != nil {
		select {
		case <-s.flushing.flushed:
			s.reap()
		default:
		}
	}
	if !s.full(1) || s.broken() != nil {
		return
	}
	if s.flushing != nil {
		if !s.full(2) {
			return
		}
		<-s.flushing.flushed
		s.reap()
		if s.broken() != nil {
			return
		}
	}
	s.startCheckpoint(flushes)
}

// startCheckpoint rotates the log, freezes the active memtable and hands
// it to the checkpointer. No checkpoint may be running. It returns the
// frozen memtable, or nil if the rotation failed (the store is broken).
func (s *Store) startCheckpoint(flushes chan<- *memtable) *memtable {
	if err := s.wal.rotate(); err != nil {
		s.fail(err)
		return nil
	}
	t := s.active
	s.memMu.Lock()
	s.frozen = t
	s.active = newMemtable(s.wal.seq)
	s.memMu.Unlock()
	s.flushing = t
	flushes <- t // never blocks: one checkpoint at a time
	return t
}

// logFactor is how much bigger than MemtableBytes a log segment may grow
// before it is checkpointed: a bound on the log Open replays.
const logFactor = 4

// full reports whether the active memtable or its segment has reached k
// times its budget.
func (s *Store) full(k int) bool {
	return s.active.bytes >= k*s.opts.MemtableBytes || s.wal.size >= int64(k*logFactor*s.opts.MemtableBytes)
}

// reap takes note of the checkpoint that ended. A failed one leaves its
// memtable frozen (readers still see it; the log still holds it) and
// stops all writes: the store cannot move its log forward.
func (s *Store) reap() {
	if err := s.flushing.err; err != nil {
		s.fail(err)
		return
	}
	s.flushing = nil
}

// checkpointChunk bounds the records one checkpoint transaction writes.
// bbolt builds a transaction's dirty pages in memory, one page per
// record when keys are spread over a big file: one transaction for a
// whole memtable of small random records took hundreds of MiB of heap.
const checkpointChunk = 2048

// checkpoint writes the frozen memtable t to bbolt, in key order, in
// transactions of checkpointChunk records; the last one also stores the
// number of t's segment. Until then Open replays the whole segment,
// which rewrites the same final object of each key: a crash between
// transactions loses nothing. Then t is unfrozen and the segments it
// covers removed. It runs on the checkpointer goroutine (or on the
// committer when closing), never while another one runs.
func (s *Store) checkpoint(t *memtable) {
	defer close(t.flushed)
	entries := t.sorted()
	for start := 0; start < len(entries) || start == 0; start += checkpointChunk {
		chunk := entries[start:min(start+checkpointChunk, len(entries))]
		last := start+checkpointChunk >= len(entries)
		err := s.update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketData)
			for _, e := range chunk {
				if err := b.Put(e.bkey, e.enc); err != nil {
					return err
				}
			}
			if !last {
				return nil
			}
			if s.hooks.inCheckpoint != nil {
				if err := s.hooks.inCheckpoint(); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketMeta).Put([]byte(metaWALApplied), binary.BigEndian.AppendUint64(nil, t.seq))
		})
		if err != nil {
			t.err = fmt.Errorf("checkpoint of log segment %016x (%d records): %w", t.seq, len(entries), err)
			return
		}
		if last {
			break
		}
	}
	s.memMu.Lock()
	if s.frozen == t {
		s.frozen = nil
	}
	s.memMu.Unlock()
	s.statsMu.Lock()
	s.stats.Checkpoints++
	s.statsMu.Unlock()
	// The records are in bbolt and the checkpoint says so: a segment that
	// survives its removal is skipped at Open.
	_ = removeSegments(s.fs, s.path, t.seq)
}

// fail stops the store taking writes after an I/O error of the log or of
// a checkpoint. The first error is kept. OnFail runs under failMu, so
// nobody sees the store broken (and so nobody learns a write failed)
// before OnFail has returned.
func (s *Store) fail(err error) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if s.failed != nil {
		return
	}
	s.failed = fmt.Errorf("store failed, restart the node: %w", err)
	if s.opts.OnFail != nil {
		s.opts.OnFail(s.failed)
	}
}

// broken returns the error that stopped the store taking writes, or nil.
func (s *Store) broken() error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failed
}

// batchTxn merges the writes of one batch.
//
// cur holds, for each key written or read so far in the batch, the object
// as the batch has left it (nil: absent), so that a later write of the same
// key merges onto the earlier one's result rather than onto what is
// stored. Objects in cur are also handed to done callbacks and kept in the
// memtable: nothing modifies them. changes are the records the batch
// writes, in order, and buf their log records.
type batchTxn struct {
	s       *Store
	cur     map[string]*protocol.Object
	changes []memEntry
	digests []treeChange // the changes of partitions with a tree (tree.go)
	buf     []byte
	tx      *bolt.Tx // a read transaction, begun at the first key not in memory
	failed  int
}

func (w *batchTxn) apply(o *op) (*protocol.Object, error) {
	old, err := w.load(o)
	if err != nil {
		return nil, err
	}
	nw, err := merge(o, old)
	if err != nil {
		return nil, err
	}
	if nw == nil {
		w.cur[string(o.bkey)] = old
		return old, nil
	}
	if err := nw.Validate(); err != nil {
		return nil, fmt.Errorf("%w: store: merge of %d/%q made an invalid object: %w", protocol.ErrInternal, o.p, o.key, err)
	}
	enc, err := protocol.EncodeObject(nw)
	if err != nil {
		return nil, fmt.Errorf("%w: store: encode %d/%q: %w", protocol.ErrInternal, o.p, o.key, err)
	}
	v := sealRecord(o.bkey, enc)
	w.buf = appendRecord(w.buf, o.bkey, v)
	w.changes = append(w.changes, memEntry{bkey: o.bkey, obj: nw, enc: v})
	if w.s.trees.has(o.p) {
		w.digests = append(w.digests, treeChange{p: o.p, key: o.key, old: merkle.Digest(o.key, old), new: merkle.Digest(o.key, nw)})
	}
	w.cur[string(o.bkey)] = nw
	return nw, nil
}

// load returns the key's current object: the batch's latest result, or
// the memtables', or a fresh decode of the bbolt record. It is shared, not
// a copy (see MergeFunc).
func (w *batchTxn) load(o *op) (*protocol.Object, error) {
	if c, ok := w.cur[string(o.bkey)]; ok {
		return c, nil
	}
	if e, ok := lookup(w.s.active, w.s.flushing, o.bkey); ok {
		return e.obj, nil
	}
	v, err := w.stored(o)
	if v == nil || err != nil {
		return nil, err
	}
	return decodeRecord(o.p, o.key, o.bkey, v)
}

// stored returns the key's bbolt record, valid until endRead.
func (w *batchTxn) stored(o *op) ([]byte, error) {
	if w.tx == nil {
		tx, err := w.s.db.Begin(false)
		if err != nil {
			return nil, w.s.dbError("read "+o.key, err)
		}
		w.tx = tx
	}
	var v []byte
	err := recovered(w.s.path, func() error {
		v = w.tx.Bucket(bucketData).Get(o.bkey)
		return nil
	})
	return v, err
}

// endRead ends the batch's read transaction, before the log sync: an open
// one would hold up a checkpoint that needs to grow the file.
func (w *batchTxn) endRead() {
	if w.tx != nil {
		_ = w.tx.Rollback()
		w.tx = nil
	}
}

// merge calls o.f, turning a panic into an error so that one bad write
// cannot kill the committer, and with it the node.
func merge(o *op, old *protocol.Object) (nw *protocol.Object, err error) {
	defer func() {
		if r := recover(); r != nil {
			nw, err = nil, protocol.Errorf(protocol.ErrInternal, "store: merge of %d/%q panicked: %v", o.p, o.key, r)
		}
	}()
	nw, err = o.f(old)
	if err != nil {
		return nil, fmt.Errorf("store: merge of %d/%q: %w", o.p, o.key, err)
	}
	return nw, nil
}

// clone returns a deep copy of o.
func clone(o *protocol.Object) *protocol.Object {
	if o == nil {
		return nil
	}
	c := &protocol.Object{Clock: slices.Clone(o.Clock), Siblings: slices.Clone(o.Siblings)}
	for i := range c.Siblings {
		c.Siblings[i].Value = bytes.Clone(c.Siblings[i].Value)
	}
	return c
}
