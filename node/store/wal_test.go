package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/protocol"
)

// smallMemtable makes a checkpoint every few writes.
const smallMemtable = 2 << 10

// TestCheckpoints writes through many checkpoints while reading: every
// read sees the newest value whether it is in the active memtable, the
// frozen one or bbolt, and the log is trimmed behind the checkpoints.
func TestCheckpoints(t *testing.T) {
	s, path := openTest(t, Options{MemtableBytes: smallMemtable})
	const keys, rounds = 40, 6
	for r := range rounds {
		for k := range keys {
			key := fmt.Sprintf("k%02d", k)
			v := fmt.Sprintf("%s-r%d", key, r)
			if _, err := s.Update(context.Background(), k%3, key, put(v)); err != nil {
				t.Fatal(err)
			}
			if got := value(mustGet(t, s, k%3, key)); got != v {
				t.Fatalf("%s = %q right after writing %q", key, got, v)
			}
		}
	}
	st := s.Stats()
	if st.Checkpoints < 5 || st.Keys != keys {
		t.Fatalf("Stats = %+v, want several checkpoints and %d keys", st, keys)
	}
	for p := range 3 {
		var got []string
		err := s.Scan(p, func(key string, o *protocol.Object) bool {
			if value(o) != fmt.Sprintf("%s-r%d", key, rounds-1) {
				t.Errorf("Scan: %s = %q", key, value(o))
			}
			got = append(got, key)
			return true
		})
		if err != nil || len(got) != keys/3+boolInt(p < keys%3) || !slices.IsSorted(got) {
			t.Fatalf("Scan(%d) = %q, %v", p, got, err)
		}
	}
	// Only the segments no checkpoint covered yet remain: at most the
	// active one and one being checkpointed.
	if seqs, err := listSegments(disk.OS{}, path); err != nil || len(seqs) > 2 {
		t.Fatalf("segments left = %v, %v", seqs, err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestScanMergesMemoryAndBbolt checks Scan's merge of records only in
// bbolt, only in memory, and in both (memory wins), across chunks.
func TestScanMergesMemoryAndBbolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for i := range scanChunk + 50 {
		all = append(all, fmt.Sprintf("b%04d", 2*i))
	}
	fill(t, s, 7, all)
	if err := s.Close(); err != nil { // everything goes to bbolt
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Now in memory only: new keys between, before and after the stored
	// ones, and overwrites of stored ones.
	var mem []string
	for i := range scanChunk + 50 {
		if i%3 == 0 {
			mem = append(mem, fmt.Sprintf("b%04d", 2*i+1))
		}
	}
	mem = append(mem, "a", "c")
	fill(t, s, 7, mem)
	over := []string{all[0], all[scanChunk-1], all[scanChunk], all[len(all)-1]}
	for _, k := range over {
		if _, err := s.Update(context.Background(), 7, k, put(k+"!")); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Checkpoints != 0 || st.Memtable == 0 {
		t.Fatalf("Stats = %+v: the test wants the new records in memory", st)
	}
	want := slices.Sorted(slices.Values(append(slices.Clone(all), mem...)))
	var got []string
	err = s.Scan(7, func(key string, o *protocol.Object) bool {
		w := key
		if slices.Contains(over, key) {
			w += "!"
		}
		if value(o) != w {
			t.Errorf("Scan: %s = %q, want %q", key, value(o), w)
		}
		got = append(got, key)
		return true
	})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Scan gave %d keys (%v), want %d in order", len(got), err, len(want))
	}
}

// waitCheckpointIdle waits until no checkpoint is running, so that a file
// copy is not taken halfway through bbolt's commit (which a real crash
// survives, but a copy of a file being written does not show).
func waitCheckpointIdle(t *testing.T, s *Store) {
	t.Helper()
	// A write queued now commits after the committer took note of any
	// checkpoint that ended; the frozen memtable then tells.
	for i := 0; ; i++ {
		if i == 10000 {
			t.Fatal("a checkpoint never ended")
		}
		if _, err := s.Update(context.Background(), 0, "idle", put("x")); err != nil {
			t.Fatal(err)
		}
		s.memMu.RLock()
		idle := s.frozen == nil
		s.memMu.RUnlock()
		if idle {
			return
		}
	}
}

// TestStaleSegmentSkipped puts back a segment a checkpoint already
// covered (a removal a crash undid) holding an older value: Open must not
// replay it over the newer one.
func TestStaleSegmentSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(context.Background(), 1, "k", put("old")); err != nil {
		t.Fatal(err)
	}
	seqs, _ := listSegments(disk.OS{}, path)
	stale, err := os.ReadFile(segmentPath(path, seqs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(context.Background(), 1, "k", put("new")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(segmentPath(path, seqs[0]), stale, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := value(mustGet(t, s, 1, "k")); got != "new" {
		t.Fatalf("k = %q after a stale segment came back, want new", got)
	}
}

// TestLogWriteFailure makes the log unwritable: the batch fails, every
// later write fails too (a record after a torn one would be lost), reads
// go on, and what was acknowledged before is still there after a restart.
func TestLogWriteFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(context.Background(), 1, "a", put("a")); err != nil {
		t.Fatal(err)
	}
	release := holdCommitter(t, s)
	_ = s.wal.f.Close() // the committer is parked in a merge: no write in flight
	done, results := collect(1)
	if err := s.Apply(1, "b", put("b"), done); err != nil {
		t.Fatal(err)
	}
	release()
	if r := <-results; !errors.Is(r.err, protocol.ErrInternal) {
		t.Fatalf("write on a failed log = %v, want ErrInternal", r.err)
	}
	if _, err := s.Update(context.Background(), 1, "c", put("c")); !errors.Is(err, protocol.ErrInternal) || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("write after the log failed = %v, want ErrInternal asking for a restart", err)
	}
	if got := value(mustGet(t, s, 1, "a")); got != "a" {
		t.Fatalf("a = %q", got)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close of a failed store = nil")
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := value(mustGet(t, s, 1, "a")); got != "a" {
		t.Fatalf("after restart a = %q", got)
	}
	for _, k := range []string{"b", "c"} {
		if o := mustGet(t, s, 1, k); o != nil {
			t.Fatalf("failed write %s is stored", k)
		}
	}
}

// TestCheckpointFailure makes a checkpoint's bbolt transaction fail: the
// records stay readable from memory, writes stop, and a restart replays
// the log.
func TestCheckpointFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, Options{MemtableBytes: smallMemtable})
	if err != nil {
		t.Fatal(err)
	}
	errDisk := errors.New("disk full")
	var fail atomic.Bool
	fail.Store(true)
	s.hooks.inCheckpoint = func() error {
		if fail.Load() {
			return errDisk
		}
		return nil
	}
	var acked []string
	for i := 0; ; i++ {
		key := fmt.Sprintf("k%03d", i)
		_, err := s.Update(context.Background(), 1, key, put(key))
		if err != nil {
			if !errors.Is(err, protocol.ErrInternal) || !errors.Is(err, errDisk) {
				t.Fatalf("write after a failed checkpoint = %v, want ErrInternal wrapping the cause", err)
			}
			break
		}
		acked = append(acked, key)
		if i > 1000 {
			t.Fatal("writes go on after a failed checkpoint")
		}
	}
	for _, k := range acked {
		if got := value(mustGet(t, s, 1, k)); got != k {
			t.Fatalf("%s = %q while the checkpoint failed", k, got)
		}
	}
	if err := s.Close(); !errors.Is(err, errDisk) {
		t.Fatalf("Close = %v, want the checkpoint error", err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range acked {
		if got := value(mustGet(t, s, 1, k)); got != k {
			t.Fatalf("after restart %s = %q", k, got)
		}
	}
}

// TestLogBoundedWhenKeysFitInMemory rewrites a few keys over and over:
// the memtable never fills, but the log is checkpointed by its own size,
// so what Open would replay stays bounded.
func TestLogBoundedWhenKeysFitInMemory(t *testing.T) {
	s, path := openTest(t, Options{MemtableBytes: smallMemtable})
	for i := range 400 {
		key := fmt.Sprintf("k%d", i%3)
		if _, err := s.Update(context.Background(), 1, key, put(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Checkpoints == 0 || st.Memtable >= smallMemtable {
		t.Fatalf("Stats = %+v, want checkpoints made by the log's size", st)
	}
	waitCheckpointIdle(t, s)
	seqs, err := listSegments(disk.OS{}, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range seqs {
		fi, err := os.Stat(segmentPath(path, seq))
		if err != nil {
			t.Fatal(err)
		}
		// One batch may overshoot the budget.
		if limit := int64(2*logFactor*smallMemtable + 4096); fi.Size() > limit {
			t.Fatalf("segment %d is %d bytes, budget %d", seq, fi.Size(), limit)
		}
	}
}

// TestCheckpointInChunks checkpoints more records than one transaction
// takes, with the last transaction failing: the earlier ones committed
// without the segment number, so a restart replays the whole segment and
// every record is there with its last value.
func TestCheckpointInChunks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, Options{MemtableBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var chunks atomic.Int64
	s.hooks.inCheckpoint = func() error { chunks.Add(1); return errors.New("disk full") }
	n := 2*checkpointChunk + 100
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%05d", i)
	}
	fill(t, s, 3, keys)
	if _, err := s.Update(context.Background(), 3, keys[0], put("last")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil || chunks.Load() != 1 {
		t.Fatalf("Close = %v after %d last-chunk hooks, want the injected failure once", err, chunks.Load())
	}
	// The first chunks are in bbolt, the segment number is not.
	db := reopenRaw(t, path)
	var inBolt int
	var applied []byte
	_ = db.View(func(tx *bolt.Tx) error {
		inBolt = tx.Bucket(bucketData).Stats().KeyN
		applied = tx.Bucket(bucketMeta).Get([]byte(metaWALApplied))
		return nil
	})
	db.Close()
	if inBolt != 2*checkpointChunk || applied != nil {
		t.Fatalf("after the failed checkpoint bbolt holds %d records and wal-applied %x, want %d and none", inBolt, applied, 2*checkpointChunk)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := value(mustGet(t, s, 3, keys[0])); got != "last" {
		t.Fatalf("%s = %q after replay, want last", keys[0], got)
	}
	for _, k := range keys[1:] {
		if got := value(mustGet(t, s, 3, k)); got != k {
			t.Fatalf("%s = %q after replay", k, got)
		}
	}
	if st := s.Stats(); st.Keys != n {
		t.Fatalf("Keys = %d, want %d", st.Keys, n)
	}
}

// reopenRaw opens a store's bbolt file directly.
func reopenRaw(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestCachedIsTheMemtablesOnly: Cached finds a fresh write in memory, and
// says "not here" for a record only bbolt holds (after checkpoints moved
// it out of the memtables), which Get still finds.
func TestCachedIsTheMemtablesOnly(t *testing.T) {
	s, _ := openTest(t, Options{MemtableBytes: smallMemtable})
	if _, err := s.Update(context.Background(), 1, "old", put("v")); err != nil {
		t.Fatal(err)
	}
	if obj, ok, err := s.Cached(1, "old"); !ok || err != nil || value(obj) != "v" {
		t.Fatalf("Cached of a fresh write = %v, %v, %v", obj, ok, err)
	}
	for i := 0; s.Stats().Checkpoints < 3; i++ { // push "old" out of memory
		if _, err := s.Update(context.Background(), 2, fmt.Sprintf("k%d", i), put(strings.Repeat("x", 100))); err != nil {
			t.Fatal(err)
		}
	}
	waitCheckpointIdle(t, s)
	if _, ok, err := s.Cached(1, "old"); ok || err != nil {
		t.Fatalf("Cached found a checkpointed record in memory: %v %v", ok, err)
	}
	if got := value(mustGet(t, s, 1, "old")); got != "v" {
		t.Fatalf("Get = %q", got)
	}
}
