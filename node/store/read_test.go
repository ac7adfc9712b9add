package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kvmesh/kvmesh/protocol"
)

// fill writes key -> key for each key of partition p, all queued at once.
func fill(t *testing.T, s *Store, p int, keys []string) {
	t.Helper()
	done, results := collect(len(keys))
	for _, k := range keys {
		if err := s.Apply(p, k, put(k), done); err != nil {
			t.Fatal(err)
		}
	}
	for range keys {
		if r := <-results; r.err != nil {
			t.Fatal(r.err)
		}
	}
}

func scanAll(t *testing.T, s *Store, p int) []string {
	t.Helper()
	var keys []string
	err := s.Scan(p, func(key string, o *protocol.Object) bool {
		if value(o) != key {
			t.Errorf("Scan(%d): %s = %q", p, key, value(o))
		}
		keys = append(keys, key)
		return true
	})
	if err != nil {
		t.Fatalf("Scan(%d): %v", p, err)
	}
	return keys
}

func TestScan(t *testing.T) {
	s, _ := openTest(t, Options{})
	// Partition 256 spans several chunks; its neighbours share a prefix
	// byte with it (0x00ff, 0x0101) and must not leak into it.
	var big []string
	for i := range 2*scanChunk + 37 {
		big = append(big, fmt.Sprintf("key/%05d", i))
	}
	big = append(big, "a", "z\u00e9", "0") // queued out of order
	fill(t, s, 256, big)
	fill(t, s, 255, []string{"x", "y"})
	fill(t, s, 257, []string{"a"})
	fill(t, s, math.MaxUint16, []string{"last", "end"})

	want := slices.Clone(big)
	slices.Sort(want)
	if got := scanAll(t, s, 256); !slices.Equal(got, want) {
		t.Fatalf("Scan(256) gave %d keys, want %d in order", len(got), len(want))
	}
	if got := scanAll(t, s, 255); !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("Scan(255) = %q", got)
	}
	if got := scanAll(t, s, math.MaxUint16); !slices.Equal(got, []string{"end", "last"}) {
		t.Fatalf("Scan(65535) = %q", got)
	}
	if got := scanAll(t, s, 9); len(got) != 0 {
		t.Fatalf("Scan of an empty partition = %q", got)
	}

	// fn returning false stops the scan, also on a chunk boundary.
	for _, stopAt := range []int{1, scanChunk, scanChunk + 1} {
		n := 0
		err := s.Scan(256, func(string, *protocol.Object) bool { n++; return n < stopAt })
		if err != nil || n != stopAt {
			t.Fatalf("Scan stopping at %d saw %d (%v)", stopAt, n, err)
		}
	}

	// fn runs outside any transaction, so it may write through the store.
	n := 0
	err := s.Scan(255, func(key string, o *protocol.Object) bool {
		_, err := s.Update(context.Background(), 255, key, put(key+"!"))
		if err != nil {
			t.Error(err)
		}
		n++
		return true
	})
	if err != nil || n != 2 {
		t.Fatalf("Scan with writes in fn: %d records, %v", n, err)
	}
	if got := value(mustGet(t, s, 255, "y")); got != "y!" {
		t.Fatalf("y = %q", got)
	}
}

// TestScanFrom: a scan from a cursor gives exactly the records after it,
// in order, with memory's records winning over bbolt's, wherever the
// cursor falls (on a key, between keys, before or after them all, on a
// key only memory holds); and pages that each start after the last key
// of the one before give the whole partition once.
func TestScanFrom(t *testing.T) {
	s, path := openTest(t, Options{})
	var keys []string
	for i := range 2*scanChunk + 37 {
		keys = append(keys, fmt.Sprintf("key/%05d", i))
	}
	fill(t, s, 256, keys)
	fill(t, s, 255, []string{"x"})
	fill(t, s, 257, []string{"a"})
	if err := s.Close(); err != nil { // checkpoints everything into bbolt
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Memory now holds newer records of some keys, and keys bbolt lacks.
	want := map[string]string{}
	for _, k := range keys {
		want[k] = k
	}
	for i := 0; i < len(keys); i += 7 {
		if _, err := s.Update(context.Background(), 256, keys[i], put(keys[i]+"!")); err != nil {
			t.Fatal(err)
		}
		want[keys[i]] = keys[i] + "!"
	}
	memOnly := []string{"key/00010a", "key/00300~", "a", "zz"}
	for _, k := range memOnly {
		if _, err := s.Update(context.Background(), 256, k, put(k)); err != nil {
			t.Fatal(err)
		}
		want[k] = k
	}
	all := slices.Sorted(maps.Keys(want))

	scanFrom := func(after string, limit int) []string {
		t.Helper()
		var got []string
		err := s.ScanFrom(256, after, func(key string, o *protocol.Object) bool {
			if value(o) != want[key] {
				t.Errorf("ScanFrom(%q): %s = %q, want %q", after, key, value(o), want[key])
			}
			got = append(got, key)
			return len(got) < limit
		})
		if err != nil {
			t.Fatalf("ScanFrom(%q): %v", after, err)
		}
		return got
	}
	for _, after := range []string{"", "0", "a", "key/00000", "key/00010", "key/00010a", "key/0001", "key/00255",
		"key/00256", "key/00300", "key/00300~", "key/00548", "key/00549", "yy", "zz", "zzz"} {
		i, _ := slices.BinarySearch(all, after)
		if i < len(all) && all[i] == after {
			i++
		}
		if got := scanFrom(after, math.MaxInt); !slices.Equal(got, all[i:]) {
			t.Errorf("ScanFrom(%q) gave %d keys from %q, want %d from %q", after, len(got), first(got), len(all[i:]), first(all[i:]))
		}
	}
	// Pages of 100, each after the previous page's last key.
	var paged []string
	for after := ""; ; {
		page := scanFrom(after, 100)
		paged = append(paged, page...)
		if len(page) < 100 {
			break
		}
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, all) {
		t.Fatalf("paging gave %d keys, want %d", len(paged), len(all))
	}
}

func first(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

// corruptRecords are object encodings that must not decode, each with
// the sentinel the decoder reports. The tests store them behind a valid
// checksum (sealRecord), so that they reach the decoder.
var corruptRecords = []struct {
	name string
	v    []byte
	want error
}{
	{"empty", []byte{}, protocol.ErrMalformed},
	{"unknown format", []byte{0x02, 0x92, 0x90, 0x90}, protocol.ErrMalformed},
	{"format byte only", []byte{0x01}, protocol.ErrMalformed},
	{"truncated", []byte{0x01, 0x92, 0x91}, protocol.ErrMalformed},
	{"huge length", []byte{0x01, 0xdb, 0xff, 0xff, 0xff, 0xff}, protocol.ErrMalformed},
	{"deep nesting", append([]byte{0x01}, []byte(strings.Repeat("\x91", 64))...), protocol.ErrMalformed},
	{"wrong shape", []byte{0x01, 0xa3, 'a', 'b', 'c'}, protocol.ErrMalformed},
	{"invalid object", mustEncode(object("n1", 0, "counter 0")), protocol.ErrInvalidContext},
	{"bad node id", mustEncode(object("no spaces", 1, "v")), protocol.ErrInvalidContext},
}

func mustEncode(o *protocol.Object) []byte {
	b, err := protocol.EncodeObject(o)
	if err != nil {
		panic(err)
	}
	return b
}

// TestCorruptRecord writes garbage under the data bucket with bbolt
// directly, then reads and writes the keys through the store.
func TestCorruptRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 4, []string{"a-good", "z-good"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, c := range corruptRecords {
			bk := append([]byte{0, 4}, "m-"+c.name...)
			if err := tx.Bucket(bucketData).Put(bk, sealRecord(bk, c.v)); err != nil {
				return err
			}
		}
		// A record whose checksum fails: a flipped bit in its value.
		bk := []byte("\x00\x04m-flipped bit")
		v := sealRecord(bk, mustEncode(object("n1", 1, "value")))
		v[len(v)-1] ^= 0x10
		if err := tx.Bucket(bucketData).Put(bk, v); err != nil {
			return err
		}
		// A valid record under another key than the one it was sealed for.
		return tx.Bucket(bucketData).Put([]byte("\x00\x04m-misplaced"), sealRecord([]byte("\x00\x04other"), mustEncode(object("n1", 1, "value"))))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cases := append(slices.Clone(corruptRecords), struct {
		name string
		v    []byte
		want error
	}{"flipped bit", nil, ErrCorrupt}, struct {
		name string
		v    []byte
		want error
	}{"misplaced", nil, ErrCorrupt})
	for _, c := range cases {
		key := "m-" + c.name
		o, err := s.Get(4, key)
		if o != nil || !errors.Is(err, protocol.ErrInternal) || !errors.Is(err, c.want) || !strings.Contains(err.Error(), key) {
			t.Errorf("Get %s = (%v, %v), want ErrInternal wrapping %v and naming the key", key, o, err, c.want)
		}
		// A write cannot merge onto what it cannot read: it fails and
		// leaves the record for repair.
		o, err = s.Update(context.Background(), 4, key, put("new"))
		if o != nil || !errors.Is(err, protocol.ErrInternal) {
			t.Errorf("Update %s = (%v, %v), want ErrInternal", key, o, err)
		}
	}
	// The scan delivers what precedes the first corrupt key, then fails.
	var seen []string
	err = s.Scan(4, func(key string, _ *protocol.Object) bool { seen = append(seen, key); return true })
	if !errors.Is(err, protocol.ErrInternal) || !slices.Equal(seen, []string{"a-good"}) {
		t.Fatalf("Scan = (%q, %v), want [a-good] then ErrInternal", seen, err)
	}
	if got := value(mustGet(t, s, 4, "z-good")); got != "z-good" {
		t.Fatalf("good record after corrupt ones = %q", got)
	}
	// A scan from a cursor past the corrupt keys does not read them; one
	// from a cursor before them fails at the first.
	seen = nil
	err = s.ScanFrom(4, "m-~", func(key string, _ *protocol.Object) bool { seen = append(seen, key); return true })
	if err != nil || !slices.Equal(seen, []string{"z-good"}) {
		t.Fatalf("ScanFrom past the corrupt keys = (%q, %v), want [z-good]", seen, err)
	}
	seen = nil
	err = s.ScanFrom(4, "a-good", func(key string, _ *protocol.Object) bool { seen = append(seen, key); return true })
	if !errors.Is(err, protocol.ErrInternal) || len(seen) != 0 {
		t.Fatalf("ScanFrom before the corrupt keys = (%q, %v), want ErrInternal", seen, err)
	}
	// The corrupt bytes are untouched.
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, c := range corruptRecords {
			bk := append([]byte{0, 4}, "m-"+c.name...)
			if v := tx.Bucket(bucketData).Get(bk); string(v) != string(sealRecord(bk, c.v)) {
				return fmt.Errorf("%s was overwritten", c.name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzRecord stores arbitrary bytes as an object's encoding (behind a
// valid checksum) and reads, scans and writes it through the store:
// errors are fine, panics are not.
func FuzzRecord(f *testing.F) {
	for _, c := range corruptRecords {
		f.Add(c.v)
	}
	f.Add(mustEncode(object("n1", 1, "ok")))
	s, _ := openTest(f, Options{})
	bk := []byte{0, 1, 'k'}
	f.Fuzz(func(t *testing.T, v []byte) {
		err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketData).Put(bk, sealRecord(bk, v)) })
		if err != nil {
			t.Fatal(err)
		}
		o, getErr := s.Get(1, "k")
		if (o == nil) == (getErr == nil) {
			t.Fatalf("Get = (%v, %v): want exactly one of object and error", o, getErr)
		}
		scanErr := s.Scan(1, func(string, *protocol.Object) bool { return true })
		if (scanErr == nil) != (getErr == nil) {
			t.Fatalf("Get error %v but Scan error %v", getErr, scanErr)
		}
		_, err = s.Update(context.Background(), 1, "k", func(old *protocol.Object) (*protocol.Object, error) {
			return nil, nil
		})
		if (err == nil) != (getErr == nil) {
			t.Fatalf("Get error %v but Update error %v", getErr, err)
		}
	})
}
