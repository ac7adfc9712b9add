package embedded

import (
	"bytes"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/nats-io/nkeys"
)

func TestClusterCADeterministic(t *testing.T) {
	key, _ := nkeys.CreateCluster()
	a, err := ClusterCA(key)
	if err != nil {
		t.Fatal(err)
	}
	// The same key from its seed, as another node would hold it.
	seed, _ := key.Seed()
	again, _ := nkeys.FromSeed(seed)
	b, err := ClusterCA(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Raw, b.Raw) {
		t.Fatal("two CAs from one cluster key differ")
	}
	pub, _ := key.PublicKey()
	if !a.IsCA || a.Subject.CommonName != "kvmesh cluster "+pub {
		t.Fatalf("CA: IsCA %v, subject %q", a.IsCA, a.Subject.CommonName)
	}
	other, _ := nkeys.CreateCluster()
	c, _ := ClusterCA(other)
	if bytes.Equal(a.Raw, c.Raw) {
		t.Fatal("two cluster keys give the same CA")
	}
}

func TestNodeCert(t *testing.T) {
	cluster, _ := nkeys.CreateCluster()
	ca, _ := ClusterCA(cluster)
	node, _ := nkeys.CreateServer()
	pub, _ := node.PublicKey()
	cert, err := NodeCert(cluster, node, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf.Subject.CommonName != "n1" {
		t.Fatalf("CN %q", cert.Leaf.Subject.CommonName)
	}
	if got, err := PeerKey(cert.Leaf); err != nil || got != pub {
		t.Fatalf("PeerKey = %q, %v; want %q", got, err, pub)
	}
	again, _ := NodeCert(cluster, node, "n1")
	if !bytes.Equal(cert.Certificate[0], again.Certificate[0]) {
		t.Fatal("NodeCert is not deterministic")
	}

	otherCluster, _ := nkeys.CreateCluster()
	otherCA, _ := ClusterCA(otherCluster)
	verify := func(ca *x509.Certificate, usage x509.ExtKeyUsage) error {
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := verify(ca, usage); err != nil {
			t.Fatalf("usage %v against its CA: %v", usage, err)
		}
		if err := verify(otherCA, usage); err == nil {
			t.Fatalf("usage %v verifies against another cluster's CA", usage)
		}
	}

	user, _ := nkeys.CreateUser()
	pubOnly, _ := nkeys.FromPublicKey(pub)
	bad := []struct {
		name          string
		cluster, node nkeys.KeyPair
		id            string
	}{
		{"node key as cluster key", node, node, "n1"},
		{"cluster key as node key", cluster, cluster, "n1"},
		{"user key as node key", cluster, user, "n1"},
		{"node key without seed", cluster, pubOnly, "n1"},
		{"nil node key", cluster, nil, "n1"},
		{"empty id", cluster, node, " "},
	}
	for _, tt := range bad {
		if _, err := NodeCert(tt.cluster, tt.node, tt.id); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: err %v, want ErrInvalidKey", tt.name, err)
		}
	}
	if _, err := ClusterCA(node); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("ClusterCA(node key): %v", err)
	}
	if _, err := PeerKey(nil); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("PeerKey(nil): %v", err)
	}
}
