package version

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/kvmesh/kvmesh/protocol"
)

// Update applies a client write coordinated by node to local, the
// coordinator's object of the key (nil if it has none), and returns the
// new object. ctx is the causal context the client sent: the clock of what
// it read (or got back from its previous write), empty for a blind write.
//
// The write gets the dot (node, c) with c one above the highest counter of
// node that local or ctx has seen: when a client's context shows that the
// node lost state (it claims more than the local object remembers), the
// node does not reissue a dot the client has seen. Dots that no context
// mentions cannot be protected that way, so a node must not lose an object
// it acknowledged. The new object keeps the local siblings that ctx does
// not cover, because the client did not see them, plus s with its Dot set
// to the new dot; its clock is local's joined with ctx, with node's entry
// set to c.
//
// The new object's clock covers every sibling it holds, including
// concurrent ones the client never saw. Handing that clock back as the
// put's context lets the client's next write supersede them too: it keeps
// the client's own siblings to one, but it is a lost update unless the
// reply also shows the client those siblings.
//
// A clock that would exceed protocol.MaxClockEntries entries is pruned
// (see Prune); a write is never refused for the size of its clock.
//
// Update returns an error wrapping protocol.ErrTooManySiblings if the new
// object would hold more than protocol.MaxSiblings siblings (tombstones
// included), and one wrapping protocol.ErrInvalidContext if ctx is not a
// valid clock, if c would exceed protocol.MaxCounter, or if the clock
// still exceeds protocol.MaxClockEntries after pruning (more distinct
// live writers than that). An invalid node id gives the error of
// protocol.ValidateActorID. On error nothing is returned and nothing
// changed. local must be valid (protocol.Object.Validate); it is not
// modified.
func Update(local *protocol.Object, ctx protocol.Clock, node string, s protocol.Sibling) (*protocol.Object, error) {
	if err := protocol.ValidateActorID(node); err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	if err := ctx.Validate(); err != nil {
		return nil, err
	}
	var lc protocol.Clock
	var ls []protocol.Sibling
	if local != nil {
		lc, ls = local.Clock, local.Siblings
	}

	last := max(Get(lc, node), Get(ctx, node))
	kept := 0
	for i := range ls {
		d := ls[i].Dot
		if d.Node == node {
			// A valid object's clock covers its dots; this guards the
			// never-reuse-a-dot rule against one that does not.
			last = max(last, d.Counter)
		}
		if !Covers(ctx, d) {
			kept++
		}
	}
	if last >= protocol.MaxCounter {
		return nil, protocol.Errorf(protocol.ErrInvalidContext,
			"counter of %s would exceed %d", node, uint64(protocol.MaxCounter))
	}
	dot := protocol.Dot{Node: node, Counter: last + 1}

	clock := join(lc, ctx, 1)
	i, found := slices.BinarySearchFunc(clock, node, func(d protocol.Dot, n string) int {
		return strings.Compare(d.Node, n)
	})
	if found {
		clock[i].Counter = dot.Counter
	} else {
		clock = slices.Insert(clock, i, dot)
	}
	if kept+1 > protocol.MaxSiblings {
		return nil, protocol.Errorf(protocol.ErrTooManySiblings,
			"write would leave %d siblings, limit %d", kept+1, protocol.MaxSiblings)
	}

	sibs := make([]protocol.Sibling, 0, kept+1)
	for i := range ls {
		if !Covers(ctx, ls[i].Dot) {
			sibs = append(sibs, ls[i])
		}
	}
	sortSiblings(sibs)
	s.Dot = dot
	i, _ = slices.BinarySearchFunc(sibs, s, cmpSibling)
	sibs = slices.Insert(sibs, i, s)
	clock = Prune(clock, sibs)
	if len(clock) > protocol.MaxClockEntries {
		return nil, protocol.Errorf(protocol.ErrInvalidContext,
			"clock has %d entries even pruned, limit %d", len(clock), protocol.MaxClockEntries)
	}
	return &protocol.Object{Clock: clock, Siblings: sibs}, nil
}

// Sync merges two replicas' objects of one key into the object that has
// seen everything either has: the clock is Join of the clocks, and a
// sibling survives unless the other object has seen its write (covers its
// dot) without keeping it, which means a later write superseded it. A
// sibling both hold is kept once. Siblings come out sorted by dot.
//
// The joined clock is pruned (see Prune), so that two valid objects always
// merge into one a replica stores.
//
// Sync is commutative and idempotent, and associative while no clock
// needs pruning (Equal-wise), so
// replicas converge whatever order they exchange state in. If the two
// objects disagree on the value of one dot, which a correct cluster never
// does, Sync keeps the same one either way (the later Time, then a
// tombstone, then the greater Value, then the later Expires), so
// convergence survives that too.
//
// Sync never drops a sibling to respect protocol.MaxSiblings: Update
// enforces that limit where writes are coordinated, so each node's dots
// stay within it, but objects from several coordinators can together hold
// more (up to MaxSiblings per coordinating node).
//
// Either input may be nil (absent); Sync returns nil only if both are. It
// modifies neither.
func Sync(a, b *protocol.Object) *protocol.Object {
	if a == nil && b == nil {
		return nil
	}
	ac, as := parts(a)
	bc, bs := parts(b)
	as, bs = sortedSiblings(as), sortedSiblings(bs)

	var out []protocol.Sibling
	if n := len(as) + len(bs); n > 0 {
		out = make([]protocol.Sibling, 0, n)
	}
	i, j := 0, 0
	for i < len(as) || j < len(bs) {
		var x protocol.Sibling
		keep := true
		c := 0 // as[i] vs bs[j] by dot; an exhausted side compares greater
		switch {
		case i == len(as):
			c = 1
		case j == len(bs):
			c = -1
		default:
			c = cmpDot(as[i].Dot, bs[j].Dot)
		}
		switch {
		case c < 0:
			x, keep = as[i], !Covers(bc, as[i].Dot)
			i++
		case c > 0:
			x, keep = bs[j], !Covers(ac, bs[j].Dot)
			j++
		default:
			x = pick(as[i], bs[j])
			i++
			j++
		}
		if !keep {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Dot == x.Dot {
			out[n-1] = pick(out[n-1], x) // a duplicate dot inside one input
			continue
		}
		out = append(out, x)
	}
	return &protocol.Object{Clock: Prune(Join(ac, bc), out), Siblings: out}
}

// Equal reports whether a and b hold the same clock and the same siblings
// (dot, value, tombstone flag, time and expiry), in any order. A nil
// object equals an empty one: both mean the replica knows nothing of the
// key.
func Equal(a, b *protocol.Object) bool {
	ac, as := parts(a)
	bc, bs := parts(b)
	if !slices.Equal(ac, bc) || len(as) != len(bs) {
		return false
	}
	as, bs = sortedSiblings(as), sortedSiblings(bs)
	for i := range as {
		if cmpSibling(as[i], bs[i]) != 0 {
			return false
		}
	}
	return true
}

// cmpDot orders dots by node, then counter.
func cmpDot(x, y protocol.Dot) int {
	if c := strings.Compare(x.Node, y.Node); c != 0 {
		return c
	}
	return cmp.Compare(x.Counter, y.Counter)
}

// cmpSibling is a total order on siblings: by dot, then by content, so
// that sorting is canonical even for the duplicate dots of a bad input.
func cmpSibling(x, y protocol.Sibling) int {
	if c := cmpDot(x.Dot, y.Dot); c != 0 {
		return c
	}
	return cmpContent(x, y)
}

func cmpContent(x, y protocol.Sibling) int {
	if c := cmp.Compare(x.Time, y.Time); c != 0 {
		return c
	}
	if x.Deleted != y.Deleted {
		if x.Deleted {
			return 1
		}
		return -1
	}
	if c := bytes.Compare(x.Value, y.Value); c != 0 {
		return c
	}
	return cmp.Compare(x.Expires, y.Expires)
}

// pick chooses between two siblings with the same dot, the same one
// whatever the argument order.
func pick(x, y protocol.Sibling) protocol.Sibling {
	if cmpContent(y, x) > 0 {
		return y
	}
	return x
}

// sortedSiblings returns s if it is sorted, else a sorted copy: inputs are
// never modified, and those this package made are already sorted.
func sortedSiblings(s []protocol.Sibling) []protocol.Sibling {
	if slices.IsSortedFunc(s, cmpSibling) {
		return s
	}
	s = slices.Clone(s)
	slices.SortFunc(s, cmpSibling)
	return s
}

// sortSiblings sorts s, a slice the caller owns, in place.
func sortSiblings(s []protocol.Sibling) {
	if !slices.IsSortedFunc(s, cmpSibling) {
		slices.SortFunc(s, cmpSibling)
	}
}

// parts returns o's clock and siblings; none for nil (absent).
func parts(o *protocol.Object) (protocol.Clock, []protocol.Sibling) {
	if o == nil {
		return nil, nil
	}
	return o.Clock, o.Siblings
}
