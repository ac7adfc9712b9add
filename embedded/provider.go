package embedded

import (
	"errors"
	"net"
	"sync/atomic"

	"github.com/nats-io/nats-server/v2/server"
)

// errNotRunning is what a reconnecting in-process conn sees while the
// server is being restarted; nats.go retries after ReconnectWait.
var errNotRunning = errors.New("embedded: server not running")

// provider is the nats.InProcessConnProvider behind every Conn. A conn made
// with a *server.Server directly is bound to that instance and stays
// RECONNECTING forever after a restart; this one follows the swap.
type provider struct {
	cur atomic.Pointer[server.Server]
}

func (p *provider) InProcessConn() (net.Conn, error) {
	if s := p.cur.Load(); s != nil && s.Running() {
		return s.InProcessConn()
	}
	return nil, errNotRunning
}
