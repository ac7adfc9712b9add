// Command lock shows a distributed lock made of kvmesh's conditional
// writes: taking it is a put-if-absent with a TTL (so a holder that dies
// frees it), releasing it a delete-if-version of the put's context (so
// one never releases a lock it lost). Waiters sleep on the lock key's
// change events, with a timeout because events may be missed.
//
//	go run ./examples/lock --server nats://127.0.0.1:4222 --workers 5
//
// Five workers take the lock in turn to add one to a counter with a
// plain read-modify-write: without the lock, concurrent updates would
// leave siblings and lose increments.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/kvmesh/kvmesh/client"
)

func main() {
	server := flag.String("server", envOr("KVMESH_URL", "nats://127.0.0.1:4222"), "NATS URL of any kvmesh node")
	workers := flag.Int("workers", 5, "goroutines taking turns")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, *server, *workers, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// Lock is a lock on one key; ttl bounds how long a holder that dies
// keeps it.
type Lock struct {
	c       *client.Client
	key     string
	ttl     time.Duration
	changes <-chan client.Event // of the key, to wake up when it is released
	ctx     string              // the holder's: the put's causal context
}

// NewLock returns the lock of key; it watches the key until ctx ends.
func NewLock(ctx context.Context, c *client.Client, key string, ttl time.Duration) (*Lock, error) {
	changes, err := c.Watch(ctx, key)
	if err != nil {
		return nil, err
	}
	return &Lock{c: c, key: key, ttl: ttl, changes: changes}, nil
}

// Lock waits until it holds the lock, or ctx ends.
func (l *Lock) Lock(ctx context.Context, owner string) error {
	for {
		lctx, err := l.c.Put(ctx, l.key, []byte(owner), client.IfAbsent(), client.WithTTL(l.ttl))
		if err == nil {
			l.ctx = lctx
			return nil
		}
		if !errors.Is(err, client.ErrConflict) {
			return err
		}
		select { // held: wait for a change of the key (or, events being at most once, a while)
		case <-l.changes:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Unlock releases the lock if this holder still has it.
func (l *Lock) Unlock(ctx context.Context) error {
	return l.c.Delete(ctx, l.key, client.IfVersion(l.ctx))
}

func run(ctx context.Context, server string, workers int, out io.Writer) error {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- work(ctx, server, fmt.Sprintf("worker-%d", w))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	c, err := client.Connect(server)
	if err != nil {
		return err
	}
	defer c.Close()
	e, err := c.Get(ctx, "counter")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "counter: %s\n", e.Value())
	return nil
}

// work is one process: its own connection, three turns under the lock.
func work(ctx context.Context, server, me string) error {
	c, err := client.Connect(server)
	if err != nil {
		return err
	}
	defer c.Close()
	l, err := NewLock(ctx, c, "locks.counter", 10*time.Second)
	if err != nil {
		return err
	}
	for range 3 {
		if err := l.Lock(ctx, me); err != nil {
			return err
		}
		n := 0
		e, err := c.Get(ctx, "counter")
		if err == nil {
			n, _ = strconv.Atoi(string(e.Value()))
		} else if !errors.Is(err, client.ErrKeyNotFound) {
			return err
		}
		if _, err := c.Put(ctx, "counter", []byte(strconv.Itoa(n+1)), client.Context(e.Context)); err != nil {
			return err
		}
		if err := l.Unlock(ctx); err != nil {
			return err
		}
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
