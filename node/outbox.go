package node

import (
	"math"
	"sync"

	"github.com/kvmesh/kvmesh/internal/pipeline"
	"github.com/kvmesh/kvmesh/node/clock"
	"github.com/kvmesh/kvmesh/protocol"
)

// noReplyTag marks an item nobody waits for (a read repair).
const noReplyTag = math.MaxUint64

// outItem is one queued item and the operation waiting for its result
// (nil: none).
type outItem struct {
	item protocol.Item
	op   rpcOp
}

// newOutbox returns the node's outbox, which batches the replica RPC
// items it sends, per peer (internal/pipeline): a sender goroutine per
// peer sends whatever is queued in one message; items queued while it is
// sending go out together in the next. An idle node so sends each item at
// once, and under load many operations share one NATS message and one
// reply (JetStream batches replication the same way). Unlike the
// client's, the outbox keeps no window of unanswered batches: one
// measured no gain here. The node owns the outbox: Close stops it.
func newOutbox(n *Node) *pipeline.Pipeline[string, outItem] {
	return pipeline.New(pipeline.Config[string, outItem]{
		Send:     func(to string, batch []outItem, _ func()) { n.flush(to, batch) },
		Fail:     func(_ string, items []outItem) { n.failQueued(items) },
		MaxItems: protocol.MaxBatch,
	})
}

// send queues item for node to; op (may be nil) gets the result, or a
// failure if the item cannot be sent.
func (n *Node) send(to string, op rpcOp, item protocol.Item) {
	if !n.outbox.Put(to, outItem{item: item, op: op}) && op != nil {
		op.result(to, nil, n.shuttingDown())
	}
}

// sendAll sends item to every owner but this node.
func (n *Node) sendAll(op rpcOp, owners []string, item protocol.Item) {
	for _, o := range owners {
		if o != n.cfg.ID {
			n.send(o, op, item)
		}
	}
}

// flush sends one batch as one message, registered under a batch tag so
// that a no-responders status or an undecodable-request reply reaches
// every operation of the batch.
func (n *Node) flush(to string, batch []outItem) {
	items := make([]protocol.Item, len(batch))
	ops := make([]rpcOp, len(batch))
	for i, it := range batch {
		items[i], ops[i] = it.item, it.op
	}
	b := &batchOp{n: n, ops: ops}
	tag := n.pending.add(b)
	b.timer = n.clock.AfterFunc(2*n.cfg.RequestTimeout, func() { n.pending.remove(tag) })
	data, err := protocol.EncodeRequest(&protocol.Request{V: protocol.Version, From: n.cfg.ID, Items: items})
	if err == nil {
		err = n.tr.Send(to, tag, data)
	}
	if err != nil {
		b.result(to, nil, protocol.Errorf(protocol.ErrNodeUnavailable, "send to %s: %v", to, err))
	}
}

// failQueued fails the operations of the items Close found queued.
func (n *Node) failQueued(items []outItem) {
	err := n.shuttingDown()
	for _, it := range items {
		if it.op != nil {
			it.op.abort(err)
		}
	}
}

func (n *Node) shuttingDown() error {
	return protocol.Errorf(protocol.ErrNodeUnavailable, "node %s is shutting down", n.cfg.ID)
}

// batchOp stands for one sent batch in the pending map. Item results go
// to their own operations by tag; batchOp only sees failures of the whole
// message: the peer unreachable, or a reply that could not decode the
// request (a result with tag 0).
type batchOp struct {
	n     *Node
	ops   []rpcOp
	timer clock.Timer
	once  sync.Once
}

func (b *batchOp) result(from string, res *protocol.Result, err error) {
	if err == nil && res != nil {
		err = res.Error()
	}
	if err == nil {
		return
	}
	b.once.Do(func() {
		if b.timer != nil {
			b.timer.Stop()
		}
		for _, op := range b.ops {
			if op != nil {
				op.result(from, nil, err)
			}
		}
	})
}

func (b *batchOp) abort(error) {}
