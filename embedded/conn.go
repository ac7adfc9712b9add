package embedded

import (
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
)

// Reconnect timing of the node's connections. There is only one server to
// reconnect to and it lives in this process, so retry soon and forever.
const (
	connReconnectWait   = 50 * time.Millisecond
	connReconnectJitter = 10 * time.Millisecond
)

// Conn opens a new connection to this node's server (loopback TCP).
// It survives Restart: while the server is down the connection is
// RECONNECTING, buffers publishes (nats.go ReconnectBufSize) and then
// reconnects and resubscribes.
//
// Defaults: Name "kvmesh-<node>", MaxReconnects(-1), ReconnectWait(50ms),
// a 10 ms jitter, IgnoreDiscoveredServers (the connection must never move
// to another node over TCP). opts are applied after them and win; the
// provider cannot be replaced. Conn fails while a Restart is in
// progress unless opts include nats.RetryOnFailedConnect(true).
//
// The caller owns the connection and should Close it; Shutdown closes the
// ones still open.
func (s *Server) Conn(opts ...nats.Option) (*nats.Conn, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("embedded: conn to %s: %w", s.cfg.Name, ErrClosed)
	}
	all := append([]nats.Option{
		nats.Name("kvmesh-" + s.cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(connReconnectWait),
		nats.ReconnectJitter(connReconnectJitter, connReconnectJitter),
		nats.IgnoreDiscoveredServers(),
	}, opts...)
	all = append(all, nats.InProcessServer(&s.prov))
	// The URL is ignored: the provider dials.
	nc, err := nats.Connect(nats.DefaultURL, all...)
	if err != nil {
		return nil, fmt.Errorf("embedded: conn to %s: %w", s.cfg.Name, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		nc.Close()
		return nil, fmt.Errorf("embedded: conn to %s: %w", s.cfg.Name, ErrClosed)
	}
	// Forget connections the caller already closed.
	s.conns = slices.DeleteFunc(s.conns, (*nats.Conn).IsClosed)
	s.conns = append(s.conns, nc)
	return nc, nil
}
