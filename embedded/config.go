package embedded

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats-server/v2/server"
)

// Defaults applied by Start to zero fields of Config.
const (
	DefaultHost         = "127.0.0.1"
	DefaultClusterName  = "kvmesh"
	DefaultMaxPayload   = 1 << 20 // bytes; NATS's own default
	DefaultReadyTimeout = 10 * time.Second

	// RandomPort asks the OS for a free port (server.RANDOM_PORT).
	RandomPort = server.RANDOM_PORT
)

// Config describes one node's embedded NATS server. The zero value of every
// field but Name means its default. Start copies the Config; changing it
// afterwards has no effect.
//
// Not built yet: connecting to an external NATS deployment instead of
// embedding one. That would be a URL field here; Start would then skip the
// server and Conn would dial the URL over TCP. Everything the node uses
// (Conn, WaitForPeers, PeerNames) would have to come from that connection.
type Config struct {
	// Name is the server name and must be the node id: peers report it as
	// the route's remote name (PeerNames). Required; no whitespace. Names
	// must be unique within a cluster.
	Name string

	// Host is the client listen host. Default DefaultHost (127.0.0.1).
	Host string
	// Port is the client listen port: RandomPort (-1) for a free port
	// chosen by the OS; 0 means the NATS default, 4222.
	Port int

	// ClusterName is the NATS cluster name; servers with different names
	// refuse each other's routes. Default DefaultClusterName; no whitespace.
	ClusterName string
	// ClusterHost is the route listen host. Default Host.
	ClusterHost string
	// ClusterPort is the route listen port: RandomPort (-1) for a free
	// port; 0 means no route listener and no routes (a single node).
	ClusterPort int
	// Routes are seed routes, each "nats-route://host:port". Listing the
	// node itself is fine (the server detects and ignores it). Requires a
	// ClusterPort. Empty means wait for peers to connect to us.
	Routes []string

	// RouteAuth, when set, admits on routes only the cluster's members:
	// mutual TLS with certificates from the cluster CA and an Admit check
	// of the peer's node key (see RouteAuth). It requires a ClusterPort,
	// and its certificate must be issued for Name (NodeCert's id).
	// nil means open routes: any nats-server that reaches ClusterPort
	// joins the cluster and receives its traffic. Start copies the struct;
	// Admit itself stays the caller's.
	RouteAuth *RouteAuth

	// MaxPayload is the largest message (headers plus data) in bytes.
	// Default DefaultMaxPayload (1 MiB); at most server.MAX_PENDING_SIZE
	// (64 MiB); the server warns above 8 MiB. It must be identical on all
	// nodes: routes do not enforce it, so a larger peer can deliver a
	// message whose reply this node then refuses.
	MaxPayload int32

	// ReadyTimeout bounds how long Start and Restart wait for the
	// listeners. Default DefaultReadyTimeout (10 s).
	ReadyTimeout time.Duration

	// Logger receives the server's log lines; nil means none. Fatalf is
	// delivered as Errorf, so a start failure is returned by Start instead
	// of exiting the process. The same Logger is reused after Restart; a
	// file logger of type *logger.Logger would be closed by the server's
	// shutdown, so prefer a stderr or custom logger.
	Logger server.Logger
	// Debug and Trace turn on the server's debug and protocol trace lines.
	// They have no effect without a Logger.
	Debug, Trace bool
}

// Validate reports whether Start would accept c. The error wraps
// ErrInvalidConfig.
func (c Config) Validate() error {
	_, err := c.normalize()
	return err
}

// normalize returns c with defaults applied, or the first problem found.
func (c Config) normalize() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("embedded: %w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.Name == "" {
		return bad("name is required (it is the node id)")
	}
	if strings.IndexFunc(c.Name, unicode.IsSpace) >= 0 {
		return bad("name %q contains whitespace", c.Name)
	}
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if err := checkPort("port", c.Port); err != nil {
		return bad("%v", err)
	}
	if c.Port == 0 {
		c.Port = server.DEFAULT_PORT
	}
	if c.ClusterName == "" {
		c.ClusterName = DefaultClusterName
	}
	if strings.IndexFunc(c.ClusterName, unicode.IsSpace) >= 0 {
		return bad("cluster name %q contains whitespace", c.ClusterName)
	}
	if c.ClusterHost == "" {
		c.ClusterHost = c.Host
	}
	if err := checkPort("cluster port", c.ClusterPort); err != nil {
		return bad("%v", err)
	}
	if len(c.Routes) > 0 && c.ClusterPort == 0 {
		return bad("routes given but cluster port is 0 (no cluster listener): set ClusterPort, -1 for random")
	}
	routes := make([]string, 0, len(c.Routes))
	for _, r := range c.Routes {
		r = strings.TrimSpace(r)
		if err := checkRoute(r); err != nil {
			return bad("%v", err)
		}
		routes = append(routes, r)
	}
	c.Routes = routes
	if c.RouteAuth != nil {
		if c.ClusterPort == 0 {
			return bad("route auth given but cluster port is 0 (no routes to authenticate)")
		}
		ra := *c.RouteAuth
		if err := ra.check(c.Name); err != nil {
			return bad("%v", err)
		}
		c.RouteAuth = &ra
	}
	switch {
	case c.MaxPayload == 0:
		c.MaxPayload = DefaultMaxPayload
	case c.MaxPayload < 0:
		return bad("max payload %d is negative", c.MaxPayload)
	case int64(c.MaxPayload) > server.MAX_PENDING_SIZE:
		return bad("max payload %d exceeds the server's max pending %d bytes", c.MaxPayload, server.MAX_PENDING_SIZE)
	}
	switch {
	case c.ReadyTimeout == 0:
		c.ReadyTimeout = DefaultReadyTimeout
	case c.ReadyTimeout < 0:
		return bad("ready timeout %v is negative", c.ReadyTimeout)
	}
	return c, nil
}

func checkPort(what string, p int) error {
	if p == RandomPort || (p >= 0 && p <= 65535) {
		return nil
	}
	return fmt.Errorf("%s %d: want -1 (random), 0 (default) or 1..65535", what, p)
}

// checkRoute accepts exactly nats-route://host:port (user info allowed, for
// route auth later). The server's own parser accepts anything and fails
// later, silently with logging off.
func checkRoute(r string) error {
	if r == "" {
		return fmt.Errorf("empty route URL")
	}
	u, err := url.Parse(r)
	if err != nil {
		return fmt.Errorf("route %q: %v", r, err)
	}
	if u.Scheme != "nats-route" {
		return fmt.Errorf("route %q: scheme must be nats-route", r)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("route %q: missing host", r)
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("route %q: want a port in 1..65535", r)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("route %q: unexpected path, query or fragment", r)
	}
	return nil
}
