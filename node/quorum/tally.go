// Package quorum decides when a coordinator's scatter-gather is over:
// Tally counts distinct replicas' answers toward a read or write quorum,
// and MergeReads turns the objects replicas returned into one answer plus
// the replicas that need read repair.
//
// It is pure: no goroutines, no clock, no I/O. The coordinator feeds it the
// answers (and its own timeouts, as failures) and does the sending.
package quorum

import (
	"fmt"
	"strings"

	"github.com/kvmesh/kvmesh/protocol"
)

// state is what a Tally knows of one target.
type state uint8

const (
	pending state = iota
	acked
	failed
)

// Tally counts distinct replicas' answers toward a quorum of need out of
// the targets of one operation. Each target's first answer is final: a
// later OK or Fail from the same node is a duplicate and is ignored, so
// Done never goes back from true to false. The coordinator retries a
// replica, if it does, before it reports the replica's failure.
//
// A Tally is owned by one operation; it is not safe for concurrent use
// (the caller locks). Its methods never block and cost O(len(targets)).
type Tally struct {
	nodes   []string // distinct targets, in the order given
	states  []state  // per node
	errs    []error  // per node, for failed ones
	order   []int    // failed nodes' indexes, in the order they failed
	need    int
	ok      int
	pending int
}

// NewTally returns a Tally for an operation sent to targets that succeeds
// once need of them acknowledge. Duplicate targets count once. need is at
// least 1: a quorum of zero replicas would acknowledge a write that no
// disk holds, so smaller values are raised to 1. A need larger than the
// number of distinct targets can never be met, and the Tally is Done at
// once.
func NewTally(targets []string, need int) *Tally {
	t := &Tally{need: max(need, 1)}
	for _, n := range targets {
		if t.index(n) < 0 {
			t.nodes = append(t.nodes, n)
		}
	}
	t.states = make([]state, len(t.nodes))
	t.errs = make([]error, len(t.nodes))
	t.pending = len(t.nodes)
	return t
}

func (t *Tally) index(node string) int {
	for i, n := range t.nodes {
		if n == node {
			return i
		}
	}
	return -1
}

// OK records that node acknowledged. It reports whether that changed the
// tally: false for a node that already answered and for one that is not a
// target. Acknowledgements keep counting after the quorum is reached.
func (t *Tally) OK(node string) (changed bool) {
	i := t.index(node)
	if i < 0 || t.states[i] != pending {
		return false
	}
	t.states[i] = acked
	t.ok++
	t.pending--
	return true
}

// Fail records that node failed with err (nil is allowed and reads as
// "failed"). It reports whether that changed the tally: false for a node
// that already answered and for one that is not a target.
func (t *Tally) Fail(node string, err error) (changed bool) {
	i := t.index(node)
	if i < 0 || t.states[i] != pending {
		return false
	}
	t.states[i] = failed
	t.errs[i] = err
	t.order = append(t.order, i)
	t.pending--
	return true
}

// Done reports whether the outcome is decided: the quorum is reached, or
// too many targets failed for it ever to be.
func (t *Tally) Done() bool {
	return t.Succeeded() || t.ok+t.pending < t.need
}

// Succeeded reports whether at least need targets acknowledged.
func (t *Tally) Succeeded() bool { return t.ok >= t.need }

// OKCount returns how many distinct targets acknowledged.
func (t *Tally) OKCount() int { return t.ok }

// Err returns nil if the quorum was reached. Otherwise it returns an error
// for operation op (e.g. "put") that wraps protocol.ErrQuorumNotReached
// and every replica's error, so errors.Is matches either, and that says
// how far the operation got, e.g.
//
//	put: quorum not reached: 1 of 3 replicas acknowledged, 2 required (n3: node unavailable; n2: timeout)
//
// Failures are listed in the order they arrived, then the targets that
// never answered, as "no reply". protocol.Classify of the error gives
// quorum_not_reached whatever the replicas' errors were.
func (t *Tally) Err(op string) error {
	if t.Succeeded() {
		return nil
	}
	var b strings.Builder
	if op != "" {
		b.WriteString(op)
		b.WriteString(": ")
	}
	replicas := "replicas"
	if len(t.nodes) == 1 {
		replicas = "replica"
	}
	fmt.Fprintf(&b, "%s: %d of %d %s acknowledged, %d required",
		protocol.ErrQuorumNotReached.Error(), t.ok, len(t.nodes), replicas, t.need)
	detail, failed := t.Failures()
	if detail != "" {
		fmt.Fprintf(&b, " (%s)", detail)
	}
	errs := make([]error, 0, 1+len(failed))
	errs = append(errs, protocol.ErrQuorumNotReached)
	errs = append(errs, failed...)
	return &quorumError{msg: b.String(), errs: errs}
}

// quorumError is the error Err returns. Its first wrapped error is
// protocol.ErrQuorumNotReached, so protocol.Classify, which takes the first
// *protocol.Error in the chain, classifies it as that and not as a
// replica's error.
type quorumError struct {
	msg  string
	errs []error
}

func (e *quorumError) Error() string   { return e.msg }
func (e *quorumError) Unwrap() []error { return e.errs }

// Failures returns what Err lists after the counts: the failed targets
// with their errors in the order they failed, then the targets that never
// answered, as "n3: node unavailable; n2: no reply" ("" when none), and
// the failures' non-nil errors.
func (t *Tally) Failures() (string, []error) {
	var b strings.Builder
	var errs []error
	sep := ""
	for _, i := range t.order {
		msg := "failed"
		if err := t.errs[i]; err != nil {
			msg = err.Error()
			errs = append(errs, err)
		}
		fmt.Fprintf(&b, "%s%s: %s", sep, t.nodes[i], msg)
		sep = "; "
	}
	for i, n := range t.nodes {
		if t.states[i] == pending {
			fmt.Fprintf(&b, "%s%s: no reply", sep, n)
			sep = "; "
		}
	}
	return b.String(), errs
}

// Targets returns the number of distinct targets.
func (t *Tally) Targets() int { return len(t.nodes) }
