package embedded

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
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
	// routes already up stay up until DropRoutes. The node's own key is
	// always admitted (a node listed in its own Routes dials itself).
	Admit func(nodeKey string) bool
}

// check validates a, which Start is about to use for the server name, and
// fills in a.Cert.Leaf.
func (a *RouteAuth) check(name string) error {
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
		a.Cert.Leaf = leaf
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
	// Peers know a route's server name, not its key: DropRoutes finds a
	// peer's routes by the CN of the certificate it presented.
	if leaf.Subject.CommonName != name {
		return fmt.Errorf("route auth: certificate is for %q, not for this node %q", leaf.Subject.CommonName, name)
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
	// it: ReloadOptions (DropRoutes) compares old and new options with
	// reflect.DeepEqual, and two distinct configs holding funcs never
	// compare equal. nats-server uses it as is on accepted routes and
	// clones it on solicited ones, so it must not be changed after Start.
	tls *tls.Config

	mu sync.Mutex
	// admitted holds the keys that passed a handshake since Start and
	// were not dropped since: a superset of the peers with live routes,
	// which DropRoutes pins so that their routes survive it.
	admitted map[string]admission
}

// admission is the last handshake a key passed.
type admission struct {
	name string    // the certificate's CN: the peer's server name (Start checks it on members)
	at   time.Time // when it passed verify
}

// newRouteGuard builds the guard of a, which Config.normalize has checked.
func newRouteGuard(a *RouteAuth) (*routeGuard, error) {
	self, err := PeerKey(a.Cert.Leaf)
	if err != nil {
		return nil, err
	}
	g := &routeGuard{self: self, admit: a.Admit, admitted: make(map[string]admission)}
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
	g.mu.Lock()
	g.admitted[key] = admission{name: leaf.Subject.CommonName, at: time.Now()}
	g.mu.Unlock()
	return nil
}

// lastAdmission returns the last handshake key passed, if any.
func (g *routeGuard) lastAdmission(key string) (admission, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.admitted[key]
	return a, ok
}

// pinsWithout forgets key and returns the pins (hex SHA-256 of the SPKI,
// what nats-server compares) of every other key admitted so far.
func (g *routeGuard) pinsWithout(key string) (server.PinnedCertSet, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.admitted, key)
	pins := make(server.PinnedCertSet, len(g.admitted))
	for k := range g.admitted {
		raw, err := nkeys.Decode(nkeys.PrefixByteServer, []byte(k))
		if err != nil {
			return nil, err // cannot happen: PeerKey encoded it
		}
		spki, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(raw))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(spki)
		pins[hex.EncodeToString(sum[:])] = struct{}{}
	}
	return pins, nil
}

// routeSettle bounds how long after a handshake its route registers with
// the server: a route whose handshake passed Admit before the caller
// changed it can register after DropRoutes' first reload and so escape
// it, and stay up. Measured under -race on 2 cores, dropping a peer while
// its pool of routes was still forming, without this wait: such a route
// in 10 of 40 runs (dropping right after the mesh formed) and 4 of 20
// (dropping at the peer's first route), registered 0.4 to 4.2 ms after
// DropRoutes returned. The margin is for loaded machines; DropRoutes
// waits only when the peer's last handshake is that recent.
const routeSettle = 500 * time.Millisecond

// DropRoutes closes this server's live routes to the peer with node key
// nodeKey ("N..."), which RouteAuth.Admit must already refuse: then the
// routes do not come back, as every reconnection is refused at its
// handshake. Routes to other peers are not disturbed. Each node drops its
// own routes: to evict a member, every node calls it.
//
// It blocks for two option reloads of the server (1 to 8 ms measured),
// and, if the peer passed a handshake less than routeSettle (500 ms) ago,
// until that much time has passed since. It is serialized with Restart
// and Shutdown. It fails with ErrNoRouteAuth without Config.RouteAuth,
// ErrInvalidKey if nodeKey is not a node key, ErrStillAdmitted if Admit
// admits it, ErrClosed after Shutdown. Safe for concurrent use.
//
// How: nats-server has no call that closes a route. A reload that changes
// Cluster.TLSPinnedCerts closes every registered route whose peer
// certificate is not pinned (recheckPinnedCerts, server/reload.go), on
// both accepted and solicited routes. So DropRoutes reloads with every key
// admitted so far pinned except nodeKey, which closes exactly nodeKey's
// routes, and then reloads back to no pins, which closes nothing; from
// then on Admit keeps nodeKey out. Tracking route connections ourselves
// cannot work: GetConfigForClient sees the conns of accepted routes, but
// nothing in tls.Config sees those of solicited ones.
//
// The reload checks only routes already registered. One whose handshake
// passed before Admit changed registers a few milliseconds later (after
// the peer's INFO) and would escape; so while the peer's last handshake is
// recent, DropRoutes watches for its server name among the peers and
// reloads again when it shows. This relies on a member's server name
// being its certificate's CN, which Start checks. What remains: a peer
// that lies about its server name and holds back its INFO after a
// handshake it passed before the change. nats-server has no hook at route
// registration to close that. And a peer admitted for the first time
// during the reloads is refused by the pins: an explicit route retries a
// second later, a gossiped one only Cluster.ConnectRetries times.
func (s *Server) DropRoutes(nodeKey string) error {
	fail := func(err error) error {
		return fmt.Errorf("embedded: drop routes of %s on %s: %w", nodeKey, s.cfg.Name, err)
	}
	if s.guard == nil {
		return fail(ErrNoRouteAuth)
	}
	if !nkeys.IsValidPublicServerKey(nodeKey) {
		return fail(fmt.Errorf("%w: not a node key", ErrInvalidKey))
	}
	if nodeKey == s.guard.self || s.guard.admit(nodeKey) {
		return fail(ErrStillAdmitted)
	}
	s.life.Lock()
	defer s.life.Unlock()
	if s.isClosed() {
		return fail(ErrClosed)
	}
	ns := s.prov.cur.Load()
	if !ns.Running() {
		// A failed Restart left no server, hence no routes.
		return nil
	}
	last, seen := s.guard.lastAdmission(nodeKey)
	if err := s.dropOnce(ns, nodeKey); err != nil {
		return fail(err)
	}
	if !seen {
		return nil
	}
	tick := time.NewTicker(peerPoll)
	defer tick.Stop()
	settled := time.NewTimer(time.Until(last.at.Add(s.settle)))
	defer settled.Stop()
	for {
		select {
		case <-settled.C:
			return nil
		case <-tick.C:
		}
		if slices.Contains(s.PeerNames(), last.name) {
			if err := s.dropOnce(ns, nodeKey); err != nil {
				return fail(err)
			}
		}
	}
}

// dropOnce closes ns's registered routes to nodeKey: one reload
// with the other admitted keys pinned, one back to no pins.
func (s *Server) dropOnce(ns *server.Server, nodeKey string) error {
	pins, err := s.guard.pinsWithout(nodeKey)
	if err != nil {
		return err
	}
	pinned := options(s.cfg, s.guard)
	pinned.Cluster.TLSPinnedCerts = pins
	if err := ns.ReloadOptions(pinned); err != nil {
		return fmt.Errorf("pin reload: %w", err)
	}
	// Pins would also refuse every peer admitted later: remove them. If
	// this failed the pins would stay, so the error says so.
	if err := ns.ReloadOptions(options(s.cfg, s.guard)); err != nil {
		return fmt.Errorf("unpin reload (routes now pinned to the peers admitted so far): %w", err)
	}
	return nil
}
