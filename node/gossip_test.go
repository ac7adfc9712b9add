package node_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/protocol"
)

// startMemNodes starts nodes ids on net, heartbeating every second of
// (fake) time; with members set each knows the others from the start,
// else only itself. The test's cleanup closes them.
func startMemNodes(t *testing.T, net *transport.MemNetwork, ids []string, members bool) []*node.Node {
	t.Helper()
	var nodes []*node.Node
	for _, id := range ids {
		cfg := node.DefaultConfig()
		cfg.ID, cfg.DataDir, cfg.RunDir, cfg.Secret = id, t.TempDir(), t.TempDir(), testSecret
		cfg.Transport, cfg.Heartbeat = net.Endpoint(id), time.Second
		if members {
			cfg.Members = ids
		}
		n, err := node.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	return nodes
}

// TestGossipOverTheTransport: membership gossip crosses the Transport
// seam like replica RPC, so nodes on the in-memory network learn each
// other from announcements alone (each starts knowing only itself), and
// a node cut off by a partition is not heard until the network heals.
func TestGossipOverTheTransport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(1)
		ids := []string{"n1", "n2", "n3"}
		net.Isolate("n3")
		nodes := startMemNodes(t, net, ids, false)
		time.Sleep(3 * time.Second) // fake time: three heartbeats
		synctest.Wait()
		for _, n := range nodes[:2] {
			if got := n.Members(); !slices.Equal(got, []string{"n1", "n2"}) {
				t.Fatalf("%s knows %v, want n1 and n2 (n3 is cut off)", n.ID(), got)
			}
		}
		if got := nodes[0].Heard(); !slices.Equal(got, []string{"n1", "n2"}) {
			t.Fatalf("n1 heard %v", got)
		}
		net.Heal()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		for _, n := range nodes {
			if got := n.Members(); !slices.Equal(got, ids) {
				t.Fatalf("after the heal %s knows %v", n.ID(), got)
			}
			if got := n.Heard(); !slices.Equal(got, ids) {
				t.Fatalf("after the heal %s heard %v", n.ID(), got)
			}
		}
		if net.Stats().Publications == 0 {
			t.Fatal("no publication crossed the network")
		}
	})
}

// TestCallIsTheClientAPI: Call, the client API for callers in this
// process, seals and opens contexts like the NATS API: a put's context
// supersedes the put, and a context of another key is refused.
func TestCallIsTheClientAPI(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nodes := startMemNodes(t, transport.NewMemNetwork(1), []string{"n1", "n2", "n3"}, true)
		ctx := context.Background()
		call := func(n *node.Node, it protocol.ClientItem) protocol.ClientResult {
			t.Helper()
			r, err := n.Call(ctx, it)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		r := call(nodes[0], protocol.ClientItem{Tag: 7, Op: protocol.BatchPut, Key: "k", Value: []byte("a")})
		if r.Error() != nil || r.Context == "" || r.Tag != 7 {
			t.Fatalf("put: %+v", r)
		}
		if r := call(nodes[1], protocol.ClientItem{Op: protocol.BatchPut, Key: "k", Value: []byte("b"), Context: r.Context}); r.Error() != nil {
			t.Fatalf("put with the context: %+v", r)
		}
		g := call(nodes[2], protocol.ClientItem{Op: protocol.BatchGet, Key: "k", Quorum: "all"})
		if g.Error() != nil || g.Siblings != 1 || string(g.Values[0]) != "b" {
			t.Fatalf("get: %+v", g)
		}
		if r := call(nodes[0], protocol.ClientItem{Op: protocol.BatchPut, Key: "other", Value: []byte("x"), Context: g.Context}); !errors.Is(r.Error(), protocol.ErrInvalidContext) {
			t.Fatalf("a context of another key: %+v", r)
		}
	})
}

// TestFailureDetectorOverGossip: a peer cut off is suspected after three
// silent heartbeats and down after ten, as the node's status says; while
// it is down, reads ask the live owners first and still answer; healed,
// it is alive again at its next heartbeat.
func TestFailureDetectorOverGossip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(1)
		nodes := startMemNodes(t, net, []string{"n1", "n2", "n3"}, true)
		ctx := context.Background()
		if _, err := nodes[0].Put(ctx, "k", []byte("v"), nil, 3); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if st := nodes[0].Status(); len(st.Alive) != 3 || len(st.Suspect)+len(st.Down) != 0 {
			t.Fatalf("all up: %+v", st)
		}
		net.Isolate("n3")
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if st := nodes[0].Status(); !slices.Equal(st.Suspect, []string{"n3"}) || slices.Contains(st.Alive, "n3") {
			t.Fatalf("after 4 silent seconds: alive %v, suspect %v, down %v", st.Alive, st.Suspect, st.Down)
		}
		time.Sleep(8 * time.Second)
		synctest.Wait()
		if st := nodes[0].Status(); !slices.Equal(st.Down, []string{"n3"}) || len(st.Suspect) != 0 {
			t.Fatalf("after 12 silent seconds: suspect %v, down %v", st.Suspect, st.Down)
		}
		// A read at n3's peers asks the live owners first: no wait on n3.
		start := time.Now()
		if obj, err := nodes[1].Get(ctx, "k", 2); err != nil || len(obj.Live()) != 1 {
			t.Fatalf("read with n3 down: %v %v", obj, err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("the read waited %v (fake time) on the down owner", d)
		}
		net.Heal()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if st := nodes[0].Status(); len(st.Alive) != 3 || len(st.Down) != 0 {
			t.Fatalf("after the heal: alive %v, down %v", st.Alive, st.Down)
		}
	})
}
