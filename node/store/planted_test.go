//go:build kvmesh_planted

package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/protocol"
)

// TestUnsafeEarlyAckAcknowledgesBeforeCommit checks the fault suite's
// planted bug does what it says: done fires while the write is not yet
// durable (a fresh read does not see it).
func TestUnsafeEarlyAckAcknowledgesBeforeCommit(t *testing.T) {
	opts := DefaultOptions()
	opts.UnsafeEarlyAck = 200 * time.Millisecond
	s, err := Open(filepath.Join(t.TempDir(), "db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	visible := make(chan bool, 1)
	err = s.Apply(1, "k", func(*protocol.Object) (*protocol.Object, error) {
		return object("n1", 1, "v"), nil
	}, func(*protocol.Object, error) {
		o, _ := s.Get(1, "k")
		visible <- o != nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if <-visible {
		t.Fatal("write visible when acknowledged: the planted bug is not planted")
	}
}
