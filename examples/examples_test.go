// Package examples_test builds every example program and runs it against
// a real 3-node store in this process, so that `make test` keeps the
// examples working: each must exit 0 and print what its comment says.
package examples_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/freeport"
	"github.com/kvmesh/kvmesh/internal/natscli"
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
	// Every node knows and has heard the others: a listing needs a
	// quorum of owners of every partition in the ring it serves from.
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range nodes {
		for len(n.Members()) < len(nodes) || len(n.Heard()) < len(nodes) {
			if time.Now().After(deadline) {
				t.Fatalf("%s knows members %v, heard %v", n.ID(), n.Members(), n.Heard())
			}
			time.Sleep(10 * time.Millisecond)
		}
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
		{"lock", []string{"counter: 15"}}, // five workers, three turns each: no increment lost
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

// syncBuffer collects a process's output; safe for the exec copier and
// the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWatcherExample runs the watcher, a service that runs until
// interrupted, and drives it: an order put gets its shipping record, a
// deleted one loses it, and an interrupt stops it cleanly.
func TestWatcherExample(t *testing.T) {
	urls := startStore(t)
	bin := build(t, "watcher")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out syncBuffer
	cmd := exec.CommandContext(ctx, bin, "--server", strings.Join(urls, ","))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error // set before exited closes
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	poll := func(what string, done func() bool) {
		t.Helper()
		for !done() {
			select {
			case <-exited:
				t.Fatalf("the watcher exited (%v) before %s:\n%s", waitErr, what, out.String())
			case <-ctx.Done():
				t.Fatalf("no %s; the watcher says:\n%s", what, out.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	poll("start", func() bool { return strings.Contains(out.String(), "watching orders.>") })
	c, err := client.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The watch's interest reaches the other nodes a few ms after it
	// starts: write the order (superseding itself) until it is shipped.
	var octx string
	tries := 0
	poll("shipping record", func() bool {
		if tries%10 == 0 {
			if octx, err = c.Put(ctx, "orders.42", []byte(`{"item":"book"}`), client.Context(octx)); err != nil {
				t.Fatal(err)
			}
		}
		tries++
		e, err := c.Get(ctx, "shipping.42")
		return err == nil && string(e.Value()) == `queued: {"item":"book"}`
	})
	if err := c.Delete(ctx, "orders.42"); err != nil {
		t.Fatal(err)
	}
	poll("cancelled shipment", func() bool {
		_, err := c.Get(ctx, "shipping.42")
		return errors.Is(err, client.ErrKeyNotFound) && strings.Contains(out.String(), "delete order 42")
	})
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("the watcher exited with %v on an interrupt:\n%s", waitErr, out.String())
		}
	case <-ctx.Done():
		t.Fatal("the watcher does not stop on an interrupt")
	}
}

// natsCLI finds the stock nats CLI (natscli.Find).
func natsCLI(t *testing.T) string { return natscli.Find(t) }

// TestNatsCLISession runs nats-cli/session.sh with the stock nats CLI
// against a store and compares what it prints with nats-cli/session.out
// (KVMESH_UPDATE_EXAMPLES=1 rewrites that file).
func TestNatsCLISession(t *testing.T) {
	nats := natsCLI(t)
	urls := startStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "nats-cli/session.sh")
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "NATS="+nats, "NATS_URL="+urls[1], "HOME="+home, "XDG_CONFIG_HOME="+home)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("session.sh: %v\n%s\n%s", err, out, stderr)
	}
	if os.Getenv("KVMESH_UPDATE_EXAMPLES") != "" {
		if err := os.WriteFile("nats-cli/session.out", out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("nats-cli/session.out")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(want) {
		t.Fatalf("session.sh printed:\n%s\nwant (nats-cli/session.out):\n%s", out, want)
	}
}
