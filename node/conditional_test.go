package node_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestPutIfAbsentRace: many goroutines race put-if-absent on one key
// through all three coordinators, round after round; exactly one wins
// each round, the others get a ConflictError with the key's context,
// and the key holds the winner's value alone.
func TestPutIfAbsentRace(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	clients := []*client.Client{c.client(0), c.client(1), c.client(2)}
	const racers, rounds = 24, 25
	for round := range rounds {
		key := fmt.Sprintf("race.%d", round)
		var wins atomic.Int32
		var winner atomic.Value
		var wg sync.WaitGroup
		errs := make(chan error, racers)
		for g := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := strconv.Itoa(g)
				_, err := clients[g%3].Put(ctx, key, []byte(v), client.IfAbsent())
				var ce *client.ConflictError
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(v)
				case errors.As(err, &ce) && errors.Is(err, client.ErrConflict) && ce.Context != "" && ce.Key == key:
				default:
					errs <- fmt.Errorf("racer %d: %w", g, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d winners", round, wins.Load())
		}
		e, err := clients[round%3].Get(ctx, key, client.R("all"))
		if err != nil || e.Siblings != 1 || string(e.Value()) != winner.Load() {
			t.Fatalf("round %d: the key holds %q (%v), want the winner's %q alone", round, e.Values, err, winner.Load())
		}
	}
}

// TestPutIfVersion: a put or delete with the context of the key's last
// write succeeds; one with a stale context gets 409 with the current
// context, with which it then succeeds; a counter incremented by
// compare-and-set from many goroutines on three coordinators loses no
// increment. Over raw NATS, Kvmesh-If works the same and bad uses are
// 400.
func TestPutIfVersion(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	cl := c.client(0)
	ctx1, err := cl.Put(ctx, "cas", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx2, err := c.client(1).Put(ctx, "cas", []byte("2"), client.IfVersion(ctx1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.client(2).Put(ctx, "cas", []byte("stale"), client.IfVersion(ctx1))
	var ce *client.ConflictError
	if !errors.As(err, &ce) || ce.Context != ctx2 {
		t.Fatalf("put with a stale context: %v, want a conflict with the current context %q", err, ctx2)
	}
	if err := cl.Delete(ctx, "cas", client.IfVersion(ctx1)); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("delete with a stale context: %v", err)
	}
	ctx3, err := c.client(2).Put(ctx, "cas", []byte("3"), client.IfVersion(ce.Context))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := cl.Get(ctx, "cas", client.R("all")); err != nil || string(e.Value()) != "3" || e.Siblings != 1 {
		t.Fatalf("after the compare-and-sets: %+v %v", e, err)
	}
	if err := cl.Delete(ctx, "cas", client.IfVersion(ctx3)); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Get(ctx, "cas"); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatalf("after the conditional delete: %v", err)
	}
	// An empty context: only for a key never written.
	if _, err := cl.Put(ctx, "cas", []byte("x"), client.IfVersion("")); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("empty context on a written key: %v", err)
	}
	if _, err := cl.Put(ctx, "cas.new", []byte("x"), client.IfVersion("")); err != nil {
		t.Fatalf("empty context on a new key: %v", err)
	}

	// A counter: read, add one, write if the version still matches.
	const workers, increments = 12, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c.client(g % 3)
			for range increments {
				for {
					var n int
					var cur string
					e, err := cl.Get(ctx, "counter")
					switch {
					case errors.Is(err, client.ErrKeyNotFound):
						cur = e.Context
					case err != nil:
						errs <- err
						return
					default:
						n, _ = strconv.Atoi(string(e.Value()))
						cur = e.Context
					}
					_, err = cl.Put(ctx, "counter", []byte(strconv.Itoa(n+1)), client.IfVersion(cur))
					if err == nil {
						break
					}
					if !errors.Is(err, client.ErrConflict) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if e, err := cl.Get(ctx, "counter", client.R("all")); err != nil || string(e.Value()) != strconv.Itoa(workers*increments) {
		t.Fatalf("counter: %q %v, want %d", e.Values, err, workers*increments)
	}

	// Raw NATS.
	nc, err := nats.Connect(c.nodes[1].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	raw := func(subject, cond, data string) *nats.Msg {
		t.Helper()
		m, err := nc.RequestMsg(&nats.Msg{Subject: subject, Header: nats.Header{protocol.HdrIf: {cond}}, Data: []byte(data)}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := raw("kvmesh.kv.put.raw.lock", "absent", "me"); m.Header.Get(protocol.HdrServiceErrorCode) != "" || m.Header.Get(protocol.HdrContext) == "" {
		t.Fatalf("raw put if absent: %v", m.Header)
	}
	m := raw("kvmesh.kv.put.raw.lock", "absent", "you")
	if m.Header.Get(protocol.HdrServiceErrorCode) != "409" || m.Header.Get(protocol.HdrError) != "conflict" || m.Header.Get(protocol.HdrContext) == "" {
		t.Fatalf("raw put if absent, lost: %v", m.Header)
	}
	for _, bad := range []struct{ subject, cond string }{
		{"kvmesh.kv.put.raw.lock", "maybe"}, {"kvmesh.kv.del.raw.lock", "absent"}, {"kvmesh.kv.get.raw.lock", "version"},
	} {
		if m := raw(bad.subject, bad.cond, ""); m.Header.Get(protocol.HdrServiceErrorCode) != "400" {
			t.Errorf("%s with %s: %s: %v, want 400", bad.subject, protocol.HdrIf, bad.cond, m.Header)
		}
	}
	if e, err := cl.Get(ctx, "raw.lock", client.R("all")); err != nil || string(e.Value()) != "me" || e.Siblings != 1 {
		t.Fatalf("raw.lock: %q %v", e.Values, err)
	}
}

// TestLockFromPutIfAbsent: a lock made of put-if-absent with a TTL and a
// delete-if-version to release it: goroutines on three coordinators
// take turns, never two inside at once; a holder that never releases
// loses the lock when its TTL passes.
func TestLockFromPutIfAbsent(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	acquire := func(ctx context.Context, cl *client.Client, me string, ttl time.Duration) (string, error) {
		for {
			lctx, err := cl.Put(ctx, "lock", []byte(me), client.IfAbsent(), client.WithTTL(ttl))
			if !errors.Is(err, client.ErrConflict) {
				return lctx, err
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	const workers, turns = 9, 3
	var inside, taken atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c.client(g % 3)
			for range turns {
				lctx, err := acquire(ctx, cl, strconv.Itoa(g), 10*time.Second)
				if err != nil {
					errs <- err
					return
				}
				if n := inside.Add(1); n != 1 {
					errs <- fmt.Errorf("%d holders at once", n)
				}
				taken.Add(1)
				inside.Add(-1)
				if err := cl.Delete(ctx, "lock", client.IfVersion(lctx)); err != nil {
					errs <- fmt.Errorf("release: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if taken.Load() != workers*turns {
		t.Fatalf("lock taken %d times, want %d", taken.Load(), workers*turns)
	}

	// A holder that dies: its lock frees itself after the TTL.
	start := time.Now()
	if _, err := acquire(ctx, c.client(0), "dead", 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client(1).Put(ctx, "lock", []byte("next"), client.IfAbsent()); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("lock taken while held: %v", err)
	}
	if _, err := acquire(ctx, c.client(2), "next", time.Minute); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("lock taken %v after it was, before its TTL", d)
	}
}
