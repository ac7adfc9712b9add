package node_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
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
				if r == "" {
					diff = fmt.Sprintf("partition %d: no tree yet at %s", p, id)
				} else if first == "" {
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
// deletes while it was down holds them all again with no client traffic,
// filled by its peers' exchanges alone (its own anti-entropy off); a
// replica whose data dir was wiped refills by its own exchanges alone
// (its peers' off). Checked by comparing Merkle roots, then by reading
// the repaired node alone, its peers stopped, with R=1.
func TestAntiEntropyRepairs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts real nodes")
	}
	run := func(t *testing.T, wipe bool, aeOn func(id string) bool) {
		c := startCluster(t, 3, func(cfg *node.Config) {
			cfg.AntiEntropy = -1
			if aeOn(cfg.ID) {
				cfg.AntiEntropy = aeInterval
			}
		})
		ctx := testCtx(t)
		n1 := c.nodes[0]
		c.stopAndWait(2)
		if wipe {
			if err := os.RemoveAll(c.cfgs[2].DataDir); err != nil {
				t.Fatal(err)
			}
		}
		want := missWrites(ctx, t, n1)
		if err := c.start(2); err != nil {
			t.Fatal(err)
		}
		took := c.waitConverged(30 * time.Second)
		t.Logf("converged %v after the restart", took)
		c.checkAlone(t, 2, want)
	}
	t.Run("missed writes pushed by the peers", func(t *testing.T) {
		run(t, false, func(id string) bool { return id != "n3" })
	})
	t.Run("wiped replica pulls", func(t *testing.T) {
		run(t, true, func(id string) bool { return id == "n3" })
	})
}

// missWrites writes through n 300 keys, overwrites 100 and deletes 50,
// with W=2, and returns what each key must read ("": deleted).
func missWrites(ctx context.Context, t *testing.T, n *node.Node) map[string]string {
	t.Helper()
	want := map[string]string{}
	ctxs := map[string]protocol.Clock{}
	for i := range 300 {
		k := fmt.Sprintf("ae-%03d", i)
		cc, err := n.Put(ctx, k, []byte("v1-"+k), nil, 2)
		if err != nil {
			t.Fatal(err)
		}
		want[k], ctxs[k] = "v1-"+k, cc
	}
	for i := range 100 {
		k := fmt.Sprintf("ae-%03d", i)
		if _, err := n.Put(ctx, k, []byte("v2-"+k), ctxs[k], 2); err != nil {
			t.Fatal(err)
		}
		want[k] = "v2-" + k
	}
	for i := 250; i < 300; i++ {
		k := fmt.Sprintf("ae-%03d", i)
		if _, err := n.Delete(ctx, k, ctxs[k], 2); err != nil {
			t.Fatal(err)
		}
		want[k] = ""
	}
	return want
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
}

// TestTombstoneCompaction: tombstones are purged only once every owner
// holds them, so a replica that was down across the delete and the grace
// period does not bring the deleted value back; and a key written again
// after its purge keeps its new value on every replica, also on those
// still holding the purged tombstone (the purge floor).
func TestTombstoneCompaction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real nodes")
	}
	const grace = 300 * time.Millisecond
	// n1 purges; n2 and n3 run no anti-entropy, so they never purge and
	// keep the tombstones n1's rounds push to them. n1's rounds are a
	// second apart: the end of this test needs a moment between two.
	c := startCluster(t, 3, func(cfg *node.Config) {
		cfg.TombstoneGrace = grace
		cfg.AntiEntropy = -1
		if cfg.ID == "n1" {
			cfg.AntiEntropy = time.Second
		}
	})
	ctx := testCtx(t)
	n1 := c.nodes[0]
	var keys []string
	ctxs := map[string]protocol.Clock{}
	for i := range 20 {
		k := fmt.Sprintf("tomb-%02d", i)
		cc, err := n1.Put(ctx, k, []byte("old"), nil, 3)
		if err != nil {
			t.Fatal(err)
		}
		keys, ctxs[k] = append(keys, k), cc
	}
	// n3 keeps the old values: it is down across the deletes.
	c.stopAndWait(2)
	for _, k := range keys {
		if _, err := n1.Delete(ctx, k, ctxs[k], 2); err != nil {
			t.Fatal(err)
		}
	}
	rounds := func() int64 { return n1.Status().AntiEntropy.Rounds }
	for r0 := rounds(); rounds() < r0+5; {
		time.Sleep(20 * time.Millisecond)
	}
	for _, k := range keys {
		if o, _ := n1.Replica(k); o == nil {
			t.Fatalf("n1 purged %s while n3, which lacks its tombstone, was down", k)
		}
	}

	// n3 back: n1's rounds give it the tombstones, then n1 purges.
	if err := c.start(2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, k := range keys {
		for {
			if o, _ := n1.Replica(k); o == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("n1 has not purged %s", k)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// No value came back anywhere: n3, which had the old values, holds
	// the tombstones n1 pushed before purging (no reads here: a read
	// would repair n1).
	if got := n1.Status().AntiEntropy.Purged; got < int64(len(keys)) {
		t.Errorf("status counts %d purged, want >= %d", got, len(keys))
	}
	for _, k := range keys {
		for _, n := range c.nodes[1:] {
			if o, _ := n.Replica(k); o == nil || len(o.Live()) != 0 {
				t.Fatalf("%s holds %v for %s, want its tombstone", n.ID(), o, k)
			}
		}
	}

	// Written again through n1, whose dots for these keys were purged,
	// while n2 and n3, which still hold the tombstones with n1's old
	// counters, are stopped (else n1's next round pulls a tombstone back
	// before the write): the new dot must be above those counters.
	old := map[string]uint64{}
	for _, k := range keys {
		o, _ := c.nodes[1].Replica(k)
		old[k] = o.Clock[0].Counter
	}
	c.stop(1)
	c.stop(2)
	checked := 0
	for _, k := range keys {
		if o, _ := n1.Replica(k); o != nil {
			continue // pulled back before the stop
		}
		if _, err := n1.Put(ctx, k, []byte("new"), nil, 1); err != nil {
			t.Fatal(err)
		}
		o, _ := n1.Replica(k)
		if d := o.Siblings[0].Dot.Counter; d <= old[k] {
			t.Fatalf("%s written again with counter %d, not above the purged tombstone's %d", k, d, old[k])
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("every tombstone was pulled back before n2 and n3 stopped: nothing checked")
	}
	for i := 1; i < 3; i++ {
		if err := c.start(i); err != nil {
			t.Fatal(err)
		}
	}
	c.waitMembers(3)

	for _, k := range keys {
		if _, err := n1.Put(ctx, k, []byte("newer"), nil, 3); err != nil {
			t.Fatal(err)
		}
		obj, err := n1.Get(ctx, k, 3)
		if err != nil || obj == nil || len(obj.Live()) == 0 {
			t.Fatalf("%s written again reads %v, %v", k, obj, err)
		}
	}
}

// BenchmarkAntiEntropyRefill measures how long anti-entropy takes to
// refill a wiped replica of 100k keys of 100 bytes with default settings
// but the interval (make bench-go; not a pass/fail test).
func BenchmarkAntiEntropyRefill(b *testing.B) {
	const keys = 100_000
	for range b.N {
		c := startCluster(b, 3, func(cfg *node.Config) { cfg.AntiEntropy = aeInterval })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		sem := make(chan struct{}, 64)
		errs := make(chan error, 64)
		val := make([]byte, 100)
		for i := range keys {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				if _, err := c.nodes[i%2].Put(ctx, fmt.Sprintf("bench-%06d", i), val, nil, 3); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}()
		}
		for range cap(sem) {
			sem <- struct{}{}
		}
		select {
		case err := <-errs:
			b.Fatal(err)
		default:
		}
		c.stopAndWait(2)
		if err := os.RemoveAll(c.cfgs[2].DataDir); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := c.start(2); err != nil {
			b.Fatal(err)
		}
		took := c.waitConverged(5 * time.Minute)
		total := time.Since(start)
		b.ReportMetric(total.Seconds(), "s/refill")
		b.ReportMetric(keys/total.Seconds(), "keys/s")
		b.Logf("100k keys: converged %v after the start returned, %v after the restart began", took, total)
		cancel()
		c.close()
	}
}

// TestExpiredValuesArePurged: a value written with a TTL is purged from
// every replica once it expired more than the grace period ago and the
// rounds compared its partition with every owner.
func TestExpiredValuesArePurged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real nodes")
	}
	c := startCluster(t, 3, func(cfg *node.Config) {
		cfg.TombstoneGrace = 300 * time.Millisecond
		cfg.AntiEntropy = aeInterval
	})
	ctx := testCtx(t)
	cl := c.client(0)
	if _, err := cl.Put(ctx, "ttl-key", []byte("v"), client.W("all"), client.WithTTL(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if o, _ := c.nodes[1].Replica("ttl-key"); o == nil {
		t.Fatal("the put is not on n2")
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range c.nodes {
		for {
			if o, _ := n.Replica("ttl-key"); o == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still holds the expired value", n.ID())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestStatusBuildsNoTree: a status shows the root of a partition only
// once an exchange built its tree, and builds none itself (a scan of the
// partition, then two digests per write): with anti-entropy off
// everywhere, no root ever shows.
func TestStatusBuildsNoTree(t *testing.T) {
	c := startCluster(t, 3, func(cfg *node.Config) { cfg.AntiEntropy = -1 })
	ctx := testCtx(t)
	for i := range 20 {
		if _, err := c.nodes[0].Put(ctx, fmt.Sprintf("k%d", i), []byte("v"), nil, 3); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // the first status must not have built what the second shows
		for p, byNode := range c.roots() {
			for id, r := range byNode {
				if r != "" {
					t.Fatalf("partition %d at %s: root %s with anti-entropy off", p, id, r)
				}
			}
		}
	}
	if len(c.roots()) == 0 {
		t.Fatal("no partitions in the statuses")
	}
}
