package node

import (
	"errors"
	"sync"
	"time"

	"github.com/kvmesh/kvmesh/protocol"
)

// forwardOp hands a client write to an owner of the key when the node
// that received it is not one: only an owner can issue the write's dot
// from its local object (dotted version vectors). Owners are tried in
// preference order; the next one only when the current one is not
// reachable at all (no responders), never after it may have written.
type forwardOp struct {
	n      *Node
	tag    uint64
	owners []string
	item   protocol.Item
	finish func(ctx protocol.Clock, err error)

	mu    sync.Mutex
	next  int // index of the owner tried now
	done  bool
	timer *time.Timer
}

func (n *Node) forwardWrite(owners []string, item protocol.Item, finish func(protocol.Clock, error)) {
	op := &forwardOp{n: n, owners: owners, item: item, finish: finish}
	op.mu.Lock() // held until the timer exists: abort may come at once
	op.tag = n.pending.add(op)
	op.item.Tag = op.tag
	// The owner has its own request timeout for the quorum; allow for it.
	op.timer = time.AfterFunc(n.cfg.RequestTimeout+n.cfg.RequestTimeout/2, op.timeout)
	op.mu.Unlock()
	op.send(owners[0])
}

func (op *forwardOp) send(to string) {
	op.n.sendAll(op, []string{to}, op.item)
}

func (op *forwardOp) result(from string, res *protocol.Result, err error) {
	op.mu.Lock()
	if op.done || from != op.owners[op.next] {
		op.mu.Unlock()
		return
	}
	if err != nil && errors.Is(err, protocol.ErrNodeUnavailable) && op.next+1 < len(op.owners) {
		op.next++
		to := op.owners[op.next]
		op.mu.Unlock()
		op.send(to)
		return
	}
	op.mu.Unlock()
	switch {
	case err != nil:
		op.end(nil, protocol.Errorf(protocol.ErrQuorumNotReached, "%s: no owner of the key reachable (%v)", opName(protocol.Sibling{Deleted: op.item.Del}), err))
	case res.Error() != nil:
		op.end(nil, res.Error())
	default:
		op.end(res.Ctx, nil)
	}
}

func (op *forwardOp) timeout() {
	op.mu.Lock()
	to := op.owners[op.next]
	op.mu.Unlock()
	op.end(nil, protocol.Errorf(protocol.ErrQuorumNotReached, "%s: owner %s did not answer in time", opName(protocol.Sibling{Deleted: op.item.Del}), to))
}

func (op *forwardOp) abort(err error) { op.end(nil, err) }

func (op *forwardOp) end(ctx protocol.Clock, err error) {
	op.mu.Lock()
	if op.done {
		op.mu.Unlock()
		return
	}
	op.done = true
	op.timer.Stop()
	op.mu.Unlock()
	op.n.pending.remove(op.tag)
	op.finish(ctx, err)
}
