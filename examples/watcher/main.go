// Command watcher is an event-driven service built on kvmesh's change
// events: it watches every key under "orders." and keeps a shipping
// record per order, "shipping.<id>", in step: a new or changed order
// queues its shipment, a deleted (or expired) order cancels it.
//
//	go run ./examples/watcher --server nats://127.0.0.1:4222
//	kvmesh put orders.42 '{"item":"book"}'   # in another terminal
//	kvmesh get shipping.42                    # queued: {"item":"book"}
//
// Events are at most once: a service that was down, or missed one, gets
// no replay. So it reads the key an event names rather than trusting the
// event alone, and a real service would also rescan (list and get) what
// it owns when it starts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"

	"github.com/kvmesh/kvmesh/client"
)

func main() {
	server := flag.String("server", envOr("KVMESH_URL", "nats://127.0.0.1:4222"), "NATS URL of any kvmesh node")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *server, os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// run serves until ctx ends, logging what it does to out.
func run(ctx context.Context, server string, out io.Writer) error {
	c, err := client.Connect(server)
	if err != nil {
		return err
	}
	defer c.Close()
	events, err := c.Watch(ctx, "orders.>")
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "watching orders.>")
	for ev := range events {
		id := strings.TrimPrefix(ev.Key, "orders.")
		if err := ship(ctx, c, id); err != nil {
			fmt.Fprintf(out, "order %s: %v\n", id, err) // the next event of the order retries
			continue
		}
		fmt.Fprintf(out, "%s order %s\n", ev.Op, id)
	}
	return ctx.Err()
}

// ship brings shipping.<id> in line with orders.<id> as it is now.
func ship(ctx context.Context, c *client.Client, id string) error {
	order, err := c.Get(ctx, "orders."+id)
	switch {
	case errors.Is(err, client.ErrKeyNotFound):
		return c.Delete(ctx, "shipping."+id)
	case err != nil:
		return err
	}
	_, err = c.Put(ctx, "shipping."+id, append([]byte("queued: "), order.Value()...), client.Context(shippingContext(ctx, c, id)))
	return err
}

// shippingContext is the shipping record's context, so that the put
// replaces it instead of adding a sibling.
func shippingContext(ctx context.Context, c *client.Client, id string) string {
	e, err := c.Get(ctx, "shipping."+id)
	if err != nil {
		return ""
	}
	return e.Context
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
