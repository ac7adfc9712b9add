package transport

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrMemClosed is returned by Send and Start on a closed Mem endpoint.
var ErrMemClosed = errors.New("transport: mem endpoint closed")

// MemNetwork is an in-memory network that connects many Mem endpoints in
// one process, for scenario tests and the simulation tier. It injects
// faults, all drawn from one seeded random source: message loss,
// duplication, delay (and so reordering), and partitions.
//
// Every delivery runs on its own goroutine, started by time.AfterFunc when
// the message is delayed, so inside a testing/synctest bubble the fake
// clock drives it; deliveries to one endpoint may run concurrently and in
// any order. Nothing here does real I/O. A MemNetwork is safe for
// concurrent use; it owns no goroutine of its own, and each delivery
// goroutine ends once its handler call returns.
//
// The fate of each message is drawn when it is sent, so with one sender
// the same seed gives the same faults; with several, the draws follow the
// order in which the scheduler lets them send.
type MemNetwork struct {
	mu       sync.Mutex
	rng      *rand.Rand // under mu
	faults   MemFaults
	group    map[string]int  // partition group by id; nil: no partition
	isolated map[string]bool // ids cut off from everyone
	live     map[string]*Mem // the latest started, not closed endpoint of each id
	stats    MemStats
}

// MemFaults are the random faults a MemNetwork applies to every message,
// requests and replies alike. The zero value is a perfect network.
type MemFaults struct {
	// Drop is the probability that a message is lost, 0..1.
	Drop float64
	// Duplicate is the probability that a message that is not lost is
	// delivered twice (each copy with its own delay), 0..1.
	Duplicate float64
	// MinDelay and MaxDelay bound the delay of each delivery, drawn
	// uniformly; messages overtake each other when it varies. A MaxDelay
	// below MinDelay counts as MinDelay.
	MinDelay, MaxDelay time.Duration
}

// MemStats counts what a MemNetwork did with the messages sent over it.
type MemStats struct {
	Requests     uint64 // requests sent
	Publications uint64 // gossip publications sent (each to every other node)
	Replies      uint64 // replies sent
	Delivered    uint64 // handler calls for requests and replies, copies included
	Dropped      uint64 // messages lost at random
	Cut          uint64 // messages lost to a partition
	Duplicated   uint64 // extra copies scheduled
	Unreachable  uint64 // requests to an id with no started endpoint
	Stale        uint64 // deliveries that found their endpoint gone or closed
}

// NewMemNetwork returns a perfect network whose faults, once set, are
// drawn from a random source seeded with seed.
func NewMemNetwork(seed int64) *MemNetwork {
	return &MemNetwork{
		rng:      rand.New(rand.NewPCG(uint64(seed), 0x6b766d657368)),
		isolated: make(map[string]bool),
		live:     make(map[string]*Mem),
	}
}

// Endpoint returns a new endpoint of node id on this network. Each call
// makes a fresh endpoint, so a crashed node can restart with a new one for
// the same id: requests to id go to the endpoint of id started last, and
// replies go to the endpoint that sent the request.
func (n *MemNetwork) Endpoint(id string) Transport {
	return &Mem{net: n, id: id}
}

// SetFaults replaces the random faults applied from now on. Messages
// already scheduled keep their fate.
func (n *MemNetwork) SetFaults(f MemFaults) {
	n.mu.Lock()
	n.faults = f
	n.mu.Unlock()
}

// Faults returns the faults applied now.
func (n *MemNetwork) Faults() MemFaults {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.faults
}

// Partition splits the network: messages between ids of different groups
// are lost silently (no unreachable notice: the sender cannot tell a cut
// link from a slow one). Ids named in no group form one more group
// together. It replaces any earlier partition; isolated ids stay
// isolated.
func (n *MemNetwork) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group = make(map[string]int)
	for i, g := range groups {
		for _, id := range g {
			n.group[id] = i + 1
		}
	}
}

// Isolate cuts id off from every other id, on top of any partition, until
// Heal.
func (n *MemNetwork) Isolate(id string) {
	n.mu.Lock()
	n.isolated[id] = true
	n.mu.Unlock()
}

// Heal removes every partition and isolation. Random faults stay as set.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	n.group = nil
	clear(n.isolated)
	n.mu.Unlock()
}

// Stats returns a snapshot of the network's counters.
func (n *MemNetwork) Stats() MemStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// cutLocked reports whether messages between a and b are lost to a
// partition or an isolation.
func (n *MemNetwork) cutLocked(a, b string) bool {
	if a == b {
		return false
	}
	if n.isolated[a] || n.isolated[b] {
		return true
	}
	return n.group != nil && n.group[a] != n.group[b]
}

// delayLocked draws one delivery delay.
func (n *MemNetwork) delayLocked() time.Duration {
	lo, hi := n.faults.MinDelay, max(n.faults.MaxDelay, n.faults.MinDelay)
	if lo < 0 {
		lo = 0
	}
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)+1))
}

// fateLocked draws the delays of the copies of one message that survive
// the random faults: none when it is dropped, two when it is duplicated.
func (n *MemNetwork) fateLocked() []time.Duration {
	if n.faults.Drop > 0 && n.rng.Float64() < n.faults.Drop {
		n.stats.Dropped++
		return nil
	}
	d := []time.Duration{n.delayLocked()}
	if n.faults.Duplicate > 0 && n.rng.Float64() < n.faults.Duplicate {
		n.stats.Duplicated++
		d = append(d, n.delayLocked())
	}
	return d
}

// after runs f on its own goroutine once d has passed.
func after(d time.Duration, f func()) {
	if d <= 0 {
		go f()
		return
	}
	time.AfterFunc(d, f)
}

// sendRequest routes a request from endpoint from to node id to.
func (n *MemNetwork) sendRequest(from *Mem, to string, tag uint64, req []byte) {
	n.mu.Lock()
	n.stats.Requests++
	if n.cutLocked(from.id, to) {
		n.stats.Cut++
		n.mu.Unlock()
		return
	}
	if n.live[to] == nil {
		// Like NATS "no responders": the sender learns at once (after the
		// network's delay) that no one serves the id.
		n.stats.Unreachable++
		d := n.delayLocked()
		n.mu.Unlock()
		after(d, func() { from.unreachable(tag, to) })
		return
	}
	delays := n.fateLocked()
	n.mu.Unlock()
	for _, d := range delays {
		data := bytes.Clone(req)
		after(d, func() { n.deliverRequest(from, to, tag, data) })
	}
}

// deliverRequest hands a request to the endpoint of to started last, if
// it still runs.
func (n *MemNetwork) deliverRequest(from *Mem, to string, tag uint64, data []byte) {
	n.mu.Lock()
	dst := n.live[to]
	n.mu.Unlock()
	if dst == nil {
		n.count(func(s *MemStats) { s.Stale++ })
		return
	}
	h, ok := dst.enter()
	if !ok {
		n.count(func(s *MemStats) { s.Stale++ })
		return
	}
	defer dst.exit()
	n.count(func(s *MemStats) { s.Delivered++ })
	// Each call of respond sends one reply (a node may answer the items of
	// one request in several replies).
	h.HandleRequest(data, func(reply []byte) { n.sendReply(dst, from, tag, reply) })
}

// sendReply routes a reply from endpoint from back to the endpoint that
// sent the request. A reply from a closed endpoint is lost: the process
// that would send it is gone.
func (n *MemNetwork) sendReply(from, to *Mem, tag uint64, reply []byte) {
	n.mu.Lock()
	n.stats.Replies++
	if from.dead {
		n.stats.Stale++
		n.mu.Unlock()
		return
	}
	if n.cutLocked(from.id, to.id) {
		n.stats.Cut++
		n.mu.Unlock()
		return
	}
	delays := n.fateLocked()
	n.mu.Unlock()
	for _, d := range delays {
		data := bytes.Clone(reply)
		after(d, func() { to.reply(tag, data) })
	}
}

// publish delivers a publication from endpoint from to every other live
// endpoint it is not cut off from, each copy with its own fate.
func (n *MemNetwork) publish(from *Mem, topic string, data []byte) {
	n.mu.Lock()
	n.stats.Publications++
	type copyTo struct {
		dst   *Mem
		delay time.Duration
	}
	var copies []copyTo
	for id, dst := range n.live {
		if id == from.id {
			continue
		}
		if n.cutLocked(from.id, id) {
			n.stats.Cut++
			continue
		}
		for _, d := range n.fateLocked() {
			copies = append(copies, copyTo{dst, d})
		}
	}
	n.mu.Unlock()
	for _, c := range copies {
		data := bytes.Clone(data)
		after(c.delay, func() { c.dst.gossip(topic, data) })
	}
}

func (n *MemNetwork) count(f func(*MemStats)) {
	n.mu.Lock()
	f(&n.stats)
	n.mu.Unlock()
}

// Mem is one node's endpoint on a MemNetwork, made by
// MemNetwork.Endpoint. It implements Transport and is safe for concurrent
// use. Handler calls run on delivery goroutines, several at once; a
// Handler must not call Close of its own endpoint from inside a call.
type Mem struct {
	net *MemNetwork
	id  string

	dead bool // under net.mu: Close has begun; never registered again

	// active is read-locked around every Handler call and write-locked by
	// Close, so Close returns only when no Handler call is running.
	active sync.RWMutex
	h      Handler // under active; set by Start
	closed bool    // under active
}

// Start begins delivering to h; from now on requests to this endpoint's
// id come here, and no longer to an earlier endpoint of the same id.
func (e *Mem) Start(h Handler) error {
	if h == nil {
		return errors.New("transport: nil handler")
	}
	e.active.Lock()
	switch {
	case e.closed:
		e.active.Unlock()
		return ErrMemClosed
	case e.h != nil:
		e.active.Unlock()
		return errors.New("transport: mem endpoint already started")
	}
	e.h = h
	e.active.Unlock()

	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	if e.dead {
		return ErrMemClosed
	}
	e.net.live[e.id] = e
	return nil
}

// Send sends req to node to without waiting; the reply, or an unreachable
// notice when no endpoint of to is started, comes to the Handler later on
// another goroutine. req is copied. Send fails only after Close.
func (e *Mem) Send(to string, tag uint64, req []byte) error {
	if e.isDead() {
		return ErrMemClosed
	}
	e.net.sendRequest(e, to, tag, req)
	return nil
}

// Close stops delivery to this endpoint, and returns once no Handler call
// of it is running; nothing is delivered afterwards and replies it sends
// are lost. Messages already sent from it are still delivered. It is
// idempotent.
func (e *Mem) Close() error {
	e.net.mu.Lock()
	e.dead = true
	if e.net.live[e.id] == e {
		delete(e.net.live, e.id)
	}
	e.net.mu.Unlock()
	e.active.Lock()
	e.closed = true
	e.active.Unlock()
	return nil
}

// enter reports whether a Handler call may run, and with which handler;
// exit must follow a true.
func (e *Mem) enter() (Handler, bool) {
	e.active.RLock()
	if e.closed || e.h == nil {
		e.active.RUnlock()
		return nil, false
	}
	return e.h, true
}

func (e *Mem) exit() { e.active.RUnlock() }

// deliver calls f with the handler if a Handler call may run, counting
// the delivery; a closed endpoint's deliveries are stale.
func (e *Mem) deliver(f func(Handler)) {
	h, ok := e.enter()
	if !ok {
		e.net.count(func(s *MemStats) { s.Stale++ })
		return
	}
	defer e.exit()
	e.net.count(func(s *MemStats) { s.Delivered++ })
	f(h)
}

func (e *Mem) reply(tag uint64, data []byte) {
	e.deliver(func(h Handler) { h.HandleReply(tag, data) })
}

// Publish sends data on topic to every other started endpoint; each copy
// may be lost, duplicated or delayed like any message. It fails only
// after Close.
func (e *Mem) Publish(topic string, data []byte) error {
	if e.isDead() {
		return ErrMemClosed
	}
	e.net.publish(e, topic, data)
	return nil
}

// isDead reports whether Close has begun.
func (e *Mem) isDead() bool {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	return e.dead
}

func (e *Mem) gossip(topic string, data []byte) {
	e.deliver(func(h Handler) { h.HandleGossip(topic, data) })
}

func (e *Mem) unreachable(tag uint64, to string) {
	h, ok := e.enter()
	if !ok {
		return
	}
	defer e.exit()
	h.HandleUnreachable(tag, to)
}
