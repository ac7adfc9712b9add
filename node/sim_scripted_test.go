package node_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestSimDotReuseAfterCrashBeforeCommit is a scripted simulation of one
// crash the random seeds rarely hit: a coordinator fans a write out to
// the other owners from inside its store transaction (node/write.go,
// writeOp.merge) and crashes before its own commit. Its disk then lacks
// the dot it issued while another replica holds it, and after the
// restart it issues the same dot again for a different write (Riak's
// KV679). A replica whose clock already covers the dot, through a later
// write that saw the first one, drops the second write as already seen:
// an acknowledged write is lost.
//
// The crash is exact: the store files of A are captured before the write
// and put back after it, which is what A's disk holds if it crashes after
// the fan-out and before its commit; the client never hears back.
//
// Regression test: the node now takes a new incarnation (a new actor in
// clocks) after an unclean stop (node/incarnation.go).
func TestSimDotReuseAfterCrashBeforeCommit(t *testing.T) {
	simScripted(t, func(t *testing.T, r *simRun, ctx func() context.Context) {
		const key = "k"
		owners := r.node(r.ids[0]).Owners(key)
		a, b, c := owners[0], owners[1], owners[2]

		// 1. A's disk before the write X.
		before, err := simSnapshot(r.dbPath(a))
		if err != nil {
			t.Fatal(err)
		}
		// 2. X, coordinated by A with C cut off, reaches B; A crashes
		// before its commit (its disk goes back to step 1) and the client
		// gets no answer.
		r.net.Isolate(c)
		if _, err := r.node(a).Put(ctx(), key, []byte("x"), nil, 2); err != nil {
			t.Fatalf("put x: %v", err)
		}
		r.crashTo(a, before)
		r.net.Heal()

		// 3. Z, written at B with a context that saw X, is stored on B
		// only (B is cut off; the write fails for the client).
		r.net.Isolate(b)
		obj, err := r.node(b).Get(ctx(), key, 1)
		if err != nil || len(obj.Live()) != 1 {
			t.Fatalf("read at b: %v %s", err, simObject(obj))
		}
		if _, err := r.node(b).Put(ctx(), key, []byte("z"), obj.Clock, 2); err == nil {
			t.Fatal("put z reached a quorum with b cut off")
		}

		// 4. A restarts; Y is read-modify-written through A and C, which
		// have never seen X or Z, and is acknowledged.
		r.restart(a)
		obj, err = r.node(a).Get(ctx(), key, 2)
		if err != nil {
			t.Fatalf("read at a: %v", err)
		}
		var cctx protocol.Clock
		if obj != nil {
			cctx = obj.Clock
		}
		yctx, err := r.node(a).Put(ctx(), key, []byte("y"), cctx, 2)
		if err != nil {
			t.Fatalf("put y: %v", err)
		}

		// 5. Heal and read everything: Y was acknowledged and must be
		// there, as a sibling of Z.
		r.net.Heal()
		time.Sleep(time.Second)
		final, err := r.node(c).Get(ctx(), key, 3)
		if err != nil {
			t.Fatalf("final read: %v", err)
		}
		if !slices.Contains(simLive(final), "y") {
			t.Errorf("acknowledged put y (context %s) lost: the final read is %s; A reissued the dot of x, which z's clock covers",
				simClock(yctx), simObject(final))
		}
	})
}

// TestSimDuplicatedForwardIsTwoWrites is a scripted simulation of what
// the random seeds find now and then as a P3 violation: a put sent to a
// node that is not an owner is forwarded to an owner (RPCCoordinate), and
// when that request is delivered twice the owner coordinates two writes,
// with two dots, of the same blind put. The client gets the context of
// one; a delete with it supersedes that one only, and the value stays
// live although the delete was acknowledged. Replica reads and writes
// are idempotent; the forwarded coordination is not (notes/reliability.md
// section 3 asks for idempotent RPC).
//
// Regression test: owners now deduplicate forwarded writes by sender and
// tag (node/dedup.go).
func TestSimDuplicatedForwardIsTwoWrites(t *testing.T) {
	simScripted(t, func(t *testing.T, r *simRun, ctx func() context.Context) {
		const key = "d"
		owners := r.node(r.ids[0]).Owners(key)
		var via string
		for _, id := range r.ids {
			if !slices.Contains(owners, id) {
				via = id
				break
			}
		}
		r.net.SetFaults(transport.MemFaults{Duplicate: 1})
		clock, err := r.node(via).Put(ctx(), key, []byte("v"), nil, 2)
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		time.Sleep(time.Second)
		r.net.SetFaults(transport.MemFaults{})
		if _, err := r.node(via).Delete(ctx(), key, clock, 2); err != nil {
			t.Fatalf("delete: %v", err)
		}
		time.Sleep(time.Second)
		final, err := r.node(owners[0]).Get(ctx(), key, 3)
		if err != nil {
			t.Fatalf("final read: %v", err)
		}
		if live := simLive(final); len(live) > 0 {
			t.Errorf("put via %s (context %s) then acknowledged delete with that context; the final read still has %q: %s",
				via, simClock(clock), live, simObject(final))
		}
	})
}

// simScripted runs a scripted scenario on five fresh nodes in a bubble.
// ctx gives a context bounded by the client timeout.
func simScripted(t *testing.T, f func(t *testing.T, r *simRun, ctx func() context.Context)) {
	base := simTempDir(t)
	synctest.Test(t, func(t *testing.T) {
		r := newSimRun(t, simConfig{seed: 1, hotKeys: 1}, base)
		defer r.closeAll()
		for _, id := range r.ids {
			if err := r.startNode(id); err != nil {
				t.Fatal(err)
			}
		}
		f(t, r, func() context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), simOpTimeout)
			t.Cleanup(cancel)
			return ctx
		})
	})
}

func (r *simRun) node(id string) simNodeAPI {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes[id].n
}

// simNodeAPI is the part of a node the scripted scenarios use.
type simNodeAPI interface {
	simAPI
	Owners(key string) []string
}

// crashTo crashes id and leaves its store files as given: what the disk
// holds if the process dies at the moment that state was captured.
func (r *simRun) crashTo(id string, disk simDisk) {
	r.mu.Lock()
	sn := r.nodes[id]
	sn.up = false
	sn.epoch++
	r.mu.Unlock()
	_ = sn.ep.Close()
	_ = sn.n.Close()
	if err := disk.restore(r.dbPath(id)); err != nil {
		r.t.Fatalf("crash %s: restore: %v", id, err)
	}
	r.trace.add("crash %s to an earlier disk state", id)
}
