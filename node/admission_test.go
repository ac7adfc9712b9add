package node_test

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

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
