package embedded

import (
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// errNotRunning is what a reconnecting in-process conn sees while the
// server is being restarted; nats.go retries after ReconnectWait.
var errNotRunning = errors.New("embedded: server not running")

// provider is the nats.InProcessConnProvider behind every Conn: it dials
// the current server's client listener over loopback TCP (see the package
// doc for why not its net.Pipe). A conn bound to one *server.Server stays
// RECONNECTING forever after a restart; this one follows the swap.
type provider struct {
	cur atomic.Pointer[server.Server]
}

// dialTimeout bounds one dial of the node's own server.
const dialTimeout = 2 * time.Second

func (p *provider) InProcessConn() (net.Conn, error) {
	s := p.cur.Load()
	if s == nil || !s.Running() {
		return nil, errNotRunning
	}
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		return nil, errNotRunning
	}
	ip := addr.IP
	if ip == nil || ip.IsUnspecified() {
		// A server listening on every address is reached on loopback.
		ip = net.IPv6loopback
		if addr.IP == nil || addr.IP.To4() != nil {
			ip = net.IPv4(127, 0, 0, 1)
		}
	}
	return net.DialTimeout("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port)), dialTimeout)
}
