package store

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kvmesh/kvmesh/protocol"
)

// op is one queued write and, once applied, its outcome.
type op struct {
	p    int
	key  string // for error messages
	bkey []byte // partition prefix + key
	f    MergeFunc
	done func(*protocol.Object, error)

	res *protocol.Object
	err error
}

// run is the committer: the only goroutine that writes records. It returns
// once Close has closed the queue and every accepted write is done.
func (s *Store) run() {
	defer close(s.exited)
	batch := make([]*op, 0, s.opts.MaxBatch)
	for first := range s.queue {
		batch = s.drain(append(batch[:0], first))
		s.commit(batch)
		clear(batch) // let the ops and their results be collected
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

// commit applies batch in one transaction, commits it, then calls the
// done callbacks in queue order.
func (s *Store) commit(batch []*op) {
	var w batchTxn
	err := s.db.Update(func(tx *bolt.Tx) error {
		w = batchTxn{b: tx.Bucket(bucketData), cur: make(map[string]*protocol.Object, len(batch))}
		for _, o := range batch {
			o.res, o.err = w.apply(o)
			if o.err != nil {
				w.failed++
			}
		}
		if s.hooks.inTxn != nil {
			return s.hooks.inTxn()
		}
		if s.opts.UnsafeEarlyAck > 0 {
			for _, o := range batch {
				if o.done != nil {
					o.done(o.res, o.err)
					o.done = nil
				}
			}
			time.Sleep(s.opts.UnsafeEarlyAck)
		}
		return nil
	})
	if err == nil && s.hooks.afterCommit != nil {
		s.hooks.afterCommit()
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

// batchTxn applies the writes of one batch inside its write transaction.
//
// cur holds, for each key written or read so far in the batch, the object
// as the batch has left it (nil: absent), so that a later write of the same
// key merges onto the earlier one's result rather than onto what is on
// disk. Objects in cur are also handed to done callbacks after the commit,
// so they are never modified: each merge gets a copy.
type batchTxn struct {
	b      *bolt.Bucket
	cur    map[string]*protocol.Object
	failed int
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
		return w.current(o)
	}
	if err := nw.Validate(); err != nil {
		return nil, fmt.Errorf("%w: store: merge of %d/%q made an invalid object: %w", protocol.ErrInternal, o.p, o.key, err)
	}
	v, err := protocol.EncodeObject(nw)
	if err != nil {
		return nil, fmt.Errorf("%w: store: encode %d/%q: %w", protocol.ErrInternal, o.p, o.key, err)
	}
	if err := w.b.Put(o.bkey, v); err != nil {
		return nil, fmt.Errorf("%w: store: put %d/%q: %w", protocol.ErrInternal, o.p, o.key, err)
	}
	w.cur[string(o.bkey)] = nw
	return nw, nil
}

// load returns a private copy of the key's current object: a copy of the
// batch's latest result, or a fresh decode of the stored record.
func (w *batchTxn) load(o *op) (*protocol.Object, error) {
	if c, ok := w.cur[string(o.bkey)]; ok {
		return clone(c), nil
	}
	v := w.b.Get(o.bkey)
	if v == nil {
		return nil, nil
	}
	return decodeRecord(o.p, o.key, v)
}

// current returns the key's object as the batch has left it, for a merge
// that changed nothing. It decodes the record again rather than trust old,
// which the merge may have modified.
func (w *batchTxn) current(o *op) (*protocol.Object, error) {
	if c, ok := w.cur[string(o.bkey)]; ok {
		return c, nil
	}
	var c *protocol.Object
	if v := w.b.Get(o.bkey); v != nil {
		var err error
		if c, err = decodeRecord(o.p, o.key, v); err != nil {
			return nil, err
		}
	}
	w.cur[string(o.bkey)] = c
	return c, nil
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
