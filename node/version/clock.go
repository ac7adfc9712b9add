package version

import (
	"strconv"
	"strings"

	"github.com/kvmesh/kvmesh/protocol"
)

// Get returns the counter of node in c, 0 if c has no entry for it. c must
// be sorted by node, as protocol.Clock.Validate checks.
func Get(c protocol.Clock, node string) uint64 {
	// Binary search: clocks have up to protocol.MaxClockEntries entries.
	lo, hi := 0, len(c)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c[m].Node < node {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(c) && c[lo].Node == node {
		return c[lo].Counter
	}
	return 0
}

// Covers reports whether clock c has seen the write with dot d, that is
// c[d.Node] >= d.Counter.
func Covers(c protocol.Clock, d protocol.Dot) bool {
	return Get(c, d.Node) >= d.Counter
}

// Join returns the pointwise maximum of a and b, sorted by node: the clock
// of everything either has seen. Both must be sorted by node. The result
// is a new slice (nil if both are empty).
func Join(a, b protocol.Clock) protocol.Clock {
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	return join(a, b, 0)
}

// join is Join with room for extra more entries, so Update can add the
// coordinator's entry without growing the slice.
func join(a, b protocol.Clock, extra int) protocol.Clock {
	out := make(protocol.Clock, 0, max(len(a), len(b))+extra)
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch strings.Compare(a[i].Node, b[j].Node) {
		case -1:
			out = append(out, a[i])
			i++
		case 1:
			out = append(out, b[j])
			j++
		default:
			d := a[i]
			d.Counter = max(d.Counter, b[j].Counter)
			out = append(out, d)
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// Descends reports whether a has seen everything b has: a >= b pointwise.
// Every clock descends the empty clock, and a clock descends itself.
func Descends(a, b protocol.Clock) bool {
	ord := Compare(a, b)
	return ord == Same || ord == After
}

// Order is how two clocks relate causally.
type Order int

// The four ways two clocks relate. The equal case is called Same because
// Equal is the object comparison of this package.
const (
	Same       Order = iota // a == b
	Before                  // a < b: b has seen everything a has, and more
	After                   // a > b: a has seen everything b has, and more
	Concurrent              // each has seen a write the other has not
)

func (o Order) String() string {
	switch o {
	case Same:
		return "same"
	case Before:
		return "before"
	case After:
		return "after"
	case Concurrent:
		return "concurrent"
	}
	return "Order(" + strconv.Itoa(int(o)) + ")"
}

// Compare returns how a relates to b. Both must be sorted by node. An
// entry with counter 0 counts as absent.
func Compare(a, b protocol.Clock) Order {
	aMore, bMore := false, false // a has an entry above b's, and vice versa
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch strings.Compare(a[i].Node, b[j].Node) {
		case -1:
			aMore = aMore || a[i].Counter > 0
			i++
		case 1:
			bMore = bMore || b[j].Counter > 0
			j++
		default:
			aMore = aMore || a[i].Counter > b[j].Counter
			bMore = bMore || b[j].Counter > a[i].Counter
			i++
			j++
		}
	}
	for ; i < len(a); i++ {
		aMore = aMore || a[i].Counter > 0
	}
	for ; j < len(b); j++ {
		bMore = bMore || b[j].Counter > 0
	}
	switch {
	case aMore && bMore:
		return Concurrent
	case aMore:
		return After
	case bMore:
		return Before
	}
	return Same
}
