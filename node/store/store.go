package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kvmesh/kvmesh/protocol"
)

// ErrClosed is returned by every method called after Close. It wraps
// protocol.ErrNodeUnavailable, so a coordinator treats it like a node that
// is down.
var ErrClosed = fmt.Errorf("%w: store closed", protocol.ErrNodeUnavailable)

// MergeFunc computes the object to store for a key from the stored one.
//
// old is nil when the key is absent. old is the store's own object, which
// readers and other writes may hold: the function must not modify it (or
// its slices). It builds a new object, which may share old's values. A nil
// result leaves the record unchanged and reports the stored object. An
// error fails only this write, which then stores nothing.
//
// A MergeFunc runs on the committer goroutine inside the write transaction
// of its batch, so it must be quick and must not call the Store: every
// other write waits for it. A panic is recovered and fails the write with
// protocol.ErrInternal. The function must not keep old or its result after
// it returns: the result goes to the write's done callback.
type MergeFunc func(old *protocol.Object) (*protocol.Object, error)

// Options configures a Store. A zero field takes its default; a negative
// one is an error.
type Options struct {
	// MaxQueue bounds the writes accepted and not yet committed (queued or
	// in the batch being written). Apply refuses more with
	// protocol.ErrOverloaded. Default 8192 writes.
	MaxQueue int
	// MaxBatch bounds the writes applied in one bbolt transaction, and so
	// the work one fsync covers. Default 1024 writes.
	MaxBatch int
	// OpenTimeout is how long Open waits for the file lock, which another
	// process using the same file holds. Default 1s.
	OpenTimeout time.Duration
	// MemtableBytes is how much the records written since the last
	// checkpoint may hold in memory (and in the log) before the next
	// checkpoint moves them into bbolt. While a checkpoint runs, the new
	// writes may take as much again; then writes wait for it. Bigger
	// checkpoints rewrite each bbolt page for more writes at once; the log
	// Open replays after a crash is at most twice this. Default 8 MiB.
	MemtableBytes int
	// UnsafeEarlyAck, when > 0, calls each write's done callback before its
	// transaction commits and then holds the commit back this long: the
	// durability bug the fault suite must catch (an acknowledgement sent
	// before the bbolt commit). Never set it outside that test. Default 0.
	UnsafeEarlyAck time.Duration
}

// DefaultOptions returns the options Open uses for zero fields.
func DefaultOptions() Options {
	return Options{MaxQueue: 8192, MaxBatch: 1024, OpenTimeout: time.Second, MemtableBytes: 8 << 20}
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxQueue < 0 || o.MaxBatch < 0 || o.OpenTimeout < 0 || o.MemtableBytes < 0 {
		return o, protocol.Errorf(protocol.ErrInvalidOption, "store: negative option in %+v", o)
	}
	d := DefaultOptions()
	if o.MaxQueue == 0 {
		o.MaxQueue = d.MaxQueue
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = d.MaxBatch
	}
	if o.OpenTimeout == 0 {
		o.OpenTimeout = d.OpenTimeout
	}
	if o.MemtableBytes == 0 {
		o.MemtableBytes = d.MemtableBytes
	}
	return o, nil
}

// initialMmapSize is mapped at open so that the file can grow to it
// without a remap. A remap waits for every read transaction to end while
// holding the writer, so this keeps long reads from stalling commits on a
// young node. It is address space, not memory.
const initialMmapSize = 64 << 20

// Stats is a snapshot of a Store's counters, for metrics and tests.
type Stats struct {
	Keys         int     // keys stored (counted when Stats is called; 0 after Close)
	Pending      int     // writes accepted and not yet committed
	Memtable     int     // bytes of records in memory, not in bbolt yet
	Batches      uint64  // batches committed (each one log append and sync)
	Checkpoints  uint64  // checkpoints that moved the log's records into bbolt
	Ops          uint64  // writes in committed batches, whatever their merge did
	Failed       uint64  // writes in committed batches whose merge failed, panicked or made an invalid object
	CommitErrors uint64  // batches whose transaction failed; all their writes failed
	MeanBatch    float64 // Ops / Batches: writes per fsync
}

// Store is one node's bbolt file and its write-ahead log. Open starts its
// committer goroutine and Close stops it. All methods are safe for
// concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	opts Options

	// The committer's own: the log, its encoding buffer, and the memtable
	// being checkpointed (nil when none; it may have been unfrozen
	// already, its records being in bbolt too).
	wal      *wal
	buf      []byte
	flushing *memtable

	// memMu guards the memtables readers see: active takes each batch's
	// records; frozen, while not nil, is being checkpointed.
	memMu  sync.RWMutex
	active *memtable
	frozen *memtable

	failMu sync.Mutex
	failed error // set once when the log or a checkpoint fails

	// mu orders Apply's send on queue against Close closing it: Apply
	// holds it shared while it checks closed and sends; Close holds it
	// exclusively while it sets closed and closes queue.
	mu      sync.RWMutex
	closed  atomic.Bool
	queue   chan *op
	pending atomic.Int64 // writes accepted and not yet committed; ≤ MaxQueue

	exited    chan struct{} // closed when the committer returns
	closeOnce sync.Once
	closeErr  error // set by the committer when it returns, then by Close

	statsMu sync.Mutex
	stats   Stats // all but Pending and MeanBatch; written by the committer

	// hooks are for tests in this package, set before the first write.
	hooks struct {
		inTxn        func() error // after a batch's merges, before its log append; an error fails the batch
		afterCommit  func()       // after the batch's log sync, before any done
		inCheckpoint func() error // last thing in a checkpoint's transaction; an error aborts it
	}
}

// Open opens (creating if needed) the bbolt file at path, moves what the
// write-ahead log beside it holds into bbolt, and starts the committer.
// If another process holds the file, Open fails after opts.OpenTimeout
// with an error wrapping bbolt's ErrTimeout. A log segment that is
// corrupt anywhere but at the tail of the newest one fails Open.
func Open(path string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.OpenTimeout,
		// Writes must be on disk before they are acknowledged: NoSync and
		// NoGrowSync stay false. Not syncing the freelist is safe: Open
		// rebuilds it from the pages. The hashmap freelist allocates in
		// O(1) where the array one degrades with fragmentation.
		NoSync:          false,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("store: open %s: another process holds it (waited %v): %w", path, opts.OpenTimeout, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{
		db:     db,
		path:   path,
		opts:   opts,
		queue:  make(chan *op, opts.MaxQueue),
		exited: make(chan struct{}),
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketMeta); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketData)
		return err
	})
	if err == nil {
		s.wal, err = recoverLog(db, path)
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.active = newMemtable(s.wal.seq)
	go s.run()
	return s, nil
}

// recoverLog puts the records of the log segments that no checkpoint
// covered into bbolt, in log order, in transactions of checkpointChunk
// records, the last of which records them as covered; then it removes
// every segment and starts an empty one. A crash during recovery replays
// the same records again.
func recoverLog(db *bolt.DB, path string) (*wal, error) {
	var applied uint64
	err := db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(metaWALApplied)); len(v) == 8 {
			applied = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	seqs, err := listSegments(path)
	if err != nil {
		return nil, err
	}
	seqs = slices.DeleteFunc(seqs, func(seq uint64) bool { return seq <= applied })
	last := applied
	if len(seqs) > 0 {
		last = seqs[len(seqs)-1]
		var recs [][2][]byte
		put := func(meta bool) error {
			err := db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketData)
				for _, r := range recs {
					if err := b.Put(r[0], r[1]); err != nil {
						return err
					}
				}
				if !meta {
					return nil
				}
				return tx.Bucket(bucketMeta).Put([]byte(metaWALApplied), binary.BigEndian.AppendUint64(nil, last))
			})
			recs = recs[:0]
			return err
		}
		for i, seq := range seqs {
			var perr error
			err := readSegment(path, seq, i == len(seqs)-1, func(bkey, v []byte) {
				recs = append(recs, [2][]byte{bkey, v})
				if len(recs) == checkpointChunk && perr == nil {
					perr = put(false)
				}
			})
			if err == nil {
				err = perr
			}
			if err != nil {
				return nil, fmt.Errorf("replay of log segment %016x: %w", seq, err)
			}
		}
		if err := put(true); err != nil {
			return nil, fmt.Errorf("replay of the log: %w", err)
		}
	}
	if err := removeSegments(path, math.MaxUint64); err != nil {
		return nil, err
	}
	return createSegment(path, last+1)
}

// Close stops taking writes, commits every write it had accepted (calling
// their done callbacks), stops the committer and closes the file. It is
// idempotent: every call waits until the store is closed and returns the
// same error. Methods called after Close return ErrClosed.
func (s *Store) Close() error { return s.CloseWithMeta("", nil) }

// CloseWithMeta is Close that, after the last accepted write committed,
// stores the metadata entry name = v in a final transaction (no entry when
// name is empty). A node marks a clean shutdown this way: the mark is on
// disk only if everything acknowledged before it is too.
func (s *Store) CloseWithMeta(name string, v []byte) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed.Store(true)
		close(s.queue)
		s.mu.Unlock()
		<-s.exited // the committer checkpointed the log into bbolt, or set closeErr
		if name != "" && s.closeErr == nil {
			err := s.db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put([]byte(name), v)
			})
			if err != nil {
				s.closeErr = fmt.Errorf("store: close: put meta %s: %w", name, err)
			}
		}
		if err := s.db.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return s.closeErr
}

// Apply queues a write of (p, key) and returns at once: it never blocks.
//
// If Apply returns nil, done is called exactly once, with the object now
// stored (nil if the key is still absent) or with the write's error, and
// only after the log record holding the write was synced to disk. If Apply returns an error, nothing was queued and done
// is never called: protocol.ErrOverloaded when MaxQueue writes are
// pending, ErrClosed after Close, protocol.ErrInvalidKey for a bad key or
// partition. done may be nil.
//
// done runs on the committer goroutine: it must not block or call Update,
// or every write of the node stalls. Handing the result to a buffered
// channel or starting a send is fine; calling Apply is fine. The object
// passed to done is the store's own: read it, never modify it.
func (s *Store) Apply(p int, key string, f MergeFunc, done func(*protocol.Object, error)) error {
	bk, err := dataKey(p, key)
	if err != nil {
		return err
	}
	if f == nil {
		return protocol.Errorf(protocol.ErrInternal, "store: nil merge func for %d/%q", p, key)
	}
	o := &op{p: p, key: key, bkey: bk, f: f, done: done}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if s.pending.Add(1) > int64(s.opts.MaxQueue) {
		s.pending.Add(-1)
		return protocol.Errorf(protocol.ErrOverloaded, "store: %d writes pending", s.opts.MaxQueue)
	}
	select {
	case s.queue <- o:
		return nil
	default:
		// Unreachable: pending bounds the writes in the channel by its
		// capacity. Refuse rather than block if that ever changes.
		s.pending.Add(-1)
		return protocol.Errorf(protocol.ErrOverloaded, "store: write queue full")
	}
}

// Update is Apply that waits: it returns the stored object once the write
// is durable, or ctx's error if ctx ends first. In that case the write may
// still commit later. It must not be called from a MergeFunc or a done
// callback.
func (s *Store) Update(ctx context.Context, p int, key string, f MergeFunc) (*protocol.Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	type result struct {
		o   *protocol.Object
		err error
	}
	ch := make(chan result, 1)
	err := s.Apply(p, key, f, func(o *protocol.Object, err error) { ch <- result{o, err} })
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.o, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("store: update %d/%q (may still commit): %w", p, key, ctx.Err())
	}
}

// Stats returns a snapshot of the store's counters. It does not block on
// the committer beyond a short lock.
func (s *Store) Stats() Stats {
	s.statsMu.Lock()
	st := s.stats
	s.statsMu.Unlock()
	st.Pending = int(s.pending.Load())
	// Counting walks the whole data bucket: done here, for the caller that
	// wants it, rather than at every Open, where it delayed a restart by a
	// read of the whole file. Keys only in memory count too.
	if !s.closed.Load() {
		s.memMu.RLock()
		var mem [][]byte
		for _, t := range []*memtable{s.active, s.frozen} {
			if t == nil {
				continue
			}
			st.Memtable += t.bytes
			for _, e := range t.m {
				mem = append(mem, e.bkey)
			}
		}
		s.memMu.RUnlock()
		_ = s.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketData)
			st.Keys = b.Stats().KeyN
			seen := make(map[string]bool, len(mem))
			for _, k := range mem {
				if !seen[string(k)] && b.Get(k) == nil {
					st.Keys++
				}
				seen[string(k)] = true
			}
			return nil
		})
	}
	if st.Batches > 0 {
		st.MeanBatch = float64(st.Ops) / float64(st.Batches)
	}
	return st
}
