package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestKeysPaging: keys written through the client, some deleted and some
// expired, list through the client's pages (real NATS, JSON bodies)
// that each hold at most the page size: every live key once, in order,
// across page boundaries, and no deleted or expired key. (TestListKeys50k
// lists 50,000 keys from replicas that disagree and measures a page's
// memory; this one checks the client API end to end.)
func TestKeysPaging(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const total = 3000
	key := func(i int) string { return fmt.Sprintf("item.%06d", i) }
	var want []string
	for i := range total {
		if i%10 != 3 && i%13 != 5 {
			want = append(want, key(i))
		}
	}
	clients := []*client.Client{c.client(0), c.client(1), c.client(2)}
	var wg sync.WaitGroup
	const writers = 128
	start := time.Now()
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[w%3]
			for i := w; i < total; i += writers {
				var err error
				switch {
				case i%13 == 5: // expired by the time it is listed
					_, err = cl.Put(ctx, key(i), []byte("v"), client.WithTTL(time.Millisecond))
				default:
					_, err = cl.Put(ctx, key(i), []byte("value"))
				}
				if err == nil && i%10 == 3 {
					err = cl.Delete(ctx, key(i))
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", key(i), err)
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
	t.Logf("loaded %d keys in %v", total, time.Since(start))
	start = time.Now()
	// Keys outside the prefix are not listed.
	for _, k := range []string{"item", "items.1", "iteM.2", "a"} {
		if _, err := clients[0].Put(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}

	const pageSize = 97
	var got []string
	var pages int
	cl := clients[1]
	for cursor := ""; ; pages++ {
		page, err := cl.KeysPage(ctx, "item.", cursor, client.PageSize(pageSize))
		if err != nil {
			t.Fatalf("page %d after %q: %v", pages, cursor, err)
		}
		if len(page.Keys) > pageSize {
			t.Fatalf("page %d: %d keys, page size %d", pages, len(page.Keys), pageSize)
		}
		got = append(got, page.Keys...)
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	pages++
	t.Logf("listed in %v", time.Since(start))
	if !slices.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("listed %d keys, want %d; first difference at %d: got %q, want %q", len(got), len(want), i, at(got, i), at(want, i))
	}

	// The iterator gives the same, from another node, with the default
	// page size; stopping early stops.
	var all []string
	for k, err := range clients[2].Keys(ctx, "item.") {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, k)
	}
	if !slices.Equal(all, want) {
		t.Fatalf("Keys listed %d keys, want %d", len(all), len(want))
	}
	n := 0
	for range clients[0].Keys(ctx, "") {
		if n++; n == 3 {
			break
		}
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<end>"
}

// TestKeysDetailsAndErrors: a page with details gives each key's sibling
// count and a context that supersedes them; bad requests get a 400 and
// a read quorum no partition can reach a 503.
func TestKeysDetailsAndErrors(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	cl := c.client(0)
	for _, k := range []string{"a b", "a.1", "a.2", "b"} {
		if _, err := cl.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.client(1).Put(ctx, "a.2", []byte("concurrent")); err != nil { // a sibling
		t.Fatal(err)
	}
	page, err := cl.KeysPage(ctx, "a", "", client.Detail())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(page.Keys, []string{"a b", "a.1", "a.2"}) || page.Next != "" || len(page.Entries) != 3 {
		t.Fatalf("page = %+v", page)
	}
	if e := page.Entries[2]; e.Key != "a.2" || e.Siblings != 2 || e.Context == "" {
		t.Fatalf("entry = %+v, want a.2 with 2 siblings and a context", e)
	}
	if _, err := cl.Put(ctx, "a.2", []byte("merged"), client.Context(page.Entries[2].Context)); err != nil {
		t.Fatal(err)
	}
	if e, err := cl.Get(ctx, "a.2"); err != nil || e.Siblings != 1 || string(e.Value()) != "merged" {
		t.Fatalf("after a put with the listing's context: %+v, %v", e, err)
	}
	// A page of one, then the rest.
	page, err = cl.KeysPage(ctx, "", "", client.PageSize(1))
	if err != nil || !slices.Equal(page.Keys, []string{"a b"}) || page.Next == "" {
		t.Fatalf("first page of 1 = %+v, %v", page, err)
	}
	page, err = cl.KeysPage(ctx, "", page.Next, client.PageSize(3))
	if err != nil || !slices.Equal(page.Keys, []string{"a.1", "a.2", "b"}) {
		t.Fatalf("second page = %+v, %v", page, err)
	}
	for name, call := range map[string]func() error{
		"bad prefix": func() error { _, err := cl.KeysPage(ctx, "\xff", ""); return err },
		"bad cursor": func() error { _, err := cl.KeysPage(ctx, "", "!!"); return err },
		"page size":  func() error { _, err := cl.KeysPage(ctx, "", "", client.PageSize(protocol.MaxKeysLimit+1)); return err },
		"r":          func() error { _, err := cl.KeysPage(ctx, "", "", client.R("7")); return err },
	} {
		if err := call(); !errors.Is(err, protocol.ErrInvalidKey) && !errors.Is(err, protocol.ErrInvalidOption) {
			t.Errorf("%s: got %v, want a 400", name, err)
		}
	}
	// With one node stopped, r=all cannot be reached; r=2 can.
	c.stopAndWait(2)
	if _, err := cl.KeysPage(ctx, "", "", client.R("all")); !errors.Is(err, protocol.ErrQuorumNotReached) {
		t.Fatalf("r=all with a node down: %v", err)
	}
	page, err = cl.KeysPage(ctx, "", "")
	if err != nil || len(page.Keys) != 4 {
		t.Fatalf("r=2 with a node down: %+v, %v", page, err)
	}
}
