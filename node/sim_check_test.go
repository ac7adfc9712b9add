package node_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// The simulation's checkers (notes/reliability.md section 2):
//
//	P1 no acknowledged write lost: an acked unique put is among the final
//	   live siblings unless a delete of its key was issued later (by its
//	   client, with any outcome: a failed Dynamo write may still have been
//	   stored by some replica, and read repair spreads it); an acked
//	   set-add element is in the union of the final live siblings.
//	P2 no phantom: every value (every set element) ever read, or in the
//	   final read, was invoked by some write of that key.
//	P3 no resurrection: a unique key whose delete was acked holds no live
//	   sibling in the final read (its put was acked before the delete was
//	   issued, and it is never written again).
//	P4 convergence: the final R=all read succeeds, then every owner's
//	   replica holds the same object (clock and siblings), equal to the
//	   final read, within a bound of fake time.
//	P5 bounded siblings and clocks: live siblings of a hot key are at most
//	   its writers plus its set-add writes that were not acknowledged (see
//	   simResult.overWriters); clocks have at most one entry per node.

// simViolation is one failed check.
type simViolation struct {
	prop string
	key  string
	msg  string
}

func (v simViolation) String() string {
	if v.key == "" {
		return v.prop + ": " + v.msg
	}
	return fmt.Sprintf("%s %q: %s", v.prop, v.key, v.msg)
}

// simResult is the outcome of one seed (or, merged, of many).
type simResult struct {
	seed       int64
	seeds      int
	ops        []*simOp
	trace      *simTrace
	violations []simViolation
	notes      []string // observations that are not violations

	nOps, acked, ackedPuts, ackedAdds, ackedDels int
	failed, unknown                              int
	keys                                         int
	divergedBefore                               int // keys whose owners differed before the final reads
	lost                                         int // P1 violations
	lostPuts                                     int // of which unique-key puts
	maxSiblings                                  int // live siblings of a hot key, any read
	maxWriters                                   int // writers of a hot key
	overWriters                                  int // reads with more live siblings than the key's writers
	crashes                                      int
	newActors                                    int // power losses, wipes and disk failures
	net                                          transport.MemStats
	convergence                                  time.Duration // -1: did not converge
	maxConvergence                               time.Duration
	loadTime                                     time.Duration
}

func (res *simResult) violate(prop, key, format string, args ...any) {
	res.violations = append(res.violations, simViolation{prop: prop, key: key, msg: fmt.Sprintf(format, args...)})
	if prop == "P1" {
		res.lost++
	}
}

func (res *simResult) merge(o *simResult) {
	res.seeds++
	res.nOps += o.nOps
	res.acked += o.acked
	res.ackedPuts += o.ackedPuts
	res.ackedAdds += o.ackedAdds
	res.ackedDels += o.ackedDels
	res.failed += o.failed
	res.unknown += o.unknown
	res.keys += o.keys
	res.divergedBefore += o.divergedBefore
	res.lost += o.lost
	res.lostPuts += o.lostPuts
	res.violations = append(res.violations, o.violations...)
	res.notes = append(res.notes, o.notes...)
	res.maxSiblings = max(res.maxSiblings, o.maxSiblings)
	res.maxWriters = max(res.maxWriters, o.maxWriters)
	res.overWriters += o.overWriters
	res.crashes += o.crashes
	res.newActors += o.newActors
	res.maxConvergence = max(res.maxConvergence, o.convergence, o.maxConvergence)
	res.net.Requests += o.net.Requests
	res.net.Dropped += o.net.Dropped
	res.net.Cut += o.net.Cut
	res.net.Duplicated += o.net.Duplicated
}

func (res *simResult) summary() string {
	conv := res.convergence
	if res.seeds > 0 {
		conv = res.maxConvergence
	}
	return fmt.Sprintf("%d ops (%d acked writes: %d puts, %d set-adds, %d deletes; %d failed, %d unknown) on %d keys; "+
		"%d crashes (%d power losses, wipes or disk failures); %d msgs, %d dropped, %d cut, %d duplicated; lost %d (%d unique puts); violations %d; "+
		"max siblings %d (max writers %d, %d reads above writers); %d keys diverged before the final reads, converged %v after",
		res.nOps, res.acked, res.ackedPuts, res.ackedAdds, res.ackedDels, res.failed, res.unknown, res.keys,
		res.crashes, res.newActors, res.net.Requests, res.net.Dropped, res.net.Cut, res.net.Duplicated, res.lost, res.lostPuts, len(res.violations),
		res.maxSiblings, res.maxWriters, res.overWriters, res.divergedBefore, conv)
}

// check runs the checkers over a seed's history, final reads and
// converged replicas.
func check(res *simResult, cfg simConfig, ops []*simOp, invoked map[string]map[string]bool,
	final, replicas map[string]*protocol.Object) {
	res.keys = len(final)
	puts := make(map[string]*simOp)
	dels := make(map[string][]*simOp)
	adds := make(map[string][]*simOp)
	for _, op := range ops {
		res.nOps++
		switch op.Outcome {
		case simFail:
			res.failed++
		case simUnknown:
			res.unknown++
		}
		switch op.Kind {
		case "put":
			puts[op.Key] = op
		case "del":
			dels[op.Key] = append(dels[op.Key], op)
		case "add":
			adds[op.Key] = append(adds[op.Key], op)
		}
		if op.Outcome == simOK {
			switch op.Kind {
			case "put":
				res.acked++
				res.ackedPuts++
			case "add":
				res.acked++
				res.ackedAdds++
			case "del":
				res.acked++
				res.ackedDels++
			}
		}
	}

	// P1, unique puts.
	for key, op := range puts {
		if op.Outcome != simOK || len(dels[key]) > 0 {
			continue
		}
		if !slices.Contains(simLive(final[key]), op.Value) {
			res.lostPuts++
			res.violate("P1", key, "acknowledged put of %s (clock %s) is not in the final read %s",
				op.Value, simClock(op.Clock), simObject(final[key]))
		}
	}
	// P1, set-adds.
	for key, as := range adds {
		union := make(map[string]bool)
		for _, v := range simLive(final[key]) {
			for _, e := range simElements([]byte(v)) {
				union[e] = true
			}
		}
		for _, op := range as {
			if op.Outcome == simOK && !union[op.Value] {
				res.violate("P1", key, "acknowledged set-add of %s (clock %s) is in no final sibling", op.Value, simClock(op.Clock))
			}
		}
	}

	// P2: every value read was invoked for its key.
	phantom := func(key, v, where string) {
		if strings.HasPrefix(key, "hot") {
			for _, e := range simElements([]byte(v)) {
				if !invoked[key][e] {
					res.violate("P2", key, "%s holds element %q that no write of the key added", where, e)
				}
			}
			return
		}
		if !invoked[key][v] {
			res.violate("P2", key, "%s holds value %q that no write of the key wrote", where, v)
		}
	}
	for _, op := range ops {
		if op.Kind == "get" && op.Outcome == simOK {
			for _, v := range op.Read {
				phantom(op.Key, v, fmt.Sprintf("a read at %.3fs", op.Complete.Seconds()))
			}
		}
	}
	for key, obj := range final {
		for _, v := range simLive(obj) {
			phantom(key, v, "the final read")
		}
	}

	// P3: an acknowledged delete of an acknowledged put stays deleted.
	for key, ds := range dels {
		for _, d := range ds {
			if d.Outcome != simOK {
				continue
			}
			p := puts[key]
			if p == nil || p.Outcome != simOK || p.Complete > d.Invoke {
				res.violate("P3", key, "checker: a delete of a key whose put was not acknowledged first") // cannot happen by the workload
				continue
			}
			if live := simLive(final[key]); len(live) > 0 {
				hint := ""
				for _, sib := range final[key].Live() {
					if string(sib.Value) == p.Value && !version.Covers(p.Clock, sib.Dot) {
						hint = fmt.Sprintf(" (the put's value lives on under dot %s:%d, which its context %s does not cover: the one put was coordinated twice, see TestSimDuplicatedForwardIsTwoWrites)",
							sib.Dot.Node, sib.Dot.Counter, simClock(p.Clock))
					}
				}
				res.violate("P3", key, "acknowledged delete (%s, at %.3fs, clock %s) but the final read has live %q: %s%s",
					d.Value, d.Complete.Seconds(), simClock(d.Clock), live, simObject(final[key]), hint)
			}
		}
	}

	// P4: the converged replicas hold what the final read returned.
	for key, obj := range final {
		if !version.Equal(obj, replicas[key]) {
			res.violate("P4", key, "replicas converged to %s, the final read returned %s", simObject(replicas[key]), simObject(obj))
		}
	}
	for key, obj := range replicas {
		// A node keeps its actor across a process crash (the page cache
		// holds every dot it sent) and takes a new one after a power
		// loss, a wipe or a disk failure (node/identity.go), so a clock
		// has at most one entry per node plus one per such event.
		if obj != nil && len(obj.Clock) > simNodes+res.newActors {
			res.violate("P5", key, "clock has %d entries for %d nodes and %d power losses, wipes and disk failures (%d crashes in all)", len(obj.Clock), simNodes, res.newActors, res.crashes)
		}
	}

	// P5: sibling bound per hot key. A client has one write in flight at a
	// time, and each of its acknowledged writes is superseded by its next
	// one (whose read, R=2 of 3, overlaps the W=2 that acknowledged it).
	// Writes that failed or timed out may still be stored somewhere
	// without the client knowing, so each can leave one more sibling.
	byElem := make(map[string]*simOp)
	for _, as := range adds {
		for _, op := range as {
			byElem[op.Value] = op
		}
	}
	for i := range cfg.hotKeys {
		key := fmt.Sprintf("hot%d", i)
		writers := make(map[int]bool)
		notOK := 0
		for _, op := range adds[key] {
			writers[op.Client] = true
			if op.Outcome != simOK {
				notOK++
			}
		}
		res.maxWriters = max(res.maxWriters, len(writers))
		bound := len(writers) + notOK
		observe := func(values []string, where string) {
			n := len(values)
			res.maxSiblings = max(res.maxSiblings, n)
			if n > len(writers) {
				res.overWriters++
				res.notes = append(res.notes, fmt.Sprintf("P5 %q: %s has %d live siblings, more than its %d writers; they were written by %s",
					key, where, n, len(writers), simWriters(values, byElem)))
			}
			if n > bound {
				res.violate("P5", key, "%s has %d live siblings; %d writers and %d unacknowledged writes allow %d", where, n, len(writers), notOK, bound)
			}
		}
		for _, op := range ops {
			if op.Key == key && op.Kind == "get" && op.Outcome == simOK {
				observe(op.Read, fmt.Sprintf("a read at %.3fs", op.Complete.Seconds()))
			}
		}
		observe(simLive(final[key]), "the final read")
	}
}

// simWriters names the set-add that wrote each sibling value: the one
// whose element was invoked last among the value's elements (a set-add
// writes what it read plus its own, newer element).
func simWriters(values []string, byElem map[string]*simOp) string {
	var parts []string
	for _, v := range values {
		var w *simOp
		for _, e := range simElements([]byte(v)) {
			if op := byElem[e]; op != nil && (w == nil || op.Invoke > w.Invoke) {
				w = op
			}
		}
		if w == nil {
			parts = append(parts, "?")
			continue
		}
		parts = append(parts, fmt.Sprintf("c%d's %s (%s at %.3fs)", w.Client, w.Value, w.Outcome, w.Invoke.Seconds()))
	}
	return strings.Join(parts, ", ")
}

// simSameObject reports whether two replicas hold the same object: the
// same clock and the same siblings (dots, values, tombstones).
func simSameObject(a, b *protocol.Object) bool { return version.Equal(a, b) }

func simObject(o *protocol.Object) string {
	if o == nil {
		return "<nil>"
	}
	var sb strings.Builder
	sb.WriteString(simClock(o.Clock))
	sb.WriteString("[")
	for i, s := range o.Siblings {
		if i > 0 {
			sb.WriteString(" ")
		}
		v := string(s.Value)
		if s.Deleted {
			v = "†"
		}
		if len(v) > 60 {
			v = v[:60] + "…"
		}
		fmt.Fprintf(&sb, "%s:%d=%s", s.Dot.Node, s.Dot.Counter, v)
	}
	sb.WriteString("]")
	return sb.String()
}

// report describes the violations: the seed, the replay command, the
// violations, the nemesis schedule and the history of the keys involved.
// With persist, the whole trace and history also go to a file that
// outlives the test, whose path it names.
func (res *simResult) report(cfg simConfig, persist bool) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "seed %d: %d violations\nreplay: %s\n", res.seed, len(res.violations), simReplay(cfg))
	for _, v := range res.violations[:min(len(res.violations), 20)] {
		fmt.Fprintf(&sb, "  %s\n", v)
	}
	var trace []string
	if res.trace != nil {
		trace = res.trace.snapshot()
	}
	sb.WriteString("nemesis schedule and node warnings:\n")
	for _, l := range trace {
		sb.WriteString("  " + l + "\n")
	}
	seen := make(map[string]bool)
	for _, v := range res.violations {
		if v.key == "" || seen[v.key] || len(seen) == 3 {
			continue
		}
		seen[v.key] = true
		fmt.Fprintf(&sb, "history of %q:\n", v.key)
		n := 0
		for _, op := range res.ops {
			if op.Key == v.key {
				if n++; n > 60 {
					sb.WriteString("  ...\n")
					break
				}
				sb.WriteString("  " + op.String() + "\n")
			}
		}
	}
	if !persist {
		return sb.String()
	}
	if dir, err := os.MkdirTemp("", fmt.Sprintf("kvmesh-sim-%d-", res.seed)); err == nil {
		path := filepath.Join(dir, "trace.txt")
		var full strings.Builder
		full.WriteString(sb.String())
		full.WriteString("\nfull history:\n")
		for _, op := range res.ops {
			full.WriteString(op.String() + "\n")
		}
		if os.WriteFile(path, []byte(full.String()), 0o644) == nil {
			fmt.Fprintf(&sb, "full trace and history: %s\n", path)
		}
	}
	return sb.String()
}
