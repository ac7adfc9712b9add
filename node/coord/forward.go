package coord

import (
	"errors"
	"time"

	"github.com/kvmesh/kvmesh/protocol"
)

// Forward hands a client write to an owner of the key when this node may
// not coordinate it (it is not an owner, or its store takes no writes):
// only an owner can issue the write's dot from its local object. Owners
// are tried in preference order; the next one only when the current one
// cannot be reached at all (no responders), never after it may have
// written.
type Forward struct {
	owners []string
	item   protocol.Item
	next   int // index of the owner tried now
	done   bool
}

// NewForward starts forwarding item (an RPCCoordinate) to owners, which
// must not be empty. timeout allows for the owner's own quorum round.
func NewForward(owners []string, item protocol.Item, now time.Time, timeout time.Duration) (*Forward, Effects) {
	op := &Forward{owners: owners, item: item}
	return op, Effects{Arm: []Deadline{{Timeout, now.Add(timeout)}}, Send: []Send{{To: owners[0], Item: item}}}
}

// OnResult takes the owner's answer (the write's context, or its error in
// res) or err when it could not be reached.
func (op *Forward) OnResult(from string, res *protocol.Result, err error, now time.Time) Effects {
	if op.done || from != op.owners[op.next] {
		return Effects{}
	}
	if err != nil && errors.Is(err, protocol.ErrNodeUnavailable) && op.next+1 < len(op.owners) {
		op.next++
		return Effects{Send: []Send{{To: op.owners[op.next], Item: op.item}}}
	}
	switch {
	case err != nil:
		return op.end(Answer{Err: protocol.Errorf(protocol.ErrQuorumNotReached, "%s: no owner of the key reachable (%v)", OpName(op.item.Del), err)})
	case res.Error() != nil:
		return op.end(Answer{Err: res.Error(), Ctx: res.Ctx})
	}
	return op.end(Answer{Ctx: res.Ctx})
}

// OnDeadline takes the forward's timeout.
func (op *Forward) OnDeadline(t Timer, now time.Time) Effects {
	if t != Timeout || op.done {
		return Effects{}
	}
	return op.end(Answer{Err: protocol.Errorf(protocol.ErrQuorumNotReached, "%s: owner %s did not answer in time", OpName(op.item.Del), op.owners[op.next])})
}

// Abort ends the forward with err (the node is shutting down).
func (op *Forward) Abort(err error) Effects { return op.end(Answer{Err: err}) }

func (op *Forward) end(a Answer) Effects {
	if op.done {
		return Effects{}
	}
	op.done = true
	return Effects{Answer: &a, Done: true}
}
