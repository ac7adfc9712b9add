package embedded

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
)

// Route certificates. The cluster key (an nkey of the cluster kind, "C...")
// is a CA; each node's key (server kind, "N...") gets a leaf issued by it.
// Both are ed25519, whose signatures are deterministic, and every field
// below is fixed or derived from the keys, so any node holding the cluster
// key derives byte-identical certificates: nothing is stored or exchanged.
//
// Expiry is not how membership ends: RouteAuth.Admit and DropRoutes are.
// So the validity window is the widest RFC 5280 allows, and a node whose
// clock is wrong still opens routes.
var (
	certNotBefore = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) // RFC 5280 "no well-defined expiration"
)

// routeTLSName is the DNS name every node certificate carries and every
// solicited route asks for (tls.Config.ServerName). Route URLs are IPs or
// host names the certificates cannot know, so the name checked is this
// fixed one instead. That lets crypto/tls verify the chain with its
// standard code on both sides, with no InsecureSkipVerify (which nats-server
// would log as "DO NOT USE IN PRODUCTION"). It is in the reserved .invalid
// domain (RFC 2606): it never resolves, and it says nothing the cluster CA
// does not: only that the holder is a node of this cluster.
const routeTLSName = "route.kvmesh.invalid"

// ClusterCA returns the self-signed CA certificate of the cluster key: the
// root that node certificates (NodeCert) chain to. It is deterministic:
// the same key always gives the same DER, so every node derives the same
// CA. cluster must be a cluster nkey with its seed. Safe for concurrent
// use.
func ClusterCA(cluster nkeys.KeyPair) (*x509.Certificate, error) {
	priv, pub, err := edKey(cluster, nkeys.PrefixByteCluster)
	if err != nil {
		return nil, fmt.Errorf("embedded: cluster CA: %w", err)
	}
	tmpl := caTemplate(pub, priv.Public().(ed25519.PublicKey))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, fmt.Errorf("embedded: cluster CA: %w", err)
	}
	return x509.ParseCertificate(der)
}

func caTemplate(clusterPub string, raw ed25519.PublicKey) *x509.Certificate {
	// The key id is set here, as RFC 7093 method 1 (SHA-256 of the key,
	// 160 bits), rather than left to crypto/x509, whose choice has changed
	// between Go versions: nodes built with different Go must still derive
	// the same CA.
	skid := sha256.Sum256(raw)
	return &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kvmesh cluster " + clusterPub},
		NotBefore:             certNotBefore,
		NotAfter:              certNotAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // node certificates only, no intermediates
		SubjectKeyId:          skid[:20],
	}
}

// NodeCert returns the route certificate of the node key, issued by the
// cluster CA: CN is the node id, the key is the node's ed25519 key (so
// PeerKey gives back the node's public key), and it serves as both the
// client and the server end of a route. It is deterministic like
// ClusterCA. cluster must be a cluster nkey and node a server nkey, both
// with their seeds; id must be non-empty. Safe for concurrent use.
func NodeCert(cluster, node nkeys.KeyPair, id string) (tls.Certificate, error) {
	fail := func(err error) (tls.Certificate, error) {
		return tls.Certificate{}, fmt.Errorf("embedded: node certificate for %q: %w", id, err)
	}
	if strings.TrimSpace(id) == "" {
		return fail(fmt.Errorf("%w: empty node id", ErrInvalidKey))
	}
	caPriv, _, err := edKey(cluster, nkeys.PrefixByteCluster)
	if err != nil {
		return fail(err)
	}
	ca, err := ClusterCA(cluster)
	if err != nil {
		return fail(err)
	}
	nodePriv, nodePub, err := edKey(node, nkeys.PrefixByteServer)
	if err != nil {
		return fail(err)
	}
	// Serial: unique per node key within the CA, as RFC 5280 wants,
	// without a counter to keep. 127 bits keeps it positive.
	sum := sha256.Sum256([]byte(nodePub))
	sum[0] &= 0x7f
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(sum[:16]),
		Subject:      pkix.Name{CommonName: id},
		DNSNames:     []string{routeTLSName},
		NotBefore:    certNotBefore,
		NotAfter:     certNotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, nodePriv.Public(), caPriv)
	if err != nil {
		return fail(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return fail(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: nodePriv, Leaf: leaf}, nil
}

// PeerKey returns the node key ("N...") of a certificate's ed25519 public
// key: who a route peer is. It does not verify the certificate.
func PeerKey(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", fmt.Errorf("embedded: peer key: %w: no certificate", ErrInvalidKey)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", fmt.Errorf("embedded: peer key of %q: %w: %T is not an ed25519 key", cert.Subject.CommonName, ErrInvalidKey, cert.PublicKey)
	}
	k, err := nkeys.Encode(nkeys.PrefixByteServer, pub)
	if err != nil {
		return "", fmt.Errorf("embedded: peer key of %q: %w", cert.Subject.CommonName, err)
	}
	return string(k), nil
}

// edKey returns the ed25519 private key and the public nkey of kp, which
// must be of kind want and hold its seed.
func edKey(kp nkeys.KeyPair, want nkeys.PrefixByte) (ed25519.PrivateKey, string, error) {
	if kp == nil {
		return nil, "", fmt.Errorf("%w: no %s key", ErrInvalidKey, want)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s key without its seed: %v", ErrInvalidKey, want, err)
	}
	prefix, raw, err := nkeys.DecodeSeed(seed)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	if prefix != want {
		return nil, "", fmt.Errorf("%w: a %s key where a %s key is needed", ErrInvalidKey, prefix, want)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return ed25519.NewKeyFromSeed(raw), pub, nil
}
