package coord

import (
	"errors"

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
