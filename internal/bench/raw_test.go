package bench

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/freeport"
	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/protocol"
)

// The raw driver spells the protocol out as the README documents it; it
// must be what the nodes speak.
func TestRawNamesAreTheProtocols(t *testing.T) {
	for _, c := range [][2]string{
		{rawHdrW, protocol.HdrW}, {rawHdrR, protocol.HdrR}, {rawHdrContext, protocol.HdrContext},
		{rawHdrSiblings, protocol.HdrSiblings}, {rawHdrError, protocol.HdrError},
		{rawHdrSvcError, protocol.HdrServiceError}, {rawHdrSvcCode, protocol.HdrServiceErrorCode},
		{rawNotFoundName, protocol.ErrKeyNotFound.Name}, {rawOverloaded, protocol.ErrOverloaded.Name},
	} {
		if c[0] != c[1] {
			t.Errorf("raw driver sends %q, the protocol says %q", c[0], c[1])
		}
	}
}

func TestRawMessages(t *testing.T) {
	m := rawPutMsg("v100.k0000001", []byte("x"), "2", "")
	if m.Subject != "kvmesh.kv.put.v100.k0000001" || m.Header.Get("Kvmesh-W") != "2" || string(m.Data) != "x" {
		t.Errorf("put: %s %v %q", m.Subject, m.Header, m.Data)
	}
	if _, ok := m.Header["Kvmesh-Context"]; ok {
		t.Error("a first put must send no context")
	}
	if m := rawPutMsg("a.b", nil, "all", "CTX"); m.Header.Get("Kvmesh-Context") != "CTX" || m.Header.Get("Kvmesh-W") != "all" {
		t.Errorf("put with context: %v", m.Header)
	}
	g := rawGetMsg("a.b", "2")
	if g.Subject != "kvmesh.kv.get.a.b" || g.Header.Get("Kvmesh-R") != "2" || len(g.Data) != 0 {
		t.Errorf("get: %s %v", g.Subject, g.Header)
	}

	reply := func(h map[string]string) *nats.Msg {
		m := nats.NewMsg("_INBOX.x")
		for k, v := range h {
			m.Header.Set(k, v)
		}
		return m
	}
	if err := rawReplyError(reply(map[string]string{"Kvmesh-Context": "c"})); err != nil {
		t.Errorf("an answer read as %v", err)
	}
	nf := rawReplyError(reply(map[string]string{"Nats-Service-Error": "key not found", "Nats-Service-Error-Code": "404", "Kvmesh-Error": "not_found"}))
	if !isNotFound(nf) {
		t.Errorf("404 not recognised: %v", nf)
	}
	if !isNotFound(rawReplyError(reply(map[string]string{"Kvmesh-Error": "not_found"}))) {
		t.Error("a Kvmesh-Error not_found alone must be a 404")
	}
	ov := rawReplyError(reply(map[string]string{"Nats-Service-Error": "overloaded", "Nats-Service-Error-Code": "503", "Kvmesh-Error": "overloaded"}))
	if ov == nil || isNotFound(ov) || !errors.Is(ov, client.ErrOverloaded) {
		t.Errorf("503 overloaded: %v", ov)
	}
	q := rawReplyError(reply(map[string]string{"Nats-Service-Error-Code": "503", "Kvmesh-Error": "quorum_not_reached"}))
	if q == nil || errors.Is(q, client.ErrOverloaded) {
		t.Errorf("503 quorum: %v", q)
	}
}

// startNodes starts a store of size real nodes in this process.
func startNodes(t *testing.T, size int) []string {
	t.Helper()
	ports := freeport.MustTake(t, size)
	var peers []string
	for _, p := range ports {
		peers = append(peers, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	nodes := make([]*node.Node, size)
	errs := make(chan error, size)
	for i := range size {
		cfg := node.DefaultConfig()
		cfg.ID = fmt.Sprintf("n%d", i+1)
		cfg.DataDir = t.TempDir()
		cfg.RunDir = t.TempDir()
		cfg.Secret = []byte("kvmesh bench test secret 0123456789")
		cfg.Listen = "127.0.0.1:0"
		cfg.Cluster = fmt.Sprintf("127.0.0.1:%d", ports[i])
		cfg.Peers = peers
		cfg.PeerWait = 10 * time.Second
		cfg.Heartbeat = 200 * time.Millisecond
		go func() {
			n, err := node.New(cfg)
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err = n.Start(ctx)
				cancel()
			}
			nodes[i] = n
			errs <- err
		}()
	}
	var startErr error
	for range size {
		startErr = errors.Join(startErr, <-errs)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
	})
	if startErr != nil {
		t.Fatal(startErr)
	}
	urls := make([]string, size)
	for i, n := range nodes {
		urls[i] = n.ClientURL()
	}
	return urls
}

// The raw driver against real nodes: gets of keys not written yet are
// answers, puts pass contexts so no siblings pile up, and every
// connection serves.
func TestRawDriverAgainstNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 3 nodes")
	}
	urls := startNodes(t, 3)
	d, err := connectRaw(urls, "2")
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if len(d.conns) != rawMaxConns {
		t.Fatalf("%d connections, want %d", len(d.conns), rawMaxConns)
	}
	for i, nc := range d.conns {
		if want := urls[i%len(urls)]; nc.ConnectedUrl() != want {
			t.Errorf("connection %d to %s, want %s", i, nc.ConnectedUrl(), want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := d.probe(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	ks := newKeyspace("raw", 64)
	spec := loadSpec{kind: kindGet, r: 2, c: 4, dur: 200 * time.Millisecond, seed: 1, timeout: 5 * time.Second}
	s, err := runLoad(ctx, d, ks, spec)
	if err != nil || s.Ops == 0 || s.Errors != 0 {
		t.Fatalf("gets of absent keys: %+v %v", s, err)
	}
	// Load every key (W=all), then mix puts and gets from 32 workers on
	// 16 connections: each put supersedes the last.
	s, err = runLoad(ctx, d.withW("all"), ks, loadSpec{kind: kindPut, c: 8, val: []byte("v"), timeout: 5 * time.Second, sequential: true})
	if err != nil || s.Ops != ks.n || s.Errors != 0 {
		t.Fatalf("load: %+v %v", s, err)
	}
	for i, c := range ks.cctx {
		if c == "" {
			t.Fatalf("key %d has no context after its put", i)
		}
	}
	spec = loadSpec{kind: kindMix50, r: 2, c: 32, val: []byte("value"), dur: 300 * time.Millisecond, seed: 2, timeout: 5 * time.Second}
	s, err = runLoad(ctx, d, ks, spec)
	if err != nil || s.Ops == 0 || s.Errors != 0 || s.Overloaded != 0 {
		t.Fatalf("mix: %+v %v", s, err)
	}
	spec.kind, spec.r = kindGet, 2
	if s, err = runLoad(ctx, d, ks, spec); err != nil || s.Siblings != 0 || s.Errors != 0 {
		t.Fatalf("gets after the mix: %+v %v (siblings mean a put lost its context)", s, err)
	}
}
