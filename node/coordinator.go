package node

import (
	"context"
	"slices"
	"time"

	"github.com/kvmesh/kvmesh/node/coord"
	"github.com/kvmesh/kvmesh/protocol"
)

// startGet starts a read of key that answers after q.n replicas replied,
// q.p of them owners (PR; a pr above r raises r to it). done is called
// exactly once, from a delivery goroutine, unless startGet returns an
// error, in which case nothing started.
func (n *Node) startGet(key string, q quorumReq, done func(*protocol.Object, error)) error {
	if err := protocol.ValidateKey(key); err != nil {
		return err
	}
	rg := n.mem.ring()
	p := rg.Partition(key)
	owners := rg.Owners(p)
	q.n = max(q.n, q.p)
	if q.n < 1 || q.n > len(owners) || q.p < 0 {
		return protocol.Errorf(protocol.ErrQuorumNotReached, "get: r=%d, pr=%d with %d owners", q.n, q.p, len(owners))
	}
	n.coordinateRead(key, p, owners, q, done)
	return nil
}

// startWrite starts a put of val (or a delete when del) with the client's
// causal context ctx, answered after q.n durable acknowledgements, q.p
// of them from owners (PW; a pw above w raises w to it); a put with a
// ttl > 0 expires that long after its coordinator's time of the write
// (ttl was checked where it came in: 0 for a delete, at most
// protocol.MaxTTL). A conditional write (cond) goes to the key's
// serialization point instead (conditional.go). done is called exactly
// once unless startWrite returns an error, in which case nothing started
// and nothing was written.
func (n *Node) startWrite(key string, val []byte, del bool, ttl time.Duration, ctx protocol.Clock, cond protocol.Condition, q quorumReq, done func(protocol.Clock, error)) error {
	op := coord.OpName(del)
	if err := protocol.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Validate(); err != nil {
		return err
	}
	if del {
		val = nil
	} else if len(val) > n.maxValue {
		return protocol.Errorf(protocol.ErrValueTooLarge, "value is %d bytes, limit %d", len(val), n.maxValue)
	}
	rg := n.mem.ring()
	p := rg.Partition(key)
	owners := rg.Owners(p)
	q.n = max(q.n, q.p)
	if q.n < 1 || q.n > len(owners) || q.p < 0 {
		return protocol.Errorf(protocol.ErrQuorumNotReached, "%s: w=%d, pw=%d with %d owners", op, q.n, q.p, len(owners))
	}
	if cond != protocol.CondNone {
		n.startConditional(p, owners, protocol.Item{Op: protocol.RPCCoordinate, Key: key, Val: val, Ctx: ctx, Del: del, W: q.n, PW: q.p, TTL: ttl, If: cond}, done)
		return nil
	}
	write := func(ctx protocol.Clock) {
		if slices.Contains(owners, n.cfg.ID) && n.st.Broken() == nil {
			// Copy the value: the request's buffer is not ours to keep.
			sib := protocol.Sibling{Value: append([]byte(nil), val...), Deleted: del}
			n.coordinateWrite(key, p, owners, ctx, sib, ttl, q, done)
			return
		}
		// Only an owner whose store takes writes may issue the dot.
		to := slices.DeleteFunc(slices.Clone(owners), func(o string) bool { return o == n.cfg.ID })
		if len(to) == 0 {
			done(nil, protocol.Errorf(protocol.ErrNodeUnavailable, "%s: the only owner, %s, cannot store writes: %v", op, n.cfg.ID, n.st.Broken()))
			return
		}
		n.forwardWrite(to, protocol.Item{Op: protocol.RPCCoordinate, Key: key, Val: val, Ctx: ctx, Del: del, W: q.n, PW: q.p, TTL: ttl}, done)
	}
	if del && len(ctx) == 0 {
		// A delete without context deletes every value stored so far:
		// read a majority of the owners first, as Riak does, and
		// supersede what it saw. (A blind tombstone would only be a
		// sibling of the values.) Owners only: a fallback's answer would
		// stand in for an owner that holds values. A write that only
		// fallbacks hold (a sloppy quorum, hints not delivered yet) is
		// not seen, and survives the delete. What has expired is deleted
		// already.
		maj := min(len(owners), n.cfg.Replicas/2+1)
		n.coordinateRead(key, p, owners, quorumReq{n: maj, p: maj}, func(obj *protocol.Object, err error) {
			switch {
			case err != nil:
				done(nil, err)
			case obj == nil || len(n.liveAt(obj)) == 0:
				done(nil, nil) // nothing to delete
			default:
				write(obj.Clock)
			}
		})
		return nil
	}
	write(ctx)
	return nil
}

// quorumOrMajority maps 0 to a majority of the replication factor.
func (n *Node) quorumOrMajority(q int) int {
	if q == 0 {
		return n.cfg.Replicas/2 + 1
	}
	return q
}

// Quorum is a request's quorum for Node.GetQ, PutQ and DeleteQ: N
// replies or acknowledgements (R or W; 0: a majority), P of them from
// the key's owners rather than fallbacks (PR or PW; 0: no requirement).
type Quorum struct{ N, P int }

func (n *Node) quorum(q Quorum) quorumReq { return quorumReq{n: n.quorumOrMajority(q.N), p: q.P} }

// Get reads key with read quorum r (0: a majority) and returns the merged
// object of the replicas that answered: nil when no replica has the key.
// Deleted and expired keys come back as objects whose siblings are all
// tombstones or expired (see protocol.Object.LiveAt). It blocks until the
// quorum answered, the request timeout passed or ctx is done. Safe for
// concurrent use.
func (n *Node) Get(ctx context.Context, key string, r int) (*protocol.Object, error) {
	return n.GetQ(ctx, key, Quorum{N: r})
}

// GetQ is Get with a read quorum of q.N replies, q.P of them (PR) from
// the key's owners: a fallback's reply counts toward q.N only.
func (n *Node) GetQ(ctx context.Context, key string, q Quorum) (*protocol.Object, error) {
	type res struct {
		obj *protocol.Object
		err error
	}
	ch := make(chan res, 1)
	if err := n.startGet(key, n.quorum(q), func(o *protocol.Object, err error) { ch <- res{o, err} }); err != nil {
		return nil, err
	}
	select {
	case x := <-ch:
		return x.obj, x.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Put writes value under key with the causal context cctx (nil: a blind
// write, concurrent with everything stored) and write quorum w (0: a
// majority). It returns the causal context to pass to the next write of
// the key. It blocks like Get.
func (n *Node) Put(ctx context.Context, key string, value []byte, cctx protocol.Clock, w int) (protocol.Clock, error) {
	return n.write(ctx, key, value, false, cctx, Quorum{N: w})
}

// PutQ is Put with a write quorum of q.N acknowledgements, q.P of them
// (PW) from the key's owners: a fallback's counts toward q.N only.
func (n *Node) PutQ(ctx context.Context, key string, value []byte, cctx protocol.Clock, q Quorum) (protocol.Clock, error) {
	return n.write(ctx, key, value, false, cctx, q)
}

// Delete deletes key: with cctx it supersedes what that context saw;
// without, everything a majority of the replicas holds.
func (n *Node) Delete(ctx context.Context, key string, cctx protocol.Clock, w int) (protocol.Clock, error) {
	return n.write(ctx, key, nil, true, cctx, Quorum{N: w})
}

// DeleteQ is Delete with the quorum q, as PutQ.
func (n *Node) DeleteQ(ctx context.Context, key string, cctx protocol.Clock, q Quorum) (protocol.Clock, error) {
	return n.write(ctx, key, nil, true, cctx, q)
}

func (n *Node) write(ctx context.Context, key string, value []byte, del bool, cctx protocol.Clock, q Quorum) (protocol.Clock, error) {
	type res struct {
		c   protocol.Clock
		err error
	}
	ch := make(chan res, 1)
	if err := n.startWrite(key, value, del, 0, cctx, protocol.CondNone, n.quorum(q), func(c protocol.Clock, err error) { ch <- res{c, err} }); err != nil {
		return nil, err
	}
	select {
	case x := <-ch:
		return x.c, x.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Replica returns this node's own stored object of key (nil when it has
// none), without asking any other replica: what a dump of this replica
// shows. Tests and repair tooling use it to check that replicas converged.
func (n *Node) Replica(key string) (*protocol.Object, error) {
	if err := protocol.ValidateKey(key); err != nil {
		return nil, err
	}
	return n.st.Get(n.mem.ring().Partition(key), key)
}

// Owners returns the ids of the nodes that hold key, primary first.
func (n *Node) Owners(key string) []string {
	r := n.mem.ring()
	return slices.Clone(r.Owners(r.Partition(key)))
}
