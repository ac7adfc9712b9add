package node_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestClientsCannotChangeMembership: over real NATS, a client connection
// that publishes on the gossip subjects (garbage, a made-up member with a
// record signed by another cluster key, a heartbeat in a member's name
// signed by another key) changes neither the member set nor liveness;
// the nodes count what they refused.
func TestClientsCannotChangeMembership(t *testing.T) {
	c := startCluster(t, 3)
	nc, err := nats.Connect(c.nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject := protocol.DefaultPrefix + ".gossip.heartbeat"
	sign := func(h protocol.Heartbeat, kp nkeys.KeyPair) []byte {
		h.V, h.Time = protocol.Version, time.Now().UnixNano()
		h.Sig, _ = kp.Sign(h.SigningBytes())
		b, _ := protocol.EncodeHeartbeat(&h)
		return b
	}
	other, _ := nkeys.CreateCluster()
	n9, _ := nkeys.CreateServer()
	pub9, _ := n9.PublicKey()
	forged, _ := membership.Sign(protocol.MemberRecord{V: protocol.Version, ID: "n9", Key: pub9, Status: protocol.MemberUp, Incarnation: 1, Version: 1}, other)
	for _, b := range [][]byte{
		[]byte("\x85\xa1v\x01garbage"),
		sign(protocol.Heartbeat{From: "n9", Records: []protocol.MemberRecord{forged}}, n9),
		sign(protocol.Heartbeat{From: "n2"}, n9),
	} {
		if err := nc.Publish(subject, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []string{"n1", "n2", "n3"}
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range c.nodes {
		for {
			st := n.Status()
			if !slices.Equal(st.Members, want) || len(st.Records) != 3 {
				t.Fatalf("%s: members %v, %d records after the outsider's gossip", n.ID(), st.Members, len(st.Records))
			}
			wantHB := int64(3)
			if n.ID() == "n2" {
				wantHB = 2 // it ignores a heartbeat in its own name unread
			}
			if st.RefusedRecords == 1 && st.RefusedHeartbeats == wantHB {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s refused %d records and %d heartbeats, want 1 and %d", n.ID(), st.RefusedRecords, st.RefusedHeartbeats, wantHB)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestStrangersGetNoRoute: a plain nats-server routed at a member gets no
// route and sees none of the store's traffic, and a kvmesh node of
// another store (its own secret, so its own cluster key) routed at the
// members is refused too and never becomes a member; the store serves
// on.
func TestStrangersGetNoRoute(t *testing.T) {
	c := startCluster(t, 3)
	o := &server.Options{ServerName: "sniffer", Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		Cluster: server.ClusterOpts{Name: "kvmesh", Host: "127.0.0.1", Port: -1},
		Routes:  server.RoutesFromStr(c.nodes[0].ClusterURL())}
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("sniffer not ready")
	}
	spy, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	var sniffed atomic.Int64
	if _, err := spy.Subscribe(">", func(*nats.Msg) { sniffed.Add(1) }); err != nil {
		t.Fatal(err)
	}

	other := node.DefaultConfig()
	other.ID, other.DataDir, other.RunDir = "n9", t.TempDir(), t.TempDir()
	other.Secret = []byte("another store's secret 0123456789")
	other.Listen, other.Cluster = "127.0.0.1:0", "127.0.0.1:0"
	other.Peers = []string{c.nodes[0].ClusterURL(), c.nodes[1].ClusterURL()}
	other.PeerWait = time.Second
	n9, err := node.New(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := n9.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	defer n9.Close()

	// The store works on: writes and reads cross its routes, heartbeats
	// flow; none of it reaches the sniffer.
	ctx := testCtx(t)
	for i := range 50 {
		if _, err := c.nodes[i%3].Put(ctx, fmt.Sprint("k", i), []byte("v"), nil, 3); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * c.cfgs[0].Heartbeat) // heartbeats too: let them flow
	if got := sniffed.Load(); got != 0 || ns.NumRoutes() != 0 {
		t.Fatalf("the sniffer has %d routes and received %d messages", ns.NumRoutes(), got)
	}
	for _, n := range c.nodes {
		if slices.Contains(n.ConnectedPeers(), "n9") || slices.Contains(n.ConnectedPeers(), "sniffer") || slices.Contains(n.Members(), "n9") {
			t.Fatalf("%s: peers %v, members %v", n.ID(), n.ConnectedPeers(), n.Members())
		}
	}
	if got := n9.ConnectedPeers(); len(got) != 0 {
		t.Fatalf("the other store's node has routes to %v", got)
	}
}
