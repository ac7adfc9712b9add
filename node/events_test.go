package node_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/protocol"
)

// eventSub is a plain NATS subscription to change events.
type eventSub struct {
	t  *testing.T
	ch chan *nats.Msg
}

func subscribeEvents(t *testing.T, nc *nats.Conn, subject string) *eventSub {
	t.Helper()
	s := &eventSub{t: t, ch: make(chan *nats.Msg, 1024)}
	sub, err := nc.ChanSubscribe(subject, s.ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

// next returns the next event of key (skipping other keys' events), or
// fails after a few seconds.
func (s *eventSub) next(key string) *nats.Msg {
	s.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.ch:
			if m.Header.Get(protocol.HdrKey) == key {
				return m
			}
		case <-deadline:
			s.t.Fatalf("no event of %q", key)
			return nil
		}
	}
}

// none checks that no event of keys arrives within d.
func (s *eventSub) none(d time.Duration, keys ...string) {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-s.ch:
			if slices.Contains(keys, m.Header.Get(protocol.HdrKey)) {
				s.t.Fatalf("unexpected event: %v", m.Header)
			}
		case <-deadline:
			return
		}
	}
}

// rawConns connects one plain NATS client to each node.
func (c *testCluster) rawConns() []*nats.Conn {
	c.t.Helper()
	var ncs []*nats.Conn
	for _, n := range c.nodes {
		nc, err := nats.Connect(n.ClientURL())
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(nc.Close)
		ncs = append(ncs, nc)
	}
	return ncs
}

// awaitEventInterest waits until the subscriptions made so far on
// ncs[i] reach every node: it subscribes to a probe key on the same
// connection (its interest travels the routes after theirs) and writes
// the probe through every node until each one's event arrives.
func awaitEventInterest(t *testing.T, ncs []*nats.Conn, i int) {
	t.Helper()
	s := subscribeEvents(t, ncs[i], fmt.Sprintf("kvmesh.events.probe.%d.>", i))
	deadline := time.Now().Add(10 * time.Second)
	for j, nc := range ncs {
		for k := 0; ; k++ {
			if time.Now().After(deadline) {
				t.Fatalf("events of node %d do not reach subscriptions on node %d", j+1, i+1)
			}
			m, err := nc.Request(fmt.Sprintf("kvmesh.kv.put.probe.%d.%d", i, k), []byte("p"), 5*time.Second)
			if err != nil || m.Header.Get(protocol.HdrServiceErrorCode) != "" {
				t.Fatalf("probe put: %v %v", err, m)
			}
			got := false
			timeout := time.After(50 * time.Millisecond)
		wait:
			for {
				select {
				case e := <-s.ch:
					if got = e.Header.Get(protocol.HdrNode) == m.Header.Get(protocol.HdrNode); got {
						break wait
					}
				case <-timeout:
					break wait
				}
			}
			if got {
				break
			}
		}
	}
}

// TestEventsFromEveryCoordinator: every acknowledged put and delete
// publishes one event, from whichever node coordinated it (a raw request
// served by the node the client is connected to, a node's direct
// subject, the Go client's batches), on the key's subject, so that exact
// and wildcard subscribers get it; keys that are not subject-safe come
// on the base subject with the key in the header. The event carries the
// value, the op, the coordinator, the time and the context of the
// write's reply, and versions grow along causality.
func TestEventsFromEveryCoordinator(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	ncs := c.rawConns()
	wild := subscribeEvents(t, ncs[0], "kvmesh.events.orders.>")
	exact := subscribeEvents(t, ncs[1], "kvmesh.events.orders.n2")
	base := subscribeEvents(t, ncs[2], "kvmesh.events")
	for i := range ncs {
		awaitEventInterest(t, ncs, i)
	}

	for i, nc := range ncs {
		id := fmt.Sprintf("n%d", i+1)
		key := "orders." + id
		// A raw request on the queue-group subject: served by node i.
		m, err := nc.Request("kvmesh.kv.put."+key, []byte("v-"+id), 5*time.Second)
		if err != nil || m.Header.Get(protocol.HdrNode) != id {
			t.Fatalf("put through %s: %v %v", id, err, m)
		}
		e := wild.next(key)
		if e.Subject != "kvmesh.events."+key || string(e.Data) != "v-"+id || e.Header.Get(protocol.HdrOp) != protocol.EventPut ||
			e.Header.Get(protocol.HdrNode) != id || e.Header.Get(protocol.HdrContext) != m.Header.Get(protocol.HdrContext) {
			t.Fatalf("event of a put through %s: %s %q %v (reply %v)", id, e.Subject, e.Data, e.Header, m.Header)
		}
		at, err := time.Parse(time.RFC3339Nano, e.Header.Get(protocol.HdrTime))
		if err != nil || time.Since(at) > time.Minute || time.Since(at) < 0 {
			t.Fatalf("event time %q: %v", e.Header.Get(protocol.HdrTime), err)
		}
		v1, err := strconv.ParseUint(e.Header.Get(protocol.HdrVersion), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if id == "n2" {
			if x := exact.next(key); string(x.Data) != "v-n2" {
				t.Fatalf("exact subscription: %q", x.Data)
			}
		}

		// The Go client's batch to node i, superseding with the context:
		// a greater version.
		cl := c.client(i, client.WithRouting(false))
		pctx, err := cl.Put(ctx, key, []byte("w-"+id), client.Context(m.Header.Get(protocol.HdrContext)))
		if err != nil {
			t.Fatal(err)
		}
		e = wild.next(key)
		v2, _ := strconv.ParseUint(e.Header.Get(protocol.HdrVersion), 10, 64)
		if string(e.Data) != "w-"+id || e.Header.Get(protocol.HdrNode) != id || e.Header.Get(protocol.HdrContext) != pctx || v2 <= v1 {
			t.Fatalf("event of a batched put through %s: %q %v (version was %d)", id, e.Data, e.Header, v1)
		}

		// A delete on the node's direct subject.
		d, err := nc.Request("kvmesh.kv.node."+id+".del."+key, nil, 5*time.Second)
		if err != nil || d.Header.Get(protocol.HdrServiceErrorCode) != "" {
			t.Fatalf("delete through %s: %v %v", id, err, d)
		}
		e = wild.next(key)
		v3, _ := strconv.ParseUint(e.Header.Get(protocol.HdrVersion), 10, 64)
		if e.Header.Get(protocol.HdrOp) != protocol.EventDelete || len(e.Data) != 0 || e.Header.Get(protocol.HdrNode) != id || v3 <= v2 {
			t.Fatalf("event of a delete through %s: %q %v", id, e.Data, e.Header)
		}
	}
	exact.none(0, "orders.n1", "orders.n3")

	// A key that is not subject-safe: on the base subject only.
	odd := "orders.with space"
	if _, err := c.client(1).Put(ctx, odd, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if e := base.next(odd); e.Subject != "kvmesh.events" || string(e.Data) != "x" {
		t.Fatalf("event of %q: %s %q", odd, e.Subject, e.Data)
	}
	wild.none(0, odd)
	// A delete of a key that holds nothing writes nothing: no event.
	if err := c.client(0).Delete(ctx, "orders.never"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client(0).Put(ctx, "orders.after", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if e := <-wild.ch; e.Header.Get(protocol.HdrKey) != "orders.after" {
		t.Fatalf("event %v before the next write's", e.Header)
	}
}

// TestExpireEvents: a value put with a TTL makes one expire event once
// it has expired, from the node that coordinated the put, whether the
// key is watched exactly or by a wildcard; of two siblings with TTLs
// only the later expiry makes one; a value superseded before it expired
// makes none.
func TestExpireEvents(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	ncs := c.rawConns()
	wild := subscribeEvents(t, ncs[0], "kvmesh.events.ttl.>")
	exact := subscribeEvents(t, ncs[1], "kvmesh.events.ttl.one")
	awaitEventInterest(t, ncs, 0)
	awaitEventInterest(t, ncs, 1)

	put := func(i int, key, ttl string) *nats.Msg {
		t.Helper()
		m, err := ncs[i].RequestMsg(&nats.Msg{Subject: "kvmesh.kv.put." + key, Data: []byte("v"), Header: nats.Header{protocol.HdrTTL: {ttl}}}, 5*time.Second)
		if err != nil || m.Header.Get(protocol.HdrServiceErrorCode) != "" {
			t.Fatalf("put %s: %v %v", key, err, m)
		}
		return m
	}
	put(2, "ttl.one", "300ms")
	p := wild.next("ttl.one")
	exp := p.Header.Get(protocol.HdrExpires)
	if p.Header.Get(protocol.HdrOp) != protocol.EventPut || exp == "" {
		t.Fatalf("put event: %v", p.Header)
	}
	var expired *nats.Msg
	for _, s := range []*eventSub{wild, exact} {
		e := s.next("ttl.one")
		if s == exact {
			e = s.next("ttl.one") // the put's first
		}
		if e.Header.Get(protocol.HdrOp) != protocol.EventExpire || e.Header.Get(protocol.HdrNode) != "n3" || e.Header.Get(protocol.HdrTime) != exp {
			t.Fatalf("expire event: %v, want one from n3 at %s", e.Header, exp)
		}
		if parseVersion(t, e) <= parseVersion(t, p) {
			t.Fatalf("expire version %v not above the put's %v", e.Header, p.Header)
		}
		expired = e
	}
	// The expire event's context supersedes the expired value: the next
	// put with it has a greater version.
	if _, err := c.client(0).Put(ctx, "ttl.one", []byte("again"), client.Context(expired.Header.Get(protocol.HdrContext))); err != nil {
		t.Fatal(err)
	}
	ev := parseVersion(t, expired)
	if e := wild.next("ttl.one"); string(e.Data) != "again" || parseVersion(t, e) <= ev {
		t.Fatalf("put after the expiry: %q %v, version not above %d", e.Data, e.Header, ev)
	}
	if e, err := c.client(0).Get(ctx, "ttl.one"); err != nil || e.Siblings != 1 {
		t.Fatalf("after the put with the expire event's context: %+v %v", e, err)
	}

	// Two blind writers: siblings expiring 300ms and 600ms on; one
	// event, from the later one's coordinator.
	put(0, "ttl.two", "300ms")
	put(1, "ttl.two", "600ms")
	for range 2 {
		if e := wild.next("ttl.two"); e.Header.Get(protocol.HdrOp) != protocol.EventPut {
			t.Fatalf("put event: %v", e.Header)
		}
	}
	if e := wild.next("ttl.two"); e.Header.Get(protocol.HdrOp) != protocol.EventExpire || e.Header.Get(protocol.HdrNode) != "n2" {
		t.Fatalf("expire event of siblings: %v, want one from n2", e.Header)
	}

	// A sibling without TTL beside it: the key does not expire, no event.
	put(0, "ttl.mixed", "300ms")
	if _, err := c.client(1).Put(ctx, "ttl.mixed", []byte("forever")); err != nil {
		t.Fatal(err)
	}
	wild.next("ttl.mixed")
	wild.next("ttl.mixed")

	// Superseded before its expiry by a put without TTL: no event.
	m := put(0, "ttl.kept", "300ms")
	if _, err := c.client(1).Put(ctx, "ttl.kept", []byte("forever"), client.Context(m.Header.Get(protocol.HdrContext))); err != nil {
		t.Fatal(err)
	}
	wild.next("ttl.kept")
	wild.next("ttl.kept")
	// The expiries of ttl.one, ttl.two and ttl.kept are past well within
	// this: any second expire event would be in by now.
	wild.none(1500*time.Millisecond, "ttl.kept", "ttl.mixed", "ttl.one", "ttl.two")
	if _, err := c.client(2).Get(ctx, "ttl.kept"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client(2).Get(ctx, "ttl.two"); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatal(err)
	}
}

func parseVersion(t *testing.T, m *nats.Msg) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(m.Header.Get(protocol.HdrVersion), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", protocol.HdrVersion, err)
	}
	return v
}

// BenchmarkRawPutsWatched measures what publishing an event per
// acknowledged write costs: plain NATS puts of new keys (100-byte
// values, W=2) from 16 connections spread over a 3-node cluster, first
// while nobody watches, then while a subscriber on every node watches
// every key (kvmesh.events.>).
func BenchmarkRawPutsWatched(b *testing.B) {
	c := startCluster(b, 3)
	const conns = 16
	ncs := make([]*nats.Conn, conns)
	for i := range ncs {
		nc, err := nats.Connect(c.nodes[i%3].ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		ncs[i] = nc
	}
	var seen atomic.Int64
	value := make([]byte, 100)
	var next atomic.Int64
	for _, watched := range []bool{false, true} {
		if watched {
			for i := range 3 {
				sub, err := ncs[i].Subscribe("kvmesh.events.>", func(*nats.Msg) { seen.Add(1) })
				if err != nil {
					b.Fatal(err)
				}
				_ = sub.SetPendingLimits(-1, -1)
				_ = ncs[i].Flush()
			}
			time.Sleep(100 * time.Millisecond) // let the interest cross the routes
		}
		b.Run(fmt.Sprintf("watched=%v", watched), func(b *testing.B) {
			b.SetParallelism(8) // 16 requesters with GOMAXPROCS=2
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1))
					m := nats.NewMsg(fmt.Sprintf("kvmesh.kv.put.bench.%d", i))
					m.Data = value
					m.Header.Set(protocol.HdrW, "2")
					r, err := ncs[i%conns].RequestMsg(m, 5*time.Second)
					if err != nil || r.Header.Get(protocol.HdrError) != "" {
						b.Errorf("put: %v %v", err, r)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
		})
	}
	b.Logf("events seen: %d", seen.Load())
}
