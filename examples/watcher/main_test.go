package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/examples/internal/devstore"
)

// syncBuffer is a bytes.Buffer safe for the example's goroutine and the
// test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// TestWatcher runs the example against a 3-node store: an order put
// gets its shipping record, a deleted one loses it, and the service
// stops with its context.
func TestWatcher(t *testing.T) {
	url := devstore.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(sctx, url, &out) }()
	c, err := client.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for !strings.Contains(out.String(), "watching") {
		if ctx.Err() != nil {
			t.Fatal("the watcher does not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The watch's interest reaches the other nodes a few ms after it
	// starts: write the order until its shipping record shows.
	var octx string
	for shipped := false; !shipped; {
		if octx, err = c.Put(ctx, "orders.42", []byte(`{"item":"book"}`), client.Context(octx)); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(200 * time.Millisecond); !shipped && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			e, err := c.Get(ctx, "shipping.42")
			shipped = err == nil && string(e.Value()) == `queued: {"item":"book"}`
		}
		if ctx.Err() != nil {
			t.Fatalf("no shipping record; the watcher says %q", out.String())
		}
	}
	if err := c.Delete(ctx, "orders.42"); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := c.Get(ctx, "shipping.42")
		if errors.Is(err, client.ErrKeyNotFound) && strings.Contains(out.String(), "delete order 42") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the shipping record outlives its order; the watcher says %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}
	if s := out.String(); !strings.Contains(s, "put order 42") {
		t.Fatalf("the watcher says %q", s)
	}
}
