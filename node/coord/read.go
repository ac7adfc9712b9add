package coord

import (
	"slices"
	"time"

	"github.com/kvmesh/kvmesh/node/quorum"
	"github.com/kvmesh/kvmesh/protocol"
)

// Read reads a key from its owners. It asks r of them (this node's own
// replica first, from the local store), answers after r replies with
// their merged object, and asks the next owner whenever one fails; if the
// quorum is not in by the hedge deadline (an eighth of the timeout) it
// asks every owner left. Once every owner it asked has answered, or at
// the timeout, it is done and repairs the owners that answered with
// something older than the merge. Asking only r owners halves a quorum
// read's messages; the owners not asked are repaired by later reads and
// writes.
type Read struct {
	key       string
	owners    []string // this node first when it is an owner
	self      bool     // owners[0] is this node
	tally     *quorum.Tally
	objs      map[string]*protocol.Object
	answered  map[string]bool
	asked     int // owners[:asked] were asked
	responded bool
	done      bool
}

// NewRead starts a read of key from owners (the key's preference list)
// answered after r replies; self is this node's id. r must be 1..len(owners).
func NewRead(self, key string, owners []string, r int, now time.Time, timeout time.Duration) (*Read, Effects) {
	order := make([]string, 0, len(owners))
	if slices.Contains(owners, self) {
		order = append(order, self)
	}
	for _, o := range owners {
		if o != self {
			order = append(order, o)
		}
	}
	op := &Read{key: key, owners: order, self: len(order) > 0 && order[0] == self,
		tally:    quorum.NewTally(order, r),
		objs:     make(map[string]*protocol.Object, len(order)),
		answered: make(map[string]bool, len(order))}
	eff := Effects{Arm: []Deadline{{Timeout, now.Add(timeout)}, {Hedge, now.Add(timeout / 8)}}}
	eff.merge(op.askMore(r))
	return op, eff
}

// askMore asks up to k more owners, in order.
func (op *Read) askMore(k int) Effects {
	var eff Effects
	from := op.asked
	op.asked = min(op.asked+k, len(op.owners))
	for i := from; i < op.asked; i++ {
		if i == 0 && op.self {
			eff.ReadLocal = true
			continue
		}
		eff.Send = append(eff.Send, Send{To: op.owners[i], Item: protocol.Item{Op: protocol.RPCRead, Key: op.key}})
	}
	return eff
}

// OnResult takes one owner's reply: its object in res, or the error (err
// when the owner could not be reached). Replies from nodes that are not
// owners, and second replies, are ignored.
func (op *Read) OnResult(from string, res *protocol.Result, err error, now time.Time) Effects {
	if op.done || op.answered[from] || !slices.Contains(op.owners, from) {
		return Effects{}
	}
	err = resultErr(res, err)
	op.answered[from] = true
	if err != nil {
		op.tally.Fail(from, err)
	} else {
		op.objs[from] = res.Obj
		op.tally.OK(from)
	}
	var eff Effects
	if !op.responded && (op.tally.Succeeded() || len(op.answered) == len(op.owners)) {
		op.responded = true
		if op.tally.Succeeded() {
			merged, _ := quorum.MergeReads(op.objs)
			eff.Answer = &Answer{Obj: merged}
		} else {
			eff.Answer = &Answer{Err: QuorumErr(op.tally, "get")}
		}
	}
	switch {
	case op.responded && len(op.answered) == op.asked:
		eff.merge(op.complete())
	case err != nil && op.asked < len(op.owners) && !op.tally.Succeeded():
		eff.merge(op.askMore(1))
	}
	return eff
}

// OnDeadline takes a deadline the read armed.
func (op *Read) OnDeadline(t Timer, now time.Time) Effects {
	if op.done {
		return Effects{}
	}
	switch t {
	case Hedge:
		if !op.responded {
			return op.askMore(len(op.owners))
		}
	case Timeout:
		var eff Effects
		if !op.responded {
			op.responded = true
			eff.Answer = &Answer{Err: QuorumErr(op.tally, "get")}
		}
		eff.merge(op.complete())
		return eff
	}
	return Effects{}
}

// Abort ends the read with err (the node is shutting down), without
// repairs.
func (op *Read) Abort(err error) Effects {
	if op.done {
		return Effects{}
	}
	var eff Effects
	if !op.responded {
		eff.Answer = &Answer{Err: err}
	}
	op.responded, op.done = true, true
	eff.Done = true
	return eff
}

// complete ends the read and repairs the owners that answered with an
// older object.
func (op *Read) complete() Effects {
	if op.done {
		return Effects{}
	}
	op.done = true
	eff := Effects{Done: true}
	if merged, stale := quorum.MergeReads(op.objs); merged != nil && len(stale) > 0 {
		eff.Repair = &Repair{Obj: merged, To: stale}
	}
	return eff
}
