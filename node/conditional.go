package node

import (
	"slices"
	"sync"

	"github.com/kvmesh/kvmesh/node/coord"
	"github.com/kvmesh/kvmesh/protocol"
)

// Conditional writes (Kvmesh-If: absent or version). A Dynamo store has
// no order between two writes of a key coordinated by different nodes,
// so a check-then-write needs one place that decides: the key's first
// owner that is alive, in the coordinator's view (the serialising
// owner). A coordinator that is not that owner forwards the write to it
// (an RPCCoordinate with Item.If). The serialising owner runs the
// conditional writes of a key one at a time (keyLocks): it reads the key
// from a majority of its owners (PR too: owners only), checks the
// condition on the merged object (coord.CheckCondition) and writes with
// W and PW at least a majority of the owners and no fallbacks, then takes
// the next. A write acknowledged that way is on a majority of owners, so
// the next check's read, which hears from a majority of owners, sees it:
// of conditional writes that race through one serialising owner, exactly
// one whose condition holds wins. Two serialising owners at once (the
// coordinators disagree about which owner is alive, or one could not
// reach the first owner and forwarded to the next) can each see the key
// absent and both win; the README states it.

// startConditional starts the conditional write it (an RPCCoordinate
// with If set) of a key of partition p with owners: here if this node is
// the first alive owner and stores writes, else forwarded to the owners
// in that order. done is called once.
func (n *Node) startConditional(p int, owners []string, it protocol.Item, done func(protocol.Clock, error)) {
	order := n.live.order(owners)
	if order[0] == n.cfg.ID && n.st.Broken() == nil {
		n.serialize(p, owners, it, done)
		return
	}
	to := slices.DeleteFunc(slices.Clone(order), func(o string) bool { return o == n.cfg.ID })
	if len(to) == 0 {
		done(nil, protocol.Errorf(protocol.ErrNodeUnavailable, "%s: the only owner, %s, cannot store writes: %v", coord.OpName(it.Del), n.cfg.ID, n.st.Broken()))
		return
	}
	n.forwardWrite(to, it, done)
}

// serialize runs the conditional write it at this owner of its key,
// after the conditional writes of the key queued before it. done is
// called once: with the new context, with an error wrapping ErrConflict
// and the key's clock when the condition failed, or with another error.
func (n *Node) serialize(p int, owners []string, it protocol.Item, done func(protocol.Clock, error)) {
	maj := min(len(owners), n.cfg.Replicas/2+1)
	w := max(it.W, it.PW, maj)
	if w > len(owners) {
		done(nil, protocol.Errorf(protocol.ErrInvalidOption, "w=%d with %d owners", w, len(owners)))
		return
	}
	err := n.condLocks.run(it.Key, func(release func()) {
		n.coordinateRead(it.Key, p, owners, quorumReq{n: maj, p: maj, strict: true}, func(obj *protocol.Object, err error) {
			if err != nil {
				release()
				done(nil, err)
				return
			}
			ctx, err := coord.CheckCondition(it.If, it.Key, obj, it.Ctx, n.clock.Now().UnixNano())
			if err != nil {
				release()
				var stored protocol.Clock
				if obj != nil {
					stored = obj.Clock
				}
				done(stored, err)
				return
			}
			sib := protocol.Sibling{Value: it.Val, Deleted: it.Del}
			n.coordinateWrite(it.Key, p, owners, ctx, sib, it.TTL, quorumReq{n: w, p: w, strict: true}, func(ctx protocol.Clock, err error) {
				release()
				done(ctx, err)
			})
		})
	})
	if err != nil {
		done(nil, err)
	}
}

// keyLocks runs the conditional writes of each key one at a time, in
// arrival order, without blocking a goroutine: a write whose key is busy
// waits in the key's queue and is started by the release of the one
// before it.
type keyLocks struct {
	mu     sync.Mutex
	queues map[string][]func(release func()) // a key present is held
	queued int
}

// maxQueuedConditional bounds the conditional writes waiting at one
// node; more are refused with ErrOverloaded.
const maxQueuedConditional = 4096

// run calls f with the key's lock held, now or once the writes queued
// before it released it; f's release must be called exactly once.
func (l *keyLocks) run(key string, f func(release func())) error {
	l.mu.Lock()
	if l.queues == nil {
		l.queues = make(map[string][]func(func()))
	}
	if q, held := l.queues[key]; held {
		if l.queued >= maxQueuedConditional {
			l.mu.Unlock()
			return protocol.Errorf(protocol.ErrOverloaded, "%d conditional writes wait already", l.queued)
		}
		l.queues[key] = append(q, f)
		l.queued++
		l.mu.Unlock()
		return nil
	}
	l.queues[key] = nil
	l.mu.Unlock()
	f(l.releaser(key))
	return nil
}

func (l *keyLocks) releaser(key string) func() {
	var once sync.Once
	return func() { once.Do(func() { l.release(key) }) }
}

// release hands the key's lock to the next write queued, or frees it.
func (l *keyLocks) release(key string) {
	l.mu.Lock()
	q := l.queues[key]
	if len(q) == 0 {
		delete(l.queues, key)
		l.mu.Unlock()
		return
	}
	next := q[0]
	q[0] = nil
	l.queues[key] = q[1:]
	l.queued--
	l.mu.Unlock()
	next(l.releaser(key))
}
