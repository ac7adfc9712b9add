package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/examples/internal/devstore"
)

// TestLock runs the example against a 3-node store: five workers, three
// turns each, under the lock: no increment is lost.
func TestLock(t *testing.T) {
	url := devstore.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, url, 5, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "counter: 15\n" {
		t.Fatalf("the example printed %q, want counter: 15", out.String())
	}
}
