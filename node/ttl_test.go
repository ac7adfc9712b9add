package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/node/merkle"
	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Per-key TTLs (issue 18): a put's expiry is fixed once, by its
// coordinator, and stored in the sibling, so every replica decides
// "expired" alike without a message. These tests run in a synctest
// bubble over the in-memory transport: time is the bubble's, moved by
// time.Sleep to the nanosecond, so expiry is tested at its boundary
// without waiting.

// memStore is a store of nodes on the in-memory network that a test can
// stop and restart on their data dirs. It must be used inside a synctest
// bubble (node clocks read the bubble's time).
type memStore struct {
	t     *testing.T
	net   *transport.MemNetwork
	cfgs  []node.Config
	nodes []*node.Node
}

// startMemStore starts n nodes n1..n<n> that know each other, N=3.
func startMemStore(t *testing.T, n int, mutate ...func(*node.Config)) *memStore {
	t.Helper()
	s := &memStore{t: t, net: transport.NewMemNetwork(1), nodes: make([]*node.Node, n)}
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("n%d", i+1))
	}
	for _, id := range ids {
		cfg := node.DefaultConfig()
		cfg.ID, cfg.DataDir, cfg.RunDir, cfg.Secret = id, t.TempDir(), t.TempDir(), testSecret
		cfg.Members, cfg.Heartbeat = ids, time.Second
		for _, m := range mutate {
			m(&cfg)
		}
		s.cfgs = append(s.cfgs, cfg)
	}
	for i := range s.cfgs {
		s.start(i)
	}
	t.Cleanup(func() {
		for i := range s.nodes {
			s.stop(i)
		}
	})
	return s
}

// start starts node i on its data dir, with a fresh endpoint.
func (s *memStore) start(i int) {
	s.t.Helper()
	cfg := s.cfgs[i]
	cfg.Transport = s.net.Endpoint(cfg.ID)
	n, err := node.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	s.nodes[i] = n
}

// stop closes node i (a clean stop).
func (s *memStore) stop(i int) {
	if n := s.nodes[i]; n != nil {
		s.nodes[i] = nil
		if err := n.Close(); err != nil {
			s.t.Errorf("close %s: %v", n.ID(), err)
		}
	}
}

// call runs it through node i's client API (Node.Call).
func (s *memStore) call(i int, it protocol.ClientItem) protocol.ClientResult {
	s.t.Helper()
	r, err := s.nodes[i].Call(context.Background(), it)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// index returns the index of the node with id.
func (s *memStore) index(id string) int {
	return slices.IndexFunc(s.cfgs, func(c node.Config) bool { return c.ID == id })
}

// replica is node i's own object of key.
func (s *memStore) replica(i int, key string) *protocol.Object {
	s.t.Helper()
	o, err := s.nodes[i].Replica(key)
	if err != nil {
		s.t.Fatal(err)
	}
	return o
}

// readAlone reads key at node i with R=1: the coordinator asks its own
// replica first, so the answer is that replica's alone.
func (s *memStore) readAlone(i int, key string) protocol.ClientResult {
	s.t.Helper()
	return s.call(i, protocol.ClientItem{Op: protocol.BatchGet, Key: key, Quorum: "1"})
}

// TestTTLExpiresOnEveryReplica: a put with a TTL, coordinated by a node
// that is no owner of the key (so the TTL crosses the RPC), reads back
// until its expiry and as not found from that nanosecond on, at every
// replica read alone; every replica holds the same sibling, whose expiry
// is the write's time plus the TTL. A later put with the read's context
// and no TTL clears the expiry for good.
func TestTTLExpiresOnEveryReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startMemStore(t, 4)
		const key = "session.42"
		owners := s.nodes[0].Owners(key)
		var coord int
		for coord = range s.nodes {
			if !slices.Contains(owners, s.cfgs[coord].ID) {
				break
			}
		}
		start := time.Now()
		put := s.call(coord, protocol.ClientItem{Op: protocol.BatchPut, Key: key, Value: []byte("v1"), Quorum: "all", TTL: "10s"})
		if err := put.Error(); err != nil {
			t.Fatalf("put with a TTL: %v", err)
		}
		expires := start.Add(10 * time.Second).UnixNano()

		var first *protocol.Object
		for _, id := range owners {
			i := s.index(id)
			o := s.replica(i, key)
			if o == nil || len(o.Siblings) != 1 || o.Siblings[0].Expires != expires || o.Siblings[0].Time != start.UnixNano() {
				t.Fatalf("%s holds %+v, want one sibling written at %d expiring at %d", id, o, start.UnixNano(), expires)
			}
			if first == nil {
				first = o
			} else if !version.Equal(first, o) || merkle.Digest(key, first) != merkle.Digest(key, o) {
				t.Fatalf("%s holds %+v, another owner %+v", id, o, first)
			}
		}

		// Just before the expiry every replica still has the value, and
		// says when it expires.
		time.Sleep(10*time.Second - time.Nanosecond)
		for _, id := range owners {
			r := s.readAlone(s.index(id), key)
			if r.Error() != nil || string(r.Values[0]) != "v1" || r.Expires != expires {
				t.Fatalf("%s a nanosecond before the expiry: %+v", id, r)
			}
		}
		// At the expiry every replica reads it as not found, with the
		// context that supersedes it; nothing was written to get there.
		time.Sleep(time.Nanosecond)
		var ctx string
		for _, id := range owners {
			i := s.index(id)
			r := s.readAlone(i, key)
			if !errors.Is(r.Error(), protocol.ErrKeyNotFound) || r.Context == "" {
				t.Fatalf("%s at the expiry: %+v, want not found with a context", id, r)
			}
			ctx = r.Context
			if o := s.replica(i, key); !version.Equal(o, first) || len(o.LiveAt(time.Now().UnixNano())) != 0 {
				t.Fatalf("%s holds %+v at the expiry", id, o)
			}
		}
		for i := range s.nodes { // whichever node coordinates
			if r := s.call(i, protocol.ClientItem{Op: protocol.BatchGet, Key: key, Quorum: "all"}); !errors.Is(r.Error(), protocol.ErrKeyNotFound) {
				t.Fatalf("R=all read at %s: %+v", s.cfgs[i].ID, r)
			}
		}
		// A delete without context finds nothing to delete.
		if r := s.call(coord, protocol.ClientItem{Op: protocol.BatchDel, Key: key, Quorum: "all"}); r.Error() != nil {
			t.Fatalf("delete of an expired key: %+v", r)
		}
		if o := s.replica(s.index(owners[0]), key); !version.Equal(o, first) {
			t.Fatalf("the delete of an expired key wrote %+v", o)
		}

		// A put with the read's context and no TTL supersedes the
		// expired value and never expires.
		if r := s.call(coord, protocol.ClientItem{Op: protocol.BatchPut, Key: key, Value: []byte("v2"), Quorum: "all", Context: ctx}); r.Error() != nil {
			t.Fatalf("put after the expiry: %+v", r)
		}
		time.Sleep(10 * time.Minute)
		for _, id := range owners {
			i := s.index(id)
			r := s.readAlone(i, key)
			if r.Error() != nil || r.Siblings != 1 || string(r.Values[0]) != "v2" || r.Expires != 0 {
				t.Fatalf("%s ten minutes after a put without TTL: %+v", id, r)
			}
			if o := s.replica(i, key); len(o.Siblings) != 1 || o.Siblings[0].Expires != 0 {
				t.Fatalf("%s holds %+v", id, o)
			}
		}
	})
}

// TestTTLPutWithoutTTLClearsIt: a put that supersedes an expiring value
// before its expiry (with the context of a read) keeps its value past
// the old expiry; a blind put is concurrent with it and only its own
// value stays once the other expires.
func TestTTLPutWithoutTTLClearsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startMemStore(t, 3)
		put := func(key, value, ttl, ctx string) {
			t.Helper()
			if r := s.call(0, protocol.ClientItem{Op: protocol.BatchPut, Key: key, Value: []byte(value), Quorum: "all", TTL: ttl, Context: ctx}); r.Error() != nil {
				t.Fatalf("put %s=%s: %+v", key, value, r)
			}
		}
		get := func(i int, key string) protocol.ClientResult {
			t.Helper()
			return s.call(i, protocol.ClientItem{Op: protocol.BatchGet, Key: key, Quorum: "all"})
		}
		put("a", "short", "1m", "")
		put("b", "short", "1m", "")
		time.Sleep(30 * time.Second)
		put("a", "kept", "", get(1, "a").Context)
		put("b", "blind", "", "")
		if r := get(2, "b"); r.Siblings != 2 || r.Expires != 0 {
			t.Fatalf("b before the expiry: %+v, want both values and no expiry", r)
		}
		time.Sleep(time.Minute)
		for i := range s.nodes {
			if r := get(i, "a"); r.Error() != nil || r.Siblings != 1 || string(r.Values[0]) != "kept" || r.Expires != 0 {
				t.Fatalf("a at %d after the old expiry: %+v", i, r)
			}
			if r := get(i, "b"); r.Error() != nil || r.Siblings != 1 || string(r.Values[0]) != "blind" {
				t.Fatalf("b at %d after the expiry: %+v", i, r)
			}
		}
		// A shorter TTL replaces a longer one, and the latest expiry of
		// concurrent expiring values is the key's.
		put("c", "long", "1h", "")
		put("c", "short", "1s", get(0, "c").Context)
		put("d", "x", "1h", "")
		put("d", "y", "2h", "")
		time.Sleep(time.Second)
		if r := get(1, "c"); !errors.Is(r.Error(), protocol.ErrKeyNotFound) {
			t.Fatalf("c after its new, shorter TTL: %+v", r)
		}
		if r := get(1, "d"); r.Siblings != 2 || r.Expires != time.Now().Add(2*time.Hour-time.Second).UnixNano() {
			t.Fatalf("d: %+v, want two values expiring with the later", r)
		}
	})
}

// TestTTLReplicaDownAcrossTheExpiry: a replica that was stopped before
// the expiry and restarted after it decides alone, from what it stored,
// that the key has expired; a replica that was down when the write came
// gets the expiring record after the expiry, by anti-entropy with no
// client traffic, or by the read repair of a read of every replica, and
// agrees too, rather than bringing anything back.
func TestTTLReplicaDownAcrossTheExpiry(t *testing.T) {
	for _, repair := range []string{"anti-entropy", "read repair"} {
		t.Run(repair, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := startMemStore(t, 3, func(cfg *node.Config) {
					if repair != "anti-entropy" {
						cfg.AntiEntropy = -1
					}
				})
				if r := s.call(0, protocol.ClientItem{Op: protocol.BatchPut, Key: "held", Value: []byte("v"), Quorum: "all", TTL: "10s"}); r.Error() != nil {
					t.Fatal(r.Error())
				}
				s.stop(2)
				if r := s.call(0, protocol.ClientItem{Op: protocol.BatchPut, Key: "missed", Value: []byte("v"), Quorum: "2", TTL: "10s"}); r.Error() != nil {
					t.Fatal(r.Error())
				}
				time.Sleep(time.Minute)
				s.net.Isolate("n3")
				s.start(2)

				// Alone (cut off from its peers), n3 reads "held" as
				// expired from its own record, the same as n1's.
				if r := s.readAlone(2, "held"); !errors.Is(r.Error(), protocol.ErrKeyNotFound) {
					t.Fatalf("n3 alone after a restart across the expiry: %+v", r)
				}
				if a, b := s.replica(0, "held"), s.replica(2, "held"); !version.Equal(a, b) || a.Siblings[0].Expires == 0 {
					t.Fatalf("n1 holds %+v, n3 %+v", a, b)
				}
				if o := s.replica(2, "missed"); o != nil {
					t.Fatalf("n3 holds %+v of a write it missed", o)
				}
				s.net.Heal()

				if repair == "anti-entropy" {
					time.Sleep(time.Minute) // a few rounds
				} else if r := s.call(0, protocol.ClientItem{Op: protocol.BatchGet, Key: "missed", Quorum: "all"}); !errors.Is(r.Error(), protocol.ErrKeyNotFound) {
					t.Fatalf("missed, read everywhere: %+v", r)
				}
				synctest.Wait() // the repair is sent and stored
				a, b := s.replica(0, "missed"), s.replica(2, "missed")
				if b == nil || !version.Equal(a, b) || merkle.Digest("missed", a) != merkle.Digest("missed", b) {
					t.Fatalf("after the %s n1 holds %+v, n3 %+v", repair, a, b)
				}
				s.net.Isolate("n3")
				if r := s.readAlone(2, "missed"); !errors.Is(r.Error(), protocol.ErrKeyNotFound) {
					t.Fatalf("n3 alone after the %s: %+v", repair, r)
				}
			})
		})
	}
}

// TestTTLRefusedWritesNothing: a bad TTL, or a TTL on a get or a delete,
// is a 400 and nothing is written anywhere.
func TestTTLRefusedWritesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startMemStore(t, 3)
		for _, ttl := range []string{"0", "0s", "-5s", "1d", "abc", "87601h", "315360001", " 30s"} {
			r := s.call(0, protocol.ClientItem{Op: protocol.BatchPut, Key: "k", Value: []byte("v"), TTL: ttl})
			if !errors.Is(r.Error(), protocol.ErrInvalidOption) {
				t.Errorf("ttl %q: %+v, want ErrInvalidOption", ttl, r)
			}
		}
		for _, op := range []uint8{protocol.BatchGet, protocol.BatchDel} {
			if r := s.call(0, protocol.ClientItem{Op: op, Key: "k", TTL: "30s"}); !errors.Is(r.Error(), protocol.ErrInvalidOption) {
				t.Errorf("op %d with a ttl: %+v, want ErrInvalidOption", op, r)
			}
		}
		synctest.Wait()
		for i := range s.nodes {
			if o := s.replica(i, "k"); o != nil {
				t.Fatalf("n%d holds %+v after refused writes", i+1, o)
			}
		}
	})
}
