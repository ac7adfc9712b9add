package node_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/node/transport"
)

// TestGossipOverTheTransport: membership gossip crosses the Transport
// seam like replica RPC, so nodes on the in-memory network learn each
// other from announcements alone (each starts knowing only itself), and
// a node cut off by a partition is not heard until the network heals.
func TestGossipOverTheTransport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(1)
		ids := []string{"n1", "n2", "n3"}
		net.Isolate("n3")
		var nodes []*node.Node
		for _, id := range ids {
			cfg := node.DefaultConfig()
			cfg.ID, cfg.DataDir, cfg.RunDir, cfg.Secret = id, t.TempDir(), t.TempDir(), testSecret
			cfg.Transport = net.Endpoint(id)
			cfg.Heartbeat = time.Second
			n, err := node.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			nodes = append(nodes, n)
		}
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
