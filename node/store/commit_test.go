package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

func TestLoneWriterCommitsAlone(t *testing.T) {
	s, _ := openTest(t, Options{})
	const n = 20
	for i := range n {
		if _, err := s.Update(context.Background(), 0, "k"+strconv.Itoa(i), put("v")); err != nil {
			t.Fatal(err)
		}
	}
	// Each Update returned, so nothing waited for company: one batch each.
	if st := s.Stats(); st.Batches != n || st.Ops != n || st.MeanBatch != 1 || st.Pending != 0 {
		t.Fatalf("Stats = %+v, want %d batches of 1", st, n)
	}
}

// TestSameKeyConcurrentIncrements queues 100 increments of one counter
// from 100 goroutines while the committer is held, so that they all land
// in one batch; each must see the previous one's result.
func TestSameKeyConcurrentIncrements(t *testing.T) {
	s, _ := openTest(t, Options{})
	release := holdCommitter(t, s)

	const n = 100
	done, results := collect(n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := s.Apply(5, "counter", incr, done); err != nil {
				t.Errorf("Apply: %v", err)
			}
		})
	}
	wg.Wait() // all queued
	release()

	seen := make(map[string]bool)
	for range n {
		r := <-results
		if r.err != nil {
			t.Fatalf("increment failed: %v", r.err)
		}
		seen[value(r.o)] = true
	}
	for i := 1; i <= n; i++ {
		if !seen[strconv.Itoa(i)] {
			t.Fatalf("no increment reported %d; got %v", i, seen)
		}
	}
	if got := value(mustGet(t, s, 5, "counter")); got != strconv.Itoa(n) {
		t.Fatalf("counter = %s, want %d", got, n)
	}
	// The gate's batch, then one batch of 100 increments.
	if st := s.Stats(); st.Batches != 2 || st.Ops != n+1 || st.Keys != 1 {
		t.Fatalf("Stats = %+v, want 2 batches, %d ops, 1 key", st, n+1)
	}
}

// TestSameKeyQueueOrder checks that writes of one key in one batch apply
// in the order they were queued.
func TestSameKeyQueueOrder(t *testing.T) {
	s, _ := openTest(t, Options{})
	release := holdCommitter(t, s)
	const n = 50
	done, results := collect(n)
	for i := range n {
		appendI := func(old *protocol.Object) (*protocol.Object, error) {
			prev, c := "", uint64(0)
			if old != nil {
				prev, c = value(old), old.Clock[0].Counter
			}
			return object("n1", c+1, prev+strconv.Itoa(i)+","), nil
		}
		if err := s.Apply(0, "log", appendI, done); err != nil {
			t.Fatal(err)
		}
	}
	release()
	want := ""
	for i := range n {
		want += strconv.Itoa(i) + ","
		r := <-results // callbacks run in queue order too
		if r.err != nil || value(r.o) != want {
			t.Fatalf("write %d reported (%q, %v), want %q", i, value(r.o), r.err, want)
		}
	}
	if got := value(mustGet(t, s, 0, "log")); got != want {
		t.Fatalf("log = %q, want %q", got, want)
	}
}

func TestMaxBatch(t *testing.T) {
	s, _ := openTest(t, Options{MaxBatch: 10})
	release := holdCommitter(t, s)
	const n = 35
	done, results := collect(n)
	for i := range n {
		if err := s.Apply(1, "k"+strconv.Itoa(i), put("v"), done); err != nil {
			t.Fatal(err)
		}
	}
	release()
	for range n {
		if r := <-results; r.err != nil {
			t.Fatal(r.err)
		}
	}
	// The gate alone, then 10, 10, 10, 5.
	if st := s.Stats(); st.Batches != 5 || st.Ops != n+1 || st.Keys != n {
		t.Fatalf("Stats = %+v, want 5 batches, %d ops, %d keys", st, n+1, n)
	}
}

// TestMergeFailuresIsolated puts a failing, a panicking and an invalid
// merge in one batch with good writes, some to the same key.
func TestMergeFailuresIsolated(t *testing.T) {
	s, _ := openTest(t, Options{})
	errBoom := errors.New("boom")
	release := holdCommitter(t, s)

	type write struct {
		key     string
		f       MergeFunc
		wantErr error  // nil: must succeed
		want    string // value reported on success
	}
	writes := []write{
		{"a", put("a1"), nil, "a1"},
		{"b", func(*protocol.Object) (*protocol.Object, error) { return nil, errBoom }, errBoom, ""},
		{"a", func(old *protocol.Object) (*protocol.Object, error) {
			return nil, fmt.Errorf("conflict: %w", protocol.ErrConflict)
		}, protocol.ErrConflict, ""},
		{"c", func(*protocol.Object) (*protocol.Object, error) { panic("merge bug") }, protocol.ErrInternal, ""},
		{"d", func(*protocol.Object) (*protocol.Object, error) {
			return object("n1", 0, "counter 0 is invalid"), nil
		}, protocol.ErrInternal, ""},
		{"a", func(old *protocol.Object) (*protocol.Object, error) {
			if value(old) != "a1" {
				return nil, fmt.Errorf("old = %q, want a1", value(old))
			}
			return put("a2")(old)
		}, nil, "a2"},
		{"c", put("c1"), nil, "c1"},
	}
	done, results := collect(len(writes))
	for _, w := range writes {
		if err := s.Apply(2, w.key, w.f, done); err != nil {
			t.Fatal(err)
		}
	}
	release()

	for i, w := range writes {
		r := <-results
		switch {
		case w.wantErr == nil && (r.err != nil || value(r.o) != w.want):
			t.Errorf("write %d (%s) = (%q, %v), want %q", i, w.key, value(r.o), r.err, w.want)
		case w.wantErr != nil && (!errors.Is(r.err, w.wantErr) || r.o != nil):
			t.Errorf("write %d (%s) = (%v, %v), want error %v", i, w.key, r.o, r.err, w.wantErr)
		}
	}
	for key, want := range map[string]string{"a": "a2", "b": "", "c": "c1", "d": ""} {
		if got := value(mustGet(t, s, 2, key)); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	// One batch for the gate, one for all the others; the node lives on.
	if st := s.Stats(); st.Batches != 2 || st.Failed != 4 || st.Keys != 2 {
		t.Fatalf("Stats = %+v, want 2 batches, 4 failed, 2 keys", st)
	}
	if _, err := s.Update(context.Background(), 2, "e", put("e1")); err != nil {
		t.Fatalf("write after a panicking merge: %v", err)
	}
}

func TestOverload(t *testing.T) {
	const maxQueue = 8
	var refusals atomic.Int64
	s, _ := openTest(t, Options{MaxQueue: maxQueue, OnOverload: func() { refusals.Add(1) }})
	release := holdCommitter(t, s) // the gate is the first pending write

	done, results := collect(maxQueue)
	for i := 1; i < maxQueue; i++ {
		if err := s.Apply(0, "k"+strconv.Itoa(i), put("v"), done); err != nil {
			t.Fatalf("Apply %d of %d: %v", i, maxQueue, err)
		}
	}
	if st := s.Stats(); st.Pending != maxQueue {
		t.Fatalf("Pending = %d, want %d", st.Pending, maxQueue)
	}
	refused := false
	err := s.Apply(0, "over", put("v"), func(*protocol.Object, error) { refused = true })
	if !errors.Is(err, protocol.ErrOverloaded) {
		t.Fatalf("Apply beyond MaxQueue = %v, want ErrOverloaded", err)
	}
	if _, err := s.Update(context.Background(), 0, "over", put("v")); !errors.Is(err, protocol.ErrOverloaded) {
		t.Fatalf("Update beyond MaxQueue = %v, want ErrOverloaded", err)
	}
	if got := refusals.Load(); got != 2 {
		t.Fatalf("OnOverload called %d times for 2 refused writes", got)
	}

	release()
	for i := 1; i < maxQueue; i++ {
		if r := <-results; r.err != nil {
			t.Fatal(r.err)
		}
	}
	if refused {
		t.Fatal("done called for a refused write")
	}
	if o := mustGet(t, s, 0, "over"); o != nil {
		t.Fatal("refused write was stored")
	}
	// Room again once the backlog is committed.
	if _, err := s.Update(context.Background(), 0, "over", put("v")); err != nil {
		t.Fatalf("Update after the backlog: %v", err)
	}
}

// TestDoneAfterCommit checks the durability contract from inside: each
// done runs after the log sync of its batch returned, and by then the
// value is visible to a read.
func TestDoneAfterCommit(t *testing.T) {
	s, _ := openTest(t, Options{})
	var commits atomic.Int64
	s.hooks.afterCommit = func() { commits.Add(1) }

	const n = 30
	errc := make(chan error, n)
	for i := range n {
		key := "k" + strconv.Itoa(i)
		before := commits.Load()
		err := s.Apply(3, key, put(key), func(o *protocol.Object, err error) {
			switch {
			case err != nil:
				errc <- err
			case commits.Load() <= before:
				errc <- fmt.Errorf("%s: done before its commit", key)
			default:
				if o, err := s.Get(3, key); err != nil || value(o) != key {
					errc <- fmt.Errorf("%s: done called but Get = (%v, %v)", key, o, err)
				}
				errc <- nil
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}

}

// TestCloseReopenKeepsAcknowledged writes from many goroutines, closes,
// reopens and finds every acknowledged write.
func TestCloseReopenKeepsAcknowledged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("w%d/%d", w, i)
				if _, err := s.Update(context.Background(), w, key, put(key)); err != nil {
					t.Errorf("Update %s: %v", key, err)
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for w := range writers {
		for i := range each {
			key := fmt.Sprintf("w%d/%d", w, i)
			if got := value(mustGet(t, s, w, key)); got != key {
				t.Fatalf("after reopen %s = %q", key, got)
			}
		}
	}
	if st := s.Stats(); st.Keys != writers*each {
		t.Fatalf("Keys after reopen = %d, want %d", st.Keys, writers*each)
	}
}

// TestCloseCommitsAccepted closes while writes are queued: Close waits
// for them, each gets its done, and they are on disk.
func TestCloseCommitsAccepted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	release := holdCommitter(t, s)
	const n = 10
	done, results := collect(n)
	for i := range n {
		if err := s.Apply(0, "k"+strconv.Itoa(i), put("v"), done); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close refuses new writes even while it waits for the old ones. Until
	// it has taken the lock, a write is still accepted (and committed like
	// the others): try again.
	for {
		err := s.Apply(0, "late", put("v"), nil)
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil && !errors.Is(err, protocol.ErrOverloaded) {
			t.Fatal(err)
		}
		runtime.Gosched()
	}
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for range n {
		if r := <-results; r.err != nil {
			t.Fatal(r.err)
		}
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		if o := mustGet(t, s, 0, "k"+strconv.Itoa(i)); value(o) != "v" {
			t.Fatalf("k%d lost across Close", i)
		}
	}
}

// TestCommitFailure makes a batch's transaction fail: every write in it
// gets ErrInternal, nothing is stored, and the store carries on.
func TestCommitFailure(t *testing.T) {
	s, _ := openTest(t, Options{})
	errDisk := errors.New("disk on fire")
	var fail atomic.Bool
	s.hooks.inTxn = func() error {
		if fail.Load() {
			return errDisk
		}
		return nil
	}
	release := holdCommitter(t, s)
	fail.Store(true)
	done, results := collect(3)
	for _, key := range []string{"a", "b", "a"} {
		if err := s.Apply(0, key, put("v"), done); err != nil {
			t.Fatal(err)
		}
	}
	release()
	for range 3 {
		r := <-results
		if !errors.Is(r.err, protocol.ErrInternal) || !errors.Is(r.err, errDisk) || r.o != nil {
			t.Fatalf("write in a failed batch = (%v, %v), want ErrInternal wrapping the cause", r.o, r.err)
		}
	}
	if o := mustGet(t, s, 0, "a"); o != nil {
		t.Fatalf("rolled-back write is visible: %+v", o)
	}
	// The gate's batch failed too: its transaction ended after fail was set.
	st := s.Stats()
	if st.CommitErrors != 2 || st.Batches != 0 || st.Keys != 0 || st.Pending != 0 {
		t.Fatalf("Stats = %+v, want 2 commit errors, 0 keys", st)
	}
	fail.Store(false)
	if _, err := s.Update(context.Background(), 0, "a", put("v")); err != nil {
		t.Fatalf("write after a failed batch: %v", err)
	}
}

// TestConcurrentUse runs writers, readers and scanners together; run it
// with -race.
func TestConcurrentUse(t *testing.T) {
	s, _ := openTest(t, Options{MaxBatch: 64})
	const writers, each, counters = 32, 40, 8
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r%2 == 0 {
					if _, err := s.Get(0, "c"+strconv.Itoa(r)); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				err := s.Scan(0, func(key string, o *protocol.Object) bool { return len(o.Siblings) == 1 })
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for w := range writers {
		wg.Go(func() {
			done, results := collect(each)
			for i := range each {
				// MaxQueue (8192) exceeds all writes together: no overload.
				if err := s.Apply(0, "c"+strconv.Itoa((w+i)%counters), incr, done); err != nil {
					t.Error(err)
					return
				}
			}
			for range each {
				if r := <-results; r.err != nil {
					t.Error(r.err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	total := 0
	err := s.Scan(0, func(key string, o *protocol.Object) bool {
		n, _ := strconv.Atoi(value(o))
		total += n
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != writers*each {
		t.Fatalf("sum of counters = %d, want %d", total, writers*each)
	}
	st := s.Stats()
	if st.Ops != writers*each || st.Keys != counters {
		t.Fatalf("Stats = %+v, want %d ops on %d keys", st, writers*each, counters)
	}
	t.Logf("%d writes in %d batches (mean %.1f)", st.Ops, st.Batches, st.MeanBatch)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
