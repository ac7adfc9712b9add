package coord

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

var t0 = time.Unix(1_000_000, 0)

const timeout = 2 * time.Second

// obj returns an object holding value, written by node over base.
func obj(t *testing.T, base *protocol.Object, node, value string) *protocol.Object {
	t.Helper()
	var ctx protocol.Clock
	if base != nil {
		ctx = base.Clock
	}
	o, err := version.Update(base, ctx, node, protocol.Sibling{Value: []byte(value)})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func ok(o *protocol.Object) *protocol.Result { return &protocol.Result{Obj: o} }

func res(r protocol.Result) *protocol.Result { return &r }

var (
	errDown = protocol.Errorf(protocol.ErrNodeUnavailable, "no responders")
	errBusy = protocol.Errorf(protocol.ErrOverloaded, "store queue full")
)

// sentTo lists the destinations of eff's sends whose op is op.
func sentTo(eff Effects, op uint8) []string {
	var to []string
	for _, s := range eff.Send {
		if s.Item.Op == op {
			to = append(to, s.To)
		}
	}
	return to
}

func none(t *testing.T, what string, eff Effects) {
	t.Helper()
	if eff.Answer != nil || len(eff.Send) > 0 || eff.ReadLocal || eff.Issue || eff.Repair != nil || eff.Done || len(eff.Arm) > 0 {
		t.Fatalf("%s: want no effects, got %+v", what, eff)
	}
}

func TestReadStartsWithTheLocalReplicaAndDeadlines(t *testing.T) {
	_, eff := NewRead("b", "k", []string{"a", "b", "c"}, 2, t0, timeout)
	if !eff.ReadLocal || !slices.Equal(sentTo(eff, protocol.RPCRead), []string{"a"}) {
		t.Fatalf("a quorum read of 2 at owner b reads locally and asks a: %+v", eff)
	}
	want := []Deadline{{Timeout, t0.Add(timeout)}, {Hedge, t0.Add(timeout / 8)}}
	if !slices.Equal(eff.Arm, want) {
		t.Fatalf("deadlines %v, want %v", eff.Arm, want)
	}
	_, eff = NewRead("x", "k", []string{"a", "b", "c"}, 1, t0, timeout)
	if eff.ReadLocal || !slices.Equal(sentTo(eff, protocol.RPCRead), []string{"a"}) {
		t.Fatalf("a read of 1 at a non-owner asks the first owner only: %+v", eff)
	}
}

func TestReadPaths(t *testing.T) {
	old := obj(t, nil, "a", "v1")
	cur := obj(t, old, "a", "v2")
	owners := []string{"a", "b", "c"}
	type step struct {
		from  string
		res   *protocol.Result
		err   error
		timer Timer // a deadline instead of a reply
	}
	cases := []struct {
		name      string
		r         int
		steps     []step
		answer    string // "" none, "ok", or the error's name
		answerAt  int    // the step that answers
		asks      map[int][]string
		doneAt    int
		repair    []string
		answerVal string
	}{
		{name: "quorum met, replicas equal", r: 2,
			steps:  []step{{from: "a", res: ok(cur)}, {from: "b", res: ok(cur)}},
			answer: "ok", answerAt: 1, doneAt: 1, answerVal: "v2"},
		{name: "stale replica repaired after the answer", r: 2,
			steps:  []step{{from: "a", res: ok(cur)}, {from: "b", res: ok(old)}},
			answer: "ok", answerAt: 1, doneAt: 1, repair: []string{"b"}, answerVal: "v2"},
		{name: "a replica without the key is repaired", r: 2,
			steps:  []step{{from: "b", res: ok(nil)}, {from: "a", res: ok(cur)}},
			answer: "ok", answerAt: 1, doneAt: 1, repair: []string{"b"}, answerVal: "v2"},
		{name: "a failure asks the next owner", r: 2,
			steps:  []step{{from: "a", res: ok(cur)}, {from: "b", err: errDown}, {from: "c", res: ok(cur)}},
			asks:   map[int][]string{1: {"c"}},
			answer: "ok", answerAt: 2, doneAt: 2, answerVal: "v2"},
		{name: "quorum failed once every owner answered", r: 2,
			steps:  []step{{from: "a", res: ok(cur)}, {from: "b", err: errDown}, {from: "c", err: errDown}},
			asks:   map[int][]string{1: {"c"}},
			answer: "quorum_not_reached", answerAt: 2, doneAt: 2},
		{name: "replicas overloaded: overloaded, not a failure", r: 2,
			steps:  []step{{from: "a", res: ok(cur)}, {from: "b", res: res(protocol.ResultError(0, errBusy))}, {from: "c", err: errBusy}},
			asks:   map[int][]string{1: {"c"}},
			answer: "overloaded", answerAt: 2, doneAt: 2},
		{name: "hedge asks every owner left; the late one is repaired", r: 2,
			steps: []step{{from: "a", res: ok(cur)}, {timer: Hedge}, {from: "c", res: ok(cur)}, {from: "b", res: ok(old)}},
			asks:  map[int][]string{1: {"c"}},
			// answered at c (2 of 2); done when b, asked too, answered
			answer: "ok", answerAt: 2, doneAt: 3, repair: []string{"b"}, answerVal: "v2"},
		{name: "timeout answers the quorum error and ends", r: 2,
			steps:  []step{{from: "a", res: ok(cur)}, {timer: Timeout}},
			answer: "quorum_not_reached", answerAt: 1, doneAt: 1},
		{name: "timeout after the answer still ends and repairs", r: 2,
			steps:  []step{{from: "a", res: ok(cur)}, {timer: Hedge}, {from: "c", res: ok(old)}, {timer: Timeout}},
			asks:   map[int][]string{1: {"c"}},
			answer: "ok", answerAt: 2, doneAt: 3, repair: []string{"c"}, answerVal: "v2"},
		{name: "duplicates and strangers are ignored", r: 2,
			steps:  []step{{from: "a", res: ok(cur)}, {from: "a", res: ok(old)}, {from: "z", res: ok(old)}, {from: "b", res: ok(cur)}},
			answer: "ok", answerAt: 3, doneAt: 3, answerVal: "v2"},
		{name: "nobody has the key", r: 2,
			steps:  []step{{from: "a", res: ok(nil)}, {from: "b", res: ok(nil)}},
			answer: "ok", answerAt: 1, doneAt: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op, _ := NewRead("a", "k", owners, tc.r, t0, timeout)
			answered, done := -1, -1
			for i, s := range tc.steps {
				var eff Effects
				if s.timer != 0 {
					eff = op.OnDeadline(s.timer, t0.Add(time.Second))
				} else {
					eff = op.OnResult(s.from, s.res, s.err, t0.Add(time.Millisecond))
				}
				if got := sentTo(eff, protocol.RPCRead); !slices.Equal(got, tc.asks[i]) {
					t.Fatalf("step %d asked %v, want %v", i, got, tc.asks[i])
				}
				if eff.Answer != nil {
					if answered >= 0 {
						t.Fatalf("step %d answered again", i)
					}
					answered = i
					a := eff.Answer
					switch {
					case tc.answer == "ok" && a.Err != nil:
						t.Fatalf("step %d answered %v", i, a.Err)
					case tc.answer != "ok":
						if _, name := protocol.Classify(a.Err); name != tc.answer {
							t.Fatalf("step %d answered %v (%s), want %s", i, a.Err, name, tc.answer)
						}
					case tc.answerVal == "" && a.Obj != nil:
						t.Fatalf("answered %v, want nothing", a.Obj)
					case tc.answerVal != "" && (a.Obj == nil || len(a.Obj.Live()) != 1 || string(a.Obj.Live()[0].Value) != tc.answerVal):
						t.Fatalf("answered %+v, want %s", a.Obj, tc.answerVal)
					}
				}
				if eff.Done {
					done = i
					var to []string
					if eff.Repair != nil {
						to = eff.Repair.To
						if !version.Equal(eff.Repair.Obj, cur) {
							t.Fatalf("repairs with %+v", eff.Repair.Obj)
						}
					}
					if !slices.Equal(to, tc.repair) {
						t.Fatalf("repairs %v, want %v", to, tc.repair)
					}
				} else if eff.Repair != nil {
					t.Fatalf("step %d repairs before the read is done", i)
				}
			}
			if answered != tc.answerAt || done != tc.doneAt {
				t.Fatalf("answered at step %d (want %d), done at %d (want %d)", answered, tc.answerAt, done, tc.doneAt)
			}
			none(t, "a reply after the end", op.OnResult("c", ok(old), nil, t0))
			none(t, "a deadline after the end", op.OnDeadline(Timeout, t0))
		})
	}
}

func TestReadAbort(t *testing.T) {
	op, _ := NewRead("a", "k", []string{"a", "b", "c"}, 2, t0, timeout)
	eff := op.Abort(protocol.Errorf(protocol.ErrNodeUnavailable, "shutting down"))
	if eff.Answer == nil || !errors.Is(eff.Answer.Err, protocol.ErrNodeUnavailable) || !eff.Done || eff.Repair != nil {
		t.Fatalf("abort: %+v", eff)
	}
	none(t, "a reply after the abort", op.OnResult("a", ok(nil), nil, t0))
}

func TestWritePaths(t *testing.T) {
	owners := []string{"a", "b", "c"}
	actor := protocol.NewActorID("a", 1, 1)
	newObj := obj(t, nil, actor, "v")
	start := func(t *testing.T, w int) *Write {
		op, eff := NewWrite("a", actor, "k", owners, nil, false, w, t0, timeout)
		if !eff.Issue || !slices.Equal(eff.Arm, []Deadline{{Timeout, t0.Add(timeout)}}) || len(eff.Send) > 0 {
			t.Fatalf("a write starts by issuing its dot and arming its timeout: %+v", eff)
		}
		eff = op.OnLogged(newObj)
		if got := sentTo(eff, protocol.RPCWrite); !slices.Equal(got, []string{"b", "c"}) || eff.Send[0].Item.Obj != newObj {
			t.Fatalf("once logged the object goes to the other owners: %+v", eff)
		}
		return op
	}
	t.Run("quorum met answers the new context", func(t *testing.T) {
		op := start(t, 2)
		none(t, "the local ack alone", op.OnStored(nil, t0))
		eff := op.OnResult("b", &protocol.Result{}, nil, t0)
		if eff.Answer == nil || eff.Answer.Err != nil || !slices.Equal(eff.Answer.Ctx, newObj.Clock) || !eff.Done {
			t.Fatalf("after 2 acks: %+v", eff)
		}
		none(t, "a late ack", op.OnResult("c", &protocol.Result{}, nil, t0))
	})
	t.Run("a local failure after fan-out is one replica's failure", func(t *testing.T) {
		op := start(t, 2)
		none(t, "the local failure", op.OnStored(errors.New("EIO"), t0))
		none(t, "b's ack", op.OnResult("b", &protocol.Result{}, nil, t0))
		if eff := op.OnResult("c", &protocol.Result{}, nil, t0); eff.Answer == nil || eff.Answer.Err != nil {
			t.Fatalf("b and c hold it: %+v", eff)
		}
	})
	t.Run("quorum missed waits for every owner", func(t *testing.T) {
		op := start(t, 2)
		none(t, "the local ack", op.OnStored(nil, t0))
		none(t, "b down", op.OnResult("b", nil, errDown, t0))
		none(t, "a duplicate", op.OnResult("b", nil, errDown, t0))
		eff := op.OnResult("c", res(protocol.ResultError(0, errDown)), nil, t0)
		if eff.Answer == nil || !errors.Is(eff.Answer.Err, protocol.ErrQuorumNotReached) || !eff.Done {
			t.Fatalf("1 of 2: %+v", eff)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		op := start(t, 3)
		none(t, "the local ack", op.OnStored(nil, t0))
		none(t, "the hedge means nothing to a write", op.OnDeadline(Hedge, t0))
		eff := op.OnDeadline(Timeout, t0.Add(timeout))
		if eff.Answer == nil || !errors.Is(eff.Answer.Err, protocol.ErrQuorumNotReached) || !eff.Done {
			t.Fatalf("timeout: %+v", eff)
		}
	})
	t.Run("nothing issued", func(t *testing.T) {
		op, _ := NewWrite("a", actor, "k", owners, nil, false, 2, t0, timeout)
		eff := op.OnIssueFailed(protocol.ErrTooManySiblings)
		if eff.Answer == nil || !errors.Is(eff.Answer.Err, protocol.ErrTooManySiblings) || !eff.Done {
			t.Fatalf("issue failed: %+v", eff)
		}
	})
	t.Run("a commit failure before the log holds it ends the write", func(t *testing.T) {
		op, _ := NewWrite("a", actor, "k", owners, nil, true, 2, t0, timeout)
		eff := op.OnStored(errors.New("ENOSPC"), t0)
		if eff.Answer == nil || eff.Answer.Err == nil || len(eff.Send) > 0 || !eff.Done {
			t.Fatalf("failed before fan-out: %+v", eff)
		}
	})
}

func TestForwardPaths(t *testing.T) {
	item := protocol.Item{Op: protocol.RPCCoordinate, Key: "k", Val: []byte("v"), W: 2}
	start := func(t *testing.T) *Forward {
		op, eff := NewForward([]string{"b", "c"}, item, t0, timeout)
		if !slices.Equal(sentTo(eff, protocol.RPCCoordinate), []string{"b"}) || len(eff.Arm) != 1 {
			t.Fatalf("a forward starts at the first owner: %+v", eff)
		}
		return op
	}
	ctx := protocol.Clock{{Node: "b.1", Counter: 1}}
	t.Run("answered", func(t *testing.T) {
		op := start(t)
		none(t, "a reply from an owner not asked", op.OnResult("c", &protocol.Result{Ctx: ctx}, nil, t0))
		eff := op.OnResult("b", &protocol.Result{Ctx: ctx}, nil, t0)
		if eff.Answer == nil || eff.Answer.Err != nil || !slices.Equal(eff.Answer.Ctx, ctx) || !eff.Done {
			t.Fatalf("%+v", eff)
		}
	})
	t.Run("an unreachable owner: the next one", func(t *testing.T) {
		op := start(t)
		eff := op.OnResult("b", nil, errDown, t0)
		if !slices.Equal(sentTo(eff, protocol.RPCCoordinate), []string{"c"}) || eff.Answer != nil {
			t.Fatalf("%+v", eff)
		}
		eff = op.OnResult("c", nil, errDown, t0)
		if eff.Answer == nil || !errors.Is(eff.Answer.Err, protocol.ErrQuorumNotReached) || !eff.Done {
			t.Fatalf("no owner left: %+v", eff)
		}
	})
	t.Run("an owner that may have written is not retried", func(t *testing.T) {
		op := start(t)
		eff := op.OnResult("b", res(protocol.ResultError(0, protocol.Errorf(protocol.ErrQuorumNotReached, "1 of 2"))), nil, t0)
		if len(eff.Send) > 0 || eff.Answer == nil || !errors.Is(eff.Answer.Err, protocol.ErrQuorumNotReached) {
			t.Fatalf("%+v", eff)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		op := start(t)
		eff := op.OnDeadline(Timeout, t0.Add(timeout))
		if eff.Answer == nil || !errors.Is(eff.Answer.Err, protocol.ErrQuorumNotReached) || !eff.Done {
			t.Fatalf("%+v", eff)
		}
		none(t, "a reply after the timeout", op.OnResult("b", &protocol.Result{Ctx: ctx}, nil, t0))
	})
}

func TestByLiveness(t *testing.T) {
	state := map[string]int{"a": 3, "b": 1, "c": 2, "d": 1}
	got := ByLiveness([]string{"a", "b", "c", "d"}, func(id string) int { return state[id] })
	if !slices.Equal(got, []string{"b", "d", "c", "a"}) {
		t.Fatalf("ordered %v: alive in preference order, then suspect, then down", got)
	}
}

// TestJointWrite: while owners change, a write goes to the owners of
// both rings and needs w acknowledgements among each: old owners a, b,
// c; new owners a, b, j.
func TestJointWrite(t *testing.T) {
	actor := protocol.NewActorID("a", 1, 1)
	newObj := obj(t, nil, actor, "v")
	start := func(t *testing.T) *Write {
		op, _ := NewJointWrite("a", actor, "k", []string{"a", "b", "c"}, [][]string{{"a", "b", "j"}}, nil, false, 2, t0, timeout)
		if got := sentTo(op.OnLogged(newObj), protocol.RPCWrite); !slices.Equal(got, []string{"b", "c", "j"}) {
			t.Fatalf("a joint write goes to every owner of both rings: %v", got)
		}
		return op
	}
	t.Run("an ack in both rings", func(t *testing.T) {
		op := start(t)
		none(t, "the local ack", op.OnStored(nil, t0))
		if eff := op.OnResult("b", &protocol.Result{}, nil, t0); eff.Answer == nil || eff.Answer.Err != nil {
			t.Fatalf("a and b are owners in both: %+v", eff)
		}
	})
	t.Run("two acks of the old ring are not enough", func(t *testing.T) {
		op := start(t)
		none(t, "the local ack", op.OnStored(nil, t0))
		none(t, "c, an old owner only", op.OnResult("c", &protocol.Result{}, nil, t0))
		none(t, "b down", op.OnResult("b", nil, errDown, t0))
		if eff := op.OnResult("j", &protocol.Result{}, nil, t0); eff.Answer == nil || eff.Answer.Err != nil {
			t.Fatalf("a, c in the old ring and a, j in the new: %+v", eff)
		}
	})
	t.Run("a new ring short of its quorum fails the write", func(t *testing.T) {
		op := start(t)
		none(t, "the local ack", op.OnStored(nil, t0))
		none(t, "c", op.OnResult("c", &protocol.Result{}, nil, t0))
		none(t, "b down", op.OnResult("b", nil, errDown, t0))
		eff := op.OnResult("j", nil, errDown, t0)
		if eff.Answer == nil || !errors.Is(eff.Answer.Err, protocol.ErrQuorumNotReached) {
			t.Fatalf("the new ring has 1 of 2: %+v", eff)
		}
	})
	t.Run("a smaller old ring needs no more than it has", func(t *testing.T) {
		op, _ := NewJointWrite("a", actor, "k", []string{"a", "b", "c"}, [][]string{{"a"}}, nil, false, 2, t0, timeout)
		op.OnLogged(newObj)
		none(t, "the local ack", op.OnStored(nil, t0))
		if eff := op.OnResult("c", &protocol.Result{}, nil, t0); eff.Answer == nil || eff.Answer.Err != nil {
			t.Fatalf("w=2 in {a,b,c}, w=1 in {a}: %+v", eff)
		}
	})
}
