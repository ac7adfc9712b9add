package node

import (
	"slices"
	"sync"
	"time"

	"github.com/kvmesh/kvmesh/node/clock"
	"github.com/kvmesh/kvmesh/node/coord"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// coordOp is what every coord operation offers its driver.
type coordOp interface {
	OnResult(from string, res *protocol.Result, err error, now time.Time) coord.Effects
	OnDeadline(t coord.Timer, now time.Time) coord.Effects
	Abort(err error) coord.Effects
}

// driver drives one coord operation: it is the operation's entry in the
// pending map (so replies find it by tag), serialises the calls into it,
// and carries out the effects they return, outside its lock: sends
// through the outboxes, local reads and commits on the store, deadlines
// on the node's Clock, the answer to finish. Its methods are called from
// delivery goroutines, timers and the store's committer; none blocks on
// the network.
type driver struct {
	n      *Node
	p      int
	key    string
	op     coordOp
	finish func(coord.Answer)
	issue  func(d *driver) // a Write's Issue effect

	mu     sync.Mutex // serialises calls into op
	tag    uint64
	timers []clock.Timer
	over   bool // Done was carried out
}

// drive registers op, started with eff, and carries eff out. finish gets
// the operation's answer, once.
func (n *Node) drive(p int, key string, op coordOp, eff coord.Effects, finish func(coord.Answer), issue func(*driver)) {
	d := &driver{n: n, p: p, key: key, op: op, finish: finish, issue: issue}
	d.tag = n.pending.add(d)
	d.apply(eff)
}

// result implements rpcOp.
func (d *driver) result(from string, res *protocol.Result, err error) {
	d.call(func(now time.Time) coord.Effects { return d.op.OnResult(from, res, err, now) })
}

// abort implements rpcOp.
func (d *driver) abort(err error) {
	d.call(func(time.Time) coord.Effects { return d.op.Abort(err) })
}

// call runs f on the operation under the lock and carries out its
// effects after.
func (d *driver) call(f func(now time.Time) coord.Effects) {
	d.mu.Lock()
	eff := f(d.n.clock.Now())
	d.mu.Unlock()
	d.apply(eff)
}

func (d *driver) apply(eff coord.Effects) {
	n := d.n
	if len(eff.Arm) > 0 {
		now := n.clock.Now()
		d.mu.Lock()
		for _, dl := range eff.Arm {
			if d.over {
				break
			}
			t := dl.Timer
			d.timers = append(d.timers, n.clock.AfterFunc(dl.At.Sub(now), func() {
				d.call(func(now time.Time) coord.Effects { return d.op.OnDeadline(t, now) })
			}))
		}
		d.mu.Unlock()
	}
	if eff.DigestMatches > 0 || eff.DigestMisses > 0 {
		n.digestMatches.Add(int64(eff.DigestMatches))
		n.digestMisses.Add(int64(eff.DigestMisses))
	}
	if eff.Answer != nil {
		d.finish(*eff.Answer)
	}
	for _, s := range eff.Send {
		s.Item.Tag = d.tag
		n.send(s.To, d, s.Item)
	}
	if eff.ReadLocal {
		n.readReplica(d.p, d.key, func(obj *protocol.Object, err error) {
			d.result(n.cfg.ID, &protocol.Result{Obj: obj}, err)
		})
	}
	if eff.Issue {
		d.issue(d)
	}
	if eff.Repair != nil {
		n.repair(d.p, d.key, eff.Repair.Obj, eff.Repair.To)
	}
	if eff.Done {
		d.mu.Lock()
		d.over = true
		timers := d.timers
		d.timers = nil
		d.mu.Unlock()
		for _, t := range timers {
			t.Stop()
		}
		n.pending.remove(d.tag)
	}
}

// quorumReq is a request's quorum: n replies or acknowledgements (R or
// W), p of them from owners (PR or PW; 0: no requirement); strict: no
// fallback may stand in for an owner (a conditional write's).
type quorumReq struct {
	n, p   int
	strict bool
}

// fallbacks returns the nodes that may stand in for p's owners: none
// under Config.StrictQuorum.
func (n *Node) fallbacks(p int) []string {
	if n.cfg.StrictQuorum {
		return nil
	}
	return n.mem.ring().Fallbacks(p)
}

// coordinateRead starts a read of key from owners, answered after q.n
// replies, q.p of them from owners; a fallback of the serving ring is
// asked in place of an owner that is down or fails (sloppy quorum).
// finish is called once, from some delivery goroutine.
func (n *Node) coordinateRead(key string, p int, owners []string, q quorumReq, finish func(*protocol.Object, error)) {
	spec := coord.ReadSpec{Self: n.cfg.ID, Key: key, Owners: n.live.order(owners), R: q.n, PR: q.p,
		Down: n.live.down(), Conflicts: n.conflicts, Digests: true}
	if !q.strict {
		spec.Fallbacks = n.fallbacks(p)
	}
	op, eff := coord.StartRead(spec, n.clock.Now(), n.cfg.RequestTimeout)
	n.drive(p, key, op, eff, func(a coord.Answer) {
		n.observe(a.Obj)
		finish(a.Obj, a.Err)
	}, nil)
}

// coordinateWrite starts a write of sib with the client's context ctx,
// answered after q.n durable acknowledgements, q.p of them from owners,
// expiring ttl after its time when ttl > 0 (issuer.issue). The node must
// be an owner of key whose store takes writes. A fallback of the serving
// ring takes the write, hinted, in place of an owner that is down or
// fails (sloppy quorum). While the ring changes the write is
// joint instead: it also needs w acknowledgements among the key's
// owners in the target and prev rings. finish is called once, from some
// delivery goroutine; it must not block.
func (n *Node) coordinateWrite(key string, p int, owners []string, ctx protocol.Clock, sib protocol.Sibling, ttl time.Duration, q quorumReq, finish func(protocol.Clock, error)) {
	spec := coord.WriteSpec{ID: n.cfg.ID, Actor: n.actor, Key: key, Owners: owners, Also: n.mem.joint(p, owners),
		Ctx: ctx, Del: sib.Deleted, W: q.n, PW: q.p, Down: n.live.down()}
	if !q.strict {
		spec.Fallbacks = n.fallbacks(p)
	}
	op, eff := coord.StartWrite(spec, n.clock.Now(), n.cfg.RequestTimeout)
	n.drive(p, key, op, eff, func(a coord.Answer) {
		if a.Err == nil {
			if a.Fallbacks > 0 {
				n.sloppy.Add(1)
			}
			n.written(key, ctx, a.Obj, a.Ctx)
		}
		finish(a.Ctx, a.Err)
	}, func(d *driver) {
		n.issuer.issue(p, key, ctx, sib, ttl, func(obj *protocol.Object) {
			d.call(func(time.Time) coord.Effects { return op.OnLogged(obj) })
		}, func(err error) {
			if err != nil {
				n.log.Error("local write failed", "key", key, "err", err)
			}
			d.call(func(now time.Time) coord.Effects { return op.OnStored(err, now) })
		}, func(err error) { // nothing was issued: the client gets the real reason
			d.call(func(time.Time) coord.Effects { return op.OnIssueFailed(err) })
		})
	})
}

// forwardWrite hands item (an RPCCoordinate) to the first reachable of
// owners; finish is called once with the owner's answer.
func (n *Node) forwardWrite(owners []string, item protocol.Item, finish func(protocol.Clock, error)) {
	// The owner has its own request timeout for the quorum; allow for it.
	timeout := n.cfg.RequestTimeout + n.cfg.RequestTimeout/2
	if item.If != protocol.CondNone {
		timeout = 3 * n.cfg.RequestTimeout // a read and a write, after those queued before it
	}
	op, eff := coord.NewForward(n.live.order(owners), item, n.clock.Now(), timeout)
	n.drive(0, item.Key, op, eff, func(a coord.Answer) { finish(a.Ctx, a.Err) }, nil)
}

// repair sends obj to the given replicas (fire and forget: anti-entropy
// catches what a lost repair misses) and merges it locally if this node is
// among them.
func (n *Node) repair(p int, key string, obj *protocol.Object, nodes []string) {
	n.readRepairs.Add(int64(len(nodes)))
	n.sendAll(nil, nodes, protocol.Item{Tag: noReplyTag, Op: protocol.RPCWrite, Key: key, Obj: obj})
	if slices.Contains(nodes, n.cfg.ID) {
		_ = n.st.Apply(p, key, syncInto(n.conflicts, obj), func(*protocol.Object, error) {})
	}
}

// syncInto returns the store merge that folds obj into the stored object
// by the store's mode c, writing nothing when the stored object already
// contains it.
func syncInto(c version.Conflicts, obj *protocol.Object) func(*protocol.Object) (*protocol.Object, error) {
	return func(old *protocol.Object) (*protocol.Object, error) {
		m := c.Sync(old, obj)
		if old != nil && version.Equal(m, old) {
			return nil, nil
		}
		return m, nil
	}
}
