// Package devstore starts a 3-node kvmesh store in the calling process,
// on free loopback ports with its data in temp dirs, for the examples'
// tests: each example runs against a real store, as `kvmesh dev` gives.
package devstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/internal/freeport"
	"github.com/kvmesh/kvmesh/node"
)

// Start starts the store, stopped at the test's cleanup, and returns the
// nodes' client URLs, comma-separated (client.Connect picks one).
func Start(t *testing.T) string {
	t.Helper()
	ports := freeport.MustTake(t, 3)
	var peers, urls []string
	for _, p := range ports {
		peers = append(peers, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, len(ports))
	nodes := make([]*node.Node, len(ports))
	for i, p := range ports {
		cfg := node.DefaultConfig()
		cfg.ID = fmt.Sprintf("n%d", i+1)
		cfg.DataDir, cfg.RunDir = t.TempDir(), t.TempDir()
		cfg.Secret = []byte("kvmesh examples secret 0123456789")
		cfg.Listen, cfg.Cluster, cfg.Peers = "127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", p), peers
		n, err := node.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		t.Cleanup(func() { _ = n.Close() })
		go func() { errs <- n.Start(ctx) }()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		for len(n.Heard()) < len(nodes) {
			if ctx.Err() != nil {
				t.Fatalf("%s hears %v", n.ID(), n.Heard())
			}
			time.Sleep(10 * time.Millisecond)
		}
		urls = append(urls, n.ClientURL())
	}
	return strings.Join(urls, ",")
}
