package node

import (
	"container/heap"
	"context"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/node/clock"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Change events. The node that coordinates a write (the owner that
// issued its dot, whichever node the client asked) publishes one event
// on Subjects.Events(key) once the write is acknowledged, with plain
// NATS and no delivery guarantee beyond NATS's own: at most once, to the
// subscribers interested at that moment. Events of expired values come
// from the coordinator of the last of them to expire (expiries below).
//
// An event is built only when some subscriber, on any server of the
// mesh, has interest in its subject (embedded.Server.HasInterest), so a
// store nobody watches pays one subscription lookup per write.

// publishWrite publishes the event of sib, the new sibling of a write
// this node coordinated: cctx is the client's context, wctx the context
// the write's reply carries.
func (n *Node) publishWrite(key string, cctx protocol.Clock, sib *protocol.Sibling, wctx protocol.Clock) {
	subject := n.subjects.Events(key)
	if !n.srv.HasInterest(subject) {
		return
	}
	op, data := protocol.EventPut, sib.Value
	if sib.Deleted {
		op, data = protocol.EventDelete, nil
	}
	h := n.eventHeader(key, op, sib.Time, 2*clockSum(version.Join(cctx, protocol.Clock{sib.Dot})), wctx)
	if sib.Expires != 0 {
		h.Set(protocol.HdrExpires, formatTime(sib.Expires))
	}
	n.publishEvent(&nats.Msg{Subject: subject, Header: h, Data: data})
}

// eventHeader is the header every event has.
func (n *Node) eventHeader(key, op string, at int64, ver uint64, ctx protocol.Clock) nats.Header {
	h := nats.Header{
		protocol.HdrOp:      {op},
		protocol.HdrKey:     {key},
		protocol.HdrNode:    {n.cfg.ID},
		protocol.HdrTime:    {formatTime(at)},
		protocol.HdrVersion: {strconv.FormatUint(ver, 10)},
	}
	if c := n.ctxKey.Seal(key, ctx); c != "" {
		h.Set(protocol.HdrContext, c)
	}
	return h
}

func (n *Node) publishEvent(m *nats.Msg) {
	if err := n.nc.PublishMsg(m); err != nil {
		n.log.Debug("change event not published", "subject", protocol.Clip(m.Subject, 64), "err", err)
		return
	}
	n.events.Add(1)
}

func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// clockSum is the sum of c's counters, saturated: the order of a key's
// event versions (protocol.HdrVersion). A write that saw another has a
// context that descends the other's context and dot, and a dot of its
// own above what its context has of its actor, so its sum is larger.
func clockSum(c protocol.Clock) uint64 {
	var s uint64
	for _, d := range c {
		if s > math.MaxUint64/4-d.Counter {
			return math.MaxUint64 / 4
		}
		s += d.Counter
	}
	return s
}

// expiries remembers, for the keys whose latest write this node
// coordinated with a TTL, when that value expires, so that an expire
// event can be published once it has: best effort, in memory (a restart
// forgets them), at most maxExpiries keys (later ones are not watched and
// counted in dropped). When one is due, the node reads the key from a
// quorum and publishes only if the key reads as not found and the value
// is the last of its siblings to have expired, so one expiry makes one
// event whichever nodes wrote the key.
type expiries struct {
	mu      sync.Mutex
	byKey   map[string]expiry
	due     expiryHeap
	wake    chan struct{} // a new earliest expiry
	dropped atomic.Int64
	keys    atomic.Int64 // len(byKey), read without the lock
}

// maxExpiries bounds the keys a node watches for expiry.
const maxExpiries = 1 << 17

type expiry struct {
	at  int64 // unix ns
	dot protocol.Dot
}

type dueKey struct {
	at  int64
	key string
}

type expiryHeap []dueKey

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(dueKey)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// watch remembers that key's value of dot, written here, expires at at.
func (e *expiries) watch(key string, at int64, dot protocol.Dot) {
	e.mu.Lock()
	if e.byKey == nil {
		e.byKey = make(map[string]expiry)
		e.wake = make(chan struct{}, 1)
	}
	if _, ok := e.byKey[key]; !ok && len(e.byKey) >= maxExpiries {
		e.mu.Unlock()
		e.dropped.Add(1)
		return
	}
	e.byKey[key] = expiry{at: at, dot: dot}
	e.keys.Store(int64(len(e.byKey)))
	earliest := len(e.due) == 0 || at < e.due[0].at
	heap.Push(&e.due, dueKey{at: at, key: key})
	if len(e.due) > 2*maxExpiries { // stale entries of rewritten keys
		e.due = e.due[:0]
		for k, x := range e.byKey {
			e.due = append(e.due, dueKey{at: x.at, key: k})
		}
		heap.Init(&e.due)
	}
	wake := e.wake
	e.mu.Unlock()
	if earliest {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

// forget stops watching key (its value with a TTL was superseded here;
// a stale heap entry is skipped when due). Free while no key is watched.
func (e *expiries) forget(key string) {
	if e.keys.Load() == 0 {
		return
	}
	e.mu.Lock()
	delete(e.byKey, key)
	e.keys.Store(int64(len(e.byKey)))
	e.mu.Unlock()
}

// popDue returns the keys due by now and forgets them, and the next
// expiry after (0: none).
func (e *expiries) popDue(now int64) (due []dueKey, dots []protocol.Dot, next int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.due) > 0 && e.due[0].at <= now {
		d := heap.Pop(&e.due).(dueKey)
		if x, ok := e.byKey[d.key]; ok && x.at == d.at {
			delete(e.byKey, d.key)
			e.keys.Store(int64(len(e.byKey)))
			due = append(due, d)
			dots = append(dots, x.dot)
		}
	}
	if len(e.due) > 0 {
		next = e.due[0].at
	}
	return due, dots, next
}

// runExpiries publishes the expire events of the values this node
// wrote with a TTL as they fall due, until ctx ends. At most
// maxExpiryChecks quorum reads are out at once.
func (n *Node) runExpiries(ctx context.Context) {
	n.exp.mu.Lock()
	if n.exp.wake == nil {
		n.exp.byKey = make(map[string]expiry)
		n.exp.wake = make(chan struct{}, 1)
	}
	wake := n.exp.wake
	n.exp.mu.Unlock()
	slots := make(chan struct{}, maxExpiryChecks)
	for {
		now := n.clock.Now().UnixNano()
		due, dots, next := n.exp.popDue(now)
		for i, d := range due {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			n.checkExpired(d.key, d.at, dots[i], func() { <-slots })
		}
		var timer chan struct{}
		var t clock.Timer
		if next != 0 {
			timer = make(chan struct{})
			t = n.clock.AfterFunc(time.Duration(next-now), func() { close(timer) })
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

const maxExpiryChecks = 64

// checkExpired publishes the expire event of key's value dot, which
// expired at at, if a quorum read shows the key not found and that value
// the last of its siblings to expire. done is called once the check is
// over.
func (n *Node) checkExpired(key string, at int64, dot protocol.Dot, done func()) {
	subject := n.subjects.Events(key)
	if !n.srv.HasInterest(subject) {
		done()
		return
	}
	rg := n.mem.ring()
	p := rg.Partition(key)
	owners := rg.Owners(p)
	maj := min(len(owners), n.cfg.Replicas/2+1)
	n.coordinateRead(key, p, owners, quorumReq{n: maj}, func(obj *protocol.Object, err error) {
		defer done()
		if err != nil || !expiredLast(obj, dot, at, n.clock.Now().UnixNano()) {
			return
		}
		n.publishEvent(&nats.Msg{Subject: subject, Header: n.eventHeader(key, protocol.EventExpire, at, 2*clockSum(obj.Clock)+1, obj.Clock)})
	})
}

// expiredLast reports whether obj, a key's merged object at now, holds
// no live value and still holds the value of dot, which expired at at,
// as the last of its siblings to expire (the latest expiry, ties broken
// by the larger dot): the one expire event of the key's expiry.
func expiredLast(obj *protocol.Object, dot protocol.Dot, at, now int64) bool {
	if obj == nil || len(obj.LiveAt(now)) > 0 {
		return false
	}
	found := false
	for _, s := range obj.Siblings {
		switch {
		case s.Dot == dot:
			found = s.Expires == at && !s.Deleted
		case s.Expires > at || (s.Expires == at && !s.Deleted && (s.Dot.Node > dot.Node || s.Dot.Node == dot.Node && s.Dot.Counter > dot.Counter)):
			return false
		}
	}
	return found
}

// written is told of every write this node coordinated once it is
// acknowledged (obj is the new object): it publishes the write's event
// and watches a value with a TTL for its expiry.
func (n *Node) written(key string, cctx protocol.Clock, obj *protocol.Object, wctx protocol.Clock) {
	if n.srv == nil || obj == nil {
		return
	}
	dot := protocol.Dot{Node: n.actor, Counter: version.Get(obj.Clock, n.actor)}
	for i := range obj.Siblings {
		if s := &obj.Siblings[i]; s.Dot == dot {
			n.publishWrite(key, cctx, s, wctx)
			if s.Expires != 0 {
				n.exp.watch(key, s.Expires, s.Dot)
			} else {
				n.exp.forget(key) // a later write without TTL, e.g. a lock's release
			}
			return
		}
	}
}
