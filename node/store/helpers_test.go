package store

import (
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

// openTest opens a store in a fresh temp dir and closes it at cleanup.
func openTest(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

// object builds a valid one-sibling object written by node at counter.
func object(node string, counter uint64, value string) *protocol.Object {
	d := protocol.Dot{Node: node, Counter: counter}
	return &protocol.Object{
		Clock:    protocol.Clock{d},
		Siblings: []protocol.Sibling{{Dot: d, Value: []byte(value), Time: int64(counter)}},
	}
}

// put is a merge that stores value, bumping the node's counter.
func put(value string) MergeFunc {
	return func(old *protocol.Object) (*protocol.Object, error) {
		var c uint64
		if old != nil {
			c = old.Clock[0].Counter
		}
		return object("n1", c+1, value), nil
	}
}

// incr is a merge that adds one to a decimal counter kept in the value.
func incr(old *protocol.Object) (*protocol.Object, error) {
	n, c := 0, uint64(0)
	if old != nil {
		var err error
		if n, err = strconv.Atoi(string(old.Siblings[0].Value)); err != nil {
			return nil, err
		}
		c = old.Clock[0].Counter
	}
	return object("n1", c+1, strconv.Itoa(n+1)), nil
}

// value returns the first sibling's value of o, "" for nil.
func value(o *protocol.Object) string {
	if o == nil || len(o.Siblings) == 0 {
		return ""
	}
	return string(o.Siblings[0].Value)
}

// mustGet reads (p, key) and fails the test on error.
func mustGet(t testing.TB, s *Store, p int, key string) *protocol.Object {
	t.Helper()
	o, err := s.Get(p, key)
	if err != nil {
		t.Fatalf("Get(%d, %q): %v", p, key, err)
	}
	return o
}

// result is what a done callback received.
type result struct {
	o   *protocol.Object
	err error
}

// collect returns a done callback that sends to a channel with room for n
// results, so it never blocks the committer.
func collect(n int) (func(*protocol.Object, error), chan result) {
	ch := make(chan result, n)
	return func(o *protocol.Object, err error) { ch <- result{o, err} }, ch
}

// holdCommitter queues a write whose merge blocks until release is called,
// and returns once the committer is inside it. Writes queued meanwhile all
// wait, so after release they are drained together: that is how the tests
// make a batch deterministic without sleeping. release is idempotent and
// also runs at cleanup (before the store's Close).
func holdCommitter(t testing.TB, s *Store) (release func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	err := s.Apply(0, "gate", func(*protocol.Object) (*protocol.Object, error) {
		close(entered)
		<-gate
		return nil, nil
	}, nil)
	if err != nil {
		t.Fatalf("Apply gate: %v", err)
	}
	<-entered
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return release
}
