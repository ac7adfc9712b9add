package history

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

var (
	v1   = Seal("u:u1:1")
	v2   = Seal("u:u2:2")
	v3   = Seal("u:u3:3")
	oa   = Seal("o:o1:a")
	ob   = Seal("o:o1:b")
	oc   = Seal("o:o1:c")
	setA = EncodeSet([]string{"a"})
	setB = EncodeSet([]string{"a", "b"})
)

// good is a history every checker accepts: a put read back, two set-adds
// (the second read the first), a put deleted and then not found, a put
// of unknown outcome that never showed up; a key overwritten with the
// context of each put (a, then b over a), deleted with the context of b,
// and written again blind (c).
func good() ([]Op, map[string]Final) {
	ops := []Op{
		{ID: 1, Kind: KindPut, Key: "u1", Start: 0, End: 10, Outcome: OK, Value: v1},
		{ID: 2, Kind: KindRead, Key: "u1", Start: 20, End: 30, Outcome: OK, Found: true, Values: []string{v1}, Siblings: 1},
		{ID: 3, Kind: KindAdd, Key: "h1", Start: 0, End: 10, Outcome: OK, Elem: "a", Value: setA},
		{ID: 4, Kind: KindRead, Key: "h1", Start: 11, End: 14, Outcome: OK, Found: true, Values: []string{setA}, Siblings: 1},
		{ID: 5, Kind: KindAdd, Key: "h1", Start: 15, End: 25, Outcome: OK, Elem: "b", Value: setB},
		{ID: 6, Kind: KindRead, Key: "h1", Start: 30, End: 40, Outcome: OK, Found: true, Values: []string{setB}, Siblings: 1},
		{ID: 7, Kind: KindPut, Key: "u2", Start: 0, End: 10, Outcome: OK, Value: v2},
		{ID: 8, Kind: KindDel, Key: "u2", Start: 20, End: 30, Outcome: OK},
		{ID: 9, Kind: KindRead, Key: "u2", Start: 40, End: 50, Outcome: OK},
		{ID: 10, Kind: KindPut, Key: "u3", Start: 0, End: 10, Outcome: Unknown, Err: "timeout", Value: v3},
		{ID: 11, Kind: KindRead, Key: "u1", Start: 5, End: 8, Outcome: Unknown, Err: "timeout"},
		{ID: 12, Kind: KindPut, Key: "o1", Start: 0, End: 10, Outcome: OK, Value: oa},
		{ID: 13, Kind: KindPut, Key: "o1", Start: 20, End: 30, Outcome: OK, Value: ob, Context: "c-a", Over: []string{oa}},
		{ID: 14, Kind: KindDel, Key: "o1", Start: 40, End: 50, Outcome: OK, Context: "c-b", Over: []string{ob}},
		{ID: 15, Kind: KindPut, Key: "o1", Start: 60, End: 70, Outcome: OK, Value: oc},
		{ID: 16, Kind: KindRead, Key: "o1", Start: 80, End: 90, Outcome: OK, Found: true, Values: []string{oc}, Siblings: 1},
	}
	finals := map[string]Final{
		"u1": {Key: "u1", Found: true, Values: []string{v1}, Siblings: 1},
		"h1": {Key: "h1", Found: true, Values: []string{setB}, Siblings: 1},
		"u2": {Key: "u2"},
		"u3": {Key: "u3"},
		"o1": {Key: "o1", Found: true, Values: []string{oc}, Siblings: 1},
	}
	return ops, finals
}

var cfg = Config{Writers: map[string]int{"h1": 2}, Strict: true}

func TestGoodHistoryPasses(t *testing.T) {
	ops, finals := good()
	r := Check(ops, finals, cfg)
	if f := r.Failures(); len(f) != 0 {
		t.Fatalf("good history rejected: %v", f)
	}
	if r.Ops != 16 || r.OK != 14 || r.Unknown != 2 || r.AckedWrites != 9 || r.AckedPuts != 5 || r.AckedAdds != 2 || r.AckedDel != 2 || r.StableElems != 2 {
		t.Fatalf("counts: %s", r.Summary())
	}
	if r.MaxSiblings != 1 || r.Availability() != 87.5 {
		t.Fatalf("max siblings %d, availability %.1f", r.MaxSiblings, r.Availability())
	}
	// The unknown put may also have taken effect.
	finals["u3"] = Final{Key: "u3", Found: true, Values: []string{v3}, Siblings: 1}
	if f := Check(ops, finals, cfg).Failures(); len(f) != 0 {
		t.Fatalf("an unknown put that took effect is not a violation: %v", f)
	}
}

// TestEachCheckerCanFail mutates the good history so that exactly one
// property breaks, and checks that the checker of that property reports
// it (and that it is the only kind of finding).
func TestEachCheckerCanFail(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(ops []Op, finals map[string]Final) []Op
		prop   string
	}{
		{"P1 acked put missing at the end", func(ops []Op, f map[string]Final) []Op {
			f["u1"] = Final{Key: "u1"}
			return ops
		}, "P1 lost"},
		{"P1 acked put replaced by another value", func(ops []Op, f map[string]Final) []Op {
			f["u1"] = Final{Key: "u1", Found: true, Values: []string{v3}, Siblings: 1}
			ops[9].Key = "u1" // the unknown put wrote u1 (so v3 is no phantom)
			return ops
		}, "P1 lost"},
		{"P1 put after a delete missing", func(ops []Op, f map[string]Final) []Op {
			// A delete of o1 was invoked, but before c: it excuses a and
			// b, not c.
			f["o1"] = Final{Key: "o1"}
			return ops
		}, "P1 lost"},
		{"P1 acked element missing", func(ops []Op, f map[string]Final) []Op {
			f["h1"] = Final{Key: "h1", Found: true, Values: []string{setA}, Siblings: 1}
			return ops
		}, "P1 lost"},
		{"P1 no final read", func(ops []Op, f map[string]Final) []Op {
			delete(f, "u1")
			return ops
		}, "P1 unverified"},
		{"P1 final read failed", func(ops []Op, f map[string]Final) []Op {
			f["h1"] = Final{Key: "h1", Err: "quorum not reached"}
			return ops
		}, "P1 unverified"},
		{"P2 value nobody wrote", func(ops []Op, f map[string]Final) []Op {
			ops[1].Values = []string{v1, Seal("u:u1:999")}
			ops[1].Siblings = 2
			// An unknown put keeps two siblings within the P5 bound.
			ops = append(ops, Op{ID: 12, Kind: KindPut, Key: "u1", Start: 1, End: 2, Outcome: Unknown, Value: Seal("u:u1:other")})
			return ops
		}, "P2 phantom"},
		{"P2 value of a refused put", func(ops []Op, f map[string]Final) []Op {
			ops[9].Outcome = Fail
			f["u3"] = Final{Key: "u3", Found: true, Values: []string{v3}, Siblings: 1}
			return ops
		}, "P2 phantom"},
		{"P2 corrupt value", func(ops []Op, f map[string]Final) []Op {
			ops[1].Values = []string{v1, strings.Replace(v1, "u1", "u7", 1)}
			ops[1].Siblings = 2
			return append(ops, Op{ID: 12, Kind: KindPut, Key: "u1", Start: 1, End: 2, Outcome: Unknown, Value: Seal("u:u1:other")})
		}, "P2 corrupt"},
		{"P3 deleted key back", func(ops []Op, f map[string]Final) []Op {
			f["u2"] = Final{Key: "u2", Found: true, Values: []string{v2}, Siblings: 1}
			return ops
		}, "P3 resurrected"},
		{"P5 more siblings than writers", func(ops []Op, f map[string]Final) []Op {
			f["h1"] = Final{Key: "h1", Found: true, Values: []string{setA, setB, setB}, Siblings: 3}
			return ops
		}, "P5 siblings"},
		{"P6 acked put not seen", func(ops []Op, f map[string]Final) []Op {
			ops[1].Found, ops[1].Values, ops[1].Siblings = false, nil, 0
			return ops
		}, "P6 stale read"},
		{"P6 acked element not seen", func(ops []Op, f map[string]Final) []Op {
			ops[5].Values = []string{setA}
			return ops
		}, "P6 stale read"},
		{"P6 value seen after its delete was acked", func(ops []Op, f map[string]Final) []Op {
			ops[8].Found, ops[8].Values, ops[8].Siblings = true, []string{v2}, 1
			return ops
		}, "P6 stale read"},
		{"P7 overwritten value back at the end", func(ops []Op, f map[string]Final) []Op {
			f["o1"] = Final{Key: "o1", Found: true, Values: []string{oa, oc}, Siblings: 2}
			return ops
		}, "P7 superseded"},
		{"P3 value deleted with its context back beside a later write", func(ops []Op, f map[string]Final) []Op {
			f["o1"] = Final{Key: "o1", Found: true, Values: []string{ob, oc}, Siblings: 2}
			return ops
		}, "P3 resurrected"},
		{"P7 value read after an acknowledged overwrite", func(ops []Op, f map[string]Final) []Op {
			ops[15].Values, ops[15].Siblings = []string{oa, oc}, 2
			return ops
		}, "P7 superseded"},
		{"P3 value back after a blind delete and a later write", func(ops []Op, f map[string]Final) []Op {
			ops[13].Context, ops[13].Over = "", nil
			ops[12].Over = nil // b written blind too: only the delete covers a and b
			f["o1"] = Final{Key: "o1", Found: true, Values: []string{oa, oc}, Siblings: 2}
			return ops
		}, "P3 resurrected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ops, finals := good()
			ops = tc.mutate(ops, finals)
			r := Check(ops, finals, cfg)
			fs := r.Failures()
			if len(fs) == 0 {
				t.Fatalf("checker accepted a history that breaks %s: %s", tc.prop, r.Summary())
			}
			for _, f := range fs {
				if f.Prop != tc.prop {
					t.Errorf("unexpected finding %v (want only %s)", f, tc.prop)
				}
			}
		})
	}
}

func TestExemptions(t *testing.T) {
	t.Run("put deleted by a delete of unknown outcome", func(t *testing.T) {
		ops, finals := good()
		ops = append(ops, Op{ID: 12, Kind: KindDel, Key: "u1", Start: 35, End: 36, Outcome: Unknown})
		finals["u1"] = Final{Key: "u1"}
		if f := Check(ops, finals, cfg).Failures(); len(f) != 0 {
			t.Fatal(f)
		}
	})
	t.Run("a refused delete does not excuse a lost put", func(t *testing.T) {
		ops, finals := good()
		ops = append(ops, Op{ID: 12, Kind: KindDel, Key: "u1", Start: 35, End: 36, Outcome: Fail})
		finals["u1"] = Final{Key: "u1"}
		if r := Check(ops, finals, cfg); len(r.Lost) != 1 {
			t.Fatalf("want one lost write, got %v", r.Failures())
		}
	})
	t.Run("unknown writes allow more siblings", func(t *testing.T) {
		ops, finals := good()
		setC := EncodeSet([]string{"a", "c"})
		ops = append(ops, Op{ID: 12, Kind: KindAdd, Key: "h1", Start: 26, End: 27, Outcome: Unknown, Elem: "c", Value: setC})
		finals["h1"] = Final{Key: "h1", Found: true, Values: []string{setA, setB, setC}, Siblings: 3}
		r := Check(ops, finals, cfg)
		if f := r.Failures(); len(f) != 0 {
			t.Fatal(f)
		}
		if r.MaxSiblings != 3 || r.MaxSiblingsKey != "h1" {
			t.Fatalf("max siblings %d of %s", r.MaxSiblings, r.MaxSiblingsKey)
		}
	})
	t.Run("P6 only claimed under strict quorums", func(t *testing.T) {
		ops, finals := good()
		ops[1].Found, ops[1].Values, ops[1].Siblings = false, nil, 0
		if f := Check(ops, finals, Config{Writers: cfg.Writers}).Failures(); len(f) != 0 {
			t.Fatal(f)
		}
	})
	t.Run("a read concurrent with the put need not see it", func(t *testing.T) {
		ops, finals := good()
		ops[1].Start = 5 // began before the put was acknowledged at 10
		ops[1].Found, ops[1].Values, ops[1].Siblings = false, nil, 0
		if f := Check(ops, finals, cfg).Failures(); len(f) != 0 {
			t.Fatal(f)
		}
	})
}

func TestSealAndSets(t *testing.T) {
	if p, ok := Unseal(Seal("x:1")); !ok || p != "x:1" {
		t.Fatalf("unseal: %q %v", p, ok)
	}
	for _, bad := range []string{"", "x", "x#1234567", "x:1#00000000", Seal("x:1") + "0"} {
		if _, ok := Unseal(bad); ok {
			t.Errorf("Unseal(%q) accepted", bad)
		}
	}
	s := EncodeSet([]string{"c", "a", "b", "a"})
	elems, ok := DecodeSet(s)
	if !ok || !slices.Equal(elems, []string{"a", "b", "c"}) {
		t.Fatalf("DecodeSet: %v %v", elems, ok)
	}
	if e, ok := DecodeSet(EncodeSet(nil)); !ok || len(e) != 0 {
		t.Fatalf("empty set: %v %v", e, ok)
	}
	if _, ok := DecodeSet(Seal("u:1")); ok {
		t.Fatal("a unique value is not a set")
	}
	u := Union([]string{EncodeSet([]string{"a"}), EncodeSet([]string{"b", "c"}), "junk"})
	if len(u) != 3 || !u["a"] || !u["b"] || !u["c"] {
		t.Fatalf("union %v", u)
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	ops, _ := good()
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, ops); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != len(ops) {
		t.Fatalf("%d lines for %d ops", n, len(ops))
	}
	back, err := ReadJSONL[Op](&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(ops) || back[5].Values[0] != ops[5].Values[0] || back[9].Outcome != Unknown {
		t.Fatalf("round trip: %+v", back)
	}
}

func obj(clock protocol.Clock, sibs ...protocol.Sibling) *protocol.Object {
	return &protocol.Object{Clock: clock, Siblings: sibs}
}

func TestDiverged(t *testing.T) {
	a := protocol.Sibling{Dot: protocol.Dot{Node: "n1", Counter: 1}, Value: []byte("a"), Time: 5}
	b := protocol.Sibling{Dot: protocol.Dot{Node: "n2", Counter: 1}, Value: []byte("b"), Time: 6}
	full := protocol.Clock{{Node: "n1", Counter: 1}, {Node: "n2", Counter: 1}}
	same := Dumps{
		"n1": {"k": obj(full, a, b)},
		"n2": {"k": obj(full, b, a)}, // sibling order does not matter
		"n3": {"k": obj(full, a, b)},
		"n4": {},
		"n5": {"other": nil},
	}
	if d := Diverged([]string{"k", "absent"}, same, 3, nil); len(d) != 0 {
		t.Fatalf("converged dumps reported diverged: %v", d)
	}
	if h := Holders(same, "k"); !slices.Equal(h, []string{"n1", "n2", "n3"}) {
		t.Fatalf("holders %v", h)
	}
	cases := map[string]Dumps{
		"one owner lacks the key": {
			"n1": {"k": obj(full, a, b)}, "n2": {"k": obj(full, a, b)}, "n3": {},
		},
		"a non-owner holds it too": {
			"n1": {"k": obj(full, a, b)}, "n2": {"k": obj(full, a, b)}, "n3": {"k": obj(full, a, b)}, "n4": {"k": obj(full, a, b)},
		},
		"older clock": {
			"n1": {"k": obj(full, a, b)}, "n2": {"k": obj(full[:1], a)}, "n3": {"k": obj(full, a, b)},
		},
		"different value under the same dot": {
			"n1": {"k": obj(full, a, b)}, "n2": {"k": obj(full, a, protocol.Sibling{Dot: b.Dot, Value: []byte("B"), Time: 6})}, "n3": {"k": obj(full, a, b)},
		},
		"tombstone on one": {
			"n1": {"k": obj(full, a, b)}, "n2": {"k": obj(full, a, protocol.Sibling{Dot: b.Dot, Value: []byte("b"), Deleted: true, Time: 6})}, "n3": {"k": obj(full, a, b)},
		},
	}
	for name, d := range cases {
		if got := Diverged([]string{"k"}, d, 3, nil); len(got) == 0 {
			t.Errorf("%s: not reported", name)
		}
	}
	// P5 on clocks: one actor per incarnation of an owner, no other.
	reinc := protocol.Clock{{Node: "n1", Counter: 1}, {Node: "n1.1", Counter: 1}, {Node: "n2", Counter: 1}}
	three := func(c protocol.Clock) Dumps {
		return Dumps{"n1": {"k": obj(c, a)}, "n2": {"k": obj(c, a)}, "n3": {"k": obj(c, a)}}
	}
	if got := Diverged([]string{"k"}, three(reinc), 3, map[string]int{"n1": 2}); len(got) != 0 {
		t.Errorf("n1 restarted once after a crash may have two actors: %v", got)
	}
	if got := Diverged([]string{"k"}, three(reinc), 3, nil); len(got) != 3 {
		t.Errorf("two actors of a node that never crashed: want 3 findings (one per replica), got %v", got)
	}
	stranger := protocol.Clock{{Node: "n1", Counter: 1}, {Node: "n4.2", Counter: 1}}
	if got := Diverged([]string{"k"}, three(stranger), 3, map[string]int{"n4": 5}); len(got) != 3 {
		t.Errorf("an actor of a non-owner: want 3 findings, got %v", got)
	}
	if ActorNode("n1.12") != "n1" || ActorNode("n1") != "n1" {
		t.Error("ActorNode")
	}
	if !strings.Contains(ObjectString(obj(full, a)), "n1:1=a") || ObjectString(nil) != "nil" {
		t.Fatal(ObjectString(obj(full, a)))
	}
}

// TestBlindRegister covers keys written blind by several clients: every
// acknowledged write must stay a sibling, and a read after an
// acknowledgement must show it even though later blind writes came.
func TestBlindRegister(t *testing.T) {
	r1, r2, r3 := Seal("r:r1:w1-1"), Seal("r:r1:w2-1"), Seal("r:r1:w3-1")
	base := func() ([]Op, map[string]Final) {
		ops := []Op{
			{ID: 1, Worker: 1, Kind: KindPut, Key: "r1", Start: 0, End: 10, Outcome: OK, Value: r1},
			{ID: 2, Worker: 2, Kind: KindPut, Key: "r1", Start: 12, End: 20, Outcome: OK, Value: r2},
			{ID: 3, Worker: 3, Kind: KindPut, Key: "r1", Start: 15, End: 40, Outcome: Unknown, Value: r3},
			{ID: 4, Worker: 4, Kind: KindRead, Key: "r1", Start: 13, End: 14, Outcome: OK, Found: true, Values: []string{r1}, Siblings: 1},
			{ID: 5, Worker: 4, Kind: KindRead, Key: "r1", Start: 30, End: 31, Outcome: OK, Found: true, Values: []string{r1, r2, r3}, Siblings: 3},
		}
		return ops, map[string]Final{"r1": {Key: "r1", Found: true, Values: []string{r2, r1}, Siblings: 2}}
	}
	ops, finals := base()
	if f := Check(ops, finals, Config{Strict: true}).Failures(); len(f) != 0 {
		t.Fatalf("good register history rejected: %v", f)
	}
	cases := map[string]struct {
		mutate func([]Op, map[string]Final)
		prop   string
	}{
		"acked blind write gone": {func(o []Op, f map[string]Final) {
			f["r1"] = Final{Key: "r1", Found: true, Values: []string{r2}, Siblings: 1}
		}, "P1 lost"},
		"read after the ack misses it despite later blind writes": {func(o []Op, f map[string]Final) {
			o[4].Values, o[4].Siblings = []string{r2, r3}, 2
		}, "P6 stale read"},
		"more siblings than blind writes": {func(o []Op, f map[string]Final) {
			f["r1"] = Final{Key: "r1", Found: true, Values: []string{r1, r2, r3, r1}, Siblings: 4}
		}, "P5 siblings"},
	}
	for name, tc := range cases {
		ops, finals := base()
		tc.mutate(ops, finals)
		fs := Check(ops, finals, Config{Strict: true}).Failures()
		if len(fs) == 0 {
			t.Errorf("%s: accepted", name)
		}
		for _, f := range fs {
			if f.Prop != tc.prop {
				t.Errorf("%s: unexpected %v", name, f)
			}
		}
	}
}

// TestDeleteSupersedesOnlyWhatItSaw: a put of unknown outcome may sit on a
// minority of replicas that a blind delete's read missed, so its value
// survives the delete as a sibling (seen in a soak run); an acknowledged
// put does not.
func TestDeleteSupersedesOnlyWhatItSaw(t *testing.T) {
	history := func(put Outcome) ([]Op, map[string]Final) {
		ops := []Op{
			{ID: 1, Kind: KindPut, Key: "o1", Start: 0, End: 10, Outcome: put, Value: oa},
			{ID: 2, Kind: KindDel, Key: "o1", Start: 20, End: 30, Outcome: OK},
			{ID: 3, Kind: KindRead, Key: "o1", Start: 40, End: 50, Outcome: OK, Found: true, Values: []string{oa}, Siblings: 1},
		}
		return ops, map[string]Final{"o1": {Key: "o1", Found: true, Values: []string{oa}, Siblings: 1}}
	}
	ops, finals := history(Unknown)
	if f := Check(ops, finals, Config{Strict: true}).Failures(); len(f) != 0 {
		t.Fatalf("a put of unknown outcome surviving a blind delete was rejected: %v", f)
	}
	ops, finals = history(OK)
	props := map[string]bool{}
	for _, f := range Check(ops, finals, Config{Strict: true}).Failures() {
		props[f.Prop] = true
	}
	if !props["P3 resurrected"] || !props["P6 stale read"] {
		t.Fatalf("an acknowledged put back after a blind delete: findings %v", props)
	}
	if f := Check(ops, finals, Config{Strict: false}).Failures(); len(f) != 0 {
		t.Fatalf("without strict quorums a blind delete's read may miss the put: %v", f)
	}
	ops, finals = history(OK)
	ops[0].Sloppy = true // held by fallbacks alone when the delete read the owners
	if f := Check(ops, finals, Config{Strict: true}).Failures(); len(f) != 0 {
		t.Fatalf("a blind delete's read of the owners may miss a sloppy put: %v", f)
	}
}

// TestWeakReads: a read whose quorum need not meet the writes' (R=1) is
// not expected to see acknowledged writes, under strict quorums either;
// every other checker still judges it.
func TestWeakReads(t *testing.T) {
	cases := map[string]func(ops []Op){
		"P6 acked put not seen": func(ops []Op) {
			ops[1].Found, ops[1].Values, ops[1].Siblings = false, nil, 0
		},
		"P7 value read after an acknowledged overwrite": func(ops []Op) {
			ops[15].Values, ops[15].Siblings = []string{oa, oc}, 2
		},
	}
	for name, mutate := range cases {
		ops, finals := good()
		mutate(ops)
		if len(Check(ops, finals, cfg).Failures()) == 0 {
			t.Fatalf("%s: not reported for a quorum read", name)
		}
		ops[1].Weak, ops[15].Weak = true, true
		if f := Check(ops, finals, cfg).Failures(); len(f) != 0 {
			t.Errorf("%s: reported for a weak read: %v", name, f)
		}
	}
	ops, finals := good()
	ops[1].Weak = true
	ops[1].Values = []string{Seal("u:u1:999")}
	if r := Check(ops, finals, cfg); len(r.Phantoms) != 1 {
		t.Fatalf("a weak read of a phantom: %v", r.Failures())
	}
}

// TestLosses: after a replica lost acknowledged writes (a wiped data
// dir), a read or a blind delete that began later need not see the
// writes invoked before the loss; one before the loss, or a write after
// it, is still judged.
func TestLosses(t *testing.T) {
	stale := func(at int64) []Finding {
		ops, finals := good()
		ops[1].Found, ops[1].Values, ops[1].Siblings = false, nil, 0 // put u1 0..10, read 20..30
		return Check(ops, finals, Config{Writers: cfg.Writers, Strict: true, Losses: []int64{at}}).Failures()
	}
	if f := stale(15); len(f) != 0 {
		t.Fatalf("a read after a loss missed a put acknowledged before it: %v", f)
	}
	for _, at := range []int64{-1, 25} {
		if f := stale(at); len(f) != 1 || f[0].Prop != "P6 stale read" {
			t.Fatalf("loss at %d (not between the put and the read): %v", at, f)
		}
	}
	blindDelete := func(at int64) []Finding {
		ops := []Op{
			{ID: 1, Kind: KindPut, Key: "o1", Start: 0, End: 10, Outcome: OK, Value: oa},
			{ID: 2, Kind: KindDel, Key: "o1", Start: 20, End: 30, Outcome: OK},
		}
		finals := map[string]Final{"o1": {Key: "o1", Found: true, Values: []string{oa}, Siblings: 1}}
		return Check(ops, finals, Config{Strict: true, Losses: []int64{at}}).Failures()
	}
	if f := blindDelete(15); len(f) != 0 {
		t.Fatalf("a blind delete after a loss may miss the put: %v", f)
	}
	if f := blindDelete(25); len(f) != 1 || f[0].Prop != "P3 resurrected" {
		t.Fatalf("a loss after the blind delete began does not excuse a resurrection: %v", f)
	}
	ops, finals := good()
	ops[15].Values, ops[15].Siblings = []string{oa, oc}, 2 // b (20..30) superseded a; read 80..90
	withLoss := Config{Writers: cfg.Writers, Strict: true, Losses: []int64{50}}
	if f := Check(ops, finals, withLoss).Failures(); len(f) != 0 {
		t.Fatalf("a read after a loss returned a superseded value: %v", f)
	}
}

func TestOutcomeOf(t *testing.T) {
	cases := []struct {
		err  error
		want Outcome
	}{
		{nil, OK},
		{protocol.Errorf(protocol.ErrKeyNotFound, "k"), OK},
		{protocol.Errorf(protocol.ErrOverloaded, "busy"), Fail},
		{protocol.Errorf(protocol.ErrInvalidContext, "bad"), Fail},
		{protocol.Errorf(protocol.ErrNodeUnavailable, "put %q: no kvmesh node serves the store's subjects", "k"), Fail},
		{protocol.Errorf(protocol.ErrNodeUnavailable, "closing"), Unknown},
		{protocol.Errorf(protocol.ErrQuorumNotReached, "1 of 2"), Unknown},
		{context.DeadlineExceeded, Unknown},
		{errors.New("anything else"), Unknown},
	}
	for _, tc := range cases {
		got, msg := OutcomeOf(tc.err)
		if got != tc.want || (got == OK) != (msg == "") {
			t.Errorf("OutcomeOf(%v) = %s %q, want %s", tc.err, got, msg, tc.want)
		}
	}
}

func TestOpString(t *testing.T) {
	ops, _ := good()
	for i, want := range map[int][]string{
		1:  {"read u1", "=> ok", "1 siblings", "u:u1:1"},
		4:  {"add h1 +b", "=> ok"},
		9:  {"put u3", "=> unknown (timeout)"},
		12: {"put o1", "ctx=c-a", "over="},
	} {
		s := ops[i].String()
		for _, w := range want {
			if !strings.Contains(s, w) {
				t.Errorf("op %d: %q lacks %q", i, s, w)
			}
		}
	}
	if s := ClockString(protocol.Clock{{Node: "n1", Counter: 2}, {Node: "n2", Counter: 1}}); s != "{n1:2 n2:1}" {
		t.Errorf("ClockString: %s", s)
	}
}

// TestSloppyWrites: a read need not see a write a sloppy quorum
// acknowledged (P6, P7), but the write must still not be lost (P1).
func TestSloppyWrites(t *testing.T) {
	ops, finals := good()
	ops[1].Found, ops[1].Values, ops[1].Siblings = false, nil, 0
	if len(Check(ops, finals, cfg).StaleReads) == 0 {
		t.Fatal("a stale read of a strict write is not reported")
	}
	for i := range ops {
		if ops[i].Kind != KindRead {
			ops[i].Sloppy = true
		}
	}
	if r := Check(ops, finals, cfg); len(r.StaleReads) != 0 || len(r.Superseded) != 0 {
		t.Fatalf("reported for sloppy writes: %v", r.Failures())
	}
	for k, f := range finals {
		f.Found, f.Values, f.Siblings = false, nil, 0
		finals[k] = f
	}
	if len(Check(ops, finals, cfg).Lost) == 0 {
		t.Fatal("a lost sloppy write is not reported")
	}
}
