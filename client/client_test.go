package client_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/embedded"
	"github.com/kvmesh/kvmesh/protocol"
)

// fakeStore serves the client subjects with canned replies, so the
// client's decoding is tested without a cluster.
func fakeStore(t *testing.T, handle func(m *nats.Msg) *nats.Msg, opts ...client.Option) *client.Client {
	t.Helper()
	return fakeStoreOn(t, "kvmesh.kv.>", handle, append([]client.Option{client.WithDirect(false)}, opts...)...)
}

func fakeStoreOn(t *testing.T, subject string, handle func(m *nats.Msg) *nats.Msg, opts ...client.Option) *client.Client {
	t.Helper()
	return fakeStoreRing(t, subject, nil, handle, opts...)
}

// ringSubject is the placement endpoint's subject in the default prefix.
const ringSubject = "kvmesh.kv.ring"

// fakeStoreRing is fakeStoreOn with a placement endpoint answering ring();
// subject may list several subjects, separated by spaces.
// Without ring, a fake whose subject covers the endpoint answers it with
// an error, as a store without tables would, and the client routes
// without a table.
func fakeStoreRing(t *testing.T, subject string, ring func() []byte, handle func(m *nats.Msg) *nats.Msg, opts ...client.Option) *client.Client {
	t.Helper()
	srv, nc := client.TestServer(t, "fake")
	for _, subject := range strings.Fields(subject) {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
			var r *nats.Msg
			switch {
			case m.Subject == ringSubject && ring != nil:
				return // the placement endpoint below answers
			case m.Subject == ringSubject:
				r = &nats.Msg{Header: nats.Header{protocol.HdrServiceError: {"no table"}, protocol.HdrServiceErrorCode: {"404"}}}
			default:
				r = handle(m)
			}
			r.Subject = m.Reply
			_ = nc.PublishMsg(r)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Unsubscribe() })
	}
	if ring != nil {
		rsub, err := nc.Subscribe(ringSubject, func(m *nats.Msg) { _ = m.Respond(ring()) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rsub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The fakes answer single requests; batching is tested against real
	// nodes (batch_test.go).
	c, err := client.Connect(srv.ClientURL(), append([]client.Option{client.WithTimeout(5 * time.Second), client.WithBatching(false)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestErrorsMatchAcrossTheWire(t *testing.T) {
	c := fakeStore(t, func(m *nats.Msg) *nats.Msg {
		return &nats.Msg{Header: nats.Header{
			protocol.HdrServiceError:     {"put: quorum not reached: 1 of 3 replicas acknowledged, 2 required"},
			protocol.HdrServiceErrorCode: {"503"},
			protocol.HdrError:            {"quorum_not_reached"},
		}}
	})
	_, err := c.Put(context.Background(), "k", []byte("v"))
	if !errors.Is(err, client.ErrQuorumNotReached) || !strings.Contains(err.Error(), "1 of 3") {
		t.Fatalf("err = %v, want ErrQuorumNotReached with the message", err)
	}
	if errors.Is(err, client.ErrKeyNotFound) {
		t.Fatal("a quorum error matched ErrKeyNotFound")
	}
}

func TestUnknownErrorNameFallsBackByCode(t *testing.T) {
	c := fakeStore(t, func(m *nats.Msg) *nats.Msg {
		return &nats.Msg{Header: nats.Header{
			protocol.HdrServiceError:     {"gone"},
			protocol.HdrServiceErrorCode: {"404"},
		}}
	})
	if _, err := c.Get(context.Background(), "k"); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatalf("err = %v, want ErrKeyNotFound", err)
	}
}

func TestSiblingsAreDecoded(t *testing.T) {
	c := fakeStore(t, func(m *nats.Msg) *nats.Msg {
		b, _ := protocol.EncodeSiblings([][]byte{[]byte("a"), []byte("b")})
		return &nats.Msg{Data: b, Header: nats.Header{protocol.HdrSiblings: {"2"}, protocol.HdrContext: {"ctx"}}}
	})
	e, err := c.Get(context.Background(), "k")
	if err != nil || e.Siblings != 2 || string(e.Values[0]) != "a" || string(e.Values[1]) != "b" || e.Context != "ctx" {
		t.Fatalf("entry %+v, err %v", e, err)
	}
}

func TestRequestShape(t *testing.T) {
	seen := make(chan *nats.Msg, 4)
	c := fakeStore(t, func(m *nats.Msg) *nats.Msg {
		seen <- m
		return &nats.Msg{Header: nats.Header{protocol.HdrContext: {"next"}}}
	})
	ctx := context.Background()
	got, err := c.Put(ctx, "user.42", []byte("v"), client.W("all"), client.Context("prev"))
	if err != nil || got != "next" {
		t.Fatalf("put: %q %v", got, err)
	}
	m := <-seen
	if m.Subject != "kvmesh.kv.put.user.42" || m.Header.Get(protocol.HdrW) != "all" || m.Header.Get(protocol.HdrContext) != "prev" {
		t.Fatalf("put request %s %v", m.Subject, m.Header)
	}
	// A key that is not subject-safe goes in the header.
	if _, err := c.Put(ctx, "a b*", []byte("v")); err != nil {
		t.Fatal(err)
	}
	m = <-seen
	if m.Subject != "kvmesh.kv.put" || m.Header.Get(protocol.HdrKey) != "a b*" {
		t.Fatalf("header-key request %s %v", m.Subject, m.Header)
	}
}

func TestLocalChecksSendNothing(t *testing.T) {
	c := fakeStore(t, func(m *nats.Msg) *nats.Msg {
		t.Errorf("request %s reached the store", m.Subject)
		return &nats.Msg{}
	})
	ctx := context.Background()
	if _, err := c.Get(ctx, ""); !errors.Is(err, client.ErrInvalidKey) {
		t.Errorf("empty key: %v", err)
	}
	if _, err := c.Get(ctx, strings.Repeat("k", 1025)); !errors.Is(err, client.ErrInvalidKey) {
		t.Errorf("long key: %v", err)
	}
	big := make([]byte, protocol.MaxValueLen(c.Conn().MaxPayload())+1)
	if _, err := c.Put(ctx, "k", big); !errors.Is(err, client.ErrValueTooLarge) {
		t.Errorf("big value: %v", err)
	}
}

func TestNoStoreIsUnavailable(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{Name: "empty", Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	c, err := client.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(context.Background(), "k"); !errors.Is(err, client.ErrNodeUnavailable) {
		t.Fatalf("err = %v, want ErrNodeUnavailable", err)
	}
}

func TestOptions(t *testing.T) {
	if _, err := client.New(nil, client.WithPrefix("a.*")); !errors.Is(err, client.ErrInvalidOption) {
		t.Errorf("bad prefix: %v", err)
	}
	if _, err := client.New(nil, client.WithTimeout(0)); !errors.Is(err, client.ErrInvalidOption) {
		t.Errorf("zero timeout: %v", err)
	}
}

func TestDirectAddressingGoesToTheConnectedNode(t *testing.T) {
	seen := make(chan string, 4)
	c := fakeStoreOn(t, "kvmesh.kv.>", func(m *nats.Msg) *nats.Msg {
		seen <- m.Subject
		return &nats.Msg{}
	})
	if _, err := c.Put(context.Background(), "user.42", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got != "kvmesh.kv.node.fake.put.user.42" {
		t.Fatalf("subject %q, want the connected node's direct subject", got)
	}
}

func TestDirectFallsBackToTheQueueGroup(t *testing.T) {
	seen := make(chan string, 4)
	// A store that serves only the queue-group subjects.
	c := fakeStoreOn(t, "kvmesh.kv.put.>", func(m *nats.Msg) *nats.Msg {
		seen <- m.Subject
		return &nats.Msg{}
	})
	for i := 0; i < 2; i++ {
		if _, err := c.Put(context.Background(), "user.42", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if got := <-seen; got != "kvmesh.kv.put.user.42" {
			t.Fatalf("subject %q, want the queue-group subject", got)
		}
	}
}

// TestTTL: WithTTL sends the Kvmesh-TTL header on a put, refuses what the
// store would (locally, sending nothing), and Get reads Kvmesh-Expires.
func TestTTL(t *testing.T) {
	seen := make(chan *nats.Msg, 4)
	exp := time.Date(2031, 1, 2, 3, 4, 5, 6, time.UTC)
	var expires atomic.Value // the handler runs on another goroutine
	expires.Store(exp.Format(time.RFC3339Nano))
	c := fakeStore(t, func(m *nats.Msg) *nats.Msg {
		seen <- m
		return &nats.Msg{Data: []byte("v"), Header: nats.Header{protocol.HdrExpires: {expires.Load().(string)}}}
	})
	ctx := context.Background()
	if _, err := c.Put(ctx, "k", []byte("v"), client.WithTTL(90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if m := <-seen; m.Header.Get(protocol.HdrTTL) != "1h30m0s" {
		t.Fatalf("put headers %v", m.Header)
	}
	if _, err := protocol.ParseTTL("1h30m0s"); err != nil {
		t.Fatalf("the store refuses what WithTTL sends: %v", err)
	}
	e, err := c.Get(ctx, "k")
	if err != nil || !e.Expires.Equal(exp) {
		t.Fatalf("get: %+v %v, want it to expire at %s", e, err, exp)
	}
	<-seen
	for _, d := range []time.Duration{0, -time.Second, protocol.MaxTTL + 1} {
		if _, err := c.Put(ctx, "k", []byte("v"), client.WithTTL(d)); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("WithTTL(%v): %v", d, err)
		}
	}
	if _, err := c.Get(ctx, "k", client.WithTTL(time.Hour)); !errors.Is(err, client.ErrInvalidOption) {
		t.Errorf("get WithTTL: %v", err)
	}
	select {
	case m := <-seen:
		t.Fatalf("a refused call reached the store: %s %v", m.Subject, m.Header)
	default:
	}

	expires.Store("tomorrow")
	if _, err := c.Get(ctx, "k"); !errors.Is(err, client.ErrMalformed) {
		t.Fatalf("a bad %s header: %v", protocol.HdrExpires, err)
	}
}
