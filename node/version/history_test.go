package version

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

// This file simulates histories of one key: a few replicas, a few
// clients that read (Sync of some replicas) and write (Update at one
// replica with some context), and replicas that exchange state at random
// (replica writes that may be lost, read repair, anti-entropy). The
// histories feed the property tests: the laws of Sync on realistic
// objects, and the safety of what Update and Sync drop.

// writerKind is how a simulated client picks the context of its writes.
type writerKind int

const (
	readModifyWrite writerKind = iota // the context of its last read, sometimes an older one
	ownContext                        // always the clock its previous write returned
	blind                             // always no context
	mixed                             // any of the above, at random
)

type simClient struct {
	kind     writerKind
	readCtx  protocol.Clock   // clock of its last read
	writeCtx protocol.Clock   // clock its last successful write returned
	old      []protocol.Clock // earlier contexts, for stale writes
}

// simWrite is one successful Update.
type simWrite struct {
	step    int
	client  int
	dot     protocol.Dot
	ctx     protocol.Clock
	value   string
	fromRdr bool // ctx is the clock of a read: every dot it covers was seen
}

// simRead is one read: the Sync of some replicas.
type simRead struct {
	step int
	obj  *protocol.Object
}

type sim struct {
	t        testing.TB
	rng      *rand.Rand
	nodes    []string
	replicas []*protocol.Object
	clients  []simClient
	writes   []simWrite
	reads    []simRead
	byDot    map[protocol.Dot]int // index into writes
	pool     []*protocol.Object   // every object seen, for the law tests
	step     int
	refused  int // writes refused with ErrTooManySiblings
}

func newSim(t testing.TB, seed int64, nodes int, kinds []writerKind) *sim {
	s := &sim{t: t, rng: rand.New(rand.NewSource(seed)), byDot: map[protocol.Dot]int{}}
	for i := range nodes {
		s.nodes = append(s.nodes, fmt.Sprintf("n%d", i+1))
	}
	s.replicas = make([]*protocol.Object, nodes)
	for _, k := range kinds {
		s.clients = append(s.clients, simClient{kind: k})
	}
	return s
}

// run performs steps random operations, checking invariants after each.
func (s *sim) run(steps int) {
	for range steps {
		s.step++
		switch p := s.rng.Intn(100); {
		case p < 30:
			s.read(s.rng.Intn(len(s.clients)))
		case p < 70:
			s.write(s.rng.Intn(len(s.clients)))
		case p < 85: // anti-entropy between two replicas
			i, j := s.rng.Intn(len(s.nodes)), s.rng.Intn(len(s.nodes))
			m := Sync(s.replicas[i], s.replicas[j])
			s.replicas[i], s.replicas[j] = m, m
			s.keep(m)
		default: // one-way transfer, e.g. a hint delivered late
			i, j := s.rng.Intn(len(s.nodes)), s.rng.Intn(len(s.nodes))
			s.replicas[j] = Sync(s.replicas[j], s.replicas[i])
			s.keep(s.replicas[j])
		}
		s.checkReplicas()
	}
}

func (s *sim) keep(o *protocol.Object) {
	if o != nil && len(s.pool) < 400 {
		s.pool = append(s.pool, o)
	}
}

// read merges a random non-empty subset of replicas, like a coordinator
// with R of them answering, and sometimes repairs them.
func (s *sim) read(c int) {
	var merged *protocol.Object
	var asked []int
	for _, i := range s.rng.Perm(len(s.nodes))[:1+s.rng.Intn(len(s.nodes))] {
		merged = Sync(merged, s.replicas[i])
		asked = append(asked, i)
	}
	checkValid(s.t, merged)
	s.reads = append(s.reads, simRead{step: s.step, obj: merged})
	s.keep(merged)
	cl := &s.clients[c]
	if merged != nil {
		cl.old = append(cl.old, cl.readCtx)
		cl.readCtx = merged.Clock
	}
	if s.rng.Intn(2) == 0 { // read repair
		for _, i := range asked {
			s.replicas[i] = Sync(s.replicas[i], merged)
		}
	}
}

// write runs Update at a random replica and replicates the result to a
// random subset of the others (the rest missed the replica write).
func (s *sim) write(c int) {
	cl := &s.clients[c]
	kind := cl.kind
	if kind == mixed {
		kind = writerKind(s.rng.Intn(3))
	}
	var ctx protocol.Clock
	fromRead := false
	switch kind {
	case readModifyWrite:
		ctx, fromRead = cl.readCtx, true
		if len(cl.old) > 0 && s.rng.Intn(5) == 0 { // a stale context
			ctx = cl.old[s.rng.Intn(len(cl.old))]
		}
	case ownContext:
		ctx = cl.writeCtx
	}
	i := s.rng.Intn(len(s.nodes))
	node := s.nodes[i]
	value := fmt.Sprintf("c%d-s%d", c, s.step)
	ctx0 := slices.Clone(ctx)
	o, err := Update(s.replicas[i], ctx, node, protocol.Sibling{Value: []byte(value), Time: int64(s.step)})
	if errors.Is(err, protocol.ErrTooManySiblings) {
		s.refused++
		return
	}
	if err != nil {
		s.t.Fatalf("step %d: Update: %v", s.step, err)
	}
	if !slices.Equal(ctx, ctx0) {
		s.t.Fatalf("step %d: Update modified the context", s.step)
	}
	checkValid(s.t, o)
	d := o.Clock[slices.IndexFunc(o.Clock, func(d protocol.Dot) bool { return d.Node == node })]
	if _, dup := s.byDot[d]; dup {
		s.t.Fatalf("step %d: dot %v issued twice", s.step, d)
	}
	s.byDot[d] = len(s.writes)
	s.writes = append(s.writes, simWrite{step: s.step, client: c, dot: d, ctx: ctx, value: value, fromRdr: fromRead})
	s.replicas[i] = o
	s.keep(o)
	cl.writeCtx = o.Clock
	for j := range s.nodes {
		if j != i && s.rng.Intn(10) < 6 {
			s.replicas[j] = Sync(s.replicas[j], o)
		}
	}
}

// checkReplicas asserts what must hold of every replica after every step.
func (s *sim) checkReplicas() {
	t := s.t
	for _, o := range s.replicas {
		if o == nil {
			continue
		}
		checkValid(t, o)
		if len(o.Clock) > len(s.nodes) {
			t.Fatalf("step %d: clock %s has more entries than coordinators", s.step, fmtClock(o.Clock))
		}
		own := map[int]int{}
		for _, sb := range o.Siblings {
			w, ok := s.byDot[sb.Dot]
			if !ok || s.writes[w].value != string(sb.Value) {
				t.Fatalf("step %d: sibling %v=%q was never written", s.step, sb.Dot, sb.Value)
			}
			own[s.writes[w].client]++
		}
		for c, n := range own {
			if s.clients[c].kind == ownContext && n > 1 {
				t.Fatalf("step %d: own-context client %d has %d siblings in %s", s.step, c, n, fmtObj(o))
			}
		}
	}
}

// final syncs all replicas, in a random order.
func (s *sim) final() *protocol.Object {
	var f *protocol.Object
	for _, i := range s.rng.Perm(len(s.nodes)) {
		f = Sync(f, s.replicas[i])
	}
	return f
}

// checkSafety asserts the key safety property over the whole history:
// a written sibling is in the final object unless the context of some
// write covered its dot, and then it is gone for good; contexts never
// cover a dot not yet issued; and a read's clock covers only writes the
// read returned or some earlier write superseded, so a context taken
// from a read supersedes only what the client saw.
func (s *sim) checkSafety() {
	t := s.t
	final := s.final()
	checkValid(t, final)
	// Every replica converges to the final object once it has synced with
	// all the others.
	for i := range s.nodes {
		if got := Sync(s.replicas[i], final); !Equal(got, final) {
			t.Fatalf("replica %s does not converge: %s vs %s", s.nodes[i], fmtObj(got), fmtObj(final))
		}
	}

	// supersededAt[w] is the first step at which a write's context
	// covered w's dot, or -1.
	supersededAt := make([]int, len(s.writes))
	for i := range supersededAt {
		supersededAt[i] = -1
	}
	for _, w2 := range s.writes {
		for _, d := range w2.ctx {
			for c := uint64(1); c <= d.Counter; c++ {
				w, ok := s.byDot[protocol.Dot{Node: d.Node, Counter: c}]
				if !ok {
					t.Fatalf("write at step %d: context %s covers %s:%d, which was never issued", w2.step, fmtClock(w2.ctx), d.Node, c)
				}
				if s.writes[w].step >= w2.step {
					t.Fatalf("write at step %d: context covers the later write of step %d", w2.step, s.writes[w].step)
				}
				if supersededAt[w] < 0 || w2.step < supersededAt[w] {
					supersededAt[w] = w2.step
				}
			}
		}
	}

	inFinal := map[protocol.Dot]string{}
	if final != nil {
		for _, sb := range final.Siblings {
			inFinal[sb.Dot] = string(sb.Value)
		}
	}
	for i, w := range s.writes {
		v, present := inFinal[w.dot]
		switch {
		case present && v != w.value:
			t.Fatalf("write %v: final value %q, want %q", w.dot, v, w.value)
		case present && supersededAt[i] >= 0:
			t.Fatalf("write %v of step %d was superseded at step %d but is back in %s", w.dot, w.step, supersededAt[i], fmtObj(final))
		case !present && supersededAt[i] < 0:
			t.Fatalf("write %v of step %d (%q) was lost: no context covered it; final %s", w.dot, w.step, w.value, fmtObj(final))
		}
	}

	for _, rd := range s.reads {
		if rd.obj == nil {
			continue
		}
		seen := map[protocol.Dot]bool{}
		for _, sb := range rd.obj.Siblings {
			seen[sb.Dot] = true
		}
		for i, w := range s.writes {
			if !Covers(rd.obj.Clock, w.dot) {
				continue
			}
			if w.step > rd.step {
				t.Fatalf("read at step %d covers the later write %v of step %d", rd.step, w.dot, w.step)
			}
			if !seen[w.dot] && (supersededAt[i] < 0 || supersededAt[i] > rd.step) {
				t.Fatalf("read at step %d: clock covers %v, which it neither returned nor was superseded before", rd.step, w.dot)
			}
		}
	}
}

// checkLaws asserts that Sync is commutative, associative and idempotent
// on objects of this history, that nil is its identity, and that it
// absorbs: syncing with something already merged in changes nothing.
func (s *sim) checkLaws(trials int) {
	t := s.t
	if len(s.pool) == 0 {
		return
	}
	pick := func() *protocol.Object {
		if s.rng.Intn(20) == 0 {
			return nil
		}
		return s.pool[s.rng.Intn(len(s.pool))]
	}
	for range trials {
		a, b, c := pick(), pick(), pick()
		a0, b0, c0 := clone(a), clone(b), clone(c)
		ab := Sync(a, b)
		checkValid(t, ab)
		if !Equal(ab, Sync(b, a)) {
			t.Fatalf("Sync not commutative:\n a=%s\n b=%s\n ab=%s\n ba=%s", fmtObj(a), fmtObj(b), fmtObj(ab), fmtObj(Sync(b, a)))
		}
		if l, r := Sync(ab, c), Sync(a, Sync(b, c)); !Equal(l, r) {
			t.Fatalf("Sync not associative:\n a=%s\n b=%s\n c=%s\n (ab)c=%s\n a(bc)=%s", fmtObj(a), fmtObj(b), fmtObj(c), fmtObj(l), fmtObj(r))
		}
		if !Equal(Sync(a, a), a) {
			t.Fatalf("Sync not idempotent on %s: %s", fmtObj(a), fmtObj(Sync(a, a)))
		}
		if !Equal(Sync(a, nil), a) || !Equal(Sync(nil, a), a) {
			t.Fatalf("nil is not the identity of Sync on %s", fmtObj(a))
		}
		if !Equal(Sync(ab, a), ab) || !Equal(Sync(ab, b), ab) {
			t.Fatalf("Sync does not absorb: a=%s b=%s", fmtObj(a), fmtObj(b))
		}
		if ab != nil && a != nil && b != nil && !(Descends(ab.Clock, a.Clock) && Descends(ab.Clock, b.Clock)) {
			t.Fatalf("Sync clock is not an upper bound")
		}
		if !identical(a, a0) || !identical(b, b0) || !identical(c, c0) {
			t.Fatal("Sync modified its input")
		}
	}
}

func histories(t *testing.T) int {
	if testing.Short() {
		return 30
	}
	return 300
}

func TestHistorySafety(t *testing.T) {
	kinds := []writerKind{readModifyWrite, ownContext, blind, mixed}
	for seed := range int64(histories(t)) {
		rng := rand.New(rand.NewSource(seed))
		var ks []writerKind
		for range 1 + rng.Intn(5) {
			ks = append(ks, kinds[rng.Intn(len(kinds))])
		}
		s := newSim(t, seed, 2+rng.Intn(4), ks)
		s.run(50 + rng.Intn(250))
		s.checkSafety()
	}
}

func TestHistorySyncLaws(t *testing.T) {
	for seed := range int64(histories(t) / 3) {
		s := newSim(t, 1000+seed, 3+int(seed%3), []writerKind{readModifyWrite, readModifyWrite, ownContext, blind, mixed})
		s.run(200)
		s.checkLaws(300)
	}
}

// TestHistoryBoundedSiblings: with only own-context writers, every
// replica holds at most one sibling per writer at every step (checked by
// checkReplicas), so at most as many siblings as writers, whatever the
// replicas exchange.
func TestHistoryBoundedSiblings(t *testing.T) {
	for seed := range int64(histories(t) / 3) {
		writers := 1 + int(seed%6)
		kinds := make([]writerKind, writers)
		for i := range kinds {
			kinds[i] = ownContext
		}
		s := newSim(t, 2000+seed, 3+int(seed%3), kinds)
		s.run(300)
		for _, o := range append(s.replicas, s.final()) {
			if o != nil && len(o.Siblings) > writers {
				t.Fatalf("seed %d: %d siblings with %d writers: %s", seed, len(o.Siblings), writers, fmtObj(o))
			}
		}
		if s.refused > 0 {
			t.Fatalf("seed %d: %d writes refused for too many siblings", seed, s.refused)
		}
		s.checkSafety()
	}
}

// TestBlindWritersHitTheSiblingLimit: writers that never pass a context
// pile up siblings until Update refuses, and a write with the read's
// context clears them.
func TestBlindWritersHitTheSiblingLimit(t *testing.T) {
	s := newSim(t, 7, 3, []writerKind{blind, blind})
	for s.refused == 0 {
		if s.step > 10*protocol.MaxSiblings {
			t.Fatal("blind writers never reached the sibling limit")
		}
		s.run(1)
	}
	all := s.final() // checkValid: at most MaxSiblings per coordinator
	checkValid(t, all)
	o, err := Update(all, all.Clock, "n1", protocol.Sibling{Value: []byte("resolved")})
	if err != nil || len(o.Siblings) != 1 {
		t.Fatalf("resolving write: %v, %v", err, fmtObj(o))
	}
}

// randObject draws a valid object with no regard for how it could have
// come about: sibling dots anywhere under the clock, values that may
// disagree between objects for the same dot. The laws of Sync hold for
// any valid objects, not only for those of a real history.
func randObject(rng *rand.Rand) *protocol.Object {
	if rng.Intn(10) == 0 {
		return nil
	}
	o := &protocol.Object{Clock: randClock(rng)}
	for _, d := range o.Clock {
		for c := uint64(1); c <= d.Counter; c++ {
			if rng.Intn(3) == 0 {
				o.Siblings = append(o.Siblings, protocol.Sibling{
					Dot:     protocol.Dot{Node: d.Node, Counter: c},
					Value:   []byte{byte('x' + rng.Intn(2))},
					Deleted: rng.Intn(4) == 0,
					Expires: int64(rng.Intn(3)), // 0: never; else conflicting expiries of one dot
				})
			}
		}
	}
	rng.Shuffle(len(o.Siblings), func(i, j int) { o.Siblings[i], o.Siblings[j] = o.Siblings[j], o.Siblings[i] })
	return o
}

func TestSyncLawsArbitraryObjects(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	s := &sim{t: t, rng: rng}
	for range 2000 {
		s.pool = append(s.pool, randObject(rng))
	}
	s.pool = slices.DeleteFunc(s.pool, func(o *protocol.Object) bool { return o == nil })
	s.checkLaws(20000)
}
