package store

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/protocol"
)

func TestPutGetRoundTrip(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := context.Background()
	want := object("n1", 7, "hello")
	want.Siblings = append(want.Siblings, protocol.Sibling{Dot: protocol.Dot{Node: "n2", Counter: 3}, Deleted: true, Time: 42})
	want.Clock = protocol.Clock{{Node: "n1", Counter: 7}, {Node: "n2", Counter: 3}}

	got, err := s.Update(ctx, 12, "users/ada", func(old *protocol.Object) (*protocol.Object, error) {
		if old != nil {
			t.Errorf("old = %+v, want nil for a new key", old)
		}
		return clone(want), nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if !equal(got, want) {
		t.Fatalf("Update returned %+v, want %+v", got, want)
	}
	if got := mustGet(t, s, 12, "users/ada"); !equal(got, want) {
		t.Fatalf("Get = %+v, want %+v", got, want)
	}
	// The same key in another partition is another record.
	if got := mustGet(t, s, 13, "users/ada"); got != nil {
		t.Fatalf("Get in partition 13 = %+v, want nil", got)
	}
	if st := s.Stats(); st.Keys != 1 || st.Batches != 1 || st.Ops != 1 {
		t.Fatalf("Stats = %+v, want 1 key, 1 batch, 1 op", st)
	}
}

func TestGetAbsent(t *testing.T) {
	s, _ := openTest(t, Options{})
	o, err := s.Get(0, "nope")
	if o != nil || err != nil {
		t.Fatalf("Get absent = (%v, %v), want (nil, nil)", o, err)
	}
	o, err = s.Get(math.MaxUint16, "nope")
	if o != nil || err != nil {
		t.Fatalf("Get absent in last partition = (%v, %v), want (nil, nil)", o, err)
	}
}

func TestMergeReturningNilLeavesRecord(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := context.Background()
	if _, err := s.Update(ctx, 1, "k", put("v1")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Update(ctx, 1, "k", func(old *protocol.Object) (*protocol.Object, error) { return nil, nil })
	if err != nil || value(got) != "v1" {
		t.Fatalf("no-op Update = (%v, %v), want v1", value(got), err)
	}
	got, err = s.Update(ctx, 1, "absent", func(old *protocol.Object) (*protocol.Object, error) { return nil, nil })
	if err != nil || got != nil {
		t.Fatalf("no-op Update of absent key = (%v, %v), want (nil, nil)", got, err)
	}
	if o := mustGet(t, s, 1, "absent"); o != nil {
		t.Fatalf("no-op Update created %+v", o)
	}
	if st := s.Stats(); st.Keys != 1 {
		t.Fatalf("Keys = %d, want 1", st.Keys)
	}
}

func TestInvalidKeysRefused(t *testing.T) {
	s, _ := openTest(t, Options{})
	cases := []struct {
		p   int
		key string
	}{
		{-1, "k"},
		{math.MaxUint16 + 1, "k"},
		{0, ""},
		{0, strings.Repeat("k", protocol.MaxKeyLen+1)},
		{0, "bad\x00key"},
		{0, "\xff\xfe"},
	}
	for _, c := range cases {
		called := false
		err := s.Apply(c.p, c.key, put("v"), func(*protocol.Object, error) { called = true })
		if !errors.Is(err, protocol.ErrInvalidKey) {
			t.Errorf("Apply(%d, %.20q) = %v, want ErrInvalidKey", c.p, c.key, err)
		}
		if _, err := s.Get(c.p, c.key); !errors.Is(err, protocol.ErrInvalidKey) {
			t.Errorf("Get(%d, %.20q) = %v, want ErrInvalidKey", c.p, c.key, err)
		}
		if called {
			t.Errorf("done called for refused write (%d, %.20q)", c.p, c.key)
		}
	}
	if err := s.Scan(-1, func(string, *protocol.Object) bool { return true }); !errors.Is(err, protocol.ErrInvalidKey) {
		t.Errorf("Scan(-1) = %v, want ErrInvalidKey", err)
	}
	if err := s.Apply(0, "k", nil, nil); err == nil {
		t.Errorf("Apply with nil merge func succeeded")
	}
}

func TestMeta(t *testing.T) {
	s, path := openTest(t, Options{})
	if v, err := s.GetMeta("node-id"); v != nil || err != nil {
		t.Fatalf("GetMeta absent = (%q, %v), want (nil, nil)", v, err)
	}
	id := []byte("n1")
	if err := s.PutMeta("node-id", id); err != nil {
		t.Fatal(err)
	}
	id[0] = 'X' // the store must have copied it
	if err := s.PutMeta("empty", nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", strings.Repeat("m", maxMetaName+1)} {
		if err := s.PutMeta(name, []byte("v")); !errors.Is(err, protocol.ErrInvalidKey) {
			t.Errorf("PutMeta(%.10q) = %v, want ErrInvalidKey", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	v, err := s2.GetMeta("node-id")
	if err != nil || string(v) != "n1" {
		t.Fatalf("GetMeta after reopen = (%q, %v), want n1", v, err)
	}
	v, err = s2.GetMeta("empty")
	if err != nil || v == nil || len(v) != 0 {
		t.Fatalf("GetMeta(empty) = (%#v, %v), want a non-nil empty value", v, err)
	}
	// Metadata is not data: it is neither counted nor scanned.
	if st := s2.Stats(); st.Keys != 0 {
		t.Fatalf("Keys = %d, want 0", st.Keys)
	}
}

func TestOptions(t *testing.T) {
	d := DefaultOptions()
	if d.MaxQueue != 8192 || d.MaxBatch != 1024 || d.OpenTimeout != time.Second || d.MemtableBytes != 8<<20 || d.FS != (disk.OS{}) {
		t.Fatalf("DefaultOptions = %+v", d)
	}
	got, err := Options{MaxBatch: 7}.withDefaults()
	if err != nil || got.MaxQueue != 8192 || got.MaxBatch != 7 || got.OpenTimeout != time.Second || got.MemtableBytes != 8<<20 || got.FS != (disk.OS{}) {
		t.Fatalf("withDefaults = (%+v, %v)", got, err)
	}
	for _, o := range []Options{{MaxQueue: -1}, {MaxBatch: -1}, {OpenTimeout: -1}, {MemtableBytes: -1}} {
		if _, err := Open(filepath.Join(t.TempDir(), "x.db"), o); !errors.Is(err, protocol.ErrInvalidOption) {
			t.Errorf("Open(%+v) = %v, want ErrInvalidOption", o, err)
		}
	}
}

func TestDurabilitySettings(t *testing.T) {
	s, _ := openTest(t, Options{})
	// Acknowledging a write before fsync would break the contract.
	if s.db.NoSync || s.db.NoGrowSync {
		t.Fatalf("NoSync = %v, NoGrowSync = %v, want both false", s.db.NoSync, s.db.NoGrowSync)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	_, path := openTest(t, Options{})
	start := time.Now()
	s2, err := Open(path, Options{OpenTimeout: 50 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a held file succeeded")
	}
	if !errors.Is(err, berrors.ErrTimeout) || !strings.Contains(err.Error(), "another process holds it") {
		t.Fatalf("second Open = %v, want a lock timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("second Open took %v", d)
	}
}

// TestQuarantineRefusesAnOpenStore: moving a running store's files aside
// would lose what it writes next; Quarantine takes bbolt's lock first.
// Closed, the store moves, and Open makes a new, empty one.
func TestQuarantineRefusesAnOpenStore(t *testing.T) {
	s, path := openTest(t, Options{})
	if _, err := s.Update(context.Background(), 0, "k", put("v")); err != nil {
		t.Fatal(err)
	}
	id := s.ID()
	if _, err := Quarantine(nil, path, time.Now()); err == nil || !strings.Contains(err.Error(), "the store is open") {
		t.Fatalf("Quarantine of an open store = %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the refused quarantine moved the file: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dir, err := Quarantine(nil, path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.Base(path))); err != nil {
		t.Fatalf("not in quarantine: %v", err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.ID() == id || !s2.Created() {
		t.Fatalf("after the quarantine Open found store %s (created %v), was %s", s2.ID(), s2.Created(), id)
	}
}

func TestCloseIdempotentAndAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(context.Background(), 0, "k", put("v")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("Close again: %v", err)
	}

	called := false
	err = s.Apply(0, "k", put("v2"), func(*protocol.Object, error) { called = true })
	if !errors.Is(err, ErrClosed) || !errors.Is(err, protocol.ErrNodeUnavailable) {
		t.Fatalf("Apply after Close = %v, want ErrClosed wrapping ErrNodeUnavailable", err)
	}
	if called {
		t.Fatal("done called for a write refused after Close")
	}
	if _, err := s.Update(context.Background(), 0, "k", put("v2")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Get(0, "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	if err := s.Scan(0, func(string, *protocol.Object) bool { return true }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Scan after Close = %v, want ErrClosed", err)
	}
	if _, err := s.GetMeta("m"); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetMeta after Close = %v, want ErrClosed", err)
	}
	if err := s.PutMeta("m", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("PutMeta after Close = %v, want ErrClosed", err)
	}
}

func TestUpdateContext(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	_, err := s.Update(ctx, 0, "k", func(*protocol.Object) (*protocol.Object, error) {
		called = true
		return nil, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with a cancelled ctx = %v, want context.Canceled", err)
	}

	// A ctx that ends while the write waits: Update returns, and the write
	// still commits.
	release := holdCommitter(t, s)
	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.Update(ctx, 0, "k", put("late"))
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Update = %v, want context.Canceled", err)
	}
	release()
	// A write queued after the abandoned one commits after it.
	if _, err := s.Update(context.Background(), 0, "other", put("x")); err != nil {
		t.Fatal(err)
	}
	if called {
		t.Fatal("merge ran for an Update whose ctx had ended before it")
	}
	// The abandoned write may or may not have been queued before cancel
	// won the race in Update; if it was, it committed.
	if o := mustGet(t, s, 0, "k"); o != nil && value(o) != "late" {
		t.Fatalf("k = %q", value(o))
	}
}

// equal compares objects field by field (nil and empty slices alike).
func equal(a, b *protocol.Object) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.Clock) != len(b.Clock) || len(a.Siblings) != len(b.Siblings) {
		return false
	}
	for i := range a.Clock {
		if a.Clock[i] != b.Clock[i] {
			return false
		}
	}
	for i, x := range a.Siblings {
		y := b.Siblings[i]
		if x.Dot != y.Dot || string(x.Value) != string(y.Value) || x.Deleted != y.Deleted || x.Time != y.Time {
			return false
		}
	}
	return true
}
