package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestWatch: Watch turns the events of the keys its pattern matches
// into Events, those of keys that are not subject-safe (on the base
// subject) included, skips what is not an event, refuses a bad
// pattern, and closes its channel when its context ends.
func TestWatch(t *testing.T) {
	srv, pub := client.TestServer(t, "w")
	c, err := client.Connect(srv.ClientURL(), client.WithDirect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Watch(ctx, "orders..x"); err == nil {
		t.Fatal("a bad pattern was accepted")
	}
	wctx, stop := context.WithCancel(ctx)
	events, err := c.Watch(wctx, "orders.>")
	if err != nil {
		t.Fatal(err)
	}
	event := func(subject, op, key, data string, extra ...string) {
		h := nats.Header{protocol.HdrOp: {op}, protocol.HdrKey: {key}, protocol.HdrNode: {"n1"},
			protocol.HdrTime: {"2026-01-02T03:04:05.5Z"}, protocol.HdrVersion: {"7"}, protocol.HdrContext: {"ctx"}}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		if err := pub.PublishMsg(&nats.Msg{Subject: subject, Header: h, Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	event("kvmesh.events.orders.1", "put", "orders.1", "v", protocol.HdrExpires, "2026-01-02T04:04:05Z")
	event("kvmesh.events.orders.1", "bogus", "orders.1", "")                         // not an event: skipped
	event("kvmesh.events.orders.1", "put", "orders.1", "", protocol.HdrVersion, "x") // bad version: skipped
	event("kvmesh.events", "delete", "orders.with space", "")
	event("kvmesh.events", "put", "other key", "")   // does not match the pattern
	event("kvmesh.events.other", "put", "other", "") // not subscribed
	event("kvmesh.events.orders.2", "expire", "orders.2", "ignored")
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []client.Event{
		{Op: "put", Key: "orders.1", Value: []byte("v"), Context: "ctx", Node: "n1", Version: 7,
			Time: time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC), Expires: time.Date(2026, 1, 2, 4, 4, 5, 0, time.UTC)},
		{Op: "delete", Key: "orders.with space", Context: "ctx", Node: "n1", Version: 7, Time: time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC)},
		{Op: "expire", Key: "orders.2", Context: "ctx", Node: "n1", Version: 7, Time: time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC)},
	}
	got := map[string]client.Event{}
	for range want {
		select {
		case e := <-events:
			got[e.Key] = e
		case <-ctx.Done():
			t.Fatalf("events so far: %+v", got)
		}
	}
	for _, w := range want {
		g := got[w.Key]
		if g.Op != w.Op || string(g.Value) != string(w.Value) || g.Context != w.Context || g.Node != w.Node ||
			g.Version != w.Version || !g.Time.Equal(w.Time) || !g.Expires.Equal(w.Expires) {
			t.Errorf("event of %s: %+v, want %+v", w.Key, g, w)
		}
	}
	stop()
	for e := range events { // closed once the context ends
		t.Errorf("unexpected event %+v", e)
	}
}
