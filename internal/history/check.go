package history

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/kvmesh/kvmesh/protocol"
)

// Config tells Check about the workload that made a history.
type Config struct {
	// Writers is how many clients write each hot key; every other key
	// has one writer (the worker that owns it).
	Writers map[string]int
	// Strict claims read-your-writes (P6): strict quorums with R+W>N and
	// no sloppy quorum, which is kvmesh today (a change of owners keeps
	// it: reads go to the old owners and writes are joint until every
	// member has copied what it gains).
	Strict bool
	// Losses are the times (as Op.Start) at which a replica lost writes it
	// had acknowledged: its data dir was wiped. A write invoked before
	// such a time may be left on fewer replicas than a quorum, so under
	// Strict a read or a blind delete that began after it is not expected
	// to see the write. (Without Strict nothing is claimed of them.)
	Losses []int64
}

// lossBetween reports whether a replica lost acknowledged writes after
// from and before to.
func (c Config) lossBetween(from, to int64) bool {
	for _, t := range c.Losses {
		if t > from && t < to {
			return true
		}
	}
	return false
}

// Finding is one violation a checker found.
type Finding struct {
	// Prop names the property: "P1 lost", "P1 unverified", "P2 phantom",
	// "P2 corrupt", "P3 resurrected", "P5 siblings", "P6 stale read",
	// "P7 superseded".
	Prop   string `json:"prop"`
	Key    string `json:"key"`
	Op     int    `json:"op,omitempty"` // the operation concerned; 0 for a final read
	Detail string `json:"detail"`
}

func (f Finding) String() string {
	if f.Key == "" {
		return f.Prop + ": " + f.Detail
	}
	if f.Op != 0 {
		return fmt.Sprintf("%s: key %s op %d: %s", f.Prop, f.Key, f.Op, f.Detail)
	}
	return fmt.Sprintf("%s: key %s: %s", f.Prop, f.Key, f.Detail)
}

// Report is what Check found in a history.
type Report struct {
	Ops, OK, Failed, Unknown int
	// Writes counts puts, adds and deletes; AckedWrites those acknowledged.
	Writes, AckedWrites            int
	AckedPuts, AckedAdds, AckedDel int
	// StableElems counts acknowledged set elements present at the end.
	StableElems int
	// MaxSiblings is the most siblings any read returned, and of which key.
	MaxSiblings    int
	MaxSiblingsKey string

	Lost        []Finding // P1: an acknowledged write is gone
	Unverified  []Finding // P1: no final read of the key succeeded
	Phantoms    []Finding // P2: a value read that nobody wrote, or a corrupt one
	Resurrected []Finding // P3: a deleted key came back
	Siblings    []Finding // P5: more siblings than writers could leave
	StaleReads  []Finding // P6: a read missed a write acknowledged before it began
	Superseded  []Finding // P7: a value an acknowledged write superseded came back
}

// Failures returns every finding, P1 first.
func (r *Report) Failures() []Finding {
	var all []Finding
	for _, fs := range [][]Finding{r.Lost, r.Unverified, r.Phantoms, r.Resurrected, r.Siblings, r.StaleReads, r.Superseded} {
		all = append(all, fs...)
	}
	return all
}

// Availability is the share of operations acknowledged, in percent.
func (r *Report) Availability() float64 {
	if r.Ops == 0 {
		return 0
	}
	return 100 * float64(r.OK) / float64(r.Ops)
}

// Summary is a one-line account of the report.
func (r *Report) Summary() string {
	return fmt.Sprintf("ops %d (ok %d, failed %d, unknown %d; availability %.1f%%), acked writes %d (puts %d, adds %d, deletes %d), stable elements %d, max siblings %d (%s); lost %d, unverified %d, phantoms %d, resurrected %d, sibling excess %d, stale reads %d, superseded %d",
		r.Ops, r.OK, r.Failed, r.Unknown, r.Availability(), r.AckedWrites, r.AckedPuts, r.AckedAdds, r.AckedDel,
		r.StableElems, r.MaxSiblings, r.MaxSiblingsKey,
		len(r.Lost), len(r.Unverified), len(r.Phantoms), len(r.Resurrected), len(r.Siblings), len(r.StaleReads), len(r.Superseded))
}

// keyOps are the operations of one key, in the order they were invoked.
type keyOps struct {
	key    string
	puts   []*Op // KindPut and KindAdd
	dels   []*Op
	reads  []*Op
	values map[string]bool // every value an invoked (not Fail) put or add wrote
}

// Check runs the checkers P1, P2, P3, P5, P7 and (when cfg.Strict) P6 over a
// history and the final reads taken after the faults healed. finals
// must hold every key the history wrote; a key without a successful final
// read leaves its acknowledged writes unverified, which is a failure.
func Check(ops []Op, finals map[string]Final, cfg Config) *Report {
	r := &Report{}
	keys := map[string]*keyOps{}
	ko := func(k string) *keyOps {
		if keys[k] == nil {
			keys[k] = &keyOps{key: k, values: map[string]bool{}}
		}
		return keys[k]
	}
	sorted := make([]*Op, len(ops))
	for i := range ops {
		sorted[i] = &ops[i]
	}
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Start < sorted[j].Start })
	for _, op := range sorted {
		r.Ops++
		switch op.Outcome {
		case OK:
			r.OK++
		case Fail:
			r.Failed++
		default:
			r.Unknown++
		}
		k := ko(op.Key)
		switch op.Kind {
		case KindPut, KindAdd:
			k.puts = append(k.puts, op)
			if op.Outcome != Fail {
				k.values[op.Value] = true
			}
		case KindDel:
			k.dels = append(k.dels, op)
		case KindRead:
			k.reads = append(k.reads, op)
		}
		if op.Kind != KindRead {
			r.Writes++
			if op.Outcome == OK {
				r.AckedWrites++
				switch op.Kind {
				case KindPut:
					r.AckedPuts++
				case KindAdd:
					r.AckedAdds++
				case KindDel:
					r.AckedDel++
				}
			}
		}
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		k := keys[name]
		f, haveFinal := finals[name]
		r.checkPhantoms(k, f, haveFinal)
		r.checkLost(k, f, haveFinal)
		r.checkResurrected(k, f, haveFinal, cfg)
		r.checkSiblings(k, f, haveFinal, cfg)
		r.checkSuperseded(k, f, haveFinal, cfg)
		if cfg.Strict {
			r.checkStale(k, cfg)
		}
	}
	return r
}

// checkPhantoms is P2: every value read, by a client or by the final
// read, is intact and was written by a put or add that was invoked and
// not refused.
func (r *Report) checkPhantoms(k *keyOps, f Final, haveFinal bool) {
	check := func(opID int, values []string, who string) {
		for _, v := range values {
			if _, ok := Unseal(v); !ok {
				r.Phantoms = append(r.Phantoms, Finding{"P2 corrupt", k.key, opID, fmt.Sprintf("%s returned %q: checksum does not hold", who, clip(v))})
				continue
			}
			if !k.values[v] {
				r.Phantoms = append(r.Phantoms, Finding{"P2 phantom", k.key, opID, fmt.Sprintf("%s returned %q, which no invoked write wrote", who, clip(v))})
			}
		}
	}
	for _, rd := range k.reads {
		if rd.Outcome == OK && rd.Found {
			check(rd.ID, rd.Values, "read")
		}
	}
	if haveFinal && f.Err == "" && f.Found {
		check(0, f.Values, "final read")
	}
}

// checkLost is P1: every acknowledged put is in the final read unless a
// later write may have superseded it (see mayBeSuperseded); every
// acknowledged set element is in the union of the final siblings.
func (r *Report) checkLost(k *keyOps, f Final, haveFinal bool) {
	var union map[string]bool
	for _, p := range k.puts {
		if p.Outcome != OK {
			continue
		}
		excused := p.Kind == KindPut && mayBeSuperseded(k, p)
		if !haveFinal || f.Err != "" {
			if p.Kind == KindAdd || !excused {
				why := "no final read"
				if haveFinal {
					why = "final read failed: " + f.Err
				}
				r.Unverified = append(r.Unverified, Finding{"P1 unverified", k.key, p.ID, why})
			}
			continue
		}
		switch p.Kind {
		case KindPut:
			if excused {
				continue
			}
			if !f.Found || !slices.Contains(f.Values, p.Value) {
				r.Lost = append(r.Lost, Finding{"P1 lost", k.key, p.ID,
					fmt.Sprintf("acknowledged put of %q (acked at %s) is not in the final read %s", clip(p.Value), ns(p.End), finalString(f))})
			}
		case KindAdd:
			if p.Elem == "" {
				continue // the empty set a hot key starts with
			}
			if union == nil {
				union = Union(f.Values)
			}
			if union[p.Elem] {
				r.StableElems++
			} else {
				r.Lost = append(r.Lost, Finding{"P1 lost", k.key, p.ID,
					fmt.Sprintf("acknowledged element %q (acked at %s) is not in the union of the %d final siblings", p.Elem, ns(p.End), f.Siblings)})
			}
		}
	}
}

// mayBeSuperseded reports whether put p may have been superseded, so
// that its value may be gone at the end: a delete of its key that was
// not refused and ended after p began (a delete's context, or the read a
// blind delete does first, can cover p only then; one of unknown outcome
// without a context may do its read at any time), or a later write not
// refused whose context covers p's value (Over).
func mayBeSuperseded(k *keyOps, p *Op) bool {
	for _, d := range k.dels {
		if d.Outcome != Fail && (d.End > p.Start || d.Outcome == Unknown && d.Context == "") {
			return true
		}
	}
	for _, w := range k.puts {
		if w != p && w.Outcome != Fail && slices.Contains(w.Over, p.Value) {
			return true
		}
	}
	return false
}

// checkSuperseded is P7: a value that a put known to have taken effect
// superseded never comes back. A put took effect if it was acknowledged
// or some read returned its value; it supersedes the values its context
// certainly covers (Over). The final read must hold none of them; under
// strict quorums no read that began after the put was acknowledged may
// either. (What deletes supersede is P3's and P6's.)
func (r *Report) checkSuperseded(k *keyOps, f Final, haveFinal bool, cfg Config) {
	seen := map[string]bool{}
	for _, rd := range k.reads {
		if rd.Outcome == OK {
			for _, v := range rd.Values {
				seen[v] = true
			}
		}
	}
	over := map[string]*Op{} // superseded value -> a put that superseded it, acknowledged ones first
	for _, w := range k.puts {
		if w.Kind != KindPut || w.Outcome != OK && !seen[w.Value] {
			continue
		}
		for _, v := range w.Over {
			if by, ok := over[v]; !ok || by.Outcome != OK && w.Outcome == OK {
				over[v] = w
			}
		}
	}
	if haveFinal && f.Err == "" && f.Found {
		for _, v := range f.Values {
			if by, ok := over[v]; ok {
				r.Superseded = append(r.Superseded, Finding{"P7 superseded", k.key, 0,
					fmt.Sprintf("final read returns %q, which put %d (%s) superseded", clip(v), by.ID, by.Outcome)})
			}
		}
	}
	if !cfg.Strict {
		return
	}
	for _, rd := range k.reads {
		if rd.Outcome != OK || rd.Weak {
			continue
		}
		for _, v := range rd.Values {
			if by, ok := over[v]; ok && by.Outcome == OK && !by.Sloppy && by.End < rd.Start && !cfg.lossBetween(by.Start, rd.Start) {
				r.Superseded = append(r.Superseded, Finding{"P7 superseded", k.key, rd.ID,
					fmt.Sprintf("read began at %s and returned %q, which put %d superseded, acknowledged at %s", ns(rd.Start), clip(v), by.ID, ns(by.End))})
			}
		}
	}
}

// checkResurrected is P3: no value an acknowledged delete superseded
// (see deleteCovers) is in the final read.
func (r *Report) checkResurrected(k *keyOps, f Final, haveFinal bool, cfg Config) {
	if !haveFinal || f.Err != "" || !f.Found {
		return
	}
	for _, d := range k.dels {
		if d.Outcome != OK {
			continue
		}
		for _, v := range f.Values {
			if deleteCovers(k, d, v, cfg) {
				r.Resurrected = append(r.Resurrected, Finding{"P3 resurrected", k.key, d.ID,
					fmt.Sprintf("delete acknowledged at %s superseded %q, yet the final read returns %s", ns(d.End), clip(v), finalString(f))})
			}
		}
	}
}

// deleteCovers reports whether delete d, had it taken effect, superseded
// value v: v is among the values its context covered (Over), or, for a
// delete without a context under strict quorums (the node reads a
// majority first and supersedes what it saw), v was written by a put
// acknowledged before d began, with no loss of a replica in between. A
// put of unknown outcome may have reached only a minority that the
// delete's read missed, and a put still running when it began may come
// after it: their values survive it, as siblings.
func deleteCovers(k *keyOps, d *Op, v string, cfg Config) bool {
	if d.Context != "" {
		return slices.Contains(d.Over, v)
	}
	if !cfg.Strict {
		return false
	}
	for _, p := range k.puts {
		// A sloppy put may be held by fallbacks alone when the delete
		// reads the owners: the delete need not see it.
		if p.Kind == KindPut && p.Value == v && p.Outcome == OK && !p.Sloppy && p.End < d.Start && !cfg.lossBetween(p.Start, d.Start) {
			return true
		}
	}
	return false
}

// writtenAfter reports whether a put or add of k (not refused) was
// invoked after from and before to.
func writtenAfter(k *keyOps, from, to int64) bool {
	for _, p := range k.puts {
		if p.Outcome != Fail && p.Start > from && p.Start < to {
			return true
		}
	}
	return false
}

// checkSiblings is P5: a read never returns more siblings than the
// writers of the key could leave. With read-modify-write and contexts
// (hot keys, cfg.Writers) each writer leaves at most one sibling its next
// write does not supersede; a write of unknown outcome can leave one more
// that its writer never saw, until some read shows it. A key written
// blind (without context) keeps every write as a sibling: its bound is
// the number of writes invoked (and not refused) before the read ended.
func (r *Report) checkSiblings(k *keyOps, f Final, haveFinal bool, cfg Config) {
	writers, rmw := cfg.Writers[k.key]
	check := func(opID int, sibs int, end int64, who string) {
		if sibs > r.MaxSiblings {
			r.MaxSiblings, r.MaxSiblingsKey = sibs, k.key
		}
		if sibs <= 1 {
			return
		}
		var bound int
		var why string
		if rmw {
			unknown := 0
			for _, p := range k.puts {
				if p.Outcome == Unknown && p.Start < end {
					unknown++
				}
			}
			bound = writers + unknown
			why = fmt.Sprintf("%d writers and %d writes of unknown outcome", writers, unknown)
		} else {
			for _, p := range k.puts {
				if p.Outcome != Fail && p.Start < end {
					bound++
				}
			}
			why = fmt.Sprintf("%d blind writes invoked", bound)
		}
		if sibs > bound {
			r.Siblings = append(r.Siblings, Finding{"P5 siblings", k.key, opID,
				fmt.Sprintf("%s returned %d siblings; %s allow at most %d", who, sibs, why, bound)})
		}
	}
	for _, rd := range k.reads {
		if rd.Outcome == OK && rd.Found {
			check(rd.ID, rd.Siblings, rd.End, "read")
		}
	}
	if haveFinal && f.Err == "" && f.Found {
		check(0, f.Siblings, 1<<62, "final read")
	}
}

// checkStale is P6 (read-your-writes across clients, under strict
// quorums): a read that began after a write was acknowledged sees it,
// unless the read is Weak, the write Sloppy, or a replica lost writes in
// between (Config.Losses).
//   - a put's value, unless a delete of the key, or a write that could
//     supersede it (with a context), was invoked before the read ended
//     (blind puts supersede nothing); and after an acknowledged delete
//     (nothing written since), no value;
//   - hot key: every element whose add was acknowledged.
func (r *Report) checkStale(k *keyOps, cfg Config) {
	for _, rd := range k.reads {
		if rd.Outcome != OK || rd.Weak {
			continue
		}
		var union map[string]bool
		for _, p := range k.puts {
			if p.Outcome != OK || p.Sloppy || p.End >= rd.Start || cfg.lossBetween(p.Start, rd.Start) {
				continue
			}
			switch p.Kind {
			case KindPut:
				if deleteBefore(k, rd.End) || supersedableAfter(k, p.Start, rd.End) {
					continue
				}
				if !rd.Found || !slices.Contains(rd.Values, p.Value) {
					r.StaleReads = append(r.StaleReads, Finding{"P6 stale read", k.key, rd.ID,
						fmt.Sprintf("read began at %s, after put %d of %q was acknowledged at %s, and returned %s", ns(rd.Start), p.ID, clip(p.Value), ns(p.End), readString(rd))})
				}
			case KindAdd:
				if p.Elem == "" {
					continue
				}
				if union == nil {
					union = Union(rd.Values)
				}
				if !union[p.Elem] {
					r.StaleReads = append(r.StaleReads, Finding{"P6 stale read", k.key, rd.ID,
						fmt.Sprintf("read began at %s, after add %d of %q was acknowledged at %s, and its %d siblings lack it", ns(rd.Start), p.ID, p.Elem, ns(p.End), rd.Siblings)})
				}
			}
		}
		if !rd.Found {
			continue
		}
		for _, d := range k.dels {
			if d.Outcome != OK || d.Sloppy || d.End >= rd.Start || cfg.lossBetween(d.Start, rd.Start) {
				continue
			}
			if i := slices.IndexFunc(rd.Values, func(v string) bool { return deleteCovers(k, d, v, cfg) }); i >= 0 {
				r.StaleReads = append(r.StaleReads, Finding{"P6 stale read", k.key, rd.ID,
					fmt.Sprintf("read began at %s, after delete %d, which superseded %q, was acknowledged at %s, and returned %s", ns(rd.Start), d.ID, clip(rd.Values[i]), ns(d.End), readString(rd))})
				break
			}
		}
	}
}

// supersedableAfter reports whether a write of k that could supersede
// earlier ones (an add, or a put with a context; not a blind put) and was
// not refused was invoked after from and before to.
func supersedableAfter(k *keyOps, from, to int64) bool {
	for _, p := range k.puts {
		if p.Outcome != Fail && p.Start > from && p.Start < to && (p.Kind == KindAdd || p.Context != "") {
			return true
		}
	}
	return false
}

// deleteBefore reports whether a delete of k (not refused) was invoked
// before t.
func deleteBefore(k *keyOps, t int64) bool {
	for _, d := range k.dels {
		if d.Outcome != Fail && d.Start < t {
			return true
		}
	}
	return false
}

func finalString(f Final) string {
	if !f.Found {
		return "(not found)"
	}
	vs := make([]string, len(f.Values))
	for i, v := range f.Values {
		vs[i] = clip(v)
	}
	return fmt.Sprintf("%d siblings [%s]", f.Siblings, strings.Join(vs, " "))
}

func readString(rd *Op) string {
	return finalString(Final{Found: rd.Found, Values: rd.Values, Siblings: rd.Siblings})
}

// clip shortens a value for a report.
func clip(s string) string { return protocol.Clip(s, 80) }

// ns formats a run-relative time in nanoseconds as seconds.
func ns(t int64) string { return fmt.Sprintf("%.3fs", float64(t)/1e9) }
