package node_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/node/transport"
)

// TestAutoRemove: with AutoRemoveAfter set, the chores owner (the lowest
// id up and heard, the same on every node) removes a member silent that
// long: the others copy its partitions from the remaining replicas, its
// record ends left, and every key reads with R=all from the three left.
func TestAutoRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(1)
		ids := []string{"n1", "n2", "n3", "n4"}
		var nodes []*node.Node
		for _, id := range ids {
			cfg := node.DefaultConfig()
			cfg.ID, cfg.DataDir, cfg.RunDir, cfg.Secret = id, t.TempDir(), t.TempDir(), testSecret
			cfg.Transport, cfg.Heartbeat, cfg.AutoRemoveAfter = net.Endpoint(id), time.Second, 30*time.Second
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
		time.Sleep(3 * time.Second)
		synctest.Wait()
		ctx := context.Background()
		var keys []string
		for i := range 200 {
			key := fmt.Sprint("k", i)
			if _, err := nodes[i%4].Put(ctx, key, []byte(key), nil, 3); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, key)
		}
		for _, n := range nodes {
			if st := n.Status(); st.Chores != "n1" {
				t.Fatalf("%s sees %q own the chores, want n1", n.ID(), st.Chores)
			}
		}
		net.Isolate("n4")
		time.Sleep(20 * time.Second) // down, not yet removed
		synctest.Wait()
		if r := recordOf(nodes[0], "n4"); r != "up" {
			t.Fatalf("n4 is %s after 20 s of silence, want up (auto-remove after 30 s)", r)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		for _, n := range nodes[:3] {
			if r := recordOf(n, "n4"); r != "left" || !slices.Equal(n.Members(), ids[:3]) {
				t.Fatalf("%s: n4 %s, members %v", n.ID(), r, n.Members())
			}
		}
		for _, key := range keys {
			obj, err := nodes[1].Get(ctx, key, 3)
			if err != nil || obj == nil || string(obj.Live()[0].Value) != key {
				t.Fatalf("R=all read of %s: %v %v", key, obj, err)
			}
		}
	})
}

// recordOf returns the status of member id's record as n holds it.
func recordOf(n *node.Node, id string) string {
	for _, r := range n.MemberRecords() {
		if r.ID == id {
			return r.Status.String()
		}
	}
	return "none"
}
