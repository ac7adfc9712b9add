package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
)

func isNotFound(err error) bool { return errors.Is(err, client.ErrKeyNotFound) }

// TestKill9LosesNoAcknowledgedWrite is the foundation's promise: 1,000
// keys written with W=2 survive a kill -9 of one node (read with R=2 from
// the other two), and the killed node, restarted on its data dir, answers
// every key with R=all.
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	c := startProcCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := c.client(c.procs[0])
	waitServing(ctx, t, cl, "all")

	const keys = 1000
	want := make(map[string]string, keys)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	sem := make(chan struct{}, 16)
	for i := 0; i < keys; i++ {
		key, val := fmt.Sprintf("acct.%04d", i), fmt.Sprintf("balance-%d", i*7)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := cl.Put(ctx, key, []byte(val), client.W("2")); err != nil {
				errs <- fmt.Errorf("put %s: %w", key, err)
				return
			}
			mu.Lock()
			want[key] = val
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err) // with all nodes up every write must be acknowledged
	}

	victim := c.procs[2]
	c.kill(victim)
	survivor := c.client(c.procs[1])
	checkAll(ctx, t, survivor, want, "2")

	c.restart(victim)
	back := c.client(victim)
	waitServing(ctx, t, back, "all")
	checkAll(ctx, t, back, want, "all")
}

// checkAll reads every key with read quorum r and fails on any missing or
// different value.
func checkAll(ctx context.Context, t *testing.T, cl *client.Client, want map[string]string, r string) {
	t.Helper()
	lost := 0
	for key, val := range want {
		e, err := cl.Get(ctx, key, client.R(r))
		switch {
		case err != nil:
			lost++
			if lost < 10 {
				t.Errorf("get %s r=%s: %v", key, r, err)
			}
		case e.Siblings != 1 || string(e.Value()) != val:
			lost++
			if lost < 10 {
				t.Errorf("get %s r=%s: %q (%d siblings), want %q", key, r, e.Values, e.Siblings, val)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged writes not read back with r=%s", lost, len(want), r)
	}
}
