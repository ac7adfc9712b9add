package node

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/node/store"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestIssueWaitsInLineForAColdKey: writes of a key the store holds only
// in bbolt wait for one disk read, off the caller's goroutine, and are
// then issued in turn, each from the one before: every write gets its own
// dot and stays a sibling. Issued from the same read, they would share a
// dot, and acknowledged writes would vanish.
func TestIssueWaitsInLineForAColdKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kvmesh.db")
	st, err := store.Open(path, store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	actor := protocol.NewActorID("n1", 1, 1)
	first, err := version.Update(nil, nil, actor, protocol.Sibling{Value: []byte("first")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(context.Background(), 3, "k", func(*protocol.Object) (*protocol.Object, error) { return first, nil }); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil { // checkpoints "k" into bbolt
		t.Fatal(err)
	}
	if st, err = store.Open(path, store.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, cached, _ := st.Cached(3, "k"); cached {
		t.Fatal("the key is still in memory after a reopen")
	}

	release := make(chan struct{})
	var reads sync.WaitGroup
	read := func(p int, key string, done func(*protocol.Object, error)) {
		reads.Add(1)
		go func() {
			defer reads.Done()
			<-release
			done(st.Get(p, key))
		}()
	}
	is := newIssuer(st, actor, time.Now, read, version.KeepSiblings, &hlc{})
	const writers = 8
	var wg sync.WaitGroup
	wg.Add(writers)
	var mu sync.Mutex
	dots := map[protocol.Dot]bool{}
	for w := range writers {
		sib := protocol.Sibling{Value: []byte(fmt.Sprint("w", w))}
		is.issue(3, "k", nil, sib, 0, func(obj *protocol.Object) {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range obj.Siblings {
				if string(s.Value) == string(sib.Value) {
					dots[s.Dot] = true
				}
			}
		}, func(err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		}, func(err error) {
			t.Error(err)
			wg.Done()
		})
	}
	close(release) // every write is in line behind the one read by now
	wg.Wait()
	reads.Wait()
	if len(dots) != writers {
		t.Fatalf("%d writes were issued %d distinct dots", writers, len(dots))
	}
	obj, err := st.Get(3, "k")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(obj.Live()); got != writers+1 {
		t.Fatalf("%d siblings after %d blind writes on one stored value", got, writers)
	}
}
