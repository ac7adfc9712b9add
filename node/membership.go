package node

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmesh/kvmesh/node/coord"
	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/node/ring"
	"github.com/kvmesh/kvmesh/node/store"
	"github.com/kvmesh/kvmesh/protocol"
)

// metaMembers is the store metadata entry holding the member set.
const metaMembers = "members"

// memberSet is the seam for who is in the ring. For now it is a
// grow-only set: the node itself, the members persisted by an earlier
// run, the peers met over routes at start, and the members other nodes
// announce. Explicit join, leave and remove come with dynamic membership;
// they will replace learn, not its callers. The ring is rebuilt whenever
// the set grows and read lock-free by the request path.
//
// Gossip callbacks never learn themselves (learning builds a ring and
// persists the set with an fsync): they offer the ids they hear of, and
// the node's membership loop learns them.
type memberSet struct {
	st         *store.Store
	partitions int
	replicas   int

	mu      sync.Mutex // serialises learn
	members []string   // sorted
	r       atomic.Pointer[ring.Ring]

	offerMu sync.Mutex
	offered []string      // ids heard of and not known, for the loop to learn
	wake    chan struct{} // capacity 1: "something was offered"
}

func loadMembership(st *store.Store, self string, partitions, replicas int) (*memberSet, error) {
	m := &memberSet{st: st, partitions: partitions, replicas: replicas, wake: make(chan struct{}, 1)}
	raw, err := st.GetMeta(metaMembers)
	if err != nil {
		return nil, err
	}
	ids := []string{self}
	for _, id := range strings.Split(string(raw), "\n") {
		if protocol.ValidateNodeID(id) == nil {
			ids = append(ids, id)
		}
	}
	m.learn(ids...)
	return m, nil
}

func (m *memberSet) ring() *ring.Ring { return m.r.Load() }

// learn adds ids to the member set; it reports whether the set grew.
func (m *memberSet) learn(ids ...string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	grew := false
	for _, id := range ids {
		if protocol.ValidateNodeID(id) != nil {
			continue
		}
		if i, found := slices.BinarySearch(m.members, id); !found {
			if len(m.members) >= protocol.MaxMembers {
				break
			}
			m.members = slices.Insert(m.members, i, id)
			grew = true
		}
	}
	if !grew && m.r.Load() != nil {
		return false
	}
	r, err := ring.New(m.members, m.partitions, m.replicas)
	if err != nil { // cannot happen: ids are valid and unique
		return false
	}
	m.r.Store(r)
	_ = m.st.PutMeta(metaMembers, []byte(strings.Join(m.members, "\n")))
	return grew
}

// offer queues the ids that are not members yet for learn, without
// blocking; it reports whether there was any.
func (m *memberSet) offer(ids []string) bool {
	known := m.ring().Members() // sorted
	var fresh []string
	for _, id := range ids {
		if _, found := slices.BinarySearch(known, id); !found && protocol.ValidateNodeID(id) == nil {
			fresh = append(fresh, id)
		}
	}
	if len(fresh) == 0 {
		return false
	}
	m.offerMu.Lock()
	if len(m.offered) < protocol.MaxMembers {
		m.offered = append(m.offered, fresh...)
	}
	m.offerMu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return true
}

// takeOffered returns and forgets the ids offered so far.
func (m *memberSet) takeOffered() []string {
	m.offerMu.Lock()
	defer m.offerMu.Unlock()
	ids := m.offered
	m.offered = nil
	return ids
}

// gossipMembers is the gossip topic of membership announcements.
const gossipMembers = "members"

// HandleGossip implements transport.Handler: another node's membership
// announcement. It notes that the node is alive, offers the members it
// names to the membership loop, and answers a node heard for the first
// time with an announcement of its own, so that a newcomer hears this one
// at once. It never blocks.
func (n *Node) HandleGossip(topic string, data []byte) {
	if topic != gossipMembers {
		return
	}
	a, err := protocol.DecodeAnnounce(data)
	if err != nil || a.From == n.cfg.ID {
		return
	}
	if a.Secret != n.ctxKey.Fingerprint() {
		if _, warned := n.otherSecret.LoadOrStore(a.From, true); !warned {
			n.log.Error("a node of the store has another secret: each refuses the causal contexts the other issues (400). Give every node the same --secret-file",
				"peer", a.From, "its secret", a.Secret, "this node's", n.ctxKey.Fingerprint())
		}
	} else {
		n.otherSecret.Delete(a.From)
	}
	_, seen := n.heard.Swap(a.From, true)
	if c := n.live.observe(a.From, n.clock.Now()); c != nil {
		n.log.Info("member heard again", "member", c.ID, "was", c.From.String())
	}
	n.mem.offer(append(a.Members, a.From))
	if !seen {
		n.announce()
	}
}

// startGossip announces this node and starts the membership loop: it
// learns the members gossip offers (and announces when the set grew) and
// announces this node's member set every heartbeat. The transport
// delivers gossip from its Start on, so an announcement also tells peers
// that this node's RPC interest has reached them (notes/nats.md section
// 3).
func (n *Node) startGossip() {
	n.live.watch(n.clock.Now(), n.peers())
	n.announce()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := n.clock.NewTicker(n.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-n.stop:
				return
			case <-n.mem.wake:
				if n.mem.learn(n.mem.takeOffered()...) {
					n.log.Info("members changed", "members", n.Members())
					n.live.watch(n.clock.Now(), n.peers())
					n.announce()
				}
			case <-t.C():
				n.announce()
				for _, c := range n.live.tick(n.clock.Now()) {
					n.log.Warn("member "+c.To.String(), "member", c.ID, "silent", c.Silent.Round(time.Millisecond))
				}
			}
		}
	}()
}

// announce publishes this node's member set once.
func (n *Node) announce() {
	b, err := protocol.EncodeAnnounce(&protocol.Announce{
		V: protocol.Version, From: n.cfg.ID, Members: n.Members(), Time: n.clock.Now().UnixNano(), Secret: n.ctxKey.Fingerprint(),
	})
	if err == nil {
		_ = n.tr.Publish(gossipMembers, b)
	}
}

// Heard returns the members this node has heard from and its failure
// detector holds alive, this node included: the peers it knows to be
// alive and whose RPC subscriptions have reached it.
func (n *Node) Heard() []string {
	out := []string{n.cfg.ID}
	for _, m := range n.Members() {
		if _, ok := n.heard.Load(m); ok && m != n.cfg.ID && n.live.state(m) == membership.Alive {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// peers returns the members but this node.
func (n *Node) peers() []string {
	return slices.DeleteFunc(n.Members(), func(m string) bool { return m == n.cfg.ID })
}

// liveness is the node's failure detector (membership.Detector) behind a
// lock: gossip delivery observes, the membership loop ticks, the request
// path reads.
type liveness struct {
	mu sync.Mutex
	d  *membership.Detector
	// unwell counts the peers not alive, so that the request path skips
	// the ordering (and its lookups) while every peer is well.
	unwell atomic.Int32
}

// count refreshes unwell; mu is held.
func (l *liveness) count() {
	l.unwell.Store(int32(len(l.d.In(membership.Suspect)) + len(l.d.In(membership.Down))))
}

func (l *liveness) watch(now time.Time, ids []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d.Watch(now, ids...)
}

func (l *liveness) observe(id string, now time.Time) *membership.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.d.Observe(id, now)
	if c != nil {
		l.count()
	}
	return c
}

func (l *liveness) tick(now time.Time) []membership.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := l.d.Tick(now)
	if len(cs) > 0 {
		l.count()
	}
	return cs
}

func (l *liveness) state(id string) membership.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.d.State(id)
}

// in returns the peers in state s.
func (l *liveness) in(s membership.State) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.d.In(s)
}

// order returns owners for asking: alive ones first, then suspects, then
// down ones (coord.ByLiveness); owners itself while every peer is alive.
func (l *liveness) order(owners []string) []string {
	if l.unwell.Load() == 0 {
		return owners
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return coord.ByLiveness(owners, func(id string) int { return int(l.d.State(id)) })
}
