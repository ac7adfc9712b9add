package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/node/merkle"
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
	// MaxBatch bounds the writes applied in one batch, and so the work one
	// fsync covers. Default 1024 writes.
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
	// FS is the file system the store's files live on. Default disk.OS.
	FS disk.FS
	// TreeShape is the shape of the anti-entropy hash trees (tree.go).
	// Every replica of a store must use the same. Default
	// merkle.DefaultShape().
	TreeShape merkle.Shape
	// OnFail, if set, is called once when the store stops taking writes
	// after an I/O error (Broken returns the error from then on), from the
	// goroutine that hit it, before any write of the failed batch is
	// reported. It must not block or call the Store.
	OnFail func(error)
	// OnSync, if set, is called after each sync of the write-ahead log
	// (one per batch of writes) with how long the fdatasync took: the
	// node's fsync latency metric. It runs on the committer goroutine,
	// between a batch's sync and its acknowledgements, so it must be
	// quick (an atomic add, a histogram observation) and must not call
	// the Store.
	OnSync func(time.Duration)
	// OnOverload, if set, is called each time Apply refuses a write as
	// overloaded (MaxQueue writes pending): the node's refusals metric.
	// It runs on the caller's goroutine; it must be quick and must not
	// call the Store.
	OnOverload func()

	planted // test-only options of a build with the kvmesh_planted tag
}

// DefaultOptions returns the options Open uses for zero fields.
func DefaultOptions() Options {
	return Options{MaxQueue: 8192, MaxBatch: 1024, OpenTimeout: time.Second, MemtableBytes: 8 << 20, FS: disk.OS{}}
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
	if o.FS == nil {
		o.FS = d.FS
	}
	if o.TreeShape == (merkle.Shape{}) {
		o.TreeShape = merkle.DefaultShape()
	}
	if err := o.TreeShape.Validate(); err != nil {
		return o, err
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
	TreeRebuilds uint64  // anti-entropy trees rebuilt because an exchange found them out of step
	Purged       uint64  // records PurgeKeys deleted (tombstone compaction)
	MeanBatch    float64 // Ops / Batches: writes per fsync
}

// Store is one node's bbolt file and its write-ahead log. Open starts its
// committer goroutine and Close stops it. All methods are safe for
// concurrent use.
type Store struct {
	db      *bolt.DB
	fs      disk.FS
	path    string
	opts    Options
	id      string // metaStoreID
	created bool   // Open created the store

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

	// DropPartition's (drop.go): cuts carries a drop's request to the
	// committer; dropping, set by the committer at the cut and cleared by
	// the drop, is the drop in progress; dropSem lets one run at a time;
	// dropChunk is dropChunk but for tests.
	cuts      chan cutRequest
	dropping  atomic.Pointer[drop]
	dropSem   chan struct{}
	dropChunk int

	trees *trees // the anti-entropy trees (tree.go)

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
		inTxn        func() error     // after a batch's merges, before its log append; an error fails the batch
		beforeSync   func(first bool) // after a batch's log write and logged callbacks, before its sync; first: its frame is the segment's first
		afterCommit  func()           // after the batch's log sync, before any done
		inCheckpoint func() error     // last thing in a checkpoint's transaction; an error aborts it
		dropChunk    func(chunks int) // after a drop's cut (0) and after each of its committed chunks
	}
}

// Store metadata entries of the store itself. They are part of the
// on-disk format.
const (
	metaFormat  = "format"   // one byte: formatVersion
	metaStoreID = "store-id" // the random id this store was created with
	metaClean   = "clean"    // 1: the last run closed cleanly
)

// formatVersion is the on-disk format this code reads and writes: the
// log of wal.go and stored records with a checksum. Format 1 (kvmesh
// before it) had neither.
const formatVersion = 2

// Open opens (creating if needed) the store whose bbolt file is at path,
// moves what the write-ahead log beside it holds into bbolt, and starts
// the committer. If another process holds the file, Open fails after
// opts.OpenTimeout with an error wrapping bbolt's ErrTimeout. A file that
// is damaged where a crash cannot have damaged it (see wal.go), a bbolt
// file that fails its consistency check after an unclean stop, or a store
// of another format fails Open with a *CorruptError or an error naming
// the format; nothing is changed then.
func Open(path string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	fsys := opts.FS
	if _, err := fsys.Stat(path); err == nil {
		// bbolt asserts (panics) on a damaged page, and when it rebuilds
		// the freelist at open it does so on a goroutine of its own, where
		// no recover reaches: look at the file first, read-only.
		if err := scrubIfUnclean(fsys, path, opts.OpenTimeout); err != nil {
			return nil, err
		}
	}
	var db *bolt.DB
	err = fsys.Atomic(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, boltOptions(fsys, opts.OpenTimeout, false))
		return err
	})
	if err != nil {
		return nil, openError(path, opts.OpenTimeout, err)
	}
	s := &Store{
		db:     db,
		fs:     fsys,
		path:   path,
		opts:   opts,
		queue:  make(chan *op, opts.MaxQueue),
		exited: make(chan struct{}),

		cuts:      make(chan cutRequest),
		trees:     newTrees(opts.TreeShape),
		dropSem:   make(chan struct{}, 1),
		dropChunk: dropChunk,
	}
	// bbolt does not sync the directory when it creates its file; the
	// log segment Open creates next does (createSegment), and nothing is
	// acknowledged before.
	clean, err := s.openMeta()
	if err == nil && !clean && !s.created {
		err = s.check()
	}
	if err == nil {
		s.wal, err = s.recoverLog()
	}
	if err != nil {
		_ = db.Close()
		var ce *CorruptError
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.active = newMemtable(s.wal.seq)
	go s.run()
	return s, nil
}

// openMeta creates the buckets and the store's identity if the store is
// new, checks its format otherwise, and marks it running. It reports
// whether the last run closed cleanly.
func (s *Store) openMeta() (clean bool, err error) {
	segs, err := listSegments(s.fs, s.path)
	if err != nil {
		return false, err
	}
	err = s.update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		data, err := tx.CreateBucketIfNotExists(bucketData)
		if err != nil {
			return err
		}
		switch f := meta.Get([]byte(metaFormat)); {
		case f == nil:
			if k, _ := data.Cursor().First(); k != nil || len(segs) > 0 {
				return fmt.Errorf("store: %s was written by an older kvmesh (format 1) that this one (format %d) cannot read: move it aside", s.path, formatVersion)
			}
			if k, _ := meta.Cursor().First(); k != nil {
				return fmt.Errorf("store: %s has metadata but no format: not a kvmesh store", s.path)
			}
			var id [8]byte
			if _, err := rand.Read(id[:]); err != nil {
				return err
			}
			s.created = true
			if err := meta.Put([]byte(metaFormat), []byte{formatVersion}); err != nil {
				return err
			}
			if err := meta.Put([]byte(metaStoreID), []byte(hex.EncodeToString(id[:]))); err != nil {
				return err
			}
		case len(f) != 1 || f[0] != formatVersion:
			return fmt.Errorf("store: %s has format %v; this kvmesh reads format %d", s.path, f, formatVersion)
		}
		id := meta.Get([]byte(metaStoreID))
		if len(id) != 16 {
			return &CorruptError{File: s.path, Offset: -1, Reason: "bad store id"}
		}
		s.id = string(id)
		c := meta.Get([]byte(metaClean))
		clean = len(c) == 1 && c[0] == 1
		return meta.Put([]byte(metaClean), []byte{0})
	})
	return clean, err
}

// check runs bbolt's consistency check of every page (double frees,
// unreachable or doubly used pages), after a run that did not close
// cleanly; scrubIfUnclean has read every record already.
func (s *Store) check() error {
	return s.view(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return &CorruptError{File: s.path, Offset: -1, Reason: "bbolt consistency check: " + err.Error()}
		}
		return nil
	})
}

func boltOptions(fsys disk.FS, timeout time.Duration, readOnly bool) *bolt.Options {
	return &bolt.Options{
		Timeout:  timeout,
		ReadOnly: readOnly,
		// Writes must be on disk before they are acknowledged: NoSync and
		// NoGrowSync stay false. Not syncing the freelist is safe: Open
		// rebuilds it from the pages. The hashmap freelist allocates in
		// O(1) where the array one degrades with fragmentation.
		NoSync:          false,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
		OpenFile:        fsys.OpenRaw,
	}
}

func openError(path string, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("store: open %s: another process holds it (waited %v): %w", path, timeout, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return &CorruptError{File: path, Offset: -1, Reason: err.Error()}
	}
	return fmt.Errorf("store: open %s: %w", path, err)
}

// scrubIfUnclean opens the bbolt file read-only and, unless its last run
// closed cleanly, reads every record and checks its checksum: a damaged
// page or record is a *CorruptError instead of a panic. Reading is done
// on a goroutine that recovers bbolt's assertions. It reads the whole
// file, so it runs only after a crash.
func scrubIfUnclean(fsys disk.FS, path string, timeout time.Duration) error {
	db, err := bolt.Open(path, 0o600, boltOptions(fsys, timeout, true))
	if err != nil {
		return openError(path, timeout, err)
	}
	defer db.Close()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- &CorruptError{File: path, Offset: -1, Reason: fmt.Sprintf("bbolt: %v", r)}
			}
		}()
		done <- db.View(func(tx *bolt.Tx) error {
			meta, data := tx.Bucket(bucketMeta), tx.Bucket(bucketData)
			if meta == nil || data == nil {
				return nil // new, or not a store: openMeta says which
			}
			if c := meta.Get([]byte(metaClean)); len(c) == 1 && c[0] == 1 {
				return nil
			}
			c := data.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if _, ok := openRecord(k, v); !ok || len(k) < 3 {
					return &CorruptError{File: path, Offset: -1, Reason: fmt.Sprintf("record of key %q fails its checksum", k)}
				}
			}
			return nil
		})
	}()
	return <-done
}

// update runs fn in a bbolt write transaction through the file-system
// seam, so that a simulated crash happens between transactions.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	return s.fs.Atomic(func() error { return recovered(s.path, func() error { return s.db.Update(fn) }) })
}

// recovered runs fn, turning a panic (bbolt asserts on a damaged page)
// into a *CorruptError: the disk, not the node, is broken.
func recovered(path string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &CorruptError{File: path, Offset: -1, Reason: fmt.Sprintf("bbolt: %v", r)}
		}
	}()
	return fn()
}

// recoverLog puts the records of the log segments that no checkpoint
// covered into bbolt, in log order, in transactions of checkpointChunk
// records, the last of which records them as covered; then it removes
// every segment and starts an empty one. A crash during recovery replays
// the same records again.
func (s *Store) recoverLog() (*wal, error) {
	var applied uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(metaWALApplied)); len(v) == 8 {
			applied = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	seqs, err := listSegments(s.fs, s.path)
	if err != nil {
		return nil, err
	}
	seqs = slices.DeleteFunc(seqs, func(seq uint64) bool { return seq <= applied })
	last := applied
	if len(seqs) > 0 {
		last = seqs[len(seqs)-1]
		var recs [][2][]byte
		put := func(meta bool) error {
			err := s.update(func(tx *bolt.Tx) error {
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
			err := readSegment(s.fs, s.path, seq, i == len(seqs)-1, func(bkey, v []byte) error {
				if _, ok := openRecord(bkey, v); !ok {
					return &CorruptError{File: segmentPath(s.path, seq), Offset: -1, Reason: fmt.Sprintf("record of %x fails its checksum", bkey)}
				}
				recs = append(recs, [2][]byte{bkey, v})
				if len(recs) == checkpointChunk {
					return put(false)
				}
				return nil
			})
			if err != nil {
				var ce *CorruptError
				if errors.As(err, &ce) {
					return nil, err
				}
				return nil, fmt.Errorf("replay of log segment %016x: %w", seq, err)
			}
		}
		if err := put(true); err != nil {
			return nil, fmt.Errorf("replay of the log: %w", err)
		}
	}
	if err := removeSegments(s.fs, s.path, math.MaxUint64); err != nil {
		return nil, err
	}
	return createSegment(s.fs, s.path, last+1)
}

// ID returns the random id the store was created with: a new data dir, a
// wiped one or a replaced disk gets a new one.
func (s *Store) ID() string { return s.id }

// Created reports whether Open created the store (an empty data dir).
func (s *Store) Created() bool { return s.created }

// Broken returns the error that stopped the store taking writes, or nil.
func (s *Store) Broken() error { return s.broken() }

// Close stops taking writes, commits every write it had accepted (calling
// their done callbacks), stops the committer, marks the store clean if
// all of it reached disk, and closes the file. It is idempotent: every
// call waits until the store is closed and returns the same error.
// Methods called after Close return ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed.Store(true)
		close(s.queue)
		s.mu.Unlock()
		<-s.exited // the committer checkpointed the log into bbolt, or set closeErr
		if s.closeErr == nil {
			err := s.update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put([]byte(metaClean), []byte{1})
			})
			if err != nil {
				s.closeErr = fmt.Errorf("store: close: mark clean: %w", err)
			}
		}
		if err := s.db.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return s.closeErr
}

// Quarantine moves the store at path (its bbolt file and log segments)
// into a new directory beside it, "quarantine-<UTC time>", and syncs
// both: nothing is deleted, and the next Open of path creates a new, empty
// store with a new id. It refuses a store that is open (it takes bbolt's
// file lock while it moves the files). It returns the new directory.
func Quarantine(fsys disk.FS, path string, now time.Time) (string, error) {
	if fsys == nil {
		fsys = disk.OS{}
	}
	f, err := fsys.OpenRaw(path, os.O_RDONLY, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", err
	default:
		defer f.Close()
		if err := disk.TryLock(f); err != nil {
			if errors.Is(err, disk.ErrLocked) {
				return "", fmt.Errorf("quarantine %s: the store is open: stop its node first", path)
			}
			return "", fmt.Errorf("quarantine %s: %w", path, err)
		}
	}
	dir := filepath.Join(filepath.Dir(path), "quarantine-"+now.UTC().Format("20060102T150405.000000000Z"))
	if err := fsys.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	names := []string{path}
	seqs, err := listSegments(fsys, path)
	if err != nil {
		return "", err
	}
	for _, seq := range seqs {
		names = append(names, segmentPath(path, seq))
	}
	for _, name := range names {
		err := fsys.Rename(name, filepath.Join(dir, filepath.Base(name)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	if err := fsys.SyncDir(dir); err != nil {
		return "", err
	}
	return dir, fsys.SyncDir(filepath.Dir(path))
}

// Apply queues a write of (p, key) and returns at once: it never blocks.
//
// If Apply returns nil, done is called exactly once, with the object now
// stored (nil if the key is still absent) or with the write's error, and
// only after the log record holding the write was synced to disk. If
// Apply returns an error, nothing was queued and done is never called:
// protocol.ErrOverloaded when MaxQueue writes are pending, ErrClosed after
// Close, protocol.ErrInvalidKey for a bad key or partition. done may be
// nil.
//
// done runs on the committer goroutine: it must not block or call Update,
// or every write of the node stalls. Handing the result to a buffered
// channel or starting a send is fine; calling Apply is fine. The object
// passed to done is the store's own: read it, never modify it.
func (s *Store) Apply(p int, key string, f MergeFunc, done func(*protocol.Object, error)) error {
	return s.ApplyLogged(p, key, f, nil, done)
}

// ApplyLogged is Apply that also calls logged, if the merge succeeded,
// once the write's record is in the log file but before the log is
// synced: from then on a process crash cannot lose the write (the page
// cache holds it), while a power loss still may. A coordinator sends a
// new version to the other replicas from logged, so that what leaves the
// node is always in its own log first (see node/identity.go). logged runs
// on the committer goroutine, like done, and comes before it.
func (s *Store) ApplyLogged(p int, key string, f MergeFunc, logged func(), done func(*protocol.Object, error)) error {
	bk, err := dataKey(p, key)
	if err != nil {
		return err
	}
	if f == nil {
		return protocol.Errorf(protocol.ErrInternal, "store: nil merge func for %d/%q", p, key)
	}
	o := &op{p: p, key: key, bkey: bk, f: f, logged: logged, done: done}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if s.pending.Add(1) > int64(s.opts.MaxQueue) {
		s.pending.Add(-1)
		return s.overloaded(protocol.Errorf(protocol.ErrOverloaded, "store: %d writes pending", s.opts.MaxQueue))
	}
	select {
	case s.queue <- o:
		return nil
	default:
		// Unreachable: pending bounds the writes in the channel by its
		// capacity. Refuse rather than block if that ever changes.
		s.pending.Add(-1)
		return s.overloaded(protocol.Errorf(protocol.ErrOverloaded, "store: write queue full"))
	}
}

// overloaded reports a refused write to OnOverload and returns err.
func (s *Store) overloaded(err error) error {
	if s.opts.OnOverload != nil {
		s.opts.OnOverload()
	}
	return err
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

// FileSizes returns the sizes in bytes of the store's bbolt file and of
// its write-ahead log segments together, as the file system reports
// them now (files that vanish meanwhile, a segment a checkpoint removes,
// count 0). For metrics: it lists a directory and stats each file.
func (s *Store) FileSizes() (bbolt, wal int64) {
	if fi, err := s.fs.Stat(s.path); err == nil {
		bbolt = fi.Size()
	}
	seqs, _ := listSegments(s.fs, s.path)
	for _, seq := range seqs {
		if fi, err := s.fs.Stat(segmentPath(s.path, seq)); err == nil {
			wal += fi.Size()
		}
	}
	return bbolt, wal
}
