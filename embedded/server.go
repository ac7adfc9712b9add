package embedded

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Polling intervals. Readiness normally takes one or two polls: the client
// listener opens inside server.Start, the route listener in a goroutine
// right after.
const (
	readyPoll = 5 * time.Millisecond
	peerPoll  = 10 * time.Millisecond
)

// Server is one node's embedded NATS server. It is created running by
// Start, owned by the node that started it, and stopped by Shutdown. All
// methods are safe for concurrent use.
type Server struct {
	cfg Config // normalized; ports as resolved by the first start

	prov provider // current *server.Server; swapped by Restart

	guard  *routeGuard   // route admission; nil when cfg.RouteAuth is nil
	settle time.Duration // routeSettle; shorter in tests

	// life serializes Restart, Shutdown and DropRoutes, which block (up
	// to ReadyTimeout, routeSettle); the accessors never take it.
	life sync.Mutex

	mu     sync.Mutex
	closed bool
	conns  []*nats.Conn // handed out by Conn; closed by Shutdown

	mappings [][2]string // MapLocal's (src, dst); under life
}

// Start validates cfg, starts the server and waits until its listeners
// accept connections (at most cfg.ReadyTimeout). It blocks; on error
// nothing is left running. Random ports (-1) are resolved and kept: a
// Restart listens on the same ports.
func Start(cfg Config) (*Server, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	var guard *routeGuard
	if cfg.RouteAuth != nil {
		if guard, err = newRouteGuard(cfg.RouteAuth); err != nil {
			return nil, fmt.Errorf("embedded: start %s: %w: %v", cfg.Name, ErrInvalidConfig, err)
		}
	}
	ns, err := launch(cfg, guard)
	if err != nil {
		return nil, fmt.Errorf("embedded: start %s: %w", cfg.Name, err)
	}
	cfg.Port = ns.Addr().(*net.TCPAddr).Port
	if cfg.ClusterPort != 0 {
		cfg.ClusterPort = ns.ClusterAddr().Port
	}
	s := &Server{cfg: cfg, guard: guard, settle: routeSettle}
	s.prov.cur.Store(ns)
	return s, nil
}

// options builds fresh server options for cfg, with guard's TLS config on
// routes when guard is not nil. The server writes resolved ports back into
// its Options, so each start (and each reload) gets its own copy.
func options(cfg Config, guard *routeGuard) *server.Options {
	o := &server.Options{
		ServerName: cfg.Name,
		Host:       cfg.Host,
		Port:       cfg.Port,
		MaxPayload: cfg.MaxPayload,
		NoSigs:     true,
		NoLog:      cfg.Logger == nil,
		Debug:      cfg.Debug,
		Trace:      cfg.Trace,
		JetStream:  false,
	}
	if cfg.ClusterPort != 0 {
		o.Cluster = server.ClusterOpts{
			Name: cfg.ClusterName,
			Host: cfg.ClusterHost,
			Port: cfg.ClusterPort,
		}
		if guard != nil {
			o.Cluster.TLSConfig = guard.tls
		}
	}
	// Only when non-empty: RoutesFromStr("") yields one empty URL, which
	// the server retries forever ("missing port in address").
	if len(cfg.Routes) > 0 {
		o.Routes = server.RoutesFromStr(strings.Join(cfg.Routes, ","))
	}
	return o
}

// launch starts one server instance and waits for its listeners. On error
// the instance has been shut down.
func launch(cfg Config, guard *routeGuard) (*server.Server, error) {
	ns, err := server.NewServer(options(cfg, guard))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	lg := newStartLogger(cfg.Logger)
	ns.SetLoggerV2(lg, cfg.Logger != nil && cfg.Debug, cfg.Logger != nil && cfg.Trace, false)
	ns.Start()
	if err := waitReady(ns, cfg, lg.fatal); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, err
	}
	return ns, nil
}

// waitReady polls until the listeners cfg asks for exist, and fails fast on
// a fatal start error (server.ReadyForConnections would instead spin until
// its timeout after a failed listen).
func waitReady(ns *server.Server, cfg Config, fatal <-chan string) error {
	deadline := time.NewTimer(cfg.ReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		select {
		case msg := <-fatal:
			return fmt.Errorf("%w: %s", ErrNotReady, msg)
		default:
		}
		up := ns.Addr() != nil && (cfg.ClusterPort == 0 || ns.ClusterAddr() != nil)
		// ReadyForConnections is the server's own verdict; it returns at
		// once when everything is up.
		if up && ns.ReadyForConnections(50*time.Millisecond) {
			return nil
		}
		select {
		case msg := <-fatal:
			return fmt.Errorf("%w: %s", ErrNotReady, msg)
		case <-deadline.C:
			return fmt.Errorf("%w: listeners not up after %v (client %s:%d, cluster %s:%d)",
				ErrNotReady, cfg.ReadyTimeout, cfg.Host, cfg.Port, cfg.ClusterHost, cfg.ClusterPort)
		case <-tick.C:
		}
	}
}

// Name returns the server name (the node id).
func (s *Server) Name() string { return s.cfg.Name }

// ClientURL returns nats://host:port of the client listener, for TCP
// clients. It does not change across Restart.
func (s *Server) ClientURL() string {
	return "nats://" + net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
}

// ClusterURL returns nats-route://host:port of the route listener, the form
// other nodes put in Config.Routes, or "" when ClusterPort was 0. It does not
// change across Restart.
func (s *Server) ClusterURL() string {
	if s.cfg.ClusterPort == 0 {
		return ""
	}
	return "nats-route://" + net.JoinHostPort(s.cfg.ClusterHost, strconv.Itoa(s.cfg.ClusterPort))
}

// NATS returns the current server instance: an escape hatch for tests and
// metrics. It changes on Restart; do not keep it.
func (s *Server) NATS() *server.Server { return s.prov.cur.Load() }

// NumPeers returns the number of other servers this one has routes to
// (server.NumRemotes). NumRoutes would count pooled connections: 4 per
// peer by default. 0 while restarting or after Shutdown.
func (s *Server) NumPeers() int {
	ns := s.prov.cur.Load()
	if !ns.Running() {
		return 0
	}
	return ns.NumRemotes()
}

// PeerNames returns the sorted server names of the connected peers.
func (s *Server) PeerNames() []string {
	ns := s.prov.cur.Load()
	if !ns.Running() {
		return nil
	}
	rz, err := ns.Routez(&server.RoutezOptions{})
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(rz.Routes))
	for _, r := range rz.Routes {
		if r.RemoteName != "" {
			names = append(names, r.RemoteName) // one per pooled connection
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// WaitForPeers blocks until this server has routes to at least n peers, ctx
// is done (the error wraps ctx.Err()) or the Server is shut down
// (ErrClosed). It polls every 10 ms.
func (s *Server) WaitForPeers(ctx context.Context, n int) error {
	tick := time.NewTicker(peerPoll)
	defer tick.Stop()
	for {
		if s.isClosed() {
			return fmt.Errorf("embedded: %s waiting for %d peers: %w", s.cfg.Name, n, ErrClosed)
		}
		have := s.NumPeers()
		if have >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("embedded: %s waiting for %d peers, have %d: %w", s.cfg.Name, n, have, ctx.Err())
		case <-tick.C:
		}
	}
}

// Restart shuts the server down and starts a fresh one with the same
// options on the same ports, then points the Conn provider at it:
// connections from Conn reconnect (their subscriptions are replayed by
// nats.go) and peers re-form routes. It blocks for up to ReadyTimeout. If
// the new server fails to start, the node has no server; the error says
// why and Restart may be called again.
func (s *Server) Restart() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.isClosed() {
		return fmt.Errorf("embedded: restart %s: %w", s.cfg.Name, ErrClosed)
	}
	old := s.prov.cur.Load()
	old.Shutdown()
	old.WaitForShutdown()
	ns, err := launch(s.cfg, s.guard)
	if err != nil {
		return fmt.Errorf("embedded: restart %s: %w", s.cfg.Name, err)
	}
	if err := s.remap(ns); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return fmt.Errorf("embedded: restart %s: %w", s.cfg.Name, err)
	}
	s.prov.cur.Store(ns)
	return nil
}

// Shutdown closes the connections handed out by Conn, then stops the server
// and waits until it has stopped. It is idempotent and safe to call
// concurrently; every call returns after the server has stopped.
func (s *Server) Shutdown() {
	s.life.Lock()
	defer s.life.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()

	// Close before the server stops: otherwise each conn would retry the
	// dead provider every ReconnectWait, forever (MaxReconnects -1).
	for _, nc := range conns {
		nc.Close()
	}
	ns := s.prov.cur.Load()
	ns.Shutdown()
	ns.WaitForShutdown()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
