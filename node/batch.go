package node

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// opBatch names the batch endpoint among the operations.
const opBatch = "batch"

// serveBatch serves a batch of client operations addressed to this node
// (Subjects.KVNodeBatch): the Go client sends the calls it has queued
// for one node in one message, so NATS's per-message cost is paid once
// per batch. Each item is admitted, validated and started exactly as a
// single request (startClientOp); an item that fails to start gets its
// own error result and the others go on. The gets are answered together
// in one reply when the last one is done, the puts and deletes in another
// (they start together and end in the same group commits), as replica
// RPC replies are. A message that does not decode gets one result with
// tag 0 and the error. It never blocks.
func (n *Node) serveBatch(req *request) {
	refuse := func(err error) {
		req.fail(err)
		n.metrics.batches[outcomeOfErr(err)].Inc()
		n.publishBatch(req, []protocol.ClientResult{protocol.ClientResultError(0, err)})
	}
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("panic serving client batch", "panic", r)
			refuse(protocol.Errorf(protocol.ErrInternal, "panic: %v", r))
		}
	}()
	if err := checkHeaders(opBatch, req.Header()); err != nil {
		refuse(err)
		return
	}
	b, err := protocol.DecodeClientBatch(req.Data())
	if err != nil {
		refuse(err)
		return
	}
	n.metrics.batches[outOK].Inc()
	n.metrics.batchItems.Add(float64(len(b.Items)))
	var gets int
	for i := range b.Items {
		if b.Items[i].Op == protocol.BatchGet {
			gets++
		}
	}
	req.expect(min(gets, 1) + min(len(b.Items)-gets, 1))
	publish := func(results []protocol.ClientResult) { n.publishBatch(req, results) }
	gb := newCollector(gets, publish)
	wb := newCollector(len(b.Items)-gets, publish)
	for i := range b.Items {
		it := &b.Items[i]
		rb := wb
		if it.Op == protocol.BatchGet {
			rb = gb
		}
		n.serveBatchItem(it, req.start, rb.add)
	}
}

// batchOps maps the batch item ops to the client operations.
var batchOps = map[uint8]string{protocol.BatchGet: protocol.OpGet, protocol.BatchPut: protocol.OpPut, protocol.BatchDel: protocol.OpDel}

// Call runs one client operation as the client API does, for callers in
// this process (the simulation tier drives its clients through it): it is
// admitted, validated and started exactly as a single request or a batch
// item, with its quorum and causal context as the headers' text (a
// context this store sealed, as a put's or get's result gives it), and
// its result is the batch item's result. It blocks until the operation
// is answered or ctx is done. Op is BatchGet, BatchPut or BatchDel;
// Tag is copied to the result.
func (n *Node) Call(ctx context.Context, it protocol.ClientItem) (protocol.ClientResult, error) {
	if _, ok := batchOps[it.Op]; !ok {
		return protocol.ClientResult{}, protocol.Errorf(protocol.ErrInvalidOption, "unknown op %d", it.Op)
	}
	ch := make(chan protocol.ClientResult, 1)
	n.serveBatchItem(&it, n.clock.Now(), func(r protocol.ClientResult) { ch <- r })
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return protocol.ClientResult{}, ctx.Err()
	}
}

// serveBatchItem starts one item that arrived at start; add gets its
// result exactly once.
func (n *Node) serveBatchItem(it *protocol.ClientItem, start time.Time, add func(protocol.ClientResult)) {
	tag := it.Tag
	op := opIndex(batchOps[it.Op])
	answer := add
	add = func(r protocol.ClientResult) {
		answer(r)
		n.metrics.done(op, outcomeOf(r.Code, r.Name), start, n.clock.Now())
	}
	if err := n.admit(); err != nil {
		add(protocol.ClientResultError(tag, err))
		return
	}
	o := clientOp{op: batchOps[it.Op], key: it.Key, value: it.Value, quorum: it.Quorum, ctx: it.Context, ttl: it.TTL, cond: it.If}
	err := n.startClientOp(o, clientDone{
		get: func(obj *protocol.Object, err error) { add(n.getResult(tag, o.key, obj, err)) },
		write: func(ctx protocol.Clock, err error) {
			if err != nil {
				r := protocol.ClientResultError(tag, err)
				if errors.Is(err, protocol.ErrConflict) { // a condition lost: the key's context now
					r.Context = n.ctxKey.Seal(o.key, ctx)
				}
				add(r)
				return
			}
			add(protocol.ClientResult{Tag: tag, Context: n.ctxKey.Seal(o.key, ctx)})
		},
	})
	if err != nil {
		n.inflight.Add(-1)
		add(protocol.ClientResultError(tag, err))
	}
}

// getResult is respondGet's answer as a batch result: the live values, at
// this node's clock now, their count and expiry, or ErrKeyNotFound; the
// causal context either way.
func (n *Node) getResult(tag uint64, key string, obj *protocol.Object, err error) protocol.ClientResult {
	if err != nil {
		return protocol.ClientResultError(tag, err)
	}
	var live []protocol.Sibling
	var ctx string
	if obj != nil {
		live = n.liveAt(obj)
		ctx = n.ctxKey.Seal(key, obj.Clock)
	}
	if len(live) == 0 {
		r := protocol.ClientResultError(tag, protocol.ErrKeyNotFound)
		r.Context = ctx
		return r
	}
	vals := make([][]byte, len(live))
	for i, s := range live {
		vals[i] = s.Value
	}
	return protocol.ClientResult{Tag: tag, Context: ctx, Siblings: len(live), Values: vals, Expires: expiresAt(live)}
}

// publishBatch publishes results to reply, in as many messages as the
// payload limit needs (the client matches results by tag, whatever
// message they come in); a result that does not fit alone is replaced by
// ErrValueTooLarge, as a single get's reply would be.
func (n *Node) publishBatch(req *request, results []protocol.ClientResult) {
	data, _ := protocol.EncodeClientBatchReply(&protocol.ClientBatchReply{V: protocol.Version, From: n.cfg.ID, Results: results})
	err := req.reply(&nats.Msg{Data: data})
	if !errors.Is(err, nats.ErrMaxPayload) {
		return
	}
	if len(results) > 1 {
		req.left.Add(1) // one reply becomes two
		half := len(results) / 2
		n.publishBatch(req, results[:half])
		n.publishBatch(req, results[half:])
		return
	}
	n.publishBatch(req, []protocol.ClientResult{protocol.ClientResultError(results[0].Tag,
		protocol.Errorf(protocol.ErrValueTooLarge, "reply does not fit: %v", err))})
}
