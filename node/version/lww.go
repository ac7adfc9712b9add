package version

import (
	"fmt"
	"math"

	"github.com/kvmesh/kvmesh/protocol"
)

// Conflicts is how a store resolves concurrent writes of one key. Every
// node of a store must use the same: a replica merges what it receives
// by its own mode, so replicas of different modes never converge.
type Conflicts uint8

const (
	// KeepSiblings keeps concurrent writes as siblings until a write that
	// saw them supersedes them (dotted version vector sets, Sync and
	// Update): no write is lost. The default.
	KeepSiblings Conflicts = iota
	// LastWriterWins keeps one sibling per key: of all the writes a
	// replica has seen, the one with the largest (Time, Dot) (SyncLWW,
	// UpdateLWW). Concurrent writes are lost but for one, as in
	// Cassandra; the clock still merges, so causal contexts work as in
	// KeepSiblings.
	LastWriterWins
)

// ParseConflicts reads a mode by its name: "siblings" (or "", the
// default) or "lww".
func ParseConflicts(s string) (Conflicts, error) {
	switch s {
	case "", "siblings":
		return KeepSiblings, nil
	case "lww":
		return LastWriterWins, nil
	}
	return 0, fmt.Errorf("conflicts %q: want siblings or lww", protocol.Clip(s, 32))
}

// String returns the mode's name, as ParseConflicts reads it.
func (c Conflicts) String() string {
	if c == LastWriterWins {
		return "lww"
	}
	return "siblings"
}

// Sync merges two replicas' objects of a key by the mode: Sync or
// SyncLWW.
func (c Conflicts) Sync(a, b *protocol.Object) *protocol.Object {
	if c == LastWriterWins {
		return SyncLWW(a, b)
	}
	return Sync(a, b)
}

// Update applies a client write by the mode: Update or UpdateLWW.
func (c Conflicts) Update(local *protocol.Object, ctx protocol.Clock, node string, s protocol.Sibling) (*protocol.Object, error) {
	if c == LastWriterWins {
		return UpdateLWW(local, ctx, node, s)
	}
	return Update(local, ctx, node, s)
}

// SyncLWW merges two replicas' objects of one key in last-writer-wins
// mode: the clock is Join of the clocks (pruned, as in Sync), and of the
// siblings of both only the winner (Winner) stays, whatever either
// clock covers. Keeping the largest of everything seen makes the merge
// a max: commutative, associative and idempotent, so replicas converge
// to the same one value in any order of exchange. Causality enters only
// through the timestamps: the coordinator of a write stamps it later
// than every write it has seen (HLCNext), so a write that saw another
// wins over it. Either input may be nil; SyncLWW returns nil only if
// both are, and modifies neither.
func SyncLWW(a, b *protocol.Object) *protocol.Object {
	if a == nil && b == nil {
		return nil
	}
	ac, as := parts(a)
	bc, bs := parts(b)
	var out []protocol.Sibling
	wa, oka := Winner(as)
	wb, okb := Winner(bs)
	switch {
	case oka && okb:
		if cmpLWW(wb, wa) > 0 {
			wa = wb
		}
		out = []protocol.Sibling{wa}
	case oka:
		out = []protocol.Sibling{wa}
	case okb:
		out = []protocol.Sibling{wb}
	}
	return &protocol.Object{Clock: Prune(Join(ac, bc), out), Siblings: out}
}

// UpdateLWW applies a client write in last-writer-wins mode: as Update
// (the same dot, the same clock, the same errors for a bad context or
// node), keeping of the local object's winner and the new sibling only
// the winner. s should carry a Time later than every sibling the
// coordinator has seen (HLCNext), so that it wins; if it does not, the
// write is lost at once, as a concurrent one would be. local may hold
// any number of siblings (an object written in KeepSiblings mode): only
// its winner counts. local is not modified.
func UpdateLWW(local *protocol.Object, ctx protocol.Clock, node string, s protocol.Sibling) (*protocol.Object, error) {
	if local != nil && len(local.Siblings) > 1 {
		w, _ := Winner(local.Siblings)
		local = &protocol.Object{Clock: local.Clock, Siblings: []protocol.Sibling{w}}
	}
	obj, err := Update(local, ctx, node, s)
	if err != nil || len(obj.Siblings) <= 1 {
		return obj, err
	}
	w, _ := Winner(obj.Siblings)
	obj.Siblings = []protocol.Sibling{w}
	obj.Clock = Prune(obj.Clock, obj.Siblings)
	return obj, nil
}

// Winner returns the sibling last-writer-wins keeps of sibs: the one
// with the largest Time, ties broken by the larger dot (node, then
// counter) and then, for the duplicate dots of a bad input, by content
// as Sync's pick does, so that every replica picks the same. A tombstone
// wins like a value: a later delete deletes. ok is false when sibs is
// empty.
func Winner(sibs []protocol.Sibling) (w protocol.Sibling, ok bool) {
	for i, s := range sibs {
		if i == 0 || cmpLWW(s, w) > 0 {
			w = s
		}
	}
	return w, len(sibs) > 0
}

// cmpLWW orders siblings for last-writer-wins: by Time, then dot, then
// content.
func cmpLWW(x, y protocol.Sibling) int {
	switch {
	case x.Time < y.Time:
		return -1
	case x.Time > y.Time:
		return 1
	}
	if c := cmpDot(x.Dot, y.Dot); c != 0 {
		return c
	}
	return cmpContent(x, y)
}

// MaxTime returns the largest Time of o's siblings, math.MinInt64 if it
// has none (or o is nil).
func MaxTime(o *protocol.Object) int64 {
	t := int64(math.MinInt64)
	if o != nil {
		for i := range o.Siblings {
			t = max(t, o.Siblings[i].Time)
		}
	}
	return t
}

// HLCNext is one tick of a hybrid logical clock in unix nanoseconds: the
// timestamp of an event at physical time now, on a clock whose last
// timestamp was last, that must come after seen (the latest timestamp
// the event depends on): max(now, last+1, seen+1). It never goes back
// and never repeats, and it follows the physical clock whenever that is
// ahead of everything seen; when a peer's clock ran ahead, it counts on
// from there by nanoseconds until the physical clock catches up. It
// saturates at math.MaxInt64.
func HLCNext(last, now, seen int64) int64 {
	inc := func(t int64) int64 {
		if t == math.MaxInt64 {
			return t
		}
		return t + 1
	}
	return max(now, inc(last), inc(seen))
}
