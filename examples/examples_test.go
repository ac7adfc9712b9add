// Package examples_test builds every example program and runs it against
// a real 3-node store in this process, so that `make test` keeps the
// examples working: each must exit 0 and print what its comment says.
package examples_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/internal/freeport"
	"github.com/kvmesh/kvmesh/node"
)

// startStore runs a 3-node store on free ports and returns a client URL
// of each node; the test's cleanup stops it.
func startStore(t *testing.T) []string {
	t.Helper()
	ports, err := freeport.Take(3)
	if err != nil {
		t.Fatal(err)
	}
	var peers []string
	for _, p := range ports {
		peers = append(peers, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	nodes := make([]*node.Node, len(ports))
	var wg sync.WaitGroup
	errs := make([]error, len(ports))
	for i := range ports {
		cfg := node.DefaultConfig()
		cfg.ID = fmt.Sprintf("n%d", i+1)
		cfg.DataDir, cfg.RunDir = t.TempDir(), t.TempDir()
		cfg.Secret = []byte("kvmesh examples test secret")
		cfg.Listen, cfg.Cluster, cfg.Peers = "127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", ports[i]), peers
		cfg.Heartbeat = 200 * time.Millisecond
		n, err := node.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		t.Cleanup(func() { n.Close() })
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errs[i] = n.Start(ctx)
		})
	}
	wg.Wait()
	var urls []string
	for i, n := range nodes {
		if errs[i] != nil {
			t.Fatalf("start n%d: %v", i+1, errs[i])
		}
		urls = append(urls, n.ClientURL())
	}
	return urls
}

// build compiles the example in dir into the test's temp dir.
func build(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(dir))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./"+dir).CombinedOutput(); err != nil {
		t.Fatalf("go build ./%s: %v\n%s", dir, err, out)
	}
	return bin
}

func TestExamples(t *testing.T) {
	urls := startStore(t)
	for _, ex := range []struct {
		dir  string
		want []string // lines of its output, in order
	}{
		{"cart", []string{
			`cart: {"items":["book"]}`,
			"added pen to the version read",
			"added lamp to the version read",
			`siblings: 2, merged: {"items":["book","lamp","pen"]}`,
			`after the write-back: siblings: 1, cart: {"items":["book","lamp","pen"]}`,
		}},
	} {
		t.Run(ex.dir, func(t *testing.T) {
			bin := build(t, ex.dir)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--server", strings.Join(urls, ","))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", ex.dir, err, out)
			}
			rest := string(out)
			for _, line := range ex.want {
				i := strings.Index(rest, line+"\n")
				if i < 0 {
					t.Fatalf("%s: no line %q in order in its output:\n%s", ex.dir, line, out)
				}
				rest = rest[i+len(line)+1:]
			}
		})
	}
}
