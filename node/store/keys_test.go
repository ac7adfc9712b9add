package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

// TestScanKeys: a listing of some partitions gives exactly their records
// with the prefix after the cursor, merged in key order across the
// partitions, with memory's records winning over bbolt's, wherever the
// cursor falls; and pages that each start after the last key of the one
// before give them all once.
func TestScanKeys(t *testing.T) {
	s, path := openTest(t, Options{})
	// Keys spread over partitions 3, 4 and 300 (listed) and 5 (not).
	parts := []int{3, 4, 300}
	want := map[string]uint64{} // listed key -> its clock's counter
	byPart := map[int][]string{}
	for i := range 600 {
		k := fmt.Sprintf("user.%04d", i)
		p := []int{3, 4, 300, 5}[i%4]
		if i%10 == 9 {
			k = fmt.Sprintf("other.%04d", i) // outside the prefix
		}
		byPart[p] = append(byPart[p], k)
		if p != 5 && strings.HasPrefix(k, "user.") {
			want[k] = 1
		}
	}
	for p, keys := range byPart {
		fill(t, s, p, keys)
	}
	if err := s.Close(); err != nil { // checkpoints everything into bbolt
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Memory now holds newer records of some keys, and keys bbolt lacks.
	for i := 0; i < 600; i += 7 {
		k := fmt.Sprintf("user.%04d", i)
		p := []int{3, 4, 300, 5}[i%4]
		if i%10 == 9 {
			continue
		}
		if _, err := s.Update(context.Background(), p, k, put(k+"!")); err != nil {
			t.Fatal(err)
		}
		if p != 5 {
			want[k] = 2
		}
	}
	for i, k := range []string{"user.0010a", "user.0300~", "user.", "user.9999", "a", "zz"} {
		p := parts[i%3]
		if _, err := s.Update(context.Background(), p, k, put(k)); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(k, "user.") {
			want[k] = 1
		}
	}
	all := slices.Sorted(maps.Keys(want))

	scan := func(after string, limit int) []string {
		t.Helper()
		var got []string
		err := s.ScanKeys(parts, "user.", after, limit, func(p int, key string, o *protocol.Object) bool {
			if o.Clock[0].Counter != want[key] || o.Siblings[0].Value != nil {
				t.Errorf("ScanKeys(%q): %s = %+v, want counter %d and no value", after, key, o, want[key])
			}
			if !slices.Contains(parts, p) {
				t.Errorf("ScanKeys(%q): %s in partition %d", after, key, p)
			}
			got = append(got, key)
			return true
		})
		if err != nil {
			t.Fatalf("ScanKeys(%q): %v", after, err)
		}
		if len(got) > limit {
			t.Fatalf("ScanKeys(%q) went past its limit: %d keys, limit %d", after, len(got), limit)
		}
		return got
	}
	for _, after := range []string{"", "0", "a", "user", "user.", "user.0000", "user.0010", "user.0010a", "user.001",
		"user.0300", "user.0300~", "user.0599", "user.9999", "user/", "zz", "zzz"} {
		i, _ := slices.BinarySearch(all, after)
		if i < len(all) && all[i] == after {
			i++
		}
		if got := scan(after, 1<<30); !slices.Equal(got, all[i:]) {
			t.Errorf("ScanKeys(%q) gave %d keys from %q, want %d from %q", after, len(got), first(got), len(all[i:]), first(all[i:]))
		}
	}
	var paged []string
	for after := ""; ; {
		page := scan(after, 33)
		paged = append(paged, page...)
		if len(page) < 33 {
			break
		}
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, all) {
		t.Fatalf("paging gave %d keys, want %d", len(paged), len(all))
	}
	// fn saying stop stops.
	n := 0
	if err := s.ScanKeys(parts, "", "", 0, func(int, string, *protocol.Object) bool { n++; return n < 5 }); err != nil || n != 5 {
		t.Fatalf("ScanKeys stopping at 5 saw %d (%v)", n, err)
	}
	// Every key, no partition, a prefix no key has.
	n = 0
	if err := s.ScanKeys([]int{3, 4, 5, 300}, "", "", 0, func(int, string, *protocol.Object) bool { n++; return true }); err != nil || n != 600+6 {
		t.Fatalf("ScanKeys of everything: %d keys, %v", n, err)
	}
	for _, c := range []struct {
		parts  []int
		prefix string
	}{{nil, ""}, {parts, "nope"}} {
		if err := s.ScanKeys(c.parts, c.prefix, "", 0, func(int, string, *protocol.Object) bool { t.Fatal("called"); return false }); err != nil {
			t.Fatal(err)
		}
	}
}

// TestScanKeysThroughCheckpoints lists while writing through many
// checkpoints: each key once, its newest record, whether that is in the
// active memtable, the frozen one or bbolt.
func TestScanKeysThroughCheckpoints(t *testing.T) {
	s, _ := openTest(t, Options{MemtableBytes: smallMemtable})
	// Few keys, often rewritten: the frozen memtable and the active one
	// hold records of the same keys.
	const keys, rounds = 6, 100
	for r := range rounds {
		for k := range keys {
			key := fmt.Sprintf("k%02d", k)
			if _, err := s.Update(context.Background(), k%3, key, put(key)); err != nil {
				t.Fatal(err)
			}
			var got []string
			err := s.ScanKeys([]int{0, 1, 2}, "k", "", 0, func(_ int, key string, o *protocol.Object) bool {
				want := uint64(r) // written r times, r+1 when this round reached it
				if key <= fmt.Sprintf("k%02d", k) {
					want++
				}
				if o.Clock[0].Counter != want {
					t.Fatalf("round %d after k%02d: %s has counter %d, want %d", r, k, key, o.Clock[0].Counter, want)
				}
				got = append(got, key)
				return true
			})
			n := keys
			if r == 0 {
				n = k + 1
			}
			if err != nil || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) || len(got) != n {
				t.Fatalf("round %d after %d: %q, %v", r, k, got, err)
			}
		}
	}
	if st := s.Stats(); st.Checkpoints < 2 {
		t.Fatalf("Stats = %+v, want several checkpoints", st)
	}
}
