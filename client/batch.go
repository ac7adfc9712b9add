package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/internal/pipeline"
	"github.com/kvmesh/kvmesh/protocol"
)

// Pipelining: the calls a client sends to a named node queue per node
// and kind (gets apart from writes, so that a get never waits behind a
// write's fsync), and one sender goroutine per queue (internal/pipeline)
// publishes what is queued as one message on the node's batch subject
// (Subjects.KVNodeBatch), with a reply subject under one wildcard inbox
// of the client. The node answers the items by tag, gets in one reply and
// writes in another, and the inbox's handler hands each result to the
// call waiting for it.
//
// A sender keeps at most maxInflight batches unanswered: a lone call goes
// out at once, and the calls made while a batch is out go together in the
// next one when it is answered. Publishing takes microseconds, so without
// the window each call went alone (1.1 calls per batch at C=64 in
// `kvmesh bench`); with it a batch carries what arrived during one round
// trip (~20 calls at C=64). batchHold bounds how long an unanswered batch
// holds the next ones back: a node that is slow or gone delays the calls
// queued behind it by that much, not by its timeout.

const (
	// maxBatchedValue is the largest value a put sends in a batch; a
	// larger one goes as a request of its own, so one big value does not
	// hold up the small ones queued behind it.
	maxBatchedValue = 64 << 10
	// batchItemOverhead bounds what an item adds to a batch beyond its
	// key, value, quorum and context: its map, tag and field names.
	batchItemOverhead = 48
	// batchHeadroom is what the payload budget of a batch leaves under
	// the connection's max payload, for the envelope.
	batchHeadroom = 4 << 10
	// maxInflight is how many batches a sender keeps unanswered.
	maxInflight = 1
	// batchHold bounds how long an unanswered batch holds back the next.
	batchHold = 5 * time.Millisecond
)

// Waiter states: the sender takes a queued call to send it, the caller
// abandons it when its context ends first; whoever comes first decides.
const (
	waitQueued int32 = iota
	waitTaken
	waitAbandoned
)

// batches is a Client's pipelining: the per-node senders, the inbox
// subscription and the calls waiting for results. It starts them on first
// use and close stops them. Safe for concurrent use.
type batches struct {
	c *Client
	// window and hold are maxInflight and batchHold (tests change them
	// before the first call).
	window int
	hold   time.Duration

	mu      sync.Mutex // guards the fields below; taken before the pipeline's locks
	closed  bool
	pipe    *pipeline.Pipeline[senderKey, *waiter] // the senders; nil until first use
	sub     *nats.Subscription                     // the inbox; nil until first use
	inbox   string                                 // its prefix; a batch replies to inbox.<batch tag>
	nextTag uint64                                 // item and batch tags, from 1 (0 is "the whole batch")
	waiting map[uint64]*waiter                     // item tag -> call, once sent
	sent    map[uint64]*sentBatch
}

// waiter is one call in a batch.
type waiter struct {
	item  protocol.ClientItem
	size  int // estimated encoded size
	state atomic.Int32
	batch uint64       // the batch tag, once sent
	done  chan outcome // capacity 1: one outcome per call
}

// outcome is what a call gets: its result from node from, or an error of
// the whole batch, or noResponders when no node took the batch.
type outcome struct {
	res          protocol.ClientResult
	from         string
	err          error
	noResponders bool
}

// sentBatch is a batch waiting for results.
type sentBatch struct {
	calls []*waiter
	left  int
	done  func() // frees the batch's window place when left reaches 0
}

// senderKey names a sender: a node, and gets or writes.
type senderKey struct {
	node string
	get  bool
}

func newBatches(c *Client) *batches {
	return &batches{c: c, window: maxInflight, hold: batchHold,
		waiting: map[uint64]*waiter{}, sent: map[uint64]*sentBatch{}}
}

// newPipeline returns the senders: up to MaxClientBatch calls a batch
// within the connection's payload budget, maxInflight batches unanswered
// for at most batchHold. A call is taken only if its caller still waits.
func (b *batches) newPipeline() *pipeline.Pipeline[senderKey, *waiter] {
	return pipeline.New(pipeline.Config[senderKey, *waiter]{
		Send:     b.flush,
		Fail:     func(_ senderKey, calls []*waiter) { failCalls(calls) },
		Claim:    func(w *waiter) bool { return w.state.CompareAndSwap(waitQueued, waitTaken) },
		MaxItems: protocol.MaxClientBatch,
		Size:     func(w *waiter) int { return w.size },
		MaxSize:  func() int { return int(b.c.nc.MaxPayload()) - batchHeadroom },
		Window:   b.window,
		Hold:     b.hold,
	})
}

// batchable reports whether a call with these headers can be batched:
// a batch item carries only the quorum of its op, a write's context and a
// put's TTL. Any other header goes as a single request, which the node
// refuses exactly as it always has.
func batchable(op string, hdr nats.Header) bool {
	for name := range hdr {
		switch {
		case name == protocol.HdrR && op == protocol.OpGet:
		case (name == protocol.HdrW || name == protocol.HdrContext) && op != protocol.OpGet:
		case name == protocol.HdrTTL && op == protocol.OpPut:
		default:
			return false
		}
	}
	return true
}

// do sends one call to node to in a batch and waits for its result or
// ctx. fallback reports that the batch reached no node (no responders):
// nothing was done and the caller may send the call elsewhere.
func (b *batches) do(ctx context.Context, to, op, key string, value []byte, hdr nats.Header) (a *answer, err error, fallback bool) {
	it := protocol.ClientItem{Key: key}
	switch op {
	case protocol.OpGet:
		it.Op, it.Quorum = protocol.BatchGet, hdr.Get(protocol.HdrR)
	case protocol.OpPut:
		it.Op, it.Quorum, it.Context, it.Value = protocol.BatchPut, hdr.Get(protocol.HdrW), hdr.Get(protocol.HdrContext), value
		it.TTL = hdr.Get(protocol.HdrTTL)
	default:
		it.Op, it.Quorum, it.Context = protocol.BatchDel, hdr.Get(protocol.HdrW), hdr.Get(protocol.HdrContext)
	}
	w := &waiter{item: it, done: make(chan outcome, 1),
		size: batchItemOverhead + len(it.Key) + len(it.Value) + len(it.Quorum) + len(it.Context) + len(it.TTL)}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, fmt.Errorf("%s %q: %w", op, key, nats.ErrConnectionClosed), false
	}
	if b.sub == nil {
		inbox := b.c.nc.NewInbox()
		sub, err := b.c.nc.Subscribe(inbox+".*", b.onReply)
		if err != nil {
			b.mu.Unlock()
			return nil, fmt.Errorf("%s %q: %w", op, key, err), false
		}
		b.sub, b.inbox = sub, inbox
		b.pipe = b.newPipeline()
	}
	b.nextTag++
	w.item.Tag = b.nextTag
	pipe := b.pipe
	b.mu.Unlock()
	if !pipe.Put(senderKey{node: to, get: op == protocol.OpGet}, w) {
		return nil, fmt.Errorf("%s %q: %w", op, key, nats.ErrConnectionClosed), false
	}

	select {
	case o := <-w.done:
		if o.noResponders {
			return nil, nil, true
		}
		a, err := o.answer(op, key)
		return a, err, false
	case <-ctx.Done():
		if !w.state.CompareAndSwap(waitQueued, waitAbandoned) {
			b.forget(w) // sent: the result, if any, is dropped
		}
		return nil, fmt.Errorf("%s %q: %w", op, key, ctx.Err()), false
	}
}

// answer turns an outcome into the call's result, as Client.answer does
// for a single request's reply.
func (o *outcome) answer(op, key string) (*answer, error) {
	switch {
	case errors.Is(o.err, nats.ErrMaxPayload):
		return nil, protocol.Errorf(protocol.ErrValueTooLarge, "%s %q: %v", op, key, o.err)
	case o.err != nil:
		return nil, fmt.Errorf("%s %q: %w", op, key, o.err)
	}
	if err := o.res.Error(); err != nil {
		return nil, err
	}
	a := &answer{ctx: o.res.Context, node: o.from}
	if op != protocol.OpGet {
		return a, nil
	}
	a.siblings, a.values, a.expires = o.res.Siblings, o.res.Values, o.res.Expires
	if a.siblings < 1 || len(a.values) != a.siblings {
		return nil, protocol.Errorf(protocol.ErrMalformed, "get %q: %d values for %d siblings", key, len(a.values), a.siblings)
	}
	return a, nil
}

// failCalls fails the calls of a closing client.
func failCalls(calls []*waiter) {
	for _, w := range calls {
		w.done <- outcome{err: errClosed}
	}
}

// errClosed fails the calls a closing client had not answered.
var errClosed = fmt.Errorf("client closed: %w", nats.ErrConnectionClosed)

// flush sends calls to their node as one batch; done frees the batch's
// window place once every call has its result or was given up.
func (b *batches) flush(to senderKey, calls []*waiter, done func()) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		failCalls(calls)
		return
	}
	b.nextTag++
	tag := b.nextTag
	b.sent[tag] = &sentBatch{calls: calls, left: len(calls), done: done}
	items := make([]protocol.ClientItem, len(calls))
	for i, w := range calls {
		w.batch = tag
		b.waiting[w.item.Tag] = w
		items[i] = w.item
	}
	reply := b.inbox + "." + strconv.FormatUint(tag, 10)
	b.mu.Unlock()
	data, err := protocol.EncodeClientBatch(&protocol.ClientBatch{V: protocol.Version, Items: items})
	if err == nil {
		err = b.c.nc.PublishMsg(&nats.Msg{Subject: b.c.subjects.KVNodeBatch(to.node), Reply: reply, Data: data})
	}
	if err != nil {
		b.finish(tag, outcome{err: err})
	}
}

// onReply takes a reply on the inbox: results go to their calls by tag;
// a no-responders status or an error for the whole batch (tag 0) to
// every call of the batch still waiting. It never blocks.
func (b *batches) onReply(m *nats.Msg) {
	tag, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
	if err != nil {
		return
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		b.finish(tag, outcome{noResponders: true})
		return
	}
	r, err := protocol.DecodeClientBatchReply(m.Data)
	if err != nil {
		b.finish(tag, outcome{err: err})
		return
	}
	for _, res := range r.Results {
		o := outcome{res: res, from: r.From}
		if res.Tag == 0 {
			if o.res.Code == 0 { // tag 0 only ever carries an error
				o.res = protocol.ClientResultError(0, protocol.Errorf(protocol.ErrMalformed, "result without tag"))
			}
			b.finish(tag, o)
			continue
		}
		b.deliver(tag, o)
	}
}

// deliver hands o to the call of its tag in batch tag, if it waits.
func (b *batches) deliver(batch uint64, o outcome) {
	b.mu.Lock()
	w := b.waiting[o.res.Tag]
	if w == nil || w.batch != batch {
		b.mu.Unlock()
		return
	}
	b.remove(w)
	b.mu.Unlock()
	w.done <- o
}

// finish hands o to every call of batch tag still waiting.
func (b *batches) finish(tag uint64, o outcome) {
	b.mu.Lock()
	sb := b.sent[tag]
	if sb == nil {
		b.mu.Unlock()
		return
	}
	var calls []*waiter
	for _, w := range sb.calls {
		if b.waiting[w.item.Tag] == w {
			b.remove(w)
			calls = append(calls, w)
		}
	}
	b.mu.Unlock()
	for _, w := range calls {
		w.done <- o
	}
}

// forget removes a call whose caller gave up.
func (b *batches) forget(w *waiter) {
	b.mu.Lock()
	if b.waiting[w.item.Tag] == w {
		b.remove(w)
	}
	b.mu.Unlock()
}

// remove drops w from the waiting calls and its batch; b.mu is held (the
// pipeline's locks are taken after it).
func (b *batches) remove(w *waiter) {
	delete(b.waiting, w.item.Tag)
	if sb := b.sent[w.batch]; sb != nil {
		if sb.left--; sb.left == 0 {
			delete(b.sent, w.batch)
			sb.done()
		}
	}
}

// close stops the senders and the inbox; the calls still queued or
// waiting fail. It is idempotent and returns when the senders are done.
func (b *batches) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	pipe := b.pipe
	b.mu.Unlock()
	if pipe != nil {
		pipe.Close()
	}
	b.mu.Lock()
	sub, waiting := b.sub, b.waiting
	b.waiting, b.sent = map[uint64]*waiter{}, map[uint64]*sentBatch{}
	b.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
	for _, w := range waiting {
		w.done <- outcome{err: errClosed}
	}
}
