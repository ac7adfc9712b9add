package embedded

import "errors"

// Sentinels returned by this package, always wrapped with context
// ("embedded: start n1: server not ready: ..."). Test them with errors.Is.
var (
	// ErrInvalidConfig: Start refused the Config; nothing was started.
	ErrInvalidConfig = errors.New("invalid config")

	// ErrNotReady: the server did not open its listeners within
	// Config.ReadyTimeout, or reported a fatal start error (for example a
	// port already in use). The half-started server has been shut down.
	ErrNotReady = errors.New("server not ready")

	// ErrClosed: Shutdown was called; the Server cannot be used again.
	ErrClosed = errors.New("server shut down")

	// ErrInvalidKey: ClusterCA, NodeCert or PeerKey was given a key of the
	// wrong kind (a node key where the cluster key belongs, a key without
	// its seed, a certificate whose key is not ed25519), or DropRoutes a
	// string that is not a node key.
	ErrInvalidKey = errors.New("invalid key")

	// ErrNoRouteAuth: DropRoutes on a server started without
	// Config.RouteAuth, whose routes are open to any server.
	ErrNoRouteAuth = errors.New("routes not authenticated")

	// ErrStillAdmitted: DropRoutes of a key that RouteAuth.Admit still
	// admits (or of the node's own key): its routes would come back at the
	// next handshake. Make Admit refuse it first.
	ErrStillAdmitted = errors.New("peer still admitted")
)
