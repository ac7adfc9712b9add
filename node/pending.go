package node

import (
	"sync"

	"github.com/kvmesh/kvmesh/protocol"
)

// rpcOp is an operation waiting for replicas' results. Its methods are
// called from the transport's delivery goroutine and from timers; they
// must not block.
type rpcOp interface {
	// result delivers one replica's result, or err when the replica is
	// unreachable.
	result(from string, res *protocol.Result, err error)
	// abort ends the operation with err (node shutting down).
	abort(err error)
}

// pendingOps maps the tag of every in-flight RPC operation to it, so the
// single reply inbox can route each result to its operation.
type pendingOps struct {
	mu   sync.Mutex
	next uint64
	ops  map[uint64]rpcOp
}

// add registers op and returns its tag (never 0: tag 0 means "no one
// waits", used for fire-and-forget repairs).
func (p *pendingOps) add(op rpcOp) uint64 {
	p.mu.Lock()
	p.next++
	tag := p.next
	p.ops[tag] = op
	p.mu.Unlock()
	return tag
}

func (p *pendingOps) get(tag uint64) rpcOp {
	p.mu.Lock()
	op := p.ops[tag]
	p.mu.Unlock()
	return op
}

func (p *pendingOps) remove(tag uint64) {
	p.mu.Lock()
	delete(p.ops, tag)
	p.mu.Unlock()
}

func (p *pendingOps) failAll(err error) {
	p.mu.Lock()
	ops := make([]rpcOp, 0, len(p.ops))
	for tag, op := range p.ops {
		ops = append(ops, op)
		delete(p.ops, tag)
	}
	p.mu.Unlock()
	for _, op := range ops {
		op.abort(err)
	}
}

// HandleReply implements transport.Handler: route each result of a reply
// to the operation waiting for it. tag is the batch the reply answers.
func (n *Node) HandleReply(tag uint64, data []byte) {
	batch := n.pending.get(tag)
	n.pending.remove(tag)
	if b, ok := batch.(*batchOp); ok && b.timer != nil {
		b.timer.Stop()
	}
	rep, err := protocol.DecodeReply(data)
	if err != nil {
		n.log.Debug("bad reply", "err", err)
		return
	}
	for i := range rep.Results {
		res := &rep.Results[i]
		var op rpcOp
		if res.Tag == 0 {
			op = batch // the peer could not decode the request at all
		} else {
			op = n.pending.get(res.Tag)
		}
		if op != nil {
			op.result(rep.From, res, nil)
		}
	}
}

// HandleUnreachable implements transport.Handler: NATS knows no
// subscriber of the replica's subject, so count it failed at once.
func (n *Node) HandleUnreachable(tag uint64, to string) {
	if op := n.pending.get(tag); op != nil {
		n.pending.remove(tag)
		op.result(to, nil, protocol.Errorf(protocol.ErrNodeUnavailable, "%s: no responders", to))
	}
}
