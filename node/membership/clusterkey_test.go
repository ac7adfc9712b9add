package membership

import (
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

func TestClusterKey(t *testing.T) {
	a1, err := ClusterKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := ClusterKey([]byte("0123456789abcdef0123456789abcdef"))
	b, _ := ClusterKey([]byte("0123456789abcdef0123456789abcdeF"))
	pa1, _ := a1.PublicKey()
	pa2, _ := a2.PublicKey()
	pb, _ := b.PublicKey()
	if pa1 != pa2 || pa1 == pb || pa1[0] != 'C' {
		t.Fatalf("keys %s %s %s: want the same secret to give the same cluster key, another secret another", pa1, pa2, pb)
	}
	if _, err := ClusterKey([]byte("short")); err == nil {
		t.Fatal("a short secret gave a cluster key")
	}
	// Records signed by a's key verify under a's public key only.
	k := newTestKeys(t)
	r, _ := Sign(protocol.MemberRecord{V: protocol.Version, ID: "n1", Key: k.node["n1"], Status: protocol.MemberUp, Incarnation: 1, Version: 1}, a1)
	if err := Verify(&r, pa2); err != nil {
		t.Fatal(err)
	}
	if err := Verify(&r, pb); err == nil {
		t.Fatal("a record signed under one secret verified under another")
	}
}
