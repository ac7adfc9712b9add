package client_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/protocol"
)

// table encodes a placement table of one partition, so every key has the
// given owners, in order, among members.
func table(t *testing.T, members []string, owners ...string) []byte {
	t.Helper()
	pl, err := protocol.NewPlacement(members[0], 1, len(owners), members, [][]string{owners})
	if err != nil {
		t.Fatal(err)
	}
	b, err := protocol.EncodePlacement(pl)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recorder is a fake store's handler that records request subjects.
func recorder() (chan string, func(m *nats.Msg) *nats.Msg) {
	seen := make(chan string, 16)
	return seen, func(m *nats.Msg) *nats.Msg {
		seen <- m.Subject
		return &nats.Msg{}
	}
}

func want(t *testing.T, seen chan string, subject string) {
	t.Helper()
	select {
	case got := <-seen:
		if got != subject {
			t.Fatalf("request on %q, want %q", got, subject)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no request; want one on %q", subject)
	}
}

func TestRoutingSendsToTheKeysOwner(t *testing.T) {
	seen, handle := recorder()
	tb := table(t, []string{"fake", "other"}, "other")
	c := fakeStoreRing(t, "kvmesh.kv.>", func() []byte { return tb }, handle)
	ctx := context.Background()
	for _, op := range []string{"put", "get"} {
		var err error
		if op == "put" {
			_, err = c.Put(ctx, "user.42", []byte("v"))
		} else {
			_, err = c.Get(ctx, "user.42")
		}
		if err != nil {
			t.Fatal(err)
		}
		want(t, seen, "kvmesh.kv.node.other."+op+".user.42")
	}
	// A key that is not subject-safe still goes to the queue group.
	if _, err := c.Put(ctx, "a b", []byte("v")); err != nil {
		t.Fatal(err)
	}
	want(t, seen, "kvmesh.kv.put")
}

func TestRoutingPrefersTheConnectedOwner(t *testing.T) {
	seen, handle := recorder()
	tb := table(t, []string{"fake", "other"}, "other", "fake")
	c := fakeStoreRing(t, "kvmesh.kv.>", func() []byte { return tb }, handle)
	if _, err := c.Put(context.Background(), "user.42", []byte("v")); err != nil {
		t.Fatal(err)
	}
	want(t, seen, "kvmesh.kv.node.fake.put.user.42")
}

// Owners that have no responders are skipped, then the queue group takes
// the request; the node the client is connected to, not an owner, is not
// asked. (route_test.go checks the order and the refetch that follows.)
func TestRoutingFallsBackToTheNextOwnerAndTheQueueGroup(t *testing.T) {
	seen, handle := recorder()
	tb := table(t, []string{"down1", "down2", "fake"}, "down1", "down2")
	c := fakeStoreRing(t, "kvmesh.kv.put.> kvmesh.kv.node.fake.>", func() []byte { return tb }, handle)
	for range 2 {
		if _, err := c.Put(context.Background(), "user.42", []byte("v")); err != nil {
			t.Fatal(err)
		}
		want(t, seen, "kvmesh.kv.put.user.42")
	}
}

// A table that does not check out is ignored: the client addresses the
// node it is connected to, as without routing. Each table would send the
// request elsewhere if it were taken.
func TestHostileTablesAreIgnored(t *testing.T) {
	good := table(t, []string{"fake", "other"}, "other")
	edit := func(f func(m map[string]any), fixEpoch bool) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		if fixEpoch {
			var pl protocol.Placement
			b, _ := json.Marshal(m)
			if err := json.Unmarshal(b, &pl); err == nil {
				m["epoch"] = protocol.PlacementEpoch(&pl)
			}
		}
		b, _ := json.Marshal(m)
		return b
	}
	for name, b := range map[string][]byte{
		"not JSON":       []byte("\x93\x01\x02"),
		"empty":          nil,
		"wrong epoch":    edit(func(m map[string]any) { m["epoch"] = "0123456789abcdef" }, false),
		"no epoch":       edit(func(m map[string]any) { delete(m, "epoch") }, false),
		"subject tokens": edit(func(m map[string]any) { m["members"] = []any{"fake", "x.>"} }, true),
		"wildcard id":    edit(func(m map[string]any) { m["members"] = []any{"*", "fake"} }, true),
		"owner index":    edit(func(m map[string]any) { m["owners"] = []any{[]any{7}} }, true),
		"two owners":     edit(func(m map[string]any) { m["owners"] = []any{[]any{1, 1}} }, true),
		"partitions":     edit(func(m map[string]any) { m["partitions"] = 2 }, true),
		"no partitions":  edit(func(m map[string]any) { m["partitions"] = 0; m["owners"] = []any{} }, true),
		"version":        edit(func(m map[string]any) { m["v"] = 99 }, true),
	} {
		t.Run(name, func(t *testing.T) {
			seen, handle := recorder()
			c := fakeStoreRing(t, "kvmesh.kv.>", func() []byte { return b }, handle)
			if _, err := c.Put(context.Background(), "user.42", []byte("v")); err != nil {
				t.Fatal(err)
			}
			want(t, seen, "kvmesh.kv.node.fake.put.user.42")
		})
	}
}

func TestRoutingOffFetchesNoTable(t *testing.T) {
	seen, handle := recorder()
	var fetched atomic.Int32
	tb := table(t, []string{"fake", "other"}, "other")
	for _, opt := range []client.Option{client.WithRouting(false), client.WithDirect(false)} {
		c := fakeStoreRing(t, "kvmesh.kv.>", func() []byte { fetched.Add(1); return tb }, handle, opt)
		if _, err := c.Put(context.Background(), "user.42", []byte("v")); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	want(t, seen, "kvmesh.kv.node.fake.put.user.42") // routing off: direct
	want(t, seen, "kvmesh.kv.put.user.42")           // direct off: queue group
	if n := fetched.Load(); n != 0 {
		t.Fatalf("%d table fetches with routing off", n)
	}
}

// The first request waits for the first table, within its context: a
// store that never answers the table request costs at most half the
// request's time, and the request still succeeds without a table.
func TestFirstFetchIsBoundedByTheCall(t *testing.T) {
	seen, handle := recorder()
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	c := fakeStoreRing(t, "kvmesh.kv.>", func() []byte { <-block; return nil }, handle)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Put(ctx, "user.42", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 350*time.Millisecond {
		t.Errorf("put took %v with a 400ms context", el)
	}
	want(t, seen, "kvmesh.kv.node.fake.put.user.42")
}

// A batch that finds no responders reached no node: each of its calls
// goes again as a single request, to the next owner, and succeeds.
func TestBatchWithNoRespondersFallsBackToSingleRequests(t *testing.T) {
	seen, handle := recorder()
	tb := table(t, []string{"down1", "other", "fake"}, "down1", "other")
	// The fake serves single requests for the queue group and node
	// "other" only: the batch to down1 has no responders.
	c := fakeStoreRing(t, "kvmesh.kv.put kvmesh.kv.put.> kvmesh.kv.node.other.put.>", func() []byte { return tb }, handle, client.WithBatching(true))
	if _, err := c.Put(context.Background(), "user.42", []byte("v")); err != nil {
		t.Fatal(err)
	}
	want(t, seen, "kvmesh.kv.node.other.put.user.42")
	// A key that is not subject-safe has no node subject: the queue group.
	if _, err := c.Put(context.Background(), "a b", []byte("v")); err != nil {
		t.Fatal(err)
	}
	want(t, seen, "kvmesh.kv.put")
}
