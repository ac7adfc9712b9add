package node_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/freeport"
	"github.com/kvmesh/kvmesh/node"
)

// testCluster is a store of real nodes in this process: embedded NATS
// servers on free loopback ports, bbolt files in temp dirs.
type testCluster struct {
	t     testing.TB
	mu    sync.Mutex // guards nodes and cfgs against running (a load's goroutines)
	nodes []*node.Node
	cfgs  []node.Config
}

// testSecret is the store secret of the tests' clusters.
var testSecret = []byte("kvmesh test secret 0123456789")

func startCluster(t testing.TB, size int, mutate ...func(*node.Config)) *testCluster {
	t.Helper()
	ports := freeport.MustTake(t, size)
	var peers []string
	for _, p := range ports {
		peers = append(peers, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	c := &testCluster{t: t}
	for i := 0; i < size; i++ {
		cfg := node.DefaultConfig()
		cfg.ID = fmt.Sprintf("n%d", i+1)
		cfg.DataDir = t.TempDir()
		cfg.RunDir = t.TempDir()
		cfg.Secret = testSecret
		cfg.Listen = "127.0.0.1:0"
		cfg.Cluster = fmt.Sprintf("127.0.0.1:%d", ports[i])
		cfg.Peers = peers
		cfg.PeerWait = 10 * time.Second
		cfg.RequestTimeout = 2 * time.Second
		cfg.Heartbeat = 200 * time.Millisecond
		for _, m := range mutate {
			m(&cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	c.nodes = make([]*node.Node, size)
	errs := make(chan error, size)
	for i := range c.cfgs {
		go func(i int) { errs <- c.start(i) }(i)
	}
	for range c.cfgs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.close)
	c.waitMembers(size)
	return c
}

func (c *testCluster) start(i int) error {
	n, err := node.New(c.cfgs[i])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		return fmt.Errorf("start %s: %w", c.cfgs[i].ID, err)
	}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
	return nil
}

// stop closes node i (a clean stop; e2e tests kill -9).
func (c *testCluster) stop(i int) {
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		if err := n.Close(); err != nil {
			c.t.Errorf("close %s: %v", c.cfgs[i].ID, err)
		}
	}
}

// stopAndWait stops node i and waits until every other running node's
// server has dropped its routes to it, so NATS routes no request to it.
func (c *testCluster) stopAndWait(i int) {
	c.t.Helper()
	c.stop(i)
	id := c.cfgs[i].ID
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range c.nodes {
		for n != nil && slices.Contains(n.ConnectedPeers(), id) {
			if time.Now().After(deadline) {
				c.t.Fatalf("%s still routes to stopped %s", n.ID(), id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func (c *testCluster) close() {
	for i := range c.nodes {
		c.stop(i)
	}
}

// waitMembers waits until every running node knows size members.
func (c *testCluster) waitMembers(size int) {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range c.nodes {
		for n != nil && (len(n.Members()) < size || len(n.Heard()) < size) {
			if time.Now().After(deadline) {
				c.t.Fatalf("%s knows members %v, want %d", n.ID(), n.Members(), size)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// client returns a client connected to node i over TCP.
func (c *testCluster) client(i int, opts ...client.Option) *client.Client {
	c.t.Helper()
	cl, err := client.Connect(c.nodes[i].ClientURL(), opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
