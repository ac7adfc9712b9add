package embedded

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/internal/freeport"
)

// startStar starts n1 on a random cluster port and n2, n3 seeded with n1
// only; gossip completes the mesh.
func startStar(ctx context.Context, t *testing.T) []*Server {
	t.Helper()
	n1 := startT(t, clusterCfg("n1"))
	n2 := startT(t, clusterCfg("n2", n1.ClusterURL()))
	n3 := startT(t, clusterCfg("n3", n1.ClusterURL()))
	start := time.Now()
	waitPeers(ctx, t, 2, n1, n2, n3)
	t.Logf("star meshed in %v", time.Since(start))
	return []*Server{n1, n2, n3}
}

func checkPeerNames(t *testing.T, servers []*Server) {
	t.Helper()
	for _, s := range servers {
		var want []string
		for _, o := range servers {
			if o != s {
				want = append(want, o.Name())
			}
		}
		if got := s.PeerNames(); !slices.Equal(got, want) {
			t.Fatalf("%s.PeerNames() = %v, want %v", s.Name(), got, want)
		}
		// NumRoutes counts pooled connections; NumPeers must not.
		if s.NumPeers() != len(want) {
			t.Fatalf("%s.NumPeers() = %d (NumRoutes %d), want %d", s.Name(), s.NumPeers(), s.NATS().NumRoutes(), len(want))
		}
	}
}

func TestClusterStar(t *testing.T) {
	ctx := testCtx(t)
	ns := startStar(ctx, t)
	checkPeerNames(t, ns)
	t.Logf("NumRoutes on n1 = %d for %d peers", ns[0].NATS().NumRoutes(), ns[0].NumPeers())

	// A peer that leaves is noticed.
	ns[2].Shutdown()
	waitFor(ctx, t, "n1 to lose n3", func() error {
		if got := ns[0].PeerNames(); !slices.Equal(got, []string{"n2"}) {
			return fmt.Errorf("n1 peers %v", got)
		}
		return nil
	})
}

// Every node gets the same full list, itself included. The cluster ports
// must be known up front, so they are picked free and released first;
// another listener may grab one in between, in which case the whole
// attempt is retried (seen once in 90 runs of three test binaries at once).
func TestClusterFullList(t *testing.T) {
	ctx := testCtx(t)
	var servers []*Server
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		servers, err = startFullList(t, 3)
		if err == nil {
			break
		}
		t.Logf("attempt %d: %v", attempt, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitPeers(ctx, t, 2, servers...)
	t.Logf("full list meshed in %v", time.Since(start))
	checkPeerNames(t, servers)
}

// startFullList starts n servers on fresh free cluster ports, each given
// all n routes. On error it shuts down what it started.
func startFullList(t *testing.T, n int) ([]*Server, error) {
	ports := freeport.MustTake(t, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	var servers []*Server
	for i, p := range ports {
		cfg := clusterCfg(fmt.Sprintf("n%d", i+1), routes...)
		cfg.ClusterPort = p
		s, err := Start(cfg)
		if err != nil {
			for _, s := range servers {
				s.Shutdown()
			}
			return nil, err
		}
		t.Cleanup(s.Shutdown)
		if s.ClusterURL() != routes[i] {
			t.Fatalf("ClusterURL = %q, want %q", s.ClusterURL(), routes[i])
		}
		servers = append(servers, s)
	}
	return servers, nil
}

func TestRequestAcrossRoutes(t *testing.T) {
	ctx := testCtx(t)
	ns := startStar(ctx, t)
	nc1, nc3 := connT(t, ns[0]), connT(t, ns[2])

	respond(t, nc3, "svc.n3", "n3")
	m, noResp := requestEventually(ctx, t, nc1, "svc.n3", "ping")
	if string(m.Data) != "n3:ping" {
		t.Fatalf("reply %q", m.Data)
	}
	t.Logf("n1 → n3 answered after %d no-responders while interest propagated", noResp)

	// Once interest has arrived, a subject nobody serves still fails fast
	// across the cluster.
	start := time.Now()
	_, err := nc1.Request("svc.nobody", nil, 5*time.Second)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("unserved subject: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("ErrNoResponders took %v", took)
	}
}

func TestRestartKeepsConn(t *testing.T) {
	ctx := testCtx(t)
	ns := startStar(ctx, t)
	n1, n2, n3 := ns[0], ns[1], ns[2]

	reconnected := make(chan struct{}, 1)
	nc2 := connT(t, n2, nats.ReconnectHandler(func(*nats.Conn) {
		select {
		case reconnected <- struct{}{}:
		default:
		}
	}))
	nc1, nc3 := connT(t, n1), connT(t, n3)
	respond(t, nc2, "svc.n2", "n2")
	respond(t, nc3, "svc.n3", "n3")
	requestEventually(ctx, t, nc1, "svc.n2", "before")
	requestEventually(ctx, t, nc2, "svc.n3", "before")

	clientURL, clusterURL, old := n2.ClientURL(), n2.ClusterURL(), n2.NATS()

	// Readers run concurrently with Restart (for -race).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				_ = n2.NumPeers()
				_ = n2.PeerNames()
				_ = n2.NATS()
			}
		}
	})

	start := time.Now()
	if err := n2.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	restarted := time.Since(start)
	select {
	case <-reconnected:
	case <-ctx.Done():
		t.Fatalf("n2's conn did not reconnect: %v", nc2.Status())
	}
	reconn := time.Since(start)
	waitPeers(ctx, t, 2, n1, n2, n3)
	meshed := time.Since(start)
	close(stop)
	wg.Wait()
	t.Logf("Restart returned after %v; conn reconnected after %v; re-meshed after %v", restarted, reconn, meshed)

	if n2.NATS() == old || old.Running() {
		t.Fatal("Restart did not replace the server")
	}
	if n2.ClientURL() != clientURL || n2.ClusterURL() != clusterURL {
		t.Fatalf("ports changed: %s %s → %s %s", clientURL, clusterURL, n2.ClientURL(), n2.ClusterURL())
	}
	if got := nc2.Stats().Reconnects; got < 1 {
		t.Fatalf("Reconnects = %d", got)
	}
	checkPeerNames(t, ns)

	// The same conn works both ways: its requests cross the new routes, and
	// its subscription (replayed on reconnect) is reachable from n1.
	m, noResp := requestEventually(ctx, t, nc2, "svc.n3", "after")
	if string(m.Data) != "n3:after" {
		t.Fatalf("reply %q", m.Data)
	}
	m, noResp2 := requestEventually(ctx, t, nc1, "svc.n2", "after")
	if string(m.Data) != "n2:after" {
		t.Fatalf("reply %q", m.Data)
	}
	t.Logf("after restart: %d and %d no-responders before interest arrived", noResp, noResp2)

	// TCP clients find the restarted server on the same port.
	tc, err := nats.Connect(clientURL, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("TCP connect after restart: %v", err)
	}
	defer tc.Close()
	if err := tc.Flush(); err != nil {
		t.Fatal(err)
	}
}
