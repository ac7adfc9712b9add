package embedded

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// RouteAuth admits on routes only the members of one cluster. Without it
// the route port accepts any nats-server, which then receives the
// cluster's traffic: client authentication does not cover routes
// (shared notes/nats.md §4).
//
// With it, every route, accepted or solicited, is mutual TLS 1.3: each
// side presents its NodeCert, crypto/tls verifies the peer's chain against
// CA on both sides, and then Admit decides on the peer's node key. A
// refused handshake means no route; explicit routes keep retrying (every
// second), so a refused peer gets in at the first handshake after Admit
// changes its mind.
type RouteAuth struct {
	// Cert is this node's certificate, from NodeCert with the cluster key
	// that made CA. Start checks that it chains to CA.
	Cert tls.Certificate
	// CA is the cluster's CA, from ClusterCA.
	CA *x509.Certificate
	// Admit reports whether the peer with this node key ("N...") may have
	// routes to this node. It is called at every route handshake, from the
	// server's goroutines, after the chain has been verified: it must be
	// safe for concurrent use and quick (it runs inside the handshake). Its
	// answer may change at run time and the next handshake sees the change;
	// routes already up stay up. The node's own key is
	// always admitted (a node listed in its own Routes dials itself).
	Admit func(nodeKey string) bool
}

// check validates a, which Start is about to use.
func (a *RouteAuth) check() error {
	if a.CA == nil {
		return errors.New("route auth: no CA")
	}
	if a.Admit == nil {
		return errors.New("route auth: no Admit func")
	}
	if len(a.Cert.Certificate) == 0 || a.Cert.PrivateKey == nil {
		return errors.New("route auth: no certificate or no private key")
	}
	leaf := a.Cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(a.Cert.Certificate[0]); err != nil {
			return fmt.Errorf("route auth: certificate: %v", err)
		}
	}
	// The checks the peers will make, so that a mismatched cluster key
	// fails here and not as routes that never come up.
	roots := x509.NewCertPool()
	roots.AddCert(a.CA)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: routeTLSName, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return fmt.Errorf("route auth: certificate %q does not verify against CA %q (not from NodeCert with this cluster key?): %v",
				leaf.Subject.CommonName, a.CA.Subject.CommonName, err)
		}
	}
	if _, err := PeerKey(leaf); err != nil {
		return fmt.Errorf("route auth: %v", err)
	}
	return nil
}

// routeGuard is a Server's route admission: the TLS config of its routes
// and the Admit check run at their handshakes. One per Server, kept across
// Restart.
type routeGuard struct {
	self  string // this node's key: always admitted
	admit func(nodeKey string) bool

	// tls is built once and every server options of this Server point to
	// it. nats-server uses it as is on accepted routes and clones it on
	// solicited ones, so it must not be changed after Start.
	tls *tls.Config
}

func newRouteGuard(a *RouteAuth) (*routeGuard, error) {
	leaf := a.Cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(a.Cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	self, err := PeerKey(leaf)
	if err != nil {
		return nil, err
	}
	g := &routeGuard{self: self, admit: a.Admit}
	pool := x509.NewCertPool()
	pool.AddCert(a.CA)
	g.tls = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{a.Cert},
		// Solicited routes: the server's chain against CA, for the fixed
		// name every node certificate carries (routeTLSName).
		RootCAs:    pool,
		ServerName: routeTLSName,
		// Accepted routes: a client certificate is required and its chain
		// verified against CA.
		ClientCAs:  pool,
		ClientAuth: tls.RequireAndVerifyClientCert,
		// Both sides, after the chain: membership.
		VerifyConnection: g.verify,
		// Every handshake is a full one, so Admit always sees it.
		SessionTicketsDisabled: true,
	}
	return g, nil
}

// verify runs at the end of every route handshake, on both sides.
func (g *routeGuard) verify(cs tls.ConnectionState) error {
	// crypto/tls has verified the chain (RootCAs, ClientCAs). Refuse if it
	// has not, so that a config loosened by mistake fails closed.
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return errors.New("kvmesh route: peer certificate chain not verified")
	}
	leaf := cs.VerifiedChains[0][0]
	key, err := PeerKey(leaf)
	if err != nil {
		return fmt.Errorf("kvmesh route: %v", err)
	}
	if key != g.self && !g.admit(key) {
		return fmt.Errorf("kvmesh route: peer %s (%q) not admitted", key, leaf.Subject.CommonName)
	}
	return nil
}
