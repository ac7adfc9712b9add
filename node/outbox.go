package node

import (
	"math"
	"sync"

	"github.com/kvmesh/kvmesh/node/clock"
	"github.com/kvmesh/kvmesh/protocol"
)

// noReplyTag marks an item nobody waits for (a read repair).
const noReplyTag = math.MaxUint64

// outbox batches the replica RPC items this node sends to one peer. A
// sender goroutine per peer sends whatever is queued in one message; items
// queued while it is sending go out together in the next. An idle node so
// sends each item at once, and under load many operations share one NATS
// message and one reply (JetStream batches replication the same way). The
// node owns the senders: they stop with it.
type outbox struct {
	n    *Node
	to   string
	wake chan struct{} // capacity 1: "there is something to send"

	mu    sync.Mutex
	items []protocol.Item
	ops   []rpcOp // the operation waiting for each item (nil: none)
}

// outboxes is the set of per-peer outboxes, created on first use.
type outboxes struct {
	mu sync.Mutex
	m  map[string]*outbox
}

// send queues item for node to; op (may be nil) gets the result, or a
// failure if the item cannot be sent.
func (n *Node) send(to string, op rpcOp, item protocol.Item) {
	n.outboxes.mu.Lock()
	ob := n.outboxes.m[to]
	if ob == nil {
		select {
		case <-n.stop:
			n.outboxes.mu.Unlock()
			if op != nil {
				op.result(to, nil, protocol.Errorf(protocol.ErrNodeUnavailable, "node %s is shutting down", n.cfg.ID))
			}
			return
		default:
		}
		ob = &outbox{n: n, to: to, wake: make(chan struct{}, 1)}
		n.outboxes.m[to] = ob
		n.wg.Add(1)
		go ob.run()
	}
	n.outboxes.mu.Unlock()

	ob.mu.Lock()
	ob.items = append(ob.items, item)
	ob.ops = append(ob.ops, op)
	ob.mu.Unlock()
	select {
	case ob.wake <- struct{}{}:
	default:
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

func (ob *outbox) run() {
	defer ob.n.wg.Done()
	for {
		select {
		case <-ob.n.stop:
			ob.failQueued()
			return
		case <-ob.wake:
		}
		ob.mu.Lock()
		items, ops := ob.items, ob.ops
		ob.items, ob.ops = nil, nil
		ob.mu.Unlock()
		for len(items) > 0 {
			k := min(len(items), protocol.MaxBatch)
			ob.flush(items[:k], ops[:k])
			items, ops = items[k:], ops[k:]
		}
	}
}

// flush sends one batch as one message, registered under a batch tag so
// that a no-responders status or an undecodable-request reply reaches
// every operation of the batch.
func (ob *outbox) flush(items []protocol.Item, ops []rpcOp) {
	n := ob.n
	b := &batchOp{n: n, ops: ops}
	tag := n.pending.add(b)
	b.timer = n.clock.AfterFunc(2*n.cfg.RequestTimeout, func() { n.pending.remove(tag) })
	data, err := protocol.EncodeRequest(&protocol.Request{V: protocol.Version, From: n.cfg.ID, Items: items})
	if err == nil {
		err = n.tr.Send(ob.to, tag, data)
	}
	if err != nil {
		b.result(ob.to, nil, protocol.Errorf(protocol.ErrNodeUnavailable, "send to %s: %v", ob.to, err))
	}
}

func (ob *outbox) failQueued() {
	ob.mu.Lock()
	ops := ob.ops
	ob.items, ob.ops = nil, nil
	ob.mu.Unlock()
	err := protocol.Errorf(protocol.ErrNodeUnavailable, "node %s is shutting down", ob.n.cfg.ID)
	for _, op := range ops {
		if op != nil {
			op.abort(err)
		}
	}
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
