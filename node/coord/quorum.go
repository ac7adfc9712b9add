package coord

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/kvmesh/kvmesh/node/quorum"
	"github.com/kvmesh/kvmesh/protocol"
)

// QuorumErr is t.Err(op), except that a quorum missed because replicas
// refused the work as overloaded is reported as ErrOverloaded: a client
// should back off, not treat it as a failure.
func QuorumErr(t interface{ Err(string) error }, op string) error {
	err := t.Err(op)
	if err != nil && errors.Is(err, protocol.ErrOverloaded) {
		return &protocol.Error{Code: protocol.ErrOverloaded.Code, Name: protocol.ErrOverloaded.Name, Msg: err.Error()}
	}
	return err
}

// ByLiveness returns owners reordered for asking: by rank (the failure
// detector's view: alive, then suspect, then down), the preference order
// kept among equals, so that a read asks live owners first and a
// forwarded write goes to a live owner first. A down owner keeps its
// place in the ring; it is only asked last.
func ByLiveness(owners []string, rank func(id string) int) []string {
	out := slices.Clone(owners)
	slices.SortStableFunc(out, func(a, b string) int { return cmp.Compare(rank(a), rank(b)) })
	return out
}

// countOK counts the stands whose fallback acknowledged (or replied).
func countOK(stands []stand) int {
	n := 0
	for _, s := range stands {
		if s.state == standOK {
			n++
		}
	}
	return n
}

// sloppyErr is the error of an operation with a sloppy quorum, or with a
// primary requirement (pname "pw" or "pr", pneed > 0), that ended short:
// nil if it did not. It wraps protocol.ErrQuorumNotReached and every
// node's error, as quorum.Tally.Err does, and says what the owners (the
// tally) and the fallbacks standing in for them did; a shortfall of
// owners alone reads e.g.
//
//	put: pw=2 but only 1 primary owner acknowledged (3 nodes acknowledged, 2 of them fallbacks; n2: n2 is down; n3: node unavailable)
//
// and one of w (or r) reads
//
//	put: quorum not reached: 1 of 2 required acknowledged (1 owner, 0 fallbacks; n2: ...; fallback n4 for n2: ...)
//
// Replicas that refused the work as overloaded make it ErrOverloaded, as
// QuorumErr does.
func sloppyErr(op, pname, verb string, t *quorum.Tally, stands []stand, need, pneed int) error {
	owners, fbs := t.OKCount(), countOK(stands)
	detail, errs := t.Failures()
	for _, s := range stands {
		msg := ""
		switch s.state {
		case standOK:
			continue
		case standSent:
			msg = "no reply"
		default:
			msg = "failed"
			if s.err != nil {
				msg = s.err.Error()
				errs = append(errs, s.err)
			}
		}
		if detail != "" {
			detail += "; "
		}
		detail += "fallback " + s.fallback + " for " + s.owner + ": " + msg
	}
	var msg string
	switch {
	case owners+fbs < need:
		msg = fmt.Sprintf("%s: %s: %d of %d required %s (%d %s, %d %s", op, protocol.ErrQuorumNotReached.Error(), owners+fbs, need, verb,
			owners, plural(owners, "owner", "owners"), fbs, plural(fbs, "fallback", "fallbacks"))
	case owners < pneed:
		msg = fmt.Sprintf("%s: %s=%d but only %d primary %s %s (%d %s %s, %d of them %s", op, pname, pneed, owners, plural(owners, "owner", "owners"), verb,
			owners+fbs, plural(owners+fbs, "node", "nodes"), verb, fbs, plural(fbs, "fallback", "fallbacks"))
	default:
		return nil
	}
	if detail != "" {
		msg += "; " + detail
	}
	msg += ")"
	err := error(&sloppyError{msg: msg, errs: append([]error{protocol.ErrQuorumNotReached}, errs...)})
	return QuorumErr(errFunc(func(string) error { return err }), op)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// sloppyError is sloppyErr's error: like quorum.Tally.Err's, its first
// wrapped error is protocol.ErrQuorumNotReached, so that Classify gives
// quorum_not_reached whatever the nodes' errors were.
type sloppyError struct {
	msg  string
	errs []error
}

func (e *sloppyError) Error() string   { return e.msg }
func (e *sloppyError) Unwrap() []error { return e.errs }

// errFunc makes a function QuorumErr's argument.
type errFunc func(string) error

func (f errFunc) Err(op string) error { return f(op) }
