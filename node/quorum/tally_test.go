package quorum

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

var errTimeout = errors.New("timeout")

// event is one answer fed to a Tally: ok, or a failure with err.
type event struct {
	node string
	ok   bool
	err  error
}

func okFrom(node string) event              { return event{node: node, ok: true} }
func failFrom(node string, err error) event { return event{node: node, err: err} }

func (e event) apply(t *Tally) (changed bool) {
	if e.ok {
		return t.OK(e.node)
	}
	return t.Fail(e.node, e.err)
}

func TestTally(t *testing.T) {
	n123 := []string{"n1", "n2", "n3"}
	for _, tc := range []struct {
		name      string
		targets   []string
		need      int
		events    []event
		changed   []bool
		done      bool
		succeeded bool
		okCount   int
		msg       string // Err("put"); "" when it must be nil
	}{
		{
			name:    "nothing yet",
			targets: n123, need: 2,
			msg: "put: quorum not reached: 0 of 3 replicas acknowledged, 2 required (n1: no reply; n2: no reply; n3: no reply)",
		},
		{
			name:    "one of two",
			targets: n123, need: 2,
			events:  []event{okFrom("n2")},
			changed: []bool{true},
			okCount: 1,
			msg:     "put: quorum not reached: 1 of 3 replicas acknowledged, 2 required (n1: no reply; n3: no reply)",
		},
		{
			name:    "quorum",
			targets: n123, need: 2,
			events:  []event{okFrom("n1"), okFrom("n3")},
			changed: []bool{true, true},
			done:    true, succeeded: true, okCount: 2,
		},
		{
			name:    "late ack still counts",
			targets: n123, need: 2,
			events:  []event{okFrom("n1"), okFrom("n3"), okFrom("n2")},
			changed: []bool{true, true, true},
			done:    true, succeeded: true, okCount: 3,
		},
		{
			name:    "duplicate ack counts once",
			targets: n123, need: 2,
			events:  []event{okFrom("n1"), okFrom("n1"), okFrom("n1")},
			changed: []bool{true, false, false},
			okCount: 1,
			msg:     "put: quorum not reached: 1 of 3 replicas acknowledged, 2 required (n2: no reply; n3: no reply)",
		},
		{
			name:    "non-targets ignored",
			targets: n123, need: 2,
			events:  []event{okFrom("n4"), okFrom(""), failFrom("n5", errTimeout), okFrom("n1")},
			changed: []bool{false, false, false, true},
			okCount: 1,
			msg:     "put: quorum not reached: 1 of 3 replicas acknowledged, 2 required (n2: no reply; n3: no reply)",
		},
		{
			name:    "the example",
			targets: n123, need: 2,
			events:  []event{okFrom("n1"), failFrom("n3", protocol.ErrNodeUnavailable), failFrom("n2", errTimeout)},
			changed: []bool{true, true, true},
			done:    true, okCount: 1,
			msg: "put: quorum not reached: 1 of 3 replicas acknowledged, 2 required (n3: node unavailable; n2: timeout)",
		},
		{
			name:    "failed once the quorum is out of reach",
			targets: n123, need: 2,
			events:  []event{failFrom("n1", errTimeout), failFrom("n2", errTimeout)},
			changed: []bool{true, true},
			done:    true,
			msg:     "put: quorum not reached: 0 of 3 replicas acknowledged, 2 required (n1: timeout; n2: timeout; n3: no reply)",
		},
		{
			name:    "one failure leaves the quorum reachable",
			targets: n123, need: 2,
			events:  []event{failFrom("n1", errTimeout), okFrom("n2")},
			changed: []bool{true, true},
			okCount: 1,
			msg:     "put: quorum not reached: 1 of 3 replicas acknowledged, 2 required (n1: timeout; n3: no reply)",
		},
		{
			name:    "first answer is final: ok after fail ignored",
			targets: n123, need: 3,
			events:  []event{failFrom("n1", errTimeout), okFrom("n1")},
			changed: []bool{true, false},
			done:    true,
			msg:     "put: quorum not reached: 0 of 3 replicas acknowledged, 3 required (n1: timeout; n2: no reply; n3: no reply)",
		},
		{
			name:    "first answer is final: fail after ok ignored",
			targets: n123, need: 1,
			events:  []event{okFrom("n1"), failFrom("n1", errTimeout)},
			changed: []bool{true, false},
			done:    true, succeeded: true, okCount: 1,
		},
		{
			name:    "second failure of a node ignored",
			targets: n123, need: 3,
			events:  []event{failFrom("n2", errTimeout), failFrom("n2", protocol.ErrOverloaded)},
			changed: []bool{true, false},
			done:    true,
			msg:     "put: quorum not reached: 0 of 3 replicas acknowledged, 3 required (n2: timeout; n1: no reply; n3: no reply)",
		},
		{
			name:    "nil error",
			targets: n123, need: 3,
			events:  []event{failFrom("n3", nil)},
			changed: []bool{true},
			done:    true,
			msg:     "put: quorum not reached: 0 of 3 replicas acknowledged, 3 required (n3: failed; n1: no reply; n2: no reply)",
		},
		{
			name:    "all",
			targets: n123, need: 3,
			events:  []event{okFrom("n1"), okFrom("n2"), okFrom("n3")},
			changed: []bool{true, true, true},
			done:    true, succeeded: true, okCount: 3,
		},
		{
			name:    "need more than targets",
			targets: n123, need: 4,
			done: true,
			msg:  "put: quorum not reached: 0 of 3 replicas acknowledged, 4 required (n1: no reply; n2: no reply; n3: no reply)",
		},
		{
			name:    "duplicate targets count once",
			targets: []string{"n1", "n2", "n1", "n2"}, need: 3,
			done: true,
			msg:  "put: quorum not reached: 0 of 2 replicas acknowledged, 3 required (n1: no reply; n2: no reply)",
		},
		{
			name:    "need zero is raised to one",
			targets: n123, need: 0,
			msg: "put: quorum not reached: 0 of 3 replicas acknowledged, 1 required (n1: no reply; n2: no reply; n3: no reply)",
		},
		{
			name:    "negative need is raised to one",
			targets: n123, need: -2,
			events:  []event{okFrom("n2")},
			changed: []bool{true},
			done:    true, succeeded: true, okCount: 1,
		},
		{
			name:    "no targets",
			targets: nil, need: 1,
			done: true,
			msg:  "put: quorum not reached: 0 of 0 replicas acknowledged, 1 required",
		},
		{
			name:    "one replica",
			targets: []string{"n1"}, need: 1,
			events:  []event{failFrom("n1", protocol.ErrOverloaded)},
			changed: []bool{true},
			done:    true,
			msg:     "put: quorum not reached: 0 of 1 replica acknowledged, 1 required (n1: overloaded)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			targets := append([]string(nil), tc.targets...)
			ta := NewTally(targets, tc.need)
			for i := range targets {
				targets[i] = "mutated" // NewTally must have copied them
			}
			for i, e := range tc.events {
				if got := e.apply(ta); got != tc.changed[i] {
					t.Errorf("event %d (%+v): changed = %v, want %v", i, e, got, tc.changed[i])
				}
			}
			if ta.Done() != tc.done || ta.Succeeded() != tc.succeeded || ta.OKCount() != tc.okCount {
				t.Errorf("Done, Succeeded, OKCount = %v, %v, %d, want %v, %v, %d",
					ta.Done(), ta.Succeeded(), ta.OKCount(), tc.done, tc.succeeded, tc.okCount)
			}
			err := ta.Err("put")
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("Err = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.msg {
				t.Fatalf("Err =\n  %v\nwant\n  %s", err, tc.msg)
			}
			if !errors.Is(err, protocol.ErrQuorumNotReached) {
				t.Error("Err does not match ErrQuorumNotReached")
			}
			if code, name := protocol.Classify(err); code != 503 || name != "quorum_not_reached" {
				t.Errorf("Classify(Err) = %d %s", code, name)
			}
			for _, e := range tc.events {
				if !e.ok && e.err != nil && strings.Contains(tc.msg, e.node+": "+e.err.Error()) && !errors.Is(err, e.err) {
					t.Errorf("Err does not wrap %s's error %v", e.node, e.err)
				}
			}
		})
	}
}

func TestTallyErrWrapsReplicaErrors(t *testing.T) {
	ta := NewTally([]string{"a", "b", "c"}, 3)
	wrapped := fmt.Errorf("read %q on b: %w", "k", protocol.ErrOverloaded)
	ta.OK("a")
	ta.Fail("b", wrapped)
	ta.Fail("c", errTimeout)
	err := ta.Err("get")
	for _, target := range []error{protocol.ErrQuorumNotReached, protocol.ErrOverloaded, wrapped, errTimeout} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(Err, %v) = false", target)
		}
	}
	if errors.Is(err, protocol.ErrNodeUnavailable) {
		t.Error("Err matches an error no replica returned")
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe != protocol.ErrQuorumNotReached {
		t.Errorf("errors.As(Err) = %v, want ErrQuorumNotReached first", pe)
	}
	if got := NewTally([]string{"a"}, 1).Err(""); got.Error() != "quorum not reached: 0 of 1 replica acknowledged, 1 required (a: no reply)" {
		t.Errorf("Err(\"\") = %q", got)
	}
}

// refTally is the naive reference: a map of first answers, recounted
// from scratch on every question.
type refTally struct {
	targets []string // distinct, in order
	need    int
	answer  map[string]event
	failed  []string // in order
}

func newRef(targets []string, need int) *refTally {
	r := &refTally{need: need, answer: map[string]event{}}
	if r.need < 1 {
		r.need = 1
	}
	seen := map[string]bool{}
	for _, n := range targets {
		if !seen[n] {
			seen[n] = true
			r.targets = append(r.targets, n)
		}
	}
	return r
}

func (r *refTally) apply(e event) bool {
	isTarget := false
	for _, n := range r.targets {
		isTarget = isTarget || n == e.node
	}
	if _, answered := r.answer[e.node]; !isTarget || answered {
		return false
	}
	r.answer[e.node] = e
	if !e.ok {
		r.failed = append(r.failed, e.node)
	}
	return true
}

func (r *refTally) counts() (ok, failed int) {
	for _, e := range r.answer {
		if e.ok {
			ok++
		} else {
			failed++
		}
	}
	return ok, failed
}

func (r *refTally) msg(op string) string {
	ok, _ := r.counts()
	var parts []string
	for _, n := range r.failed {
		if err := r.answer[n].err; err != nil {
			parts = append(parts, n+": "+err.Error())
		} else {
			parts = append(parts, n+": failed")
		}
	}
	for _, n := range r.targets {
		if _, answered := r.answer[n]; !answered {
			parts = append(parts, n+": no reply")
		}
	}
	word := "replicas"
	if len(r.targets) == 1 {
		word = "replica"
	}
	s := fmt.Sprintf("%s: quorum not reached: %d of %d %s acknowledged, %d required", op, ok, len(r.targets), word, r.need)
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, "; ") + ")"
	}
	return s
}

func TestTallyAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	pool := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	errPool := []error{errTimeout, protocol.ErrNodeUnavailable, protocol.ErrOverloaded, nil}
	trials := 5000
	if testing.Short() {
		trials = 500
	}
	for trial := range trials {
		var targets []string
		for range rng.Intn(7) {
			targets = append(targets, pool[rng.Intn(5)]) // duplicates happen
		}
		need := rng.Intn(9) - 1
		ta, ref := NewTally(targets, need), newRef(targets, need)
		wasDone := ta.Done()
		for step := range rng.Intn(20) {
			e := event{node: pool[rng.Intn(len(pool))], ok: rng.Intn(2) == 0}
			if !e.ok {
				if err := errPool[rng.Intn(len(errPool))]; err != nil {
					e.err = fmt.Errorf("trial %d step %d: %w", trial, step, err) // unique, for errors.Is
				}
			}
			if got, want := e.apply(ta), ref.apply(e); got != want {
				t.Fatalf("trial %d step %d %+v: changed = %v, want %v", trial, step, e, got, want)
			}
			ok, failed := ref.counts()
			succeeded := ok >= ref.need
			done := succeeded || ok+len(ref.targets)-ok-failed < ref.need
			if ta.OKCount() != ok || ta.Succeeded() != succeeded || ta.Done() != done {
				t.Fatalf("trial %d step %d: OKCount, Succeeded, Done = %d, %v, %v, want %d, %v, %v",
					trial, step, ta.OKCount(), ta.Succeeded(), ta.Done(), ok, succeeded, done)
			}
			if wasDone && !done {
				t.Fatalf("trial %d step %d: Done went back to false", trial, step)
			}
			wasDone = done
			err := ta.Err("op")
			if succeeded {
				if err != nil {
					t.Fatalf("trial %d step %d: Err = %v after success", trial, step, err)
				}
				continue
			}
			if err == nil || err.Error() != ref.msg("op") {
				t.Fatalf("trial %d step %d: Err =\n  %v\nwant\n  %s", trial, step, err, ref.msg("op"))
			}
			if !errors.Is(err, protocol.ErrQuorumNotReached) {
				t.Fatalf("trial %d step %d: Err does not wrap ErrQuorumNotReached", trial, step)
			}
			for _, n := range ref.failed {
				if e := ref.answer[n].err; e != nil && !errors.Is(err, e) {
					t.Fatalf("trial %d step %d: Err does not wrap %v", trial, step, e)
				}
			}
		}
	}
}

var sinkBool bool

func BenchmarkTally(b *testing.B) {
	targets := []string{"node-1", "node-2", "node-3"}
	b.ReportAllocs()
	for b.Loop() {
		ta := NewTally(targets, 2)
		ta.OK("node-2")
		ta.Fail("node-3", errTimeout)
		ta.OK("node-1")
		sinkBool = ta.Done() && ta.Err("put") == nil
	}
}
