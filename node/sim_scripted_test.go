package node_test

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmesh/kvmesh/internal/history"
	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestSimDotReuseAfterCrashBeforeCommit is a scripted simulation of one
// crash the random seeds rarely hit: a coordinator A sends a write X to
// the other owners and loses power before X is on its own disk. Its disk
// then lacks the dot it issued while another replica holds it, and if
// after the restart it issued the same dot again for a different write
// Y (Riak's KV679), a replica whose clock already covers the dot, through
// a later write Z that saw X, would drop Y as already seen: an
// acknowledged write lost.
//
// Power lost exactly there is modelled by A's disk lying about its syncs
// while X is written: X is acknowledged (by A's page cache and by B) and
// gone from A after the power loss.
//
// Regression test: a node that cannot prove its page cache survived (the
// boot changed) takes a new actor (node/identity.go). The same steps with
// a kill -9 instead keep the actor: the page cache holds X.
func TestSimDotReuseAfterCrashBeforeCommit(t *testing.T) {
	for _, power := range []bool{true, false} {
		t.Run(map[bool]string{true: "power loss", false: "kill -9"}[power], func(t *testing.T) {
			simScripted(t, func(t *testing.T, r *simRun, ctx func() context.Context) {
				const key = "k"
				owners := r.node(r.ids[0]).Owners(key)
				a, b, c := owners[0], owners[1], owners[2]
				actor := r.nodes[a].n.Actor()

				// 1. X, coordinated by A with C cut off, reaches B; A's
				// syncs do nothing, then A crashes.
				r.net.Isolate(c)
				if power {
					r.nodes[a].disk.SetFault(disk.Fault{Lie: func(disk.SyncKind, string) bool { return true }})
				}
				if _, err := r.node(a).Put(ctx(), key, []byte("x"), nil, 2); err != nil {
					t.Fatalf("put x: %v", err)
				}
				r.crash(power, a)
				r.nodes[a].disk.SetFault(disk.Fault{})
				r.net.Heal()

				// 2. Z, written at B with a context that saw X, is stored on
				// B only (B is cut off; the write fails for the client).
				r.net.Isolate(b)
				obj, err := r.node(b).Get(ctx(), key, 1)
				if err != nil || len(obj.Live()) != 1 {
					t.Fatalf("read at b: %v %s", err, history.ObjectString(obj))
				}
				if _, err := r.node(b).Put(ctx(), key, []byte("z"), obj.Clock, 2); err == nil {
					t.Fatal("put z reached a quorum with b cut off")
				}

				// 3. A restarts; Y is read-modify-written through A and C,
				// and is acknowledged.
				r.restart(a)
				if kept := r.nodes[a].n.Actor() == actor; kept == power {
					t.Fatalf("after a %s A's actor is %s (was %s)", map[bool]string{true: "power loss", false: "kill -9"}[power], r.nodes[a].n.Actor(), actor)
				}
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

				// 4. Heal and read everything: Y was acknowledged and must
				// be there.
				r.net.Heal()
				time.Sleep(time.Second)
				final, err := r.node(c).Get(ctx(), key, 3)
				if err != nil {
					t.Fatalf("final read: %v", err)
				}
				if !slices.Contains(simLive(final), "y") {
					t.Errorf("acknowledged put y (context %s) lost: the final read is %s; A reissued the dot of x, which z's clock covers",
						history.ClockString(yctx), history.ObjectString(final))
				}
			})
		})
	}
}

// TestSimWipedOwnerDoesNotReplaceAcknowledged is finding 1 of issue 15: a
// W=3 put of "first"; its owner's data dir wiped and the node restarted
// under the same id; a blind put of "second" through it with W=2. The
// wiped node used to issue the dot of "first" again, and the R=3 read
// returned only "second", on every replica. It writes under a new actor
// now, so the blind put is a sibling.
func TestSimWipedOwnerDoesNotReplaceAcknowledged(t *testing.T) {
	simScripted(t, func(t *testing.T, r *simRun, ctx func() context.Context) {
		const key = "w"
		a := r.node(r.ids[0]).Owners(key)[0]
		if _, err := r.node(a).Put(ctx(), key, []byte("first"), nil, 3); err != nil {
			t.Fatalf("put first: %v", err)
		}
		before := r.nodes[a].n.Actor()
		r.wipe(a)
		r.restart(a)
		if r.nodes[a].n.Actor() == before {
			t.Fatalf("the wiped node kept its actor %s", before)
		}
		if _, err := r.node(a).Put(ctx(), key, []byte("second"), nil, 2); err != nil {
			t.Fatalf("put second: %v", err)
		}
		final, err := r.node(a).Get(ctx(), key, 3)
		if err != nil {
			t.Fatalf("final read: %v", err)
		}
		if live := simLive(final); !slices.Contains(live, "first") || !slices.Contains(live, "second") {
			t.Fatalf("after a wipe and a blind put the R=3 read is %s: the acknowledged first was replaced", history.ObjectString(final))
		}
	})
}

// TestSimFailedSyncTaintsTheActor is the remaining KV679 case: a write
// whose record reached the coordinator's log file and the other owners,
// but whose local sync failed. The page cache may then have dropped it
// (disk.Sim does, at random), so the next start on the same boot must not
// trust it: the failure marks the run record and the node takes a new
// actor. Its store refuses writes meanwhile, and writes sent to it are
// coordinated by the other owners.
func TestSimFailedSyncTaintsTheActor(t *testing.T) {
	for seed := range int64(4) {
		simScriptedSeed(t, seed, func(t *testing.T, r *simRun, ctx func() context.Context) {
			const key = "t"
			a := r.node(r.ids[0]).Owners(key)[0]
			before := r.nodes[a].n.Actor()
			r.nodes[a].disk.SetFault(disk.Fault{SyncErr: syscall.EIO})
			// x reaches the other owners, which acknowledge it; A's own
			// sync fails.
			if _, err := r.node(a).Put(ctx(), key, []byte("x"), nil, 2); err != nil {
				t.Fatalf("put x: %v", err)
			}
			// x may be acknowledged by the others before A's sync fails.
			for deadline := time.Now().Add(10 * time.Second); r.nodes[a].n.StoreError() == nil; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the store of A did not fail")
				}
			}
			// A broken store forwards what it would have coordinated.
			if _, err := r.node(a).Put(ctx(), "t2", []byte("v"), nil, 2); err != nil {
				t.Fatalf("put through a node whose store failed: %v", err)
			}
			r.crash(false, a) // the operator restarts it, disk mended, same boot
			r.nodes[a].disk.SetFault(disk.Fault{})
			r.restart(a)
			if r.nodes[a].n.Actor() == before {
				t.Fatalf("after a failed sync A kept its actor %s", before)
			}
			if _, err := r.node(a).Put(ctx(), key, []byte("y"), nil, 2); err != nil {
				t.Fatalf("put y: %v", err)
			}
			final, err := r.node(a).Get(ctx(), key, 3)
			if err != nil {
				t.Fatalf("final read: %v", err)
			}
			if live := simLive(final); !slices.Contains(live, "x") || !slices.Contains(live, "y") {
				t.Fatalf("seed %d: after a failed sync and a restart the R=3 read is %s, want x and y", seed, history.ObjectString(final))
			}
		})
	}
}

// TestSimNothingLeavesBeforeTheLog: a write whose record cannot be
// written to the coordinator's own log goes nowhere, so no replica holds
// a dot that the coordinator's log lacks (what lets a node keep its actor
// across a kill -9).
func TestSimNothingLeavesBeforeTheLog(t *testing.T) {
	simScripted(t, func(t *testing.T, r *simRun, ctx func() context.Context) {
		const key = "l"
		owners := r.node(r.ids[0]).Owners(key)
		r.nodes[owners[0]].disk.SetFault(disk.Fault{WriteErr: syscall.EIO})
		if _, err := r.node(owners[0]).Put(ctx(), key, []byte("x"), nil, 2); err == nil {
			t.Fatal("a put whose coordinator could not log it was acknowledged")
		}
		time.Sleep(time.Second)
		for _, o := range owners[1:] {
			if obj, err := r.nodes[o].n.Replica(key); err != nil || obj != nil {
				t.Fatalf("%s holds %s (%v) of a write its coordinator never logged", o, history.ObjectString(obj), err)
			}
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
				via, history.ClockString(clock), live, history.ObjectString(final))
		}
	})
}

// simScripted runs a scripted scenario on five fresh nodes in a bubble.
// ctx gives a context bounded by the client timeout.
func simScripted(t *testing.T, f func(t *testing.T, r *simRun, ctx func() context.Context)) {
	simScriptedSeed(t, 1, f)
}

// simScriptedSeed is simScripted with the seed of the simulated disks.
func simScriptedSeed(t *testing.T, seed int64, f func(t *testing.T, r *simRun, ctx func() context.Context)) {
	base := simTempDir(t)
	synctest.Test(t, func(t *testing.T) {
		r := newSimRun(t, simConfig{seed: seed, hotKeys: 1}, base)
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

// TestSimHotKeyThroughCrashLoop: a hot key written while its coordinator
// crash-loops 500 times (a kill -9 and a power loss in turn, each power
// loss a new actor in the key's clock) stays writable, its clock stays
// within protocol.MaxClockEntries, and its replicas converge. It used to
// become unwritable once its clock reached 256 entries (a 400 that blamed
// the client), and merges past that were refused.
func TestSimHotKeyThroughCrashLoop(t *testing.T) {
	loops := 500
	if testing.Short() {
		loops = 100
	}
	simScripted(t, func(t *testing.T, r *simRun, ctx func() context.Context) {
		const key = "hot"
		owners := r.node(r.ids[0]).Owners(key)
		a, b := owners[0], owners[1]
		actors := map[string]bool{}
		var cctx protocol.Clock
		for i := range loops {
			v := []byte(fmt.Sprint("v", i))
			clock, err := r.node(a).Put(ctx(), key, v, cctx, 2)
			if err != nil {
				t.Fatalf("loop %d: put through the crash-looping coordinator: %v", i, err)
			}
			cctx = clock
			actors[r.nodes[a].n.Actor()] = true
			if i%10 == 0 { // a concurrent writer elsewhere
				if _, err := r.node(b).Put(ctx(), key, []byte(fmt.Sprint("b", i)), nil, 2); err != nil {
					t.Fatalf("loop %d: put through %s: %v", i, b, err)
				}
			}
			r.crash(i%2 == 1, a)
			r.restart(a)
			if i%50 == 49 { // a reader that collapses the siblings
				obj, err := r.node(b).Get(ctx(), key, 3)
				if err != nil {
					t.Fatalf("loop %d: read: %v", i, err)
				}
				cctx = obj.Clock
			}
		}
		if len(actors) < loops/2 {
			t.Fatalf("only %d actors in %d crashes: the power losses did not take new ones", len(actors), loops)
		}
		final, err := r.node(a).Get(ctx(), key, 3)
		if err != nil {
			t.Fatalf("final read: %v", err)
		}
		if len(final.Clock) > protocol.MaxClockEntries {
			t.Fatalf("clock has %d entries", len(final.Clock))
		}
		if _, err := r.node(a).Put(ctx(), key, []byte("last"), final.Clock, 3); err != nil {
			t.Fatalf("put after the loop: %v", err)
		}
		var first *protocol.Object
		for _, o := range owners {
			obj, err := r.nodes[o].n.Replica(key)
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = obj
			} else if !version.Equal(first, obj) {
				t.Fatalf("replicas of %s differ after the loop:\n%s\n%s", key, history.ObjectString(first), history.ObjectString(obj))
			}
		}
		if live := simLive(first); len(live) != 1 || live[0] != "last" {
			t.Fatalf("after the loop the key holds %q", live)
		}
		t.Logf("%d crashes, %d actors, final clock %d entries", loops, len(actors), len(first.Clock))
	})
}
