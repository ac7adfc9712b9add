package node_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/protocol"
)

// aeInterval is the tests' anti-entropy interval: short, so that a repair
// shows in a few seconds.
const aeInterval = 300 * time.Millisecond

// roots returns, per partition, the tree roots of its owners among the
// running nodes: node id -> root.
func (c *testCluster) roots() map[int]map[string]string {
	out := map[int]map[string]string{}
	for _, n := range c.running() {
		st := n.Status()
		if st.AntiEntropy == nil {
			continue
		}
		for _, p := range st.AntiEntropy.Partitions {
			if out[p.P] == nil {
				out[p.P] = map[string]string{}
			}
			out[p.P][n.ID()] = p.Root
		}
	}
	return out
}

// waitConverged waits until the owners of every partition among the
// running nodes hold identical records (equal Merkle roots in their
// statuses), or fails after limit. It returns how long that took.
func (c *testCluster) waitConverged(limit time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	for {
		diff := ""
		for p, byNode := range c.roots() {
			first := ""
			for id, r := range byNode {
				if first == "" {
					first = r
				} else if r != first {
					diff = fmt.Sprintf("partition %d: roots %v (%s)", p, byNode, id)
				}
			}
		}
		if diff == "" {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			c.t.Fatalf("not converged after %v: %s", limit, diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAntiEntropyRepairs: a replica that missed writes, overwrites and
// deletes while it was down, and then one whose data dir was wiped, hold
// every acknowledged write again with no client traffic: the first filled
// by its peers' exchanges alone (its own anti-entropy off), the second by
// its own alone (its peers' off). Checked by comparing Merkle roots, then
// by reading the repaired node alone, its peers stopped, with R=1.
func TestAntiEntropyRepairs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts real nodes")
	}
	c := startCluster(t, 3, func(cfg *node.Config) {
		cfg.AntiEntropy = aeInterval
		if cfg.ID == "n3" {
			cfg.AntiEntropy = -1
		}
	})
	ctx := testCtx(t)
	n1 := c.nodes[0]

	// n3 misses 300 puts, 100 overwrites and 50 deletes.
	c.stopAndWait(2)
	want := map[string]string{} // "" for deleted
	for i := range 300 {
		k := fmt.Sprintf("ae-%03d", i)
		if _, err := n1.Put(ctx, k, []byte("v1-"+k), nil, 2); err != nil {
			t.Fatal(err)
		}
		want[k] = "v1-" + k
	}
	for i := range 100 {
		k := fmt.Sprintf("ae-%03d", i)
		obj, err := n1.Get(ctx, k, 2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n1.Put(ctx, k, []byte("v2-"+k), obj.Clock, 2); err != nil {
			t.Fatal(err)
		}
		want[k] = "v2-" + k
	}
	for i := 250; i < 300; i++ {
		k := fmt.Sprintf("ae-%03d", i)
		if _, err := n1.Delete(ctx, k, nil, 2); err != nil {
			t.Fatal(err)
		}
		want[k] = ""
	}
	if err := c.start(2); err != nil {
		t.Fatal(err)
	}
	took := c.waitConverged(30 * time.Second)
	t.Logf("missed writes: converged %v after restart (pushed by the peers)", took)
	c.checkAlone(t, 2, want)

	// n3's data dir is lost; its peers' anti-entropy is off, its own on.
	for i := range 2 {
		c.stop(i)
		c.cfgs[i].AntiEntropy = -1
		if err := c.start(i); err != nil {
			t.Fatal(err)
		}
	}
	c.waitMembers(3)
	c.stopAndWait(2)
	if err := os.RemoveAll(c.cfgs[2].DataDir); err != nil {
		t.Fatal(err)
	}
	c.cfgs[2].AntiEntropy = aeInterval
	if err := c.start(2); err != nil {
		t.Fatal(err)
	}
	c.waitMembers(3)
	took = c.waitConverged(30 * time.Second)
	t.Logf("wiped: converged %v after restart (pulled by the node)", took)
	c.checkAlone(t, 2, want)
}

// checkAlone stops every node but i, then reads each key of want from i
// alone with R=1: the value, or not found for "".
func (c *testCluster) checkAlone(t *testing.T, i int, want map[string]string) {
	t.Helper()
	for j := range c.nodes {
		if j != i {
			c.stop(j)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := c.nodes[i]
	for k, v := range want {
		obj, err := n.Get(ctx, k, 1)
		if err != nil {
			t.Fatalf("%s alone: get %s: %v", n.ID(), k, err)
		}
		var live []protocol.Sibling
		if obj != nil {
			live = obj.Live()
		}
		switch {
		case v == "" && len(live) != 0:
			t.Errorf("%s alone: %s was deleted, reads %q", n.ID(), k, live[0].Value)
		case v != "" && (len(live) != 1 || string(live[0].Value) != v):
			t.Errorf("%s alone: %s reads %v, want %q", n.ID(), k, live, v)
		}
	}
	// Restart the others for what follows.
	for j := range c.nodes {
		if j != i {
			if err := c.start(j); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.waitMembers(len(c.nodes))
}
