package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kvmesh/kvmesh/node/merkle"
	"github.com/kvmesh/kvmesh/protocol"
)

// scanRoot is the root of a tree built from a scan of partition p: what
// the store's kept tree must equal.
func scanRoot(t *testing.T, s *Store, p int) uint64 {
	t.Helper()
	tr, err := merkle.New(s.TreeShape())
	if err != nil {
		t.Fatal(err)
	}
	var items []merkle.Item
	if err := s.Scan(p, func(key string, o *protocol.Object) bool {
		items = append(items, merkle.Item{Key: key, Digest: merkle.Digest(key, o)})
		return true
	}); err != nil {
		t.Fatal(err)
	}
	tr.Rebuild(func(yield func(string, uint64) bool) {
		for _, it := range items {
			yield(it.Key, it.Digest)
		}
	})
	return tr.Root()
}

// TestTreesFollowTheRecords: a tree built early and then only updated
// with each commit's changes ends equal to one built from the records,
// through concurrent writers, rewrites of a key within a batch, writes
// that change nothing, checkpoints, drops and a reopen.
func TestTreesFollowTheRecords(t *testing.T) {
	ctx := context.Background()
	s, path := openTest(t, Options{MemtableBytes: 8 << 10})
	const parts = 4
	for p := range parts {
		if _, err := s.TreeRoot(ctx, p); err != nil { // built empty, before any write
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 400 {
				p := rng.IntN(parts)
				key := fmt.Sprintf("k%d", rng.IntN(50))
				var f MergeFunc = put(fmt.Sprintf("v%d.%d", w, i))
				switch rng.IntN(4) {
				case 0:
					f = incrOrSet
				case 1:
					f = func(*protocol.Object) (*protocol.Object, error) { return nil, nil } // no change
				}
				if _, err := s.Update(ctx, p, key, f); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, err := s.DropPartition(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, 1, "after-drop", put("x")); err != nil {
		t.Fatal(err)
	}
	for p := range parts {
		got, err := s.TreeRoot(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if want := scanRoot(t, s, p); got != want {
			t.Errorf("partition %d: kept tree root %x, records' %x", p, got, want)
		}
	}
	if r, _ := s.TreeRoot(ctx, 0); r == 0 {
		t.Error("partition 0 holds keys but its root is 0")
	}

	// Reopened, the trees are built from what is durable: the same roots.
	roots := make([]uint64, parts)
	for p := range parts {
		roots[p], _ = s.TreeRoot(ctx, p)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for p := range parts {
		if got, _ := s2.TreeRoot(ctx, p); got != roots[p] {
			t.Errorf("partition %d after reopen: root %x, before %x", p, got, roots[p])
		}
	}
}

// incrOrSet bumps a decimal counter, starting one where the value is not
// a number.
func incrOrSet(old *protocol.Object) (*protocol.Object, error) {
	if o, err := incr(old); err == nil {
		return o, nil
	}
	return object("n1", old.Clock[0].Counter+1, "1"), nil
}

// TestBucketItems lists the keys of some buckets, paged, with the digests
// the exchange compares.
func TestBucketItems(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Options{})
	shape := s.TreeShape()
	want := map[string]uint64{}
	buckets := []int{}
	for i := range 300 {
		key := fmt.Sprintf("key-%03d", i)
		o, err := s.Update(ctx, 3, key, put(key))
		if err != nil {
			t.Fatal(err)
		}
		if b := shape.Bucket(key); i%3 == 0 {
			want[key] = merkle.Digest(key, o)
			buckets = append(buckets, b)
		}
	}
	// Keys of other buckets may share one: expect those too.
	bset := map[int]bool{}
	for _, b := range buckets {
		bset[b] = true
	}
	for i := range 300 {
		key := fmt.Sprintf("key-%03d", i)
		if bset[shape.Bucket(key)] {
			o, _ := s.Get(3, key)
			want[key] = merkle.Digest(key, o)
		}
	}
	sorted := make([]int, 0, len(bset))
	for b := range bset {
		sorted = append(sorted, b)
	}
	slices.Sort(sorted)
	got := map[string]uint64{}
	after, pages, last := "", 0, ""
	for {
		items, next, err := s.BucketItems(3, sorted, after, 200)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range items {
			if it.Key <= last {
				t.Fatalf("items out of order: %q after %q", it.Key, last)
			}
			last = it.Key
			got[it.Key] = it.Digest
		}
		if next == "" {
			break
		}
		after = next
	}
	if pages < 2 {
		t.Errorf("%d pages with a 200-byte budget", pages)
	}
	if len(got) != len(want) {
		t.Fatalf("%d items, want %d", len(got), len(want))
	}
	for k, d := range want {
		if got[k] != d {
			t.Errorf("%s: digest %x, want %x", k, got[k], d)
		}
	}
}

// TestPurgeKeys deletes the records ok accepts, leaves the others and
// those rewritten after the cut, stays deleted after a reopen, and the
// partition's tree follows.
func TestPurgeKeys(t *testing.T) {
	ctx := context.Background()
	s, path := openTest(t, Options{})
	tomb := func(c uint64) MergeFunc {
		return func(*protocol.Object) (*protocol.Object, error) {
			d := protocol.Dot{Node: "n1", Counter: c}
			return &protocol.Object{Clock: protocol.Clock{d}, Siblings: []protocol.Sibling{{Dot: d, Deleted: true}}}, nil
		}
	}
	var keys []string
	for i := range 40 {
		k := fmt.Sprintf("k%02d", i)
		keys = append(keys, k)
		f := put("v")
		if i%2 == 0 {
			f = tomb(uint64(i + 1))
		}
		if _, err := s.Update(ctx, 2, k, f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.TreeRoot(ctx, 2); err != nil {
		t.Fatal(err)
	}
	deleted := func(_ string, o *protocol.Object) bool { return len(o.Live()) == 0 }
	n, err := s.PurgeKeys(ctx, 2, append(keys, "absent"), deleted)
	if err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Errorf("purged %d, want 20", n)
	}
	for i, k := range keys {
		o := mustGet(t, s, 2, k)
		if (o == nil) != (i%2 == 0) {
			t.Errorf("%s: %v after the purge", k, o)
		}
	}
	if got, want := mustRoot(t, s, 2), scanRoot(t, s, 2); got != want {
		t.Errorf("tree root %x after the purge, records' %x", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for i, k := range keys {
		if o := mustGet(t, s2, 2, k); (o == nil) != (i%2 == 0) {
			t.Errorf("%s after reopen: %v", k, o)
		}
	}
}

func mustRoot(t *testing.T, s *Store, p int) uint64 {
	t.Helper()
	r, err := s.TreeRoot(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCompact: after a purge frees most of the file's pages, Compact
// shrinks the file and the store reopens with every remaining record.
func TestCompact(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 4096)
	var keys []string
	for i := range 2000 {
		k := fmt.Sprintf("k%04d", i)
		keys = append(keys, k)
		if _, err := s.Update(ctx, 1, k, put(big)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PurgeKeys(ctx, 1, keys[:1900], func(string, *protocol.Object) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	calls := 0
	before, after, err := Compact(path, Options{}, func(int64, int64) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compacted %d -> %d bytes", before, after)
	if after >= before/2 || calls == 0 {
		t.Errorf("compacted %d -> %d bytes, %d progress calls", before, after, calls)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for i, k := range keys {
		if o := mustGet(t, s2, 1, k); (o != nil) != (i >= 1900) {
			t.Fatalf("%s after compact: %v", k, o)
		}
	}
}
