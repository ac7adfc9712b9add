// Package embedded runs the NATS server that every kvmesh node carries
// inside its own process, and hands the node a connection to it.
//
// The servers of all nodes cluster over NATS routes: each node is given
// seed routes (nats-route://host:port) and the servers gossip the rest, so
// the mesh becomes full even from a star of seeds. Giving every node the
// full peer list, itself included, is the robust form: explicit routes
// retry forever, gossiped ones only once (measured in the shared
// notes/nats.md §1).
//
// The node's own connection is loopback TCP to the server's client port,
// dialed by a provider (nats.InProcessServer) that always points at the
// current server, so one *nats.Conn survives Restart: it reconnects to the
// fresh server like a TCP client would to a restarted process. It is not
// the server's in-process net.Pipe: a pipe hands over every write
// synchronously, one goroutine switch per message each way, where a socket
// buffers and batches; measured on a 3-node store on 2 cores, puts at C=64
// went from 13.7k/s to 19.1k/s and R=1 gets from 31k/s to 43k/s.
//
// Routes are open by default: any nats-server that reaches the cluster port
// joins and receives the cluster's traffic, whatever the client auth (the
// shared notes/nats.md §4). With Config.RouteAuth they admit only members:
// mutual TLS 1.3 with certificates the cluster key issues to node keys
// (ClusterCA, NodeCert), verified by crypto/tls on both ends, then an
// Admit check of the peer's node key at every handshake; DropRoutes closes
// the live routes of a member Admit no longer admits.
//
// JetStream stays off. Logging is off unless a server.Logger is given.
//
// Lifecycle: Start returns a ready server; Restart replaces it on the same
// ports; Shutdown stops it and closes the connections handed out by Conn.
// A *Server is safe for concurrent use.
package embedded
