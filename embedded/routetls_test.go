package embedded

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/kvmesh/kvmesh/internal/freeport"
)

// testCluster is a cluster key with its CA and a shared admission list:
// every key is admitted unless refused.
type testCluster struct {
	key nkeys.KeyPair
	ca  *x509.Certificate

	mu      sync.Mutex
	refused map[string]bool
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	key, err := nkeys.CreateCluster()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ClusterCA(key)
	if err != nil {
		t.Fatal(err)
	}
	return &testCluster{key: key, ca: ca, refused: make(map[string]bool)}
}

func (c *testCluster) admit(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.refused[key]
}

func (c *testCluster) refuse(key string, refused bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refused[key] = refused
}

// cert issues a certificate of this cluster to a fresh node key.
func (c *testCluster) cert(t *testing.T, id string) (tls.Certificate, string) {
	t.Helper()
	kp, err := nkeys.CreateServer()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	cert, err := NodeCert(c.key, kp, id)
	if err != nil {
		t.Fatal(err)
	}
	return cert, pub
}

// member is a node of this cluster on random ports, logging to log.
func (c *testCluster) member(t *testing.T, name string, log *recLogger, routes ...string) (Config, string) {
	t.Helper()
	cert, pub := c.cert(t, name)
	cfg := clusterCfg(name, routes...)
	cfg.RouteAuth = &RouteAuth{Cert: cert, CA: c.ca, Admit: c.admit}
	cfg.Logger = log
	return cfg, pub
}

func (l *recLogger) count(prefix, substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.HasPrefix(s, prefix) && strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

// waitLog waits until log has a line with prefix and substr.
func waitLog(ctx context.Context, t *testing.T, log *recLogger, prefix, substr string) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("log %s %q", prefix, substr), func() error {
		if log.has(prefix, substr) {
			return nil
		}
		return errors.New("not yet")
	})
}

// stranger is a nats-server that is not of the cluster, with a local
// client subscribed to everything: what it receives has leaked.
type stranger struct {
	ns  *server.Server
	log *recLogger
	got atomic.Int64
}

// startStranger starts a plain nats-server (tlsCfg nil) or one with its
// own route TLS, routed at routes, in the same NATS cluster name.
func startStranger(t *testing.T, name string, tlsCfg *tls.Config, routes ...string) *stranger {
	t.Helper()
	o := &server.Options{
		ServerName: name, Host: "127.0.0.1", Port: RandomPort, NoSigs: true,
		Cluster: server.ClusterOpts{Name: DefaultClusterName, Host: "127.0.0.1", Port: RandomPort, TLSConfig: tlsCfg},
	}
	if len(routes) > 0 {
		o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	}
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	s := &stranger{ns: ns, log: &recLogger{}}
	ns.SetLoggerV2(s.log, false, false, false)
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("stranger %s not ready", name)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := nc.Subscribe(">", func(*nats.Msg) { s.got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stranger) clusterURL() string {
	return fmt.Sprintf("nats-route://%s", s.ns.ClusterAddr())
}

// permissiveTLS is an intruder's route TLS: it presents its certificate
// even to a server asking for another CA's (crypto/tls would otherwise send
// none), and accepts whatever the other side presents, so that only our
// side can be what refuses the route.
func permissiveTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
		ClientAuth:         tls.RequireAnyClientCert,
		InsecureSkipVerify: true,
	}
}

// burst publishes n messages from pub's node and waits until a subscriber
// on sub's node has them all: they crossed a route, and a stranger with a
// route would have had them by then too.
func burst(ctx context.Context, t *testing.T, pub, sub *Server, n int) {
	t.Helper()
	ncSub, ncPub := connT(t, sub), connT(t, pub)
	var got atomic.Int64
	all := make(chan struct{})
	s, err := ncSub.Subscribe("kv.burst.>", func(*nats.Msg) {
		if got.Add(1) == int64(n) {
			close(all)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Unsubscribe() }()
	// Interest crosses routes asynchronously: wait for it with a request
	// on the same connection, answered after the subscription.
	respond(t, ncSub, "kv.burst-ready", sub.Name())
	requestEventually(ctx, t, ncPub, "kv.burst-ready", "?")
	for i := range n {
		if err := ncPub.Publish(fmt.Sprintf("kv.burst.%d", i), []byte("secret")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-ctx.Done():
		t.Fatalf("burst: %d of %d messages crossed the route", got.Load(), n)
	}
}

func checkNoLeak(t *testing.T, s *stranger) {
	t.Helper()
	if n := s.ns.NumRemotes(); n != 0 {
		t.Fatalf("stranger has %d routes", n)
	}
	if n := s.got.Load(); n != 0 {
		t.Fatalf("stranger received %d messages", n)
	}
}

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

func TestRouteAuthConfigErrors(t *testing.T) {
	tc := newTestCluster(t)
	other := newTestCluster(t)
	cert, _ := tc.cert(t, "n1")
	foreign, _ := other.cert(t, "n1")
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no cluster port", func(c *Config) { c.ClusterPort = 0 }, "cluster port is 0"},
		{"no CA", func(c *Config) { c.RouteAuth.CA = nil }, "no CA"},
		{"no Admit", func(c *Config) { c.RouteAuth.Admit = nil }, "no Admit"},
		{"no cert", func(c *Config) { c.RouteAuth.Cert = tls.Certificate{} }, "no certificate"},
		{"cert of another cluster", func(c *Config) { c.RouteAuth.Cert = foreign }, "does not verify"},
		{"cert of another node", func(c *Config) { c.Name = "n2" }, "not for this node"},
	}
	// A certificate without its parsed Leaf (as tls.X509KeyPair gave it
	// before Go 1.23) is parsed once, by the check.
	noLeaf := cert
	noLeaf.Leaf = nil
	ok := clusterCfg("n1")
	ok.RouteAuth = &RouteAuth{Cert: noLeaf, CA: tc.ca, Admit: tc.admit}
	if n, err := ok.normalize(); err != nil || n.RouteAuth.Cert.Leaf == nil || ok.RouteAuth.Cert.Leaf != nil {
		t.Fatalf("without Leaf: %v; leaf filled in %v, caller's left alone %v", err,
			n.RouteAuth != nil && n.RouteAuth.Cert.Leaf != nil, ok.RouteAuth.Cert.Leaf == nil)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clusterCfg("n1")
			c.RouteAuth = &RouteAuth{Cert: cert, CA: tc.ca, Admit: tc.admit}
			tt.mod(&c)
			if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig containing %q", err, tt.want)
			}
		})
	}
}

// Members form a full mesh over TLS from seeds, messages cross it, and a
// restarted member rejoins.
func TestRouteAuthMesh(t *testing.T) {
	ctx := testCtx(t)
	tc := newTestCluster(t)
	log1 := &recLogger{}
	c1, _ := tc.member(t, "n1", log1)
	n1 := startT(t, c1)
	c2, _ := tc.member(t, "n2", &recLogger{}, n1.ClusterURL())
	n2 := startT(t, c2)
	c3, _ := tc.member(t, "n3", &recLogger{}, n1.ClusterURL())
	n3 := startT(t, c3)
	start := time.Now()
	waitPeers(ctx, t, 2, n1, n2, n3)
	t.Logf("TLS star meshed in %v", time.Since(start))
	ns := []*Server{n1, n2, n3}
	checkPeerNames(t, ns)

	vz, err := n1.NATS().Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !vz.Cluster.TLSRequired || !vz.Cluster.TLSVerify {
		t.Fatalf("route TLS required %v, verify %v", vz.Cluster.TLSRequired, vz.Cluster.TLSVerify)
	}
	if log1.has("WRN", "will not be verified") {
		t.Fatal("nats-server warns that routes are not verified")
	}

	nc1, nc3 := connT(t, n1), connT(t, n3)
	respond(t, nc3, "svc.n3", "n3")
	if m, _ := requestEventually(ctx, t, nc1, "svc.n3", "ping"); string(m.Data) != "n3:ping" {
		t.Fatalf("reply %q", m.Data)
	}

	if err := n2.Restart(); err != nil {
		t.Fatal(err)
	}
	waitPeers(ctx, t, 2, n1, n2, n3)
	checkPeerNames(t, ns)
}

// The harness below detects a leak: on open routes a stranger joins and
// receives the cluster's traffic.
func TestStrangerSniffsOpenRoutes(t *testing.T) {
	ctx := testCtx(t)
	n1 := startT(t, clusterCfg("n1"))
	n2 := startT(t, clusterCfg("n2", n1.ClusterURL()))
	waitPeers(ctx, t, 1, n1, n2)
	s := startStranger(t, "sniffer", nil, n1.ClusterURL())
	waitFor(ctx, t, "the sniffer to join", func() error {
		if s.ns.NumRemotes() < 2 {
			return fmt.Errorf("%d routes", s.ns.NumRemotes())
		}
		return nil
	})
	// The sniffer's interest reaches n1 over its new route a moment after
	// the route is up: burst until a whole burst reached it.
	waitFor(ctx, t, "the sniffer to get a whole burst", func() error {
		before := s.got.Load()
		burst(ctx, t, n1, n2, 100)
		deadline := time.Now().Add(time.Second)
		for s.got.Load()-before < 100 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := s.got.Load() - before; got < 100 {
			return fmt.Errorf("got %d of the last burst", got)
		}
		return nil
	})
}

// strangers returns the cases of intruders: a plain server, and one with
// TLS and a certificate from another cluster key that accepts anything.
func strangers(t *testing.T) map[string]*tls.Config {
	other := newTestCluster(t)
	cert, _ := other.cert(t, "intruder")
	return map[string]*tls.Config{"plain": nil, "other cluster": permissiveTLS(cert)}
}

// A stranger that dials a member gets no route and none of the traffic.
func TestRouteAuthRefusesStrangerDialing(t *testing.T) {
	for name, tlsCfg := range strangers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			tc := newTestCluster(t)
			log1 := &recLogger{}
			c1, _ := tc.member(t, "n1", log1)
			n1 := startT(t, c1)
			c2, _ := tc.member(t, "n2", &recLogger{}, n1.ClusterURL())
			n2 := startT(t, c2)
			waitPeers(ctx, t, 1, n1, n2)

			s := startStranger(t, "intruder", tlsCfg, n1.ClusterURL())
			waitFor(ctx, t, "n1 to refuse the stranger", func() error {
				if s.ns.NumRemotes() > 0 || log1.has("ERR", "handshake error") {
					return nil
				}
				return errors.New("no attempt yet")
			})
			burst(ctx, t, n1, n2, 100)
			checkNoLeak(t, s)
			checkPeerNames(t, []*Server{n1, n2})
		})
	}
}

// A member that dials a stranger (listed in its routes) opens no route.
func TestRouteAuthRefusesStrangerDialed(t *testing.T) {
	for name, tlsCfg := range strangers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			tc := newTestCluster(t)
			s := startStranger(t, "intruder", tlsCfg)
			log1 := &recLogger{}
			c1, _ := tc.member(t, "n1", log1, s.clusterURL())
			n1 := startT(t, c1)
			c2, _ := tc.member(t, "n2", &recLogger{}, n1.ClusterURL())
			n2 := startT(t, c2)
			waitPeers(ctx, t, 1, n1, n2)

			waitFor(ctx, t, "n1's route to the stranger to fail", func() error {
				if s.ns.NumRemotes() > 0 || log1.has("ERR", "handshake error") {
					return nil
				}
				return errors.New("no attempt yet")
			})
			burst(ctx, t, n1, n2, 100)
			checkNoLeak(t, s)
			checkPeerNames(t, []*Server{n1, n2})
		})
	}
}

// Admit decides at each handshake: a refused member stays out, and gets
// in at its next attempt once admitted.
func TestRouteAuthAdmit(t *testing.T) {
	ctx := testCtx(t)
	tc := newTestCluster(t)
	log1 := &recLogger{}
	c1, _ := tc.member(t, "n1", log1)
	n1 := startT(t, c1)
	c2, _ := tc.member(t, "n2", &recLogger{}, n1.ClusterURL())
	n2 := startT(t, c2)
	c3, k3 := tc.member(t, "n3", &recLogger{}, n1.ClusterURL())
	tc.refuse(k3, true)
	n3 := startT(t, c3)

	waitLog(ctx, t, log1, "ERR", "not admitted")
	waitPeers(ctx, t, 1, n1, n2)
	if n := n3.NumPeers(); n != 0 {
		t.Fatalf("refused n3 has %d peers", n)
	}
	checkPeerNames(t, []*Server{n1, n2})

	tc.refuse(k3, false)
	start := time.Now()
	waitPeers(ctx, t, 2, n1, n2, n3)
	t.Logf("n3 joined %v after being admitted", time.Since(start))
	checkPeerNames(t, []*Server{n1, n2, n3})
}

// A node listed in its own routes dials itself; its own key passes even
// when Admit does not list it, so the server sees the self-route and
// drops it, instead of retrying a refused handshake forever.
func TestRouteAuthSelfRoute(t *testing.T) {
	ctx := testCtx(t)
	tc := newTestCluster(t)
	port := freeport.MustTake(t, 1)[0]
	self := fmt.Sprintf("nats-route://127.0.0.1:%d", port)
	log1 := &recLogger{}
	c1, k1 := tc.member(t, "n1", log1, self)
	c1.ClusterPort = port
	tc.refuse(k1, true)
	startT(t, c1)
	waitLog(ctx, t, log1, "INF", "Duplicate Route")
	if log1.has("ERR", "not admitted") {
		t.Fatal("n1 refused its own key")
	}
}

// routeIDs returns the ids of s's route connections to the peer named.
func routeIDs(t *testing.T, s *Server, peer string) []uint64 {
	t.Helper()
	rz, err := s.NATS().Routez(&server.RoutezOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, r := range rz.Routes {
		if r.RemoteName == peer {
			ids = append(ids, r.Rid)
		}
	}
	slices.Sort(ids)
	return ids
}

// DropRoutes evicts a live member: its routes close, the others' stay,
// and its reconnections are refused.
func TestDropRoutes(t *testing.T) {
	ctx := testCtx(t)
	tc := newTestCluster(t)
	log1 := &recLogger{}
	c1, _ := tc.member(t, "n1", log1)
	n1 := startT(t, c1)
	c2, _ := tc.member(t, "n2", &recLogger{}, n1.ClusterURL())
	n2 := startT(t, c2)
	c3, k3 := tc.member(t, "n3", &recLogger{}, n1.ClusterURL())
	n3 := startT(t, c3)
	waitPeers(ctx, t, 2, n1, n2, n3)
	before := routeIDs(t, n1, "n2")

	tc.refuse(k3, true)
	refusals := log1.count("ERR", "not admitted")
	for _, s := range []*Server{n1, n2} {
		start := time.Now()
		if err := s.DropRoutes(k3); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s.DropRoutes took %v", s.Name(), time.Since(start))
	}
	waitFor(ctx, t, "n3's routes to close", func() error {
		if n := n3.NumPeers(); n != 0 {
			return fmt.Errorf("n3 has %d peers", n)
		}
		return nil
	})
	// n3 retries its explicit route to n1 (every second): wait until n1
	// has refused it again, then n3 must still be out.
	waitFor(ctx, t, "n3 to try again", func() error {
		if log1.count("ERR", "not admitted") > refusals {
			return nil
		}
		return errors.New("no new attempt")
	})
	if n := n3.NumPeers(); n != 0 {
		t.Fatalf("n3 is back with %d peers", n)
	}
	checkPeerNames(t, []*Server{n1, n2})
	// More may have been added since (the pool fills after the first
	// route), but none closed.
	after := routeIDs(t, n1, "n2")
	for _, id := range before {
		if !slices.Contains(after, id) {
			t.Fatalf("n1's route %d to n2 was closed: %v → %v", id, before, after)
		}
	}
	// Pins are gone: a member admitted for the first time still joins.
	c4, _ := tc.member(t, "n4", &recLogger{}, n2.ClusterURL())
	n4 := startT(t, c4)
	waitPeers(ctx, t, 2, n1, n2, n4)
	checkPeerNames(t, []*Server{n1, n2, n4})
}

// A peer dropped while its pool of routes is still forming: some of its
// handshakes passed Admit before the change and register after the first
// reload (one round in five under -race, measured), then stay for a
// while. None may be seen once DropRoutes has returned.
func TestDropRoutesWhileRoutesForm(t *testing.T) {
	ctx := testCtx(t)
	tc := newTestCluster(t)
	c1, _ := tc.member(t, "n1", &recLogger{})
	n1 := startT(t, c1)
	n1.settle = 100 * time.Millisecond // escapes were seen within 5 ms

	// The observer flags any route of n1 to a peer already dropped.
	var (
		mu      sync.Mutex
		dropped = make(map[string]bool)
		escaped []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, name := range n1.PeerNames() {
				mu.Lock()
				if dropped[name] {
					escaped = append(escaped, name)
				}
				mu.Unlock()
			}
		}
	})

	var peers []*Server // kept up: an escaped route lives as long as both ends
	for round := range 12 {
		name := fmt.Sprintf("p%d", round)
		c, k := tc.member(t, name, &recLogger{}, n1.ClusterURL())
		peers = append(peers, startT(t, c))
		// Drop at the first registered route, when the rest are in flight:
		// poll finer than waitFor does.
		tick := time.NewTicker(200 * time.Microsecond)
		for !slices.Contains(n1.PeerNames(), name) {
			select {
			case <-ctx.Done():
				t.Fatalf("no route to %s: %v", name, ctx.Err())
			case <-tick.C:
			}
		}
		tick.Stop()
		tc.refuse(k, true)
		if err := n1.DropRoutes(k); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		dropped[name] = true
		mu.Unlock()
	}
	waitFor(ctx, t, "every dropped peer to have no route", func() error {
		for _, p := range peers {
			if n := p.NumPeers(); n > 0 {
				return fmt.Errorf("%s has %d peers", p.Name(), n)
			}
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if len(escaped) > 0 {
		t.Fatalf("routes seen after DropRoutes returned: %v", slices.Compact(escaped))
	}
	if names := n1.PeerNames(); len(names) > 0 {
		t.Fatalf("n1 has routes to %v", names)
	}
}

func TestDropRoutesErrors(t *testing.T) {
	tc := newTestCluster(t)
	_, k := tc.cert(t, "x")
	open := startT(t, clusterCfg("open"))
	if err := open.DropRoutes(k); !errors.Is(err, ErrNoRouteAuth) {
		t.Fatalf("without RouteAuth: %v", err)
	}
	c1, k1 := tc.member(t, "n1", nil)
	c1.Logger = nil
	n1 := startT(t, c1)
	if err := n1.DropRoutes(k1); !errors.Is(err, ErrStillAdmitted) {
		t.Fatalf("DropRoutes of its own key: %v", err)
	}
	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	for _, bad := range []string{"", "nope", upub} {
		if err := n1.DropRoutes(bad); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("DropRoutes(%q): %v", bad, err)
		}
	}
	if err := n1.DropRoutes(k); !errors.Is(err, ErrStillAdmitted) {
		t.Fatalf("DropRoutes of an admitted key: %v", err)
	}
	tc.refuse(k, true)
	if err := n1.DropRoutes(k); err != nil {
		t.Fatalf("DropRoutes of a key with no routes: %v", err)
	}
	n1.Shutdown()
	if err := n1.DropRoutes(k); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Shutdown: %v", err)
	}
}
