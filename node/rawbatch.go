package node

import (
	"sort"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// opRawBatch names the raw batch endpoint ("<prefix>.kv.batch").
const opRawBatch = "raw-batch"

// rawBatchEnvelope is the room a raw batch reply needs beyond its
// results' estimated sizes (protocol.RawResultSize).
const rawBatchEnvelope = 8 << 10

// serveRawBatch serves a raw batch (protocol/rawbatch.go): each
// operation is admitted, validated and started exactly as a single
// request (serveBatchItem); one that fails to start gets its own error
// result and the others go on. When the last is done, all the results
// go back in one reply, in the request's order and encoding, so that
// `nats req` (which takes one reply) sees them all. A body that does
// not decode is refused whole. It never blocks.
func (n *Node) serveRawBatch(req *request) {
	if err := checkHeaders(opRawBatch, req.Header()); err != nil {
		n.respondError(req, err)
		return
	}
	asJSON := protocol.IsJSON(req.Data())
	items, err := protocol.DecodeRawBatch(req.Data())
	if err != nil {
		n.respondError(req, err)
		return
	}
	results := make([]protocol.ClientResult, len(items))
	var left atomic.Int64
	left.Store(int64(len(items)))
	for i := range items {
		n.serveBatchItem(&items[i], req.start, func(r protocol.ClientResult) {
			results[i] = r
			if left.Add(-1) == 0 {
				n.respondRawBatch(req, results, asJSON)
			}
		})
	}
}

// respondRawBatch answers a raw batch in one message: if the results
// do not fit, the gets with the largest values are answered with
// ErrValueTooLarge instead (read those keys alone), until they do.
func (n *Node) respondRawBatch(req *request, results []protocol.ClientResult, asJSON bool) {
	room := int(n.cfg.MaxPayload) - rawBatchEnvelope
	size := 0
	for i := range results {
		size += protocol.RawResultSize(&results[i])
	}
	if size > room {
		order := make([]int, len(results))
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool {
			return protocol.RawResultSize(&results[order[a]]) > protocol.RawResultSize(&results[order[b]])
		})
		for _, i := range order {
			if size <= room || len(results[i].Values) == 0 {
				break
			}
			size -= protocol.RawResultSize(&results[i])
			results[i] = protocol.ClientResultError(results[i].Tag, protocol.Errorf(protocol.ErrValueTooLarge,
				"the batch's reply cannot hold this get's values: get the key alone"))
			size += protocol.RawResultSize(&results[i])
		}
	}
	failed := 0
	for i := range results {
		if results[i].Code != 0 && results[i].Code != protocol.ErrKeyNotFound.Code {
			failed++
		}
	}
	if failed > 0 {
		req.fail(protocol.Errorf(protocol.ErrInternal, "%d of %d operations of a batch failed", failed, len(results)))
	}
	data := protocol.EncodeRawBatchReply(results, n.cfg.ID, asJSON)
	if err := req.reply(&nats.Msg{Header: nats.Header{protocol.HdrNode: {n.cfg.ID}}, Data: data}); err != nil {
		n.respondError(req, protocol.Errorf(protocol.ErrValueTooLarge, "batch reply of %d bytes: %v", len(data), err))
	}
}
