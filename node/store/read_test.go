package store

import (
	"context"
	"errors"
	"fmt"
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
