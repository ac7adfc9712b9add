package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/protocol"
)

// wiretap records the node-addressed requests (kvmesh.kv.node.<id>.<op>.<key>)
// published on node i's server, where the clients under test connect, so
// a test sees which node each request was sent to. It is an interest on
// every node subject, so no request sees "no responders" while it runs:
// use it only with every node up.
func (c *testCluster) wiretap(i int) <-chan string {
	c.t.Helper()
	nc, err := nats.Connect(c.nodes[i].ClientURL())
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	seen := make(chan string, 1024)
	if _, err := nc.Subscribe("kvmesh.kv.node.>", func(m *nats.Msg) { seen <- m.Subject }); err != nil {
		c.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		c.t.Fatal(err)
	}
	return seen
}

// next returns the next subject the wiretap saw.
func next(t *testing.T, seen <-chan string) string {
	t.Helper()
	select {
	case s := <-seen:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("wiretap saw no request")
		return ""
	}
}

// expectedTarget is where a routed request for key goes from a client
// connected to node connected: that node if it owns key, else the key's
// first owner.
func expectedTarget(owners []string, connected string) string {
	if slices.Contains(owners, connected) {
		return connected
	}
	return owners[0]
}

// TestRoutingSendsEachRequestToAnOwner: with 5 nodes and N=3 a client
// sends every request to an owner of its key, so no write is forwarded:
// the wiretap shows the node each put and get was addressed to, and a
// get's Entry.Node the node that coordinated it. The same check with
// routing off must see non-owners, or it would prove nothing.
func TestRoutingSendsEachRequestToAnOwner(t *testing.T) {
	c := startCluster(t, 5)
	ctx := testCtx(t)
	for _, i := range []int{0, 3} {
		connected := c.cfgs[i].ID
		seen := c.wiretap(i)
		cl := c.client(i, client.WithBatching(false)) // the wiretap reads single-request subjects
		owned := 0
		for k := range 60 {
			key := fmt.Sprintf("route.%d.%d", i, k)
			owners := c.nodes[i].Owners(key)
			want := expectedTarget(owners, connected)
			if want == connected {
				owned++
			}
			if _, err := cl.Put(ctx, key, []byte(key)); err != nil {
				t.Fatalf("put %s: %v", key, err)
			}
			if got := next(t, seen); got != "kvmesh.kv.node."+want+".put."+key {
				t.Fatalf("put %s (owners %v) from %s sent on %q, want node %s", key, owners, connected, got, want)
			}
			e, err := cl.Get(ctx, key)
			if err != nil || string(e.Value()) != key {
				t.Fatalf("get %s: %q %v", key, e.Value(), err)
			}
			if got := next(t, seen); got != "kvmesh.kv.node."+want+".get."+key {
				t.Fatalf("get %s (owners %v) from %s sent on %q, want node %s", key, owners, connected, got, want)
			}
			if e.Node != want {
				t.Fatalf("get %s (owners %v) coordinated by %s, want %s", key, owners, e.Node, want)
			}
		}
		// 3 of 5 nodes own a key: both kinds must have come up.
		if owned == 0 || owned == 60 {
			t.Fatalf("%s owned %d of 60 keys", connected, owned)
		}
	}

	// Control: without routing the same wiretap sees requests go to the
	// connected node whether it owns the key or not.
	seen := c.wiretap(1)
	cl := c.client(1, client.WithRouting(false), client.WithBatching(false))
	nonOwner := 0
	for k := range 30 {
		key := fmt.Sprintf("unrouted.%d", k)
		if _, err := cl.Put(ctx, key, []byte(key)); err != nil {
			t.Fatal(err)
		}
		if got := next(t, seen); got != "kvmesh.kv.node."+c.cfgs[1].ID+".put."+key {
			t.Fatalf("unrouted put sent on %q", got)
		}
		if !slices.Contains(c.nodes[1].Owners(key), c.cfgs[1].ID) {
			nonOwner++
		}
	}
	if nonOwner == 0 {
		t.Fatal("the control sent no put to a non-owner")
	}
}

// TestRoutingFallsBackWhenAnOwnerIsDown: with the first owner of a key
// down, a routed request goes to the next owner and succeeds.
func TestRoutingFallsBackWhenAnOwnerIsDown(t *testing.T) {
	c := startCluster(t, 5)
	ctx := testCtx(t)
	cl := c.client(0)
	if _, err := cl.Put(ctx, "warm", []byte("v")); err != nil { // fetches the table
		t.Fatal(err)
	}
	down := c.cfgs[1].ID
	c.stopAndWait(1)
	late := c.client(2) // fetches its table with the node down
	tried := 0
	for k := 0; tried < 10; k++ {
		key := fmt.Sprintf("fallback.%d", k)
		owners := c.nodes[0].Owners(key)
		if slices.Contains(owners, c.cfgs[0].ID) || owners[0] != down {
			continue // not routed to the down node first
		}
		tried++
		if _, err := cl.Put(ctx, key, []byte(key), client.W("2")); err != nil {
			t.Fatalf("put %s with its first owner %s down: %v", key, down, err)
		}
		e, err := cl.Get(ctx, key, client.R("2"))
		if err != nil || string(e.Value()) != key {
			t.Fatalf("get %s: %q %v", key, e.Value(), err)
		}
		if e.Node != owners[1] {
			t.Fatalf("get %s (owners %v, %s down) coordinated by %s, want the next owner %s", key, owners, down, e.Node, owners[1])
		}
		if e, err := late.Get(ctx, key, client.R("2")); err != nil || !slices.Contains(owners[1:], e.Node) {
			t.Fatalf("get %s from a client that started with %s down: node %s, %v", key, down, e.Node, err)
		}
	}
}

// TestPlacementEndpoint: the table answers a plain NATS request, is
// readable JSON, agrees with the nodes' own placement, and refuses
// unknown Kvmesh-* headers like the other endpoints.
func TestPlacementEndpoint(t *testing.T) {
	c := startCluster(t, 5)
	nc, err := nats.Connect(c.nodes[2].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m, err := nc.Request("kvmesh.kv.ring", []byte("any payload is ignored"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := m.Header.Get(protocol.HdrServiceErrorCode); code != "" {
		t.Fatalf("error %s: %s", code, m.Header.Get(protocol.HdrServiceError))
	}
	var raw map[string]any
	if err := json.Unmarshal(m.Data, &raw); err != nil {
		t.Fatalf("not JSON: %v: %.200s", err, m.Data)
	}
	for _, field := range []string{"v", "node", "epoch", "partitions", "replicas", "members", "owners"} {
		if _, ok := raw[field]; !ok {
			t.Errorf("no %q in %.200s", field, m.Data)
		}
	}
	pl, err := protocol.DecodePlacement(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, cfg := range c.cfgs {
		ids = append(ids, cfg.ID)
	}
	if pl.Partitions != 256 || pl.Replicas != 3 || !slices.Equal(pl.Members, ids) {
		t.Fatalf("table of %d partitions, N=%d, members %v", pl.Partitions, pl.Replicas, pl.Members)
	}
	for k := range 300 {
		key := fmt.Sprintf("user.%d", k)
		for _, n := range c.nodes {
			if got, want := pl.OwnerIDs(pl.Partition(key)), n.Owners(key); !slices.Equal(got, want) {
				t.Fatalf("table owners of %s %v, node %s says %v", key, got, n.ID(), want)
			}
		}
	}
	// Every node answers with the same table.
	for range 20 {
		m, err := nc.Request("kvmesh.kv.ring", nil, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if other, err := protocol.DecodePlacement(m.Data); err != nil || other.Epoch != pl.Epoch {
			t.Fatalf("table from %s: epoch %v (%v), want %s", m.Header.Get(protocol.HdrNode), other, err, pl.Epoch)
		}
	}
	for _, h := range []string{protocol.HdrR, protocol.HdrKey, "Kvmesh-Bogus", "kvmesh-lower"} {
		m, err := nc.RequestMsg(&nats.Msg{Subject: "kvmesh.kv.ring", Header: nats.Header{h: {"1"}}}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code := m.Header.Get(protocol.HdrServiceErrorCode); code != "400" || m.Header.Get(protocol.HdrError) != "invalid_option" || len(m.Data) != 0 {
			t.Errorf("header %s: code %q, error %q, %d bytes; want 400 invalid_option", h, code, m.Header.Get(protocol.HdrError), len(m.Data))
		}
	}
	// Other headers are not ours to judge.
	if m, err := nc.RequestMsg(&nats.Msg{Subject: "kvmesh.kv.ring", Header: nats.Header{"Traceparent": {"x"}}}, 5*time.Second); err != nil || m.Header.Get(protocol.HdrServiceErrorCode) != "" {
		t.Errorf("a foreign header was refused: %v %v", m, err)
	}
	// `nats micro info kvmesh` lists the endpoint in the queue group.
	m, err = nc.Request("$SRV.INFO.kvmesh", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Endpoints []struct {
			Name       string `json:"name"`
			Subject    string `json:"subject"`
			QueueGroup string `json:"queue_group"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range info.Endpoints {
		found = found || e.Name == "ring" && e.Subject == "kvmesh.kv.ring" && e.QueueGroup == protocol.QueueGroup
	}
	if !found {
		t.Errorf("no ring endpoint in %s", m.Data)
	}
}

// TestHostileTableIsIgnored: a responder that is not a node answers the
// table request too, with tables that send every key to a node "evil".
// Whichever answer a client gets first, it never routes to "evil" (a
// request there would find the wiretap and time out): it takes the real
// table, or ignores the bad one and addresses the node it is connected
// to, as without routing.
func TestHostileTableIsIgnored(t *testing.T) {
	c := startCluster(t, 5)
	ctx := testCtx(t)
	hostile := hostileTables(t)
	nc, err := nats.Connect(c.nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	n := 0
	if _, err := nc.Subscribe("kvmesh.kv.ring", func(m *nats.Msg) {
		_ = m.Respond(hostile[n%len(hostile)])
		n++
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	seen := c.wiretap(0)
	self := c.cfgs[0].ID
	fellBack := 0
	for k := range 3 * len(hostile) {
		cl := c.client(0, client.WithBatching(false)) // the wiretap reads single-request subjects
		// A key n1 does not own: routed, it goes to an owner; without a
		// table, to n1.
		var key string
		for j := 0; ; j++ {
			key = fmt.Sprintf("hostile.%d.%d", k, j)
			if !slices.Contains(c.nodes[0].Owners(key), self) {
				break
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cl.Put(pctx, key, []byte("v"))
		cancel()
		got := next(t, seen)
		if err != nil {
			t.Fatalf("put %s sent on %s: %v", key, got, err)
		}
		switch got {
		case "kvmesh.kv.node." + c.nodes[0].Owners(key)[0] + ".put." + key:
		case "kvmesh.kv.node." + self + ".put." + key:
			fellBack++
		default:
			t.Fatalf("put %s sent on %s", key, got)
		}
		cl.Close()
	}
	t.Logf("%d of %d clients got a hostile table first and ignored it", fellBack, 3*len(hostile))
}

// hostileTables are tables that would send every key to "evil" if a
// client took them.
func hostileTables(t *testing.T) [][]byte {
	members := []string{"evil", "n1", "n2", "n3", "n4", "n5"}
	owners := make([][]string, 256)
	for p := range owners {
		owners[p] = []string{"evil", "n1", "n2"}
	}
	pl, err := protocol.NewPlacement("n1", 256, 3, members, owners)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(pl *protocol.Placement), fixEpoch bool) []byte {
		cp := *pl
		f(&cp)
		if fixEpoch {
			cp.Epoch = protocol.PlacementEpoch(&cp)
		}
		b, _ := json.Marshal(&cp)
		return b
	}
	return [][]byte{
		edit(func(pl *protocol.Placement) { pl.Epoch = strings.Repeat("0", 16) }, false),
		edit(func(pl *protocol.Placement) { pl.Partitions = 255 }, true),
		edit(func(pl *protocol.Placement) { pl.Members = append([]string{"evil.>"}, pl.Members[1:]...) }, true),
		edit(func(pl *protocol.Placement) { pl.V = 2 }, true),
		[]byte(`{"v":1,"partitions":1,"replicas":1,"members":["evil"],"owners":[[0]]}`),
		[]byte("not json"),
	}
}
