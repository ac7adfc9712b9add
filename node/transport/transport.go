// Package transport carries all node-to-node traffic of a kvmesh node:
// RPC requests and replies (encoded protocol.Request and protocol.Reply)
// and gossip publications to every node (membership heartbeats). It is
// the seam between the node and the network: the NATS implementation
// sends on the per-node RPC subjects over one long-lived reply inbox and
// publishes on the gossip subjects; tests and the simulation tier put an
// in-memory implementation in its place, so everything nodes say to each
// other crosses the simulated network.
package transport

// Handler receives what a Transport delivers. Its methods are called from
// the transport's delivery goroutines and must not block: hand slow work
// (disk) to a queue and answer from there.
type Handler interface {
	// HandleRequest is called for each request addressed to this node.
	// respond sends one reply message; it may be called more than once
	// (for parts of a batch), from any goroutine, at any later time.
	HandleRequest(data []byte, respond func(reply []byte))
	// HandleReply is called for each reply to a request this node sent
	// with Send; tag is the tag given to Send.
	HandleReply(tag uint64, data []byte)
	// HandleUnreachable is called when the transport learns that the
	// request sent with tag to node to cannot be delivered (NATS "no
	// responders": no node serves that subject right now).
	HandleUnreachable(tag uint64, to string)
	// HandleGossip is called for each publication of another node (see
	// Transport.Publish). Publications may be lost, duplicated and
	// reordered.
	HandleGossip(topic string, data []byte)
}

// Transport sends requests to other nodes and delivers requests and
// replies to a Handler. Implementations are safe for concurrent use.
type Transport interface {
	// Start begins delivering to h. It returns once this node can
	// receive requests.
	Start(h Handler) error
	// Send sends an encoded request to node to without waiting. The reply,
	// or an unreachable notice, arrives at the Handler with tag.
	Send(to string, tag uint64, req []byte) error
	// Publish sends data on topic (a subject token: letters, digits, '-'
	// and '_') to every other node's Handler, without waiting and without
	// any guarantee of delivery.
	Publish(topic string, data []byte) error
	// Close stops delivery and waits until no Handler call is running.
	// It is idempotent.
	Close() error
}
