package coord

import (
	"cmp"
	"errors"
	"slices"

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
