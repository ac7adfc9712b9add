package coord

import (
	"errors"
	"testing"

	"github.com/kvmesh/kvmesh/node/quorum"
	"github.com/kvmesh/kvmesh/protocol"
)

func TestQuorumMissedByOverloadIsOverloaded(t *testing.T) {
	tl := quorum.NewTally([]string{"n1", "n2", "n3"}, 2)
	tl.OK("n1")
	tl.Fail("n2", protocol.Errorf(protocol.ErrOverloaded, "store: 8192 writes pending"))
	tl.Fail("n3", protocol.Errorf(protocol.ErrNodeUnavailable, "no responders"))
	err := QuorumErr(tl, "put")
	if code, name := protocol.Classify(err); code != 503 || name != "overloaded" {
		t.Fatalf("classified %d %s (%v), want 503 overloaded", code, name, err)
	}

	tl = quorum.NewTally([]string{"n1", "n2", "n3"}, 2)
	tl.OK("n1")
	tl.Fail("n2", protocol.Errorf(protocol.ErrNodeUnavailable, "no responders"))
	tl.Fail("n3", protocol.Errorf(protocol.ErrNodeUnavailable, "no responders"))
	if err := QuorumErr(tl, "put"); !errors.Is(err, protocol.ErrQuorumNotReached) {
		t.Fatalf("%v, want quorum not reached", err)
	}
}
