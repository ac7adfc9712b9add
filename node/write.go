package node

import (
	"slices"
	"sync"
	"time"

	"github.com/kvmesh/kvmesh/node/quorum"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// writeOp coordinates one put or delete at an owner of the key: it issues
// the write's dot from the local object inside the store's transaction,
// sends the new object to the other owners at once (while the local
// commit is being fsynced), and finishes after w durable
// acknowledgements, the local one included.
type writeOp struct {
	n      *Node
	tag    uint64
	key    string
	p      int
	owners []string
	ctx    protocol.Clock
	sib    protocol.Sibling
	finish func(ctx protocol.Clock, err error)

	mu       sync.Mutex
	tally    *quorum.Tally
	answered int              // distinct owners that answered
	obj      *protocol.Object // the new object, once the dot is issued
	done     bool
	timer    *time.Timer
}

// coordinateWrite starts a write of sib with the client's context ctx.
// The node must be an owner of key. It issues the write's dot, queues the
// local commit and sends the new object to the other owners as soon as
// it is in the local log, so the local and remote fsyncs overlap. finish
// is called exactly once, from some delivery goroutine; it must not block.
func (n *Node) coordinateWrite(key string, p int, owners []string, ctx protocol.Clock, sib protocol.Sibling, w int, finish func(protocol.Clock, error)) {
	op := &writeOp{n: n, key: key, p: p, owners: owners, ctx: ctx, sib: sib, finish: finish,
		tally: quorum.NewTally(owners, w)}
	op.mu.Lock() // held until the timer exists: abort may come at once
	op.tag = n.pending.add(op)
	op.timer = time.AfterFunc(n.cfg.RequestTimeout, op.timeout)
	op.mu.Unlock()
	err := n.issuer.issue(p, key, ctx, sib, op.logged, op.stored)
	if err != nil {
		op.end(nil, err) // nothing was issued: the client gets the real reason
	}
}

// logged sends the new object to the other owners: it is in the local
// log file now (see issuer).
func (op *writeOp) logged(obj *protocol.Object) {
	op.mu.Lock()
	op.obj = obj
	op.mu.Unlock()
	op.n.sendAll(op, op.owners, protocol.Item{Tag: op.tag, Op: protocol.RPCWrite, Key: op.key, Obj: obj})
}

// stored is the local store's acknowledgement (after fsync) or failure.
// A write that failed before it was logged went nowhere: it ends at once.
func (op *writeOp) stored(err error) {
	op.mu.Lock()
	sent := op.obj != nil
	op.mu.Unlock()
	if err != nil && !sent {
		op.end(nil, err)
		return
	}
	if err != nil {
		op.n.log.Error("local write failed after fan-out", "key", op.key, "err", err)
	}
	op.result(op.n.cfg.ID, nil, err)
}

func (op *writeOp) result(from string, res *protocol.Result, err error) {
	if err == nil && res != nil {
		err = res.Error()
	}
	op.mu.Lock()
	if op.done {
		op.mu.Unlock()
		return
	}
	var changed bool
	if err != nil {
		changed = op.tally.Fail(from, err)
	} else {
		changed = op.tally.OK(from)
	}
	if changed {
		op.answered++
	}
	// Answer on success at once; on failure only when every owner has
	// answered (or at the timeout), so the error tells the client how
	// many replicas really hold the write.
	if !op.tally.Succeeded() && op.answered < len(op.owners) {
		op.mu.Unlock()
		return
	}
	var ctx protocol.Clock
	if op.tally.Succeeded() {
		ctx = writeContext(op.obj, op.ctx, op.n.actor)
	} else {
		err = quorumErr(op.tally, opName(op.sib))
	}
	op.mu.Unlock()
	op.end(ctx, err)
}

func (op *writeOp) timeout() {
	op.mu.Lock()
	err := quorumErr(op.tally, opName(op.sib))
	op.mu.Unlock()
	op.end(nil, err)
}

func (op *writeOp) abort(err error) { op.end(nil, err) }

// end finishes the operation once.
func (op *writeOp) end(ctx protocol.Clock, err error) {
	op.mu.Lock()
	if op.done {
		op.mu.Unlock()
		return
	}
	op.done = true
	if op.timer != nil {
		op.timer.Stop()
	}
	op.mu.Unlock()
	op.n.pending.remove(op.tag)
	op.finish(ctx, err)
}

func opName(s protocol.Sibling) string {
	if s.Deleted {
		return "delete"
	}
	return "put"
}

// writeContext is the causal context a put or delete reply gives back, so
// that the client's next write of the key supersedes this one. It may
// cover only what the client has seen (its own context and the new dot)
// and tombstones, which hold no value a client could lose. So:
//
//   - the whole new clock when no live sibling but the new one survives
//     (everything else it covers is superseded or deleted already);
//   - else the client's context plus a version-vector entry for this
//     node, when no other live sibling of this node survives (the entry
//     covers every dot of the node up to the new one);
//   - else the client's context alone: a following write with it keeps
//     this one as a sibling, and the client has to read to supersede it.
//     That takes two live writes through the same node that did not see
//     each other.
func writeContext(obj *protocol.Object, ctx protocol.Clock, self string) protocol.Clock {
	if obj == nil {
		return ctx
	}
	newDot := protocol.Dot{Node: self, Counter: version.Get(obj.Clock, self)}
	others, own := 0, 0 // live siblings besides the new one; of them, this node's
	for _, s := range obj.Siblings {
		if s.Deleted || s.Dot == newDot {
			continue
		}
		others++
		if s.Dot.Node == self {
			own++
		}
	}
	switch {
	case others == 0:
		return obj.Clock
	case own == 0:
		return version.Join(ctx, protocol.Clock{newDot})
	}
	return ctx
}

func isOwner(owners []string, id string) bool { return slices.Contains(owners, id) }
