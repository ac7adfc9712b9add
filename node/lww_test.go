package node_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/node/clock"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Last-writer-wins mode (Config.Conflicts "lww", issue 18), in a synctest
// bubble over the in-memory transport.

// skewed is the real clock (the bubble's inside one) off by d.
type skewed struct {
	clock.Real
	d time.Duration
}

func (s skewed) Now() time.Time { return time.Now().Add(s.d) }

// lww sets a node config to last-writer-wins.
func lww(cfg *node.Config) { cfg.Conflicts = "lww" }

// TestLWWConcurrentWritesLeaveOneValue: writes of a key made while the
// three replicas are cut off from each other, at the same instant, leave
// in last-writer-wins mode one value on every replica once the network
// heals, the same everywhere (the largest time, then dot): by
// anti-entropy alone, or at once in a read of every replica, which
// repairs them. The clocks still merge, so a put with a read's context
// supersedes the value. In the default mode the same writes are three
// siblings.
func TestLWWConcurrentWritesLeaveOneValue(t *testing.T) {
	for _, mode := range []string{"lww", "siblings"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := startMemStore(t, 3, func(cfg *node.Config) { cfg.Conflicts = mode })
				keys := []string{"read.at.once", "left.to.anti-entropy"}
				s.net.Partition([]string{"n1"}, []string{"n2"}, []string{"n3"})
				written := map[string][]protocol.Sibling{}
				for _, key := range keys {
					for i := range s.nodes {
						if r := s.call(i, protocol.ClientItem{Op: protocol.BatchPut, Key: key, Value: []byte{'a' + byte(i)}, Quorum: "1"}); r.Error() != nil {
							t.Fatalf("put at n%d: %v", i+1, r.Error())
						}
						written[key] = append(written[key], s.replica(i, key).Siblings...)
					}
				}
				s.net.Heal()
				// A read of every replica merges them by the mode.
				r := s.call(0, protocol.ClientItem{Op: protocol.BatchGet, Key: keys[0], Quorum: "all"})
				want, _ := version.Winner(written[keys[0]])
				if mode == "lww" && (r.Siblings != 1 || string(r.Values[0]) != string(want.Value)) {
					t.Fatalf("an R=all read: %+v, want the one value %q", r, want.Value)
				}
				if mode == "siblings" && r.Siblings != 3 {
					t.Fatalf("an R=all read: %+v, want 3 values", r)
				}
				time.Sleep(time.Minute) // read repair, anti-entropy rounds
				synctest.Wait()

				for _, key := range keys {
					want, _ := version.Winner(written[key])
					first := s.replica(0, key)
					for i := range s.nodes {
						o := s.replica(i, key)
						if !version.Equal(o, first) {
							t.Fatalf("%s: n%d holds %+v, n1 %+v", key, i+1, o, first)
						}
						if mode == "siblings" {
							if len(o.Siblings) != 3 || s.readAlone(i, key).Siblings != 3 {
								t.Fatalf("%s: siblings mode: n%d holds %+v", key, i+1, o)
							}
							continue
						}
						if len(o.Siblings) != 1 || len(o.Clock) != 3 || string(o.Siblings[0].Value) != string(want.Value) {
							t.Fatalf("%s: n%d holds %+v: want the one value %q under the clock of all three writes", key, i+1, o, want.Value)
						}
						if r := s.readAlone(i, key); r.Error() != nil || r.Siblings != 1 || string(r.Values[0]) != string(want.Value) {
							t.Fatalf("%s: n%d reads %+v, want the one value %q", key, i+1, r, want.Value)
						}
					}
				}
				if mode == "siblings" {
					return
				}

				// The context of a read supersedes the winner; a blind
				// write later in time replaces it too, and a delete
				// deletes.
				key := keys[0]
				g := s.call(1, protocol.ClientItem{Op: protocol.BatchGet, Key: key, Quorum: "all"})
				if r := s.call(2, protocol.ClientItem{Op: protocol.BatchPut, Key: key, Value: []byte("merged"), Quorum: "all", Context: g.Context}); r.Error() != nil {
					t.Fatal(r.Error())
				}
				if r := s.call(0, protocol.ClientItem{Op: protocol.BatchGet, Key: key, Quorum: "all"}); r.Siblings != 1 || string(r.Values[0]) != "merged" {
					t.Fatalf("after a put with the context: %+v", r)
				}
				if r := s.call(0, protocol.ClientItem{Op: protocol.BatchPut, Key: key, Value: []byte("blind"), Quorum: "all"}); r.Error() != nil {
					t.Fatal(r.Error())
				}
				if r := s.call(1, protocol.ClientItem{Op: protocol.BatchGet, Key: key, Quorum: "all"}); r.Siblings != 1 || string(r.Values[0]) != "blind" {
					t.Fatalf("after a blind put: %+v", r)
				}
				if r := s.call(2, protocol.ClientItem{Op: protocol.BatchDel, Key: key, Quorum: "all"}); r.Error() != nil {
					t.Fatal(r.Error())
				}
				for i := range s.nodes {
					if r := s.readAlone(i, key); !errors.Is(r.Error(), protocol.ErrKeyNotFound) {
						t.Fatalf("n%d after the delete: %+v", i+1, r)
					}
				}
			})
		})
	}
}

// TestLWWLaterWriteWins: a write that comes after another wins in
// last-writer-wins mode even when its coordinator's clock is an hour
// behind the first one's: the hybrid logical clock stamps it past the
// time of the value it holds. Blind, with no context, so that only the
// timestamps decide.
func TestLWWLaterWriteWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startMemStore(t, 3, lww, func(cfg *node.Config) {
			if cfg.ID == "n1" {
				cfg.Clock = skewed{d: -time.Hour}
			}
		})
		put := func(i int, key, value string) {
			t.Helper()
			r := s.call(i, protocol.ClientItem{Op: protocol.BatchPut, Key: key, Value: []byte(value), Quorum: "all"})
			if r.Error() != nil {
				t.Fatalf("put %s=%s at n%d: %v", key, value, i+1, r.Error())
			}
			// One value is left, so the put's context covers everything
			// the key holds: a write with it supersedes the key whole.
			ctx, err := simContextKey.Open(key, r.Context)
			if o := s.replica(i, key); err != nil || !slices.Equal(ctx, o.Clock) {
				t.Fatalf("put %s=%s at n%d: context %v (%v), the replica's clock %v", key, value, i+1, ctx, err, o.Clock)
			}
		}
		for round := range 5 {
			key := "k" + string(rune('0'+round))
			put(1, key, "first") // n2: the real time
			time.Sleep(time.Millisecond)
			put(0, key, "later") // n1: an hour behind
			for i := range s.nodes {
				r := s.readAlone(i, key)
				if r.Siblings != 1 || string(r.Values[0]) != "later" {
					t.Fatalf("n%d reads %+v, want the later write", i+1, r)
				}
			}
			put(2, key, "last") // n3: the real time again
			if r := s.readAlone(0, key); r.Siblings != 1 || string(r.Values[0]) != "last" {
				t.Fatalf("n1 reads %+v, want the last write", r)
			}
		}
	})
}

// TestLWWDeleteAfterWhatItRead: a delete without context, coordinated by
// a node an hour behind whose replica missed the value, reads the value
// from the others first and deletes it: the node's clock has seen the
// value's time in the read, and stamps the tombstone past it.
func TestLWWDeleteAfterWhatItRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startMemStore(t, 3, lww, func(cfg *node.Config) {
			if cfg.ID == "n1" {
				cfg.Clock = skewed{d: -time.Hour}
			}
			cfg.AntiEntropy = -1 // n1 stays without the value until the delete
		})
		for round := range 5 {
			key := "k" + string(rune('0'+round))
			s.net.Isolate("n1")
			if r := s.call(1, protocol.ClientItem{Op: protocol.BatchPut, Key: key, Value: []byte("v"), Quorum: "2"}); r.Error() != nil {
				t.Fatal(r.Error())
			}
			s.net.Heal()
			if o := s.replica(0, key); o != nil {
				t.Fatalf("n1 holds %+v", o)
			}
			if r := s.call(0, protocol.ClientItem{Op: protocol.BatchDel, Key: key, Quorum: "all"}); r.Error() != nil {
				t.Fatal(r.Error())
			}
			for i := range s.nodes {
				if r := s.readAlone(i, key); !errors.Is(r.Error(), protocol.ErrKeyNotFound) {
					t.Fatalf("n%d after the delete: %+v", i+1, r)
				}
			}
		}
	})
}

// TestConflictsMustMatch: a node's status says its mode, and a node
// whose peers' heartbeats show another mode lists them, as both sides
// see it; a bad mode is a config error.
func TestConflictsMustMatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startMemStore(t, 3, func(cfg *node.Config) {
			if cfg.ID != "n3" {
				cfg.Conflicts = "lww"
			}
		})
		time.Sleep(3 * time.Second) // heartbeats
		synctest.Wait()
		for i, want := range [][]string{{"n3=siblings"}, {"n3=siblings"}, {"n1=lww", "n2=lww"}} {
			st := s.nodes[i].Status()
			if mode := map[bool]string{true: "siblings", false: "lww"}[i == 2]; st.Conflicts != mode {
				t.Errorf("n%d: status mode %q, want %q", i+1, st.Conflicts, mode)
			}
			if !slices.Equal(st.OtherConflicts, want) {
				t.Errorf("n%d: other modes %v, want %v", i+1, st.OtherConflicts, want)
			}
		}
		// n3 restarted in the store's mode is no longer listed.
		s.stop(2)
		s.cfgs[2].Conflicts = "lww"
		s.start(2)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		for i := range s.nodes {
			if st := s.nodes[i].Status(); len(st.OtherConflicts) != 0 || st.Conflicts != "lww" {
				t.Errorf("n%d after the fix: %q, others %v", i+1, st.Conflicts, st.OtherConflicts)
			}
		}
	})
	cfg := node.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.Secret, cfg.Conflicts = "n1", t.TempDir(), testSecret, "newest"
	if _, err := node.New(cfg); err == nil || !strings.Contains(err.Error(), "conflicts") {
		t.Fatalf("a bad mode: %v", err)
	}
}
