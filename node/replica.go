package node

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// HandleRequest implements transport.Handler: it serves the replica RPC
// of other nodes. Reads are answered from the memtables at once, or by a
// reader goroutine from bbolt (reads.go); writes are queued to the
// store's group commit and answered after fsync; forwarded client writes
// are coordinated here. It never blocks on the disk and never panics on
// input.
func (n *Node) HandleRequest(data []byte, respond func([]byte)) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("panic serving replica request", "panic", r)
			respond(n.encodeReply([]protocol.Result{protocol.ResultError(0, protocol.Errorf(protocol.ErrInternal, "panic: %v", r))}))
		}
	}()
	req, err := protocol.DecodeRequest(data)
	if err != nil {
		respond(n.encodeReply([]protocol.Result{protocol.ResultError(0, err)}))
		return
	}
	// Reads answer at once, writes after their commit, forwarded writes
	// after a whole quorum round: reply to each kind separately so a
	// quick result never waits for a slow one of the same message. Every
	// other item (a forwarded write, a scan page) has a reply of its own:
	// a scan page fills what one reply can carry.
	var reads, writes int
	for i := range req.Items {
		switch req.Items[i].Op {
		case protocol.RPCRead:
			reads++
		case protocol.RPCWrite:
			writes++
		}
	}
	reply := func(results []protocol.Result) { respond(n.encodeReply(results)) }
	rb := newCollector(reads, reply)
	wb := newCollector(writes, reply)
	for i := range req.Items {
		it := &req.Items[i]
		switch it.Op {
		case protocol.RPCRead:
			n.serveItem(req.From, it, rb.add)
		case protocol.RPCWrite:
			n.serveItem(req.From, it, wb.add)
		default:
			n.serveItem(req.From, it, newCollector(1, reply).add)
		}
	}
}

func (n *Node) serveItem(from string, it *protocol.Item, add func(protocol.Result)) {
	r := n.mem.ring()
	p := r.Partition(it.Key)
	fail := func(err error) { add(protocol.ResultError(it.Tag, err)) }
	switch it.Op {
	case protocol.RPCRead:
		tag, key, digest := it.Tag, it.Key, it.DigestOnly
		n.readReplica(p, key, func(obj *protocol.Object, err error) {
			switch {
			case err != nil:
				add(protocol.ResultError(tag, err))
			case digest && valueBytes(obj) > digestWorth:
				add(protocol.Result{Tag: tag, Digest: version.Digest(key, obj)})
			default:
				add(protocol.Result{Tag: tag, Obj: obj})
			}
		})
	case protocol.RPCWrite:
		n.observe(it.Obj)
		if it.Hint != "" {
			n.serveHinted(p, it, add)
			return
		}
		err := n.st.Apply(p, it.Key, syncInto(n.conflicts, it.Obj), func(_ *protocol.Object, err error) {
			if err != nil {
				fail(err)
				return
			}
			add(protocol.Result{Tag: it.Tag})
		})
		if err != nil {
			fail(err)
		}
	case protocol.RPCScan:
		n.serveScan(it, add)
	case protocol.RPCTree:
		n.serveTree(it, add)
	case protocol.RPCBuckets:
		n.serveBuckets(it, add)
	case protocol.RPCKeys:
		n.serveKeysItem(it, add)
	case protocol.RPCCoordinate:
		owners := r.Owners(p)
		if !slices.Contains(owners, n.cfg.ID) {
			fail(protocol.Errorf(protocol.ErrNodeUnavailable, "%s is not an owner of the key", n.cfg.ID))
			return
		}
		if err := n.st.Broken(); err != nil {
			fail(protocol.Errorf(protocol.ErrNodeUnavailable, "%s cannot store writes: %v", n.cfg.ID, err))
			return
		}
		if it.W < 1 || it.W > len(owners) || it.PW > len(owners) {
			fail(protocol.Errorf(protocol.ErrInvalidOption, "w=%d, pw=%d with %d owners", it.W, it.PW, len(owners)))
			return
		}
		if !it.Del && len(it.Val) > n.maxValue {
			fail(protocol.Errorf(protocol.ErrValueTooLarge, "value is %d bytes, limit %d", len(it.Val), n.maxValue))
			return
		}
		tag := it.Tag
		addTagged := func(res protocol.Result) { res.Tag = tag; add(res) }
		n.forwarded.once(n.clock.Now(), from, tag, 2*n.cfg.RequestTimeout, addTagged, func(finish func(protocol.Result)) {
			done := func(ctx protocol.Clock, err error) {
				if err != nil {
					res := protocol.ResultError(0, err)
					if errors.Is(err, protocol.ErrConflict) {
						res.Ctx = ctx // a conditional write lost: the key's clock now
					}
					finish(res)
					return
				}
				finish(protocol.Result{Ctx: ctx})
			}
			if it.If != protocol.CondNone {
				n.serialize(p, owners, *it, done)
				return
			}
			sib := protocol.Sibling{Value: it.Val, Deleted: it.Del}
			n.coordinateWrite(it.Key, p, owners, it.Ctx, sib, it.TTL, quorumReq{n: it.W, p: it.PW}, done)
		})
	default:
		fail(protocol.Errorf(protocol.ErrMalformed, "unknown op %d", it.Op))
	}
}

// collector gathers the results of one message's items and sends them
// in one reply when the last one is in: replica RPC replies and client
// batch replies alike.
type collector[R any] struct {
	mu      sync.Mutex
	left    int
	results []R
	send    func([]R)
}

func newCollector[R any](items int, send func([]R)) *collector[R] {
	return &collector[R]{left: items, results: make([]R, 0, items), send: send}
}

func (c *collector[R]) add(r R) {
	c.mu.Lock()
	c.results = append(c.results, r)
	c.left--
	last := c.left == 0
	c.mu.Unlock()
	if last {
		c.send(c.results)
	}
}

func (n *Node) encodeReply(results []protocol.Result) []byte {
	out, err := protocol.EncodeReply(&protocol.Reply{V: protocol.Version, From: n.cfg.ID, Results: results})
	if err != nil { // cannot happen for these types; never leave a caller waiting silently
		n.log.Error("encode reply", "err", fmt.Sprint(err))
	}
	return out
}

// digestWorth is the size of an object's values above which a replica
// answers a digest read with its digest. Below it the object costs about
// what a digest does, and spares the coordinator a second request when
// the replicas differ: the asker takes an object in reply to a digest
// read as it takes an older node's.
const digestWorth = 1024

// valueBytes is the size of obj's values.
func valueBytes(obj *protocol.Object) int {
	n := 0
	if obj != nil {
		for i := range obj.Siblings {
			n += len(obj.Siblings[i].Value)
		}
	}
	return n
}
