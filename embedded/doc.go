// Package embedded runs the NATS server that every kvmesh node carries
// inside its own process, and hands the node an in-process connection to
// it.
//
// The servers of all nodes cluster over NATS routes: each node is given
// seed routes (nats-route://host:port) and the servers gossip the rest, so
// the mesh becomes full even from a star of seeds. Giving every node the
// full peer list, itself included, is the robust form: explicit routes
// retry forever, gossiped ones only once (measured in the shared
// notes/nats.md §1).
//
// The node's own connection does not use TCP. It is a net.Pipe into the
// server (nats.InProcessServer) behind a provider that always points at the
// current server, so one *nats.Conn survives Restart: it reconnects to the
// fresh server like a TCP client would to a restarted process.
//
// JetStream stays off. Logging is off unless a server.Logger is given.
//
// Lifecycle: Start returns a ready server; Restart replaces it on the same
// ports; Shutdown stops it and closes the connections handed out by Conn.
// A *Server is safe for concurrent use.
package embedded
