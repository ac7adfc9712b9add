package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/kvmesh/kvmesh/node/coord"
	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/node/ring"
	"github.com/kvmesh/kvmesh/node/store"
	"github.com/kvmesh/kvmesh/protocol"
)

// metaRecords is the store metadata entry holding the member records.
const metaRecords = "member-records"

// memberSet is who is in the ring: the member records (membership.Set)
// this node holds, each signed by the cluster key, plus the ids the
// configuration names (Config.Members, the simulation's static set). The
// ring is rebuilt whenever the set changes and read lock-free by the
// request path.
//
// Gossip callbacks never apply records themselves (that verifies
// signatures, builds a ring and persists the set with an fsync): they
// offer what they hear, and the node's membership loop applies it.
type memberSet struct {
	st         *store.Store
	partitions int
	replicas   int
	cluster    string   // the cluster's public key (membership.ClusterKey)
	self       string   // this node's id: always in its ring
	static     []string // ids of Config.Members

	mu     sync.Mutex // serialises apply and the changes of prev
	set    atomic.Pointer[membership.Set]
	digest atomic.Pointer[[]byte]
	// r is the serving ring (reads ask its owners), target the ring the
	// partitions are going to (the same ring when no transition is on),
	// prev the serving rings before r that some member may still read
	// from: writes are joint over all of them (rebalance.go).
	r      atomic.Pointer[ring.Ring]
	target atomic.Pointer[ring.Ring]
	prev   atomic.Pointer[[]*ring.Ring]

	offerMu sync.Mutex
	offered []protocol.MemberRecord // records heard, for the loop to apply
	wake    chan struct{}           // capacity 1: "something was offered"

	refused atomic.Int64 // records that did not verify (forged, invalid)
	// onChange, if set, is called by apply with the set before and after
	// each change, m.mu held: it must not block or call back into m.
	onChange func(before, after membership.Set)

	changedMu sync.Mutex
	changed   chan struct{} // closed and replaced whenever the set changes
}

// loadMembership opens the member set persisted in st: records that no
// longer verify under cluster (another secret) are dropped.
func loadMembership(st *store.Store, cluster, self string, static []string, partitions, replicas int) (*memberSet, error) {
	m := &memberSet{st: st, partitions: partitions, replicas: replicas, cluster: cluster, self: self, static: static,
		wake: make(chan struct{}, 1), changed: make(chan struct{})}
	m.prev.Store(new([]*ring.Ring))
	raw, err := st.GetMeta(metaRecords)
	if err != nil {
		return nil, err
	}
	var set membership.Set
	for len(raw) > 0 {
		size, k := binary.Uvarint(raw)
		if k <= 0 || size > uint64(len(raw)-k) {
			break
		}
		if r, err := protocol.DecodeMemberRecord(raw[k : k+int(size)]); err == nil {
			set, _ = set.Apply(*r, cluster)
		}
		raw = raw[k+int(size):]
	}
	m.publish(set)
	prev, err := st.GetMeta(metaPrev)
	if err != nil {
		return nil, err
	}
	var rings []*ring.Ring
	for _, list := range strings.Split(string(prev), ";") {
		if ids := strings.Fields(list); len(ids) > 0 {
			if r, err := ring.New(ids, partitions, replicas); err == nil {
				rings = append(rings, r)
			}
		}
	}
	m.prev.Store(&rings)
	return m, nil
}

// metaPrev is the store metadata entry holding the member lists of the
// prev rings, so that a node restarted during a transition still writes
// to them.
const metaPrev = "member-prev"

func (m *memberSet) ring() *ring.Ring { return m.r.Load() }

func (m *memberSet) records() membership.Set { return *m.set.Load() }

// publish makes set the node's member set and rebuilds the rings from
// it: the serving ring of the members up or leaving, the target ring of
// those up or joining (membership.Set.Serving and Target), both with the
// configured ids. A node alone with no serving member (a joiner that has
// heard no peer) serves with the target ring. When the serving ring
// changes because a transition ended (a member that was joining or
// leaving in the set before is not any more), the old one joins prev. A
// member heard of for the first time as up (the nodes that start a store
// together meet) moves no data, and nobody reads from the old ring.
func (m *memberSet) publish(set membership.Set) {
	before := membership.Set{}
	if b := m.set.Load(); b != nil {
		before = *b
	}
	ids := func(of []string) []string {
		out := slices.Concat(m.static, of)
		slices.Sort(out)
		return slices.Compact(out)
	}
	serving, target := ids(set.Serving()), ids(set.Target())
	if len(serving) == 0 {
		serving = target
	}
	if len(serving) == 0 {
		serving = []string{m.self}
	}
	if len(target) == 0 { // this node's record is not in yet, or was removed
		target = serving
	}
	m.set.Store(&set)
	d := set.Digest()
	m.digest.Store(&d)
	old := m.r.Load()
	if old == nil || !slices.Equal(old.Members(), serving) {
		if r, err := ring.New(serving, m.partitions, m.replicas); err == nil { // ids are valid and unique
			m.r.Store(r)
			if old != nil && transitionEnded(before, set) {
				m.setPrev(append(slices.Clone(*m.prev.Load()), old))
			}
		}
	}
	switch r := m.r.Load(); {
	case slices.Equal(target, r.Members()):
		m.target.Store(r)
	case len(target) > 0 && (m.target.Load() == nil || !slices.Equal(m.target.Load().Members(), target)):
		if t, err := ring.New(target, m.partitions, m.replicas); err == nil {
			m.target.Store(t)
		}
	}
	m.changedMu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.changedMu.Unlock()
}

// transitionEnded reports whether a member joining or leaving in before
// is not any more in after.
func transitionEnded(before, after membership.Set) bool {
	for _, r := range before.Records() {
		if r.Status == protocol.MemberJoining || r.Status == protocol.MemberLeaving {
			if a, ok := after.Get(r.ID); ok && a.Status != r.Status {
				return true
			}
		}
	}
	return false
}

// maxPrev bounds the prev rings a node keeps: the oldest goes first.
const maxPrev = 4

// setPrev makes rings the prev rings and persists their member lists;
// m.mu is held (or the set is being loaded).
func (m *memberSet) setPrev(rings []*ring.Ring) {
	if len(rings) > maxPrev {
		rings = rings[len(rings)-maxPrev:]
	}
	m.prev.Store(&rings)
	lists := make([]string, len(rings))
	for i, r := range rings {
		lists[i] = strings.Join(r.Members(), " ")
	}
	_ = m.st.PutMeta(metaPrev, []byte(strings.Join(lists, ";")))
}

// clearPrev forgets the prev rings: every member serves the current one.
func (m *memberSet) clearPrev() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(*m.prev.Load()) > 0 {
		m.setPrev(nil)
	}
}

func (m *memberSet) targetRing() *ring.Ring { return m.target.Load() }

// stable reports whether no membership change is under way: the serving
// and target rings hold the same members and no previous ring is still
// written to.
func (m *memberSet) stable() bool {
	return len(*m.prev.Load()) == 0 && membership.Epoch(m.ring().Members()) == membership.Epoch(m.targetRing().Members())
}

// joint returns the owner sets of partition p that a write must also
// reach, besides owners (the serving ring's): the target ring's and the
// prev rings', each once; nil while no transition is on.
func (m *memberSet) joint(p int, owners []string) [][]string {
	var out [][]string
	add := func(r *ring.Ring) {
		o := r.Owners(p)
		if !slices.Equal(o, owners) && !slices.ContainsFunc(out, func(x []string) bool { return slices.Equal(x, o) }) {
			out = append(out, o)
		}
	}
	if t := m.target.Load(); t != nil {
		add(t)
	}
	for _, r := range *m.prev.Load() {
		add(r)
	}
	return out
}

// changedCh returns a channel closed at the next change of the set.
func (m *memberSet) changedCh() <-chan struct{} {
	m.changedMu.Lock()
	defer m.changedMu.Unlock()
	return m.changed
}

// waitFor waits until the set holds a record of each of ids, or ctx ends.
func (m *memberSet) waitFor(ctx context.Context, ids []string) error {
	for {
		m.changedMu.Lock()
		ch := m.changed
		m.changedMu.Unlock()
		set := m.records()
		if !slices.ContainsFunc(ids, func(id string) bool { _, ok := set.Get(id); return !ok }) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// apply merges records into the set, persists it if it changed, and
// reports whether it did. Records that do not verify are counted in
// refused; stale ones are ignored.
func (m *memberSet) apply(recs ...protocol.MemberRecord) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	before := m.records()
	set := before
	changed := false
	for _, r := range recs {
		if old, ok := set.Get(r.ID); ok && bytes.Equal(old.Sig, r.Sig) && bytes.Equal(old.SigningBytes(), r.SigningBytes()) {
			continue // the record it holds: most gossip
		}
		next, err := set.Apply(r, m.cluster)
		switch {
		case err == nil:
			set, changed = next, true
		case !errors.Is(err, membership.ErrStale):
			m.refused.Add(1)
		}
	}
	if !changed {
		return false
	}
	var raw []byte
	for _, r := range set.Records() {
		b, _ := protocol.EncodeMemberRecord(&r)
		raw = binary.AppendUvarint(raw, uint64(len(b)))
		raw = append(raw, b...)
	}
	_ = m.st.PutMeta(metaRecords, raw)
	m.publish(set)
	if m.onChange != nil {
		m.onChange(before, set)
	}
	return true
}

// offer queues records for apply, without blocking.
func (m *memberSet) offer(recs []protocol.MemberRecord) {
	if len(recs) == 0 {
		return
	}
	m.offerMu.Lock()
	if len(m.offered) < protocol.MaxMembers {
		m.offered = append(m.offered, recs...)
	}
	m.offerMu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// takeOffered returns and forgets the records offered so far.
func (m *memberSet) takeOffered() []protocol.MemberRecord {
	m.offerMu.Lock()
	defer m.offerMu.Unlock()
	recs := m.offered
	m.offered = nil
	return recs
}

// gossipHeartbeat is the gossip topic of heartbeats (protocol.Heartbeat).
const gossipHeartbeat = "heartbeat"

// gossipState is what the node keeps of the heartbeats it hears.
type gossipState struct {
	mu   sync.Mutex
	last map[string]int64 // member id -> Time of the last heartbeat accepted from it
	// full is set when a heartbeat's digest differed from this node's:
	// the next heartbeat carries every record.
	full atomic.Bool
	// refused counts heartbeats that did not verify: malformed,
	// unsigned, forged, from no member. (Replayed ones, which a reordered
	// one cannot be told from, are ignored without a count.)
	refused atomic.Int64
	// sent is the Time of the last heartbeat this node sent: each one's
	// is later, even when the clock did not move (a fake one) or went
	// back, so that no peer takes it for a replay.
	sent atomic.Int64
}

// nextTime returns the Time of the next heartbeat sent at now.
func (g *gossipState) nextTime(now int64) int64 {
	for {
		last := g.sent.Load()
		t := max(now, last+1)
		if g.sent.CompareAndSwap(last, t) {
			return t
		}
	}
}

// accept reports whether a heartbeat of from at time t is later than the
// last accepted, and records it if so.
func (g *gossipState) accept(from string, t int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last == nil {
		g.last = make(map[string]int64)
	}
	if last, ok := g.last[from]; ok && t <= last {
		return false
	}
	g.last[from] = t
	return true
}

// HandleGossip implements transport.Handler: another node's heartbeat.
// The member records in it go to the membership loop, which verifies
// each under the cluster key. The heartbeat itself counts only if it is
// signed by the key of its sender's member record and later than the
// last one accepted from it: only then is the sender alive, and a new
// sender answered with a heartbeat at once, so that a newcomer hears
// this node without waiting. Anything else is counted and ignored. It
// never blocks.
func (n *Node) HandleGossip(topic string, data []byte) {
	if topic != gossipHeartbeat {
		return
	}
	h, err := protocol.DecodeHeartbeat(data)
	if err != nil || h.From == n.cfg.ID {
		if err != nil {
			n.gossip.refused.Add(1)
		}
		return
	}
	n.mem.offer(h.Records)
	if !n.verifyHeartbeat(h) {
		n.gossip.refused.Add(1)
		if n.claimsAnotherKey(h) {
			// Its sender signs with a key its record here does not hold
			// and carries a record of its own that does not supersede
			// that one: a member that lost its data dir. Send it every
			// record, its old one included, so that it takes its id back
			// with a later incarnation (ownRecordChanged). At most once a
			// heartbeat, however many such heartbeats come.
			n.gossip.full.Store(true)
		}
		return
	}
	if !n.gossip.accept(h.From, h.Time) {
		return // replayed, or overtaken by a later one
	}
	n.rebal.heard(h.From, epochs{serving: h.Serving, target: h.Target, ready: h.Ready, settled: h.Settled})
	if !bytes.Equal(h.Digest, *n.mem.digest.Load()) {
		n.gossip.full.Store(true)
	}
	if h.Secret != n.ctxKey.Fingerprint() {
		if _, warned := n.otherSecret.LoadOrStore(h.From, true); !warned {
			n.log.Error("a node of the store has another secret: each refuses the causal contexts the other issues (400). Give every node the same --secret-file",
				"peer", h.From, "its secret", h.Secret, "this node's", n.ctxKey.Fingerprint())
		}
	} else {
		n.otherSecret.Delete(h.From)
	}
	n.checkConflicts(h)
	_, seen := n.heard.Swap(h.From, true)
	if c := n.live.observe(h.From, n.clock.Now()); c != nil {
		n.log.Info("member heard again", "member", c.ID, "was", c.From.String())
	}
	if !seen {
		n.gossip.full.Store(true)
		n.heartbeat()
	}
}

// claimsAnotherKey reports whether h carries a record of its sender
// with another key than the record of it this node holds.
func (n *Node) claimsAnotherKey(h *protocol.Heartbeat) bool {
	rec, ok := n.mem.records().Get(h.From)
	if !ok {
		return false
	}
	return slices.ContainsFunc(h.Records, func(r protocol.MemberRecord) bool { return r.ID == h.From && r.Key != rec.Key })
}

// verifyHeartbeat checks h's signature against its sender's key: the
// one in the sender's record this node holds, or else in the sender's
// own record carried by h if that verifies under the cluster key.
func (n *Node) verifyHeartbeat(h *protocol.Heartbeat) bool {
	rec, ok := n.mem.records().Get(h.From)
	for _, r := range h.Records {
		if r.ID == h.From && (!ok || membership.Supersedes(&r, &rec)) && membership.Verify(&r, n.mem.cluster) == nil {
			rec, ok = r, true
		}
	}
	if !ok || rec.Status == protocol.MemberLeft || len(h.Sig) == 0 {
		return false
	}
	kp, err := nkeys.FromPublicKey(rec.Key)
	return err == nil && kp.Verify(h.SigningBytes(), h.Sig) == nil
}

// startGossip sends the first heartbeat and starts the membership loop:
// it applies the records gossip offers (and heartbeats at once, with
// every record, when the set changed) and heartbeats every interval. The
// transport delivers gossip from its Start on, so a heartbeat also tells
// peers that this node's RPC interest has reached them (notes/nats.md
// section 3).
func (n *Node) startGossip() {
	n.live.watch(n.clock.Now(), n.peers())
	n.gossip.full.Store(true)
	n.heartbeat()
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
				if n.mem.apply(n.mem.takeOffered()...) {
					n.ownRecordChanged()
					n.log.Info("members changed", "members", n.Members())
					n.live.watch(n.clock.Now(), n.peers())
					n.gossip.full.Store(true)
					n.heartbeat()
				}
			case <-t.C():
				n.heartbeat()
				for _, c := range n.live.tick(n.clock.Now()) {
					n.log.Warn("member "+c.To.String(), "member", c.ID, "silent", c.Silent.Round(time.Millisecond))
				}
			}
		}
	}()
}

// heartbeat publishes one heartbeat: this node's own record, or every
// record when a peer may lack some.
func (n *Node) heartbeat() {
	set := n.mem.records()
	h := protocol.Heartbeat{V: protocol.Version, From: n.cfg.ID, Time: n.gossip.nextTime(n.clock.Now().UnixNano()), Secret: n.ctxKey.Fingerprint(),
		Digest: *n.mem.digest.Load(), Serving: membership.Epoch(n.mem.ring().Members()),
		Target: membership.Epoch(n.mem.targetRing().Members()), Ready: n.rebal.ready.Load(), Conflicts: n.heartbeatConflicts()}
	if n.mem.targetRing() == n.mem.ring() && len(*n.mem.prev.Load()) == 0 {
		h.Settled = h.Serving
	}
	if n.gossip.full.Swap(false) {
		h.Records = set.Records()
	} else if own, ok := set.Get(n.cfg.ID); ok {
		h.Records = []protocol.MemberRecord{own}
	}
	h.Sig, _ = n.key.Sign(h.SigningBytes())
	if b, err := protocol.EncodeHeartbeat(&h); err == nil {
		_ = n.tr.Publish(gossipHeartbeat, b)
	}
}

// registerSelf makes sure the set holds this node's record as it is
// now: its key and addresses, status up, or joining with Config.Join. A
// record of an earlier run with the same key is kept (a new version if
// an address changed); a record with another key (a lost data dir) or a
// left one is followed by a new incarnation.
func (n *Node) registerSelf() error {
	status := protocol.MemberUp
	if n.cfg.Join {
		status = protocol.MemberJoining
	}
	// With no record of its own (a new node, or one whose data dir was
	// lost), a node cannot know the incarnation its id had: it takes the
	// time in seconds, which supersedes any record an earlier run of it
	// wrote (those counted from 1, or from an earlier time). Were the
	// incarnations equal, the tie would go to whichever record signs
	// larger, and the peers could keep an old key forever.
	want := protocol.MemberRecord{V: protocol.Version, ID: n.cfg.ID, Key: n.publicKey, Client: n.ClientURL(), Route: n.ClusterURL(),
		DC: n.cfg.DataCenter, Status: status, Incarnation: max(1, uint64(n.clock.Now().Unix())), Version: 1}
	if old, ok := n.mem.records().Get(n.cfg.ID); ok {
		if old.Key == want.Key && old.Status != protocol.MemberLeft {
			if old.Client == want.Client && old.Route == want.Route && old.DC == want.DC {
				return nil
			}
			want.Status, want.Incarnation, want.Version = old.Status, old.Incarnation, old.Version+1
		} else {
			want.Incarnation = old.Incarnation + 1
		}
	}
	r, err := membership.Sign(want, n.clusterKey)
	if err != nil {
		return fmt.Errorf("sign member record: %w", err)
	}
	if !n.mem.apply(r) {
		return fmt.Errorf("member record of %s refused", n.cfg.ID)
	}
	return nil
}

// ownRecordChanged handles a record of this node's id that gossip
// brought and that supersedes the one it wrote: one of an earlier run
// (its data dir was lost) or from another node using its id. The node
// takes its place again with a later record, unless it was removed.
func (n *Node) ownRecordChanged() {
	own, ok := n.mem.records().Get(n.cfg.ID)
	if !ok || own.Key == n.publicKey && own.Status != protocol.MemberLeft {
		return
	}
	if own.Status == protocol.MemberLeft {
		if own.Key == n.publicKey {
			n.log.Info("this node has left the store: its partitions are on the other members")
		} else {
			n.log.Error("this node was removed from the store; it serves no partition. Give it a new data dir and join it again to bring it back", "incarnation", own.Incarnation)
		}
		return // the rebalancing loop closes Left once the others let go

	}
	n.log.Warn("another key claimed this node's id; taking it back with a new incarnation", "key", own.Key)
	if err := n.registerSelf(); err != nil {
		n.log.Error("could not take this node's id back", "err", err)
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

// down returns the peers held down, nil (without a lookup) while every
// peer is alive.
func (l *liveness) down() []string {
	if l.unwell.Load() == 0 {
		return nil
	}
	return l.in(membership.Down)
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
