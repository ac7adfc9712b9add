package coord

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/protocol"
)

// sends renders eff's writes as "to" for an owner and "to>owner" for a
// fallback standing in for owner, in order.
func sends(eff Effects) []string {
	var out []string
	for _, s := range eff.Send {
		if s.Item.Op != protocol.RPCWrite {
			continue
		}
		if s.Item.Hint != "" {
			out = append(out, s.To+">"+s.Item.Hint)
		} else {
			out = append(out, s.To)
		}
	}
	return out
}

// TestSloppyWrite walks sloppy writes coordinated by owner a of key k
// (owners a, b, c; fallbacks d, e, f in ring order) through their events:
// which node each write goes to, with which hint, and what it answers.
func TestSloppyWrite(t *testing.T) {
	owners := []string{"a", "b", "c"}
	fallbacks := []string{"d", "e", "f"}
	type step struct {
		ev   string // "logged", "stored", "ok X", "fail X", "timeout"
		send []string
	}
	cases := []struct {
		name     string
		w, pw    int
		down     []string
		steps    []step
		answer   string // "ok" or the error's name
		answerAt int
		errHas   []string // substrings of the error's text
	}{
		{name: "no failure: owners only, no fallback", w: 2,
			steps:  []step{{ev: "logged", send: []string{"b", "c"}}, {ev: "stored"}, {ev: "ok b"}},
			answer: "ok", answerAt: 2},
		{name: "an owner held down is skipped; the first fallback takes its write at once", w: 2, down: []string{"b"},
			steps:  []step{{ev: "logged", send: []string{"d>b", "c"}}, {ev: "stored"}, {ev: "ok d"}},
			answer: "ok", answerAt: 2},
		{name: "a down fallback is passed over", w: 2, down: []string{"b", "d"},
			steps:  []step{{ev: "logged", send: []string{"e>b", "c"}}, {ev: "stored"}, {ev: "ok e"}},
			answer: "ok", answerAt: 2},
		{name: "an owner failing at request time: the next fallback takes its write", w: 2,
			steps:  []step{{ev: "logged", send: []string{"b", "c"}}, {ev: "fail b", send: []string{"d>b"}}, {ev: "stored"}, {ev: "fail c", send: []string{"e>c"}}, {ev: "ok e"}},
			answer: "ok", answerAt: 4},
		{name: "first failure goes to the first fallback", w: 3,
			steps:  []step{{ev: "logged", send: []string{"b", "c"}}, {ev: "fail c", send: []string{"d>c"}}, {ev: "stored"}, {ev: "ok b"}, {ev: "ok d"}},
			answer: "ok", answerAt: 4},
		{name: "a failing fallback is replaced by the next one, for the same owner", w: 2, down: []string{"b"},
			steps:  []step{{ev: "logged", send: []string{"d>b", "c"}}, {ev: "stored"}, {ev: "fail d", send: []string{"e>b"}}, {ev: "fail c", send: []string{"f>c"}}, {ev: "ok f"}},
			answer: "ok", answerAt: 4},
		{name: "two owners down: W=2 through a fallback", w: 2, down: []string{"b", "c"},
			steps:  []step{{ev: "logged", send: []string{"d>b", "e>c"}}, {ev: "stored"}, {ev: "ok e"}},
			answer: "ok", answerAt: 2},
		{name: "pw=2 with two owners down fails once every fallback answered", w: 2, pw: 2, down: []string{"b", "c"},
			steps:  []step{{ev: "logged", send: []string{"d>b", "e>c"}}, {ev: "stored"}, {ev: "ok e"}, {ev: "ok d"}},
			answer: "quorum_not_reached", answerAt: 3,
			errHas: []string{"put: pw=2 but only 1 primary owner acknowledged", "3 nodes acknowledged, 2 of them fallbacks", "b: node unavailable: held down by the failure detector"}},
		{name: "pw=2 with one owner down succeeds on the owners", w: 2, pw: 2, down: []string{"c"},
			steps:  []step{{ev: "logged", send: []string{"b", "d>c"}}, {ev: "stored"}, {ev: "ok d"}, {ev: "ok b"}},
			answer: "ok", answerAt: 3},
		{name: "pw=1 is met by the coordinator's own write", w: 2, pw: 1, down: []string{"b", "c"},
			steps:  []step{{ev: "logged", send: []string{"d>b", "e>c"}}, {ev: "ok d"}, {ev: "stored"}},
			answer: "ok", answerAt: 2},
		{name: "pw with no owner down: a strict quorum of owners", w: 2, pw: 2,
			steps:  []step{{ev: "logged", send: []string{"b", "c"}}, {ev: "stored"}, {ev: "ok c"}},
			answer: "ok", answerAt: 2},
		{name: "out of fallbacks: the quorum error counts owners and fallbacks", w: 3, down: []string{"b", "c"},
			steps: []step{{ev: "logged", send: []string{"d>b", "e>c"}}, {ev: "stored"}, {ev: "fail d", send: []string{"f>b"}},
				{ev: "fail e"}, {ev: "fail f"}},
			answer: "quorum_not_reached", answerAt: 4,
			errHas: []string{"put: quorum not reached: 1 of 3 required acknowledged (1 owner, 0 fallbacks", "fallback e for c: ", "fallback f for b"}},
		{name: "with no fallback left a down owner is still sent the write", w: 2, down: []string{"b", "c", "d", "e", "f"},
			steps:  []step{{ev: "logged", send: []string{"b", "c"}}, {ev: "stored"}, {ev: "ok c"}},
			answer: "ok", answerAt: 2},
		{name: "timeout: what did not answer is listed", w: 2, down: []string{"b"},
			steps:  []step{{ev: "logged", send: []string{"d>b", "c"}}, {ev: "stored"}, {ev: "timeout"}},
			answer: "quorum_not_reached", answerAt: 2,
			errHas: []string{"1 of 2 required acknowledged", "c: no reply", "fallback d for b: no reply"}},
		{name: "fallbacks overloaded: overloaded", w: 2, down: []string{"b", "c"},
			steps: []step{{ev: "logged", send: []string{"d>b", "e>c"}}, {ev: "stored"}, {ev: "busy d", send: []string{"f>b"}},
				{ev: "busy e"}, {ev: "busy f"}},
			answer: "overloaded", answerAt: 4},
		{name: "a late ack of a replaced owner still counts", w: 3,
			steps:  []step{{ev: "logged", send: []string{"b", "c"}}, {ev: "stored"}, {ev: "fail c", send: []string{"d>c"}}, {ev: "ok b"}, {ev: "ok d"}},
			answer: "ok", answerAt: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op, eff := StartWrite(WriteSpec{ID: "a", Actor: "a", Key: "k", Owners: owners, W: tc.w, PW: tc.pw, Fallbacks: fallbacks, Down: tc.down}, t0, timeout)
			if !eff.Issue {
				t.Fatal("a write starts by issuing its dot")
			}
			o := obj(t, nil, "a", "v")
			answered := -1
			for i, s := range tc.steps {
				now := t0.Add(time.Millisecond)
				var eff Effects
				switch ev, who, _ := strings.Cut(s.ev, " "); ev {
				case "logged":
					eff = op.OnLogged(o)
				case "stored":
					eff = op.OnStored(nil, now)
				case "ok":
					eff = op.OnResult(who, &protocol.Result{}, nil, now)
				case "fail":
					eff = op.OnResult(who, nil, errDown, now)
				case "busy":
					eff = op.OnResult(who, res(protocol.ResultError(0, errBusy)), nil, now)
				case "timeout":
					eff = op.OnDeadline(Timeout, now.Add(timeout))
				}
				if got := sends(eff); !slices.Equal(got, s.send) {
					t.Fatalf("step %d (%s) sent %v, want %v", i, s.ev, got, s.send)
				}
				for _, snd := range eff.Send {
					if snd.Item.Obj != o {
						t.Fatalf("step %d sent %+v, not the logged object", i, snd.Item)
					}
				}
				if eff.Answer == nil {
					continue
				}
				if answered >= 0 {
					t.Fatalf("step %d answered again", i)
				}
				answered = i
				if !eff.Done {
					t.Fatalf("step %d answered without ending the write", i)
				}
				a := eff.Answer
				if tc.answer == "ok" {
					if a.Err != nil {
						t.Fatalf("step %d answered %v", i, a.Err)
					}
					continue
				}
				if _, name := protocol.Classify(a.Err); name != tc.answer {
					t.Fatalf("step %d answered %v (%s), want %s", i, a.Err, name, tc.answer)
				}
				for _, sub := range tc.errHas {
					if !strings.Contains(a.Err.Error(), sub) {
						t.Fatalf("error %q lacks %q", a.Err, sub)
					}
				}
			}
			if answered != tc.answerAt {
				t.Fatalf("answered at step %d, want %d", answered, tc.answerAt)
			}
			none(t, "a reply after the end", op.OnResult("f", &protocol.Result{}, nil, t0))
		})
	}
}

// TestSloppyWriteErrorWraps: the errors of a sloppy write's quorum error
// are reachable with errors.Is, and it classifies as quorum_not_reached.
func TestSloppyWriteErrorWraps(t *testing.T) {
	op, _ := StartWrite(WriteSpec{ID: "a", Actor: "a", Key: "k", Owners: []string{"a", "b", "c"}, W: 2, PW: 2, Fallbacks: []string{"d"}, Down: []string{"b", "c"}}, t0, timeout)
	op.OnLogged(obj(t, nil, "a", "v"))
	op.OnStored(nil, t0)
	op.OnResult("d", &protocol.Result{}, nil, t0)
	eff := op.OnResult("c", nil, errDown, t0) // no fallback was left for it
	if eff.Answer == nil {
		t.Fatal("no answer once every node answered")
	}
	err := eff.Answer.Err
	if !errors.Is(err, protocol.ErrQuorumNotReached) || !errors.Is(err, protocol.ErrNodeUnavailable) {
		t.Fatalf("%v does not wrap the quorum error and the owners' errors", err)
	}
	if !strings.Contains(err.Error(), "pw=2 but only 1 primary owner acknowledged") {
		t.Fatalf("error %q does not say the primaries were missing", err)
	}
}

// TestJointWriteTakesNoFallbacks: while the ring changes a write goes to
// every ring's owners, down or not, and never to a fallback.
func TestJointWriteTakesNoFallbacks(t *testing.T) {
	op, _ := StartWrite(WriteSpec{ID: "a", Actor: "a", Key: "k", Owners: []string{"a", "b", "c"}, Also: [][]string{{"a", "b", "x"}},
		W: 2, Fallbacks: []string{"d", "e"}, Down: []string{"b"}}, t0, timeout)
	eff := op.OnLogged(obj(t, nil, "a", "v"))
	if got := sends(eff); !slices.Equal(got, []string{"b", "c", "x"}) {
		t.Fatalf("joint write sent %v", got)
	}
	if eff := op.OnResult("c", nil, errDown, t0); len(eff.Send) > 0 {
		t.Fatalf("a failure of a joint write's owner sent %v", sends(eff))
	}
}

// TestSloppyRead: a read asks fallbacks in place of owners held down or
// failed, counts their replies toward r (pr counts owners only), and
// never repairs a fallback.
func TestSloppyRead(t *testing.T) {
	old := obj(t, nil, "a", "v1")
	cur := obj(t, old, "a", "v2")
	owners := []string{"a", "b", "c"}
	fallbacks := []string{"d", "e"}
	type step struct {
		ev   string // "ok X", "old X", "nil X", "fail X", "hedge", "timeout"
		asks []string
	}
	cases := []struct {
		name     string
		r, pr    int
		down     []string
		first    []string // asked at the start besides the local read
		steps    []step
		answer   string
		answerAt int
		repair   []string
		errHas   string
	}{
		{name: "no owner down: owners only", r: 2, first: []string{"b"},
			steps: []step{{ev: "ok a"}, {ev: "ok b"}}, answer: "ok", answerAt: 1},
		{name: "an owner held down: its fallback is asked before it, not after", r: 3, down: []string{"b"}, first: []string{"c", "d"},
			steps: []step{{ev: "ok a"}, {ev: "ok c"}, {ev: "ok d"}}, answer: "ok", answerAt: 2},
		{name: "a failed owner lets one fallback be asked", r: 2, first: []string{"b"},
			steps: []step{{ev: "ok a"}, {ev: "fail b", asks: []string{"c"}}, {ev: "fail c", asks: []string{"d"}}, {ev: "ok d"}}, answer: "ok", answerAt: 3},
		{name: "the hedge asks N nodes, not every fallback", r: 2, down: []string{"c"}, first: []string{"b"},
			steps: []step{{ev: "ok a"}, {ev: "hedge", asks: []string{"d"}}, {ev: "ok d"}, {ev: "ok b"}}, answer: "ok", answerAt: 2},
		{name: "after one failure the hedge asks one node more than N, not every fallback", r: 3, first: []string{"b", "c"},
			steps: []step{{ev: "ok a"}, {ev: "fail b", asks: []string{"d"}}, {ev: "hedge"}, {ev: "ok c"}, {ev: "ok d"}}, answer: "ok", answerAt: 4},
		{name: "pr=2 with two owners down fails after the fallbacks replied", r: 2, pr: 2, down: []string{"b", "c"}, first: []string{"d"},
			steps:  []step{{ev: "ok a"}, {ev: "ok d"}, {ev: "hedge", asks: []string{"e"}}, {ev: "ok e"}},
			answer: "quorum_not_reached", answerAt: 3, errHas: "get: pr=2 but only 1 primary owner replied (3 nodes replied, 2 of them fallbacks"},
		{name: "pr=2 met by owners", r: 2, pr: 2, first: []string{"b"},
			steps: []step{{ev: "ok a"}, {ev: "ok b"}}, answer: "ok", answerAt: 1},
		{name: "a fallback's newer copy is merged; owners are repaired, the fallback never", r: 3, down: []string{"c"}, first: []string{"b", "d"},
			steps: []step{{ev: "old a"}, {ev: "nil b"}, {ev: "ok d"}}, answer: "ok", answerAt: 2, repair: []string{"a", "b"}},
		{name: "a stale fallback is not repaired", r: 3, down: []string{"c"}, first: []string{"b", "d"},
			steps: []step{{ev: "ok a"}, {ev: "ok b"}, {ev: "old d"}}, answer: "ok", answerAt: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op, eff := StartRead(ReadSpec{Self: "a", Key: "k", Owners: owners, R: tc.r, PR: tc.pr, Fallbacks: fallbacks, Down: tc.down}, t0, timeout)
			if !eff.ReadLocal || !slices.Equal(sentTo(eff, protocol.RPCRead), tc.first) {
				t.Fatalf("started with local %v, asking %v; want %v", eff.ReadLocal, sentTo(eff, protocol.RPCRead), tc.first)
			}
			answered := -1
			var repaired []string
			for i, s := range tc.steps {
				now := t0.Add(time.Millisecond)
				var eff Effects
				ev, who, _ := strings.Cut(s.ev, " ")
				switch ev {
				case "ok":
					eff = op.OnResult(who, ok(cur), nil, now)
				case "old":
					eff = op.OnResult(who, ok(old), nil, now)
				case "nil":
					eff = op.OnResult(who, ok(nil), nil, now)
				case "fail":
					eff = op.OnResult(who, nil, errDown, now)
				case "hedge":
					eff = op.OnDeadline(Hedge, now)
				case "timeout":
					eff = op.OnDeadline(Timeout, now)
				}
				if got := sentTo(eff, protocol.RPCRead); !slices.Equal(got, s.asks) {
					t.Fatalf("step %d (%s) asked %v, want %v", i, s.ev, got, s.asks)
				}
				if eff.Repair != nil {
					repaired = eff.Repair.To
				}
				if eff.Answer == nil {
					continue
				}
				answered = i
				a := eff.Answer
				if tc.answer == "ok" {
					if a.Err != nil || a.Obj == nil || string(a.Obj.Live()[0].Value) != "v2" {
						t.Fatalf("step %d answered %+v, %v", i, a.Obj, a.Err)
					}
					continue
				}
				if _, name := protocol.Classify(a.Err); name != tc.answer || !strings.Contains(a.Err.Error(), tc.errHas) {
					t.Fatalf("step %d answered %v (%s), want %s with %q", i, a.Err, name, tc.answer, tc.errHas)
				}
			}
			if answered != tc.answerAt {
				t.Fatalf("answered at step %d, want %d", answered, tc.answerAt)
			}
			if !slices.Equal(repaired, tc.repair) {
				t.Fatalf("repaired %v, want %v", repaired, tc.repair)
			}
		})
	}
}

// BenchmarkPlainWrite: a write with no failure, through the sloppy
// constructor; its allocations must stay those of a strict write.
func BenchmarkPlainWrite(b *testing.B) {
	owners, fallbacks := []string{"a", "b", "c"}, []string{"d", "e"}
	o := &protocol.Object{}
	b.ReportAllocs()
	for range b.N {
		op, _ := StartWrite(WriteSpec{ID: "a", Actor: "a", Key: "k", Owners: owners, W: 2, Fallbacks: fallbacks}, t0, timeout)
		op.OnLogged(o)
		op.OnStored(nil, t0)
		op.OnResult("b", &protocol.Result{}, nil, t0)
	}
}

// TestPlainWriteAllocs: fallbacks cost a write nothing while no owner
// fails: a sloppy write allocates what a strict one does.
func TestPlainWriteAllocs(t *testing.T) {
	owners, fallbacks := []string{"a", "b", "c"}, []string{"d", "e"}
	o := &protocol.Object{}
	run := func(fb []string) float64 {
		return testing.AllocsPerRun(200, func() {
			op, _ := StartWrite(WriteSpec{ID: "a", Actor: "a", Key: "k", Owners: owners, W: 2, Fallbacks: fb}, t0, timeout)
			op.OnLogged(o)
			op.OnStored(nil, t0)
			op.OnResult("b", &protocol.Result{}, nil, t0)
		})
	}
	strict, sloppy := run(nil), run(fallbacks)
	if sloppy > strict {
		t.Fatalf("a write with fallbacks allocates %v times, a strict one %v", sloppy, strict)
	}
}
