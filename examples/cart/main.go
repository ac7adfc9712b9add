// Command cart is the shopping cart of the Dynamo paper on kvmesh: two
// shoppers add items to the same cart at the same time, each from the
// version it read, so neither write supersedes the other and the store
// keeps both as siblings. The next reader merges them (the union of the
// items: an add is never lost) and writes the merge back with the
// causal context of its read, which supersedes exactly the siblings it
// saw. A client.Resolver does the merge on every Get.
//
//	go run ./examples/cart --server nats://127.0.0.1:4222
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"time"

	"github.com/kvmesh/kvmesh/client"
)

// cart is the value stored: the items, kept sorted.
type cart struct {
	Items []string `json:"items"`
}

// merge is the application's resolver: the union of every sibling's
// items. (A removal would need a tombstone per item, as in the paper's
// discussion of deleted items resurfacing; adds are what matter here.)
func merge(_ string, values [][]byte) []byte {
	var all []string
	for _, v := range values {
		var c cart
		if err := json.Unmarshal(v, &c); err == nil {
			all = append(all, c.Items...)
		}
	}
	slices.Sort(all)
	out, _ := json.Marshal(cart{Items: slices.Compact(all)})
	return out
}

func main() {
	server := flag.String("server", envOr("KVMESH_URL", "nats://127.0.0.1:4222"), "NATS URL of any kvmesh node")
	key := flag.String("key", fmt.Sprintf("cart.%d", time.Now().UnixNano()), "the cart's key")
	flag.Parse()
	if err := run(*server, *key); err != nil {
		log.Fatal(err)
	}
}

func run(server, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Connect(server, client.WithResolver(merge))
	if err != nil {
		return err
	}
	defer c.Close()

	// The cart starts with one item.
	if _, err := c.Put(ctx, key, encode("book")); err != nil {
		return err
	}
	start, err := c.Get(ctx, key)
	if err != nil {
		return err
	}
	fmt.Printf("cart: %s\n", start.Value())

	// Two shoppers (two phones, two coordinators) read that version and
	// each adds an item, passing the context of the same read.
	for _, item := range []string{"pen", "lamp"} {
		if _, err := c.Put(ctx, key, encode("book", item), client.Context(start.Context)); err != nil {
			return err
		}
		fmt.Printf("added %s to the version read\n", item)
	}

	// The writes were concurrent: the store keeps both. The resolver
	// merged them for this Get; Siblings says how many there are.
	e, err := c.Get(ctx, key)
	if err != nil {
		return err
	}
	fmt.Printf("siblings: %d, merged: %s\n", e.Siblings, e.Value())

	// Writing the merge back with the read's context supersedes both.
	if _, err := c.Put(ctx, key, e.Value(), client.Context(e.Context)); err != nil {
		return err
	}
	e, err = c.Get(ctx, key)
	if err != nil {
		return err
	}
	fmt.Printf("after the write-back: siblings: %d, cart: %s\n", e.Siblings, e.Value())
	return c.Delete(ctx, key)
}

func encode(items ...string) []byte {
	b, _ := json.Marshal(cart{Items: items})
	return b
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
