package node

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kvmesh/kvmesh/protocol"
)

// BenchmarkMetricsDone is what the metrics add to a client operation:
// one histogram observation (and the clock read of its end).
func BenchmarkMetricsDone(b *testing.B) {
	m := newMetrics(&Node{cfg: Config{ID: "n1"}})
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.done(opIdxPut, outOK, start, time.Now())
		}
	})
}

func TestOutcomeOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{protocol.ErrKeyNotFound, "not_found"},
		{protocol.Errorf(protocol.ErrInvalidKey, "x"), "bad_request"},
		{protocol.ErrInvalidContext, "bad_request"},
		{protocol.ErrMalformed, "bad_request"},
		{protocol.ErrTooManySiblings, "conflict"},
		{protocol.ErrConflict, "conflict"},
		{protocol.ErrValueTooLarge, "too_large"},
		{protocol.Errorf(protocol.ErrQuorumNotReached, "put: 1 of 2"), "quorum_failure"},
		{protocol.ErrOverloaded, "overloaded"},
		{protocol.ErrNodeUnavailable, "unavailable"},
		{protocol.ErrInternal, "internal"},
	} {
		if got := outcomeNames[outcomeOfErr(c.err)]; got != c.want {
			t.Errorf("outcome of %v = %s, want %s", c.err, got, c.want)
		}
	}
}

// TestOverloadRefusalsCounted: an operation refused at admission counts
// in kvmesh_overload_refusals_total{stage="admission"}.
func TestOverloadRefusalsCounted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.Secret, cfg.MaxInflight = "n1", t.TempDir(), []byte("kvmesh test secret 0123456789"), 1
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.admit(); err != nil {
		t.Fatal(err)
	}
	if err := n.admit(); !errors.Is(err, protocol.ErrOverloaded) {
		t.Fatalf("second admission: %v, want overloaded", err)
	}
	if got := testutil.ToFloat64(n.metrics.refusedAdmit); got != 1 {
		t.Errorf("admission refusals = %v, want 1", got)
	}
}
