package node_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestTTLOverNATS: the Kvmesh-TTL header of a raw NATS put sets the
// expiry and a get tells it in Kvmesh-Expires; a bad value, or a TTL on
// a get or a delete, is a 400 that writes nothing; the key reads as not
// found once the TTL has passed. The Go client's WithTTL does the same
// batched and as single requests, and Entry.Expires reads it back.
func TestTTLOverNATS(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	nc, err := nats.Connect(c.nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := func(subject, ttl, data string) *nats.Msg {
		t.Helper()
		m := &nats.Msg{Subject: subject, Header: nats.Header{}, Data: []byte(data)}
		if ttl != "" {
			m.Header.Set(protocol.HdrTTL, ttl)
		}
		if strings.HasPrefix(subject, "kvmesh.kv.get.") {
			m.Header.Set(protocol.HdrR, "all")
		} else {
			m.Header.Set(protocol.HdrW, "all")
		}
		r, err := nc.RequestMsg(m, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	before := time.Now()
	if m := req("kvmesh.kv.put.ttl.raw", "1h", "v"); m.Header.Get(protocol.HdrServiceErrorCode) != "" {
		t.Fatalf("put with %s: 1h: %v", protocol.HdrTTL, m.Header)
	}
	after := time.Now()
	m := req("kvmesh.kv.get.ttl.raw", "", "")
	exp, err := time.Parse(time.RFC3339Nano, m.Header.Get(protocol.HdrExpires))
	if err != nil || string(m.Data) != "v" {
		t.Fatalf("get: %q %v: %v", m.Data, m.Header, err)
	}
	if exp.Before(before.Add(time.Hour)) || exp.After(after.Add(time.Hour)) || exp.Location() != time.UTC {
		t.Fatalf("%s: %s, want between %s and %s, in UTC", protocol.HdrExpires, exp, before.Add(time.Hour), after.Add(time.Hour))
	}

	for _, ttl := range []string{"0", "-1s", "abc", "87601h", "1d", "1.5", "30 s"} {
		m := req("kvmesh.kv.put.ttl.bad", ttl, "v")
		if m.Header.Get(protocol.HdrServiceErrorCode) != "400" || m.Header.Get(protocol.HdrError) != "invalid_option" {
			t.Errorf("put with %s: %q: %v, want 400 invalid_option", protocol.HdrTTL, ttl, m.Header)
		}
	}
	for _, subject := range []string{"kvmesh.kv.get.ttl.raw", "kvmesh.kv.del.ttl.raw"} {
		if m := req(subject, "30s", ""); m.Header.Get(protocol.HdrServiceErrorCode) != "400" {
			t.Errorf("%s with %s: %v, want 400", subject, protocol.HdrTTL, m.Header)
		}
	}
	if _, err := c.client(1).Get(ctx, "ttl.bad", client.R("all")); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatalf("after refused puts: %v, want not found", err)
	}
	for _, n := range c.nodes {
		if o, err := n.Replica("ttl.bad"); o != nil || err != nil {
			t.Fatalf("%s holds %+v (%v) after refused puts", n.ID(), o, err)
		}
	}
	if e, err := c.client(2).Get(ctx, "ttl.raw", client.R("all")); err != nil || string(e.Value()) != "v" {
		t.Fatalf("a refused delete with a TTL deleted: %+v %v", e, err)
	}

	// The key expires by the nodes' clocks.
	if m := req("kvmesh.kv.put.ttl.short", "1", "short"); m.Header.Get(protocol.HdrServiceErrorCode) != "" {
		t.Fatalf("put with %s: 1: %v", protocol.HdrTTL, m.Header)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		m := req("kvmesh.kv.get.ttl.short", "", "")
		if m.Header.Get(protocol.HdrServiceErrorCode) == "404" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a put with a TTL of 1s still reads %q", m.Data)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The Go client, batched (the default) and with single requests.
	for name, cl := range map[string]*client.Client{"batched": c.client(1), "single": c.client(2, client.WithBatching(false))} {
		key := "ttl.client." + name
		before := time.Now()
		if _, err := cl.Put(ctx, key, []byte("v"), client.WithTTL(90*time.Minute), client.W("all")); err != nil {
			t.Fatalf("%s: put WithTTL: %v", name, err)
		}
		after := time.Now()
		e, err := cl.Get(ctx, key, client.R("all"))
		if err != nil || e.Expires.Before(before.Add(90*time.Minute)) || e.Expires.After(after.Add(90*time.Minute)) {
			t.Fatalf("%s: get: %+v, %v; want it to expire 90 minutes after the put", name, e, err)
		}
		if _, err := cl.Put(ctx, key, []byte("w"), client.Context(e.Context)); err != nil {
			t.Fatal(err)
		}
		if e, err := cl.Get(ctx, key, client.R("all")); err != nil || !e.Expires.IsZero() || string(e.Value()) != "w" {
			t.Fatalf("%s: after a put without TTL: %+v, %v", name, e, err)
		}
		if _, err := cl.Put(ctx, key, []byte("v"), client.WithTTL(0)); !errors.Is(err, client.ErrInvalidOption) {
			t.Fatalf("%s: WithTTL(0): %v", name, err)
		}
		if _, err := cl.Put(ctx, key, []byte("v"), client.WithTTL(protocol.MaxTTL+1)); !errors.Is(err, client.ErrInvalidOption) {
			t.Fatalf("%s: WithTTL over the max: %v", name, err)
		}
		if _, err := cl.Get(ctx, key, client.WithTTL(time.Hour)); !errors.Is(err, client.ErrInvalidOption) {
			t.Fatalf("%s: get WithTTL: %v", name, err)
		}
		if err := cl.Delete(ctx, key, client.WithTTL(time.Hour)); !errors.Is(err, client.ErrInvalidOption) {
			t.Fatalf("%s: delete WithTTL: %v", name, err)
		}
	}
}
