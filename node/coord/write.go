package coord

import (
	"slices"
	"time"

	"github.com/kvmesh/kvmesh/node/quorum"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Write coordinates one put or delete at an owner of the key: the driver
// issues the write's dot from the local object and queues the local
// commit (Issue); as soon as the new object is in the local log
// (OnLogged) it goes to the other owners, so the local and remote fsyncs
// overlap; the write answers after w durable acknowledgements, the local
// one (OnStored) included. If w cannot be reached it waits for every
// owner's answer, or the timeout, so the error says how many replicas
// hold the write.
//
// While the ring changes, a write is joint (NewJointWrite): it goes to
// the owners of the key in every ring a node may still read from, and
// needs w acknowledgements among each ring's owners, so that a quorum
// read in any of them sees it (Raft's joint consensus, per key).
type Write struct {
	id       string // this node
	actor    string // the actor this node issues dots under
	key      string
	targets  []string       // every owner, of every ring, once
	ctx      protocol.Clock // the client's context
	del      bool
	tally    *quorum.Tally    // the owners' of the ring this node reads from
	joint    []*quorum.Tally  // the other rings' owners'
	answered int              // distinct targets that answered
	obj      *protocol.Object // the new object, once logged
	done     bool
}

// NewWrite starts a write of key, a delete when del, with the client's
// context ctx, at node id (an owner of the key, issuing as actor),
// answered after w acknowledgements of owners. w must be
// 1..len(owners).
func NewWrite(id, actor, key string, owners []string, ctx protocol.Clock, del bool, w int, now time.Time, timeout time.Duration) (*Write, Effects) {
	return NewJointWrite(id, actor, key, owners, nil, ctx, del, w, now, timeout)
}

// NewJointWrite is NewWrite for a key whose owners change: the write
// also goes to each owner set in also, and needs min(w, its size)
// acknowledgements among each of them too.
func NewJointWrite(id, actor, key string, owners []string, also [][]string, ctx protocol.Clock, del bool, w int, now time.Time, timeout time.Duration) (*Write, Effects) {
	op := &Write{id: id, actor: actor, key: key, targets: owners, ctx: ctx, del: del, tally: quorum.NewTally(owners, w)}
	if len(also) > 0 {
		op.targets = slices.Clone(owners) // grows below; owners is the caller's
	}
	for _, set := range also {
		op.joint = append(op.joint, quorum.NewTally(set, min(w, len(set))))
		for _, o := range set {
			if !slices.Contains(op.targets, o) {
				op.targets = append(op.targets, o)
			}
		}
	}
	return op, Effects{Arm: []Deadline{{Timeout, now.Add(timeout)}}, Issue: true}
}

// OnIssueFailed ends a write whose dot was not issued: nothing was
// written anywhere, and err says why.
func (op *Write) OnIssueFailed(err error) Effects { return op.end(Answer{Err: err}) }

// OnLogged takes the new object once its record is in the local log
// file: it may leave the node now, to the other owners.
func (op *Write) OnLogged(obj *protocol.Object) Effects {
	if op.done {
		return Effects{}
	}
	op.obj = obj
	var eff Effects
	for _, o := range op.targets {
		if o != op.id {
			eff.Send = append(eff.Send, Send{To: o, Item: protocol.Item{Op: protocol.RPCWrite, Key: op.key, Obj: obj}})
		}
	}
	return eff
}

// OnStored takes the local commit's outcome: nil once it is durable. A
// write that failed before it was logged went nowhere and ends with the
// error; one that failed after counts as this replica's failure.
func (op *Write) OnStored(err error, now time.Time) Effects {
	if err != nil && op.obj == nil {
		return op.end(Answer{Err: err})
	}
	return op.OnResult(op.id, nil, err, now)
}

// OnResult takes one owner's acknowledgement, or its failure (in res or,
// when it could not be reached, err).
func (op *Write) OnResult(from string, res *protocol.Result, err error, now time.Time) Effects {
	if op.done {
		return Effects{}
	}
	err = resultErr(res, err)
	changed := false // false for a node that is no target, or that answered already
	for i := -1; i < len(op.joint); i++ {
		t := op.tally
		if i >= 0 {
			t = op.joint[i]
		}
		if err != nil {
			changed = t.Fail(from, err) || changed
		} else {
			changed = t.OK(from) || changed
		}
	}
	if !changed {
		return Effects{}
	}
	op.answered++
	switch {
	case op.succeeded():
		return op.end(Answer{Ctx: WriteContext(op.obj, op.ctx, op.actor)})
	case op.answered == len(op.targets):
		return op.end(Answer{Err: op.err()})
	}
	return Effects{}
}

// succeeded reports whether every ring's owners acknowledged enough.
func (op *Write) succeeded() bool {
	return op.tally.Succeeded() && !slices.ContainsFunc(op.joint, func(t *quorum.Tally) bool { return !t.Succeeded() })
}

// err is the quorum error of the first ring whose owners did not
// acknowledge enough: the read ring's, then the others'.
func (op *Write) err() error {
	if !op.tally.Succeeded() {
		return QuorumErr(op.tally, OpName(op.del))
	}
	for _, t := range op.joint {
		if !t.Succeeded() {
			return QuorumErr(t, OpName(op.del))
		}
	}
	return nil
}

// OnDeadline takes the write's timeout.
func (op *Write) OnDeadline(t Timer, now time.Time) Effects {
	if t != Timeout {
		return Effects{}
	}
	return op.end(Answer{Err: op.err()})
}

// Abort ends the write with err (the node is shutting down).
func (op *Write) Abort(err error) Effects { return op.end(Answer{Err: err}) }

func (op *Write) end(a Answer) Effects {
	if op.done {
		return Effects{}
	}
	op.done = true
	return Effects{Answer: &a, Done: true}
}

// OpName is "delete" for a delete, else "put".
func OpName(del bool) string {
	if del {
		return "delete"
	}
	return "put"
}

// WriteContext is the causal context a put or delete reply gives back
// (obj is the new object, ctx the client's context, self the actor that
// issued the write), so that the client's next write of the key
// supersedes this one. It may cover only what the client has seen (its
// own context and the new dot) and tombstones, which hold no value a
// client could lose. So:
//
//   - the whole new clock when no live sibling but the new one survives
//     (everything else it covers is superseded or deleted already);
//   - else the client's context plus a version-vector entry for this
//     node, when no other live sibling of this node survives (the entry
//     covers every dot of the node up to the new one);
//   - else the client's context alone: a following write with it keeps
//     this one as a sibling, and the client has to read to supersede it.
//     That takes two live writes through the same node that did not see
//     each other.
func WriteContext(obj *protocol.Object, ctx protocol.Clock, self string) protocol.Clock {
	if obj == nil {
		return ctx
	}
	newDot := protocol.Dot{Node: self, Counter: version.Get(obj.Clock, self)}
	others, own := 0, 0 // live siblings besides the new one; of them, this node's
	for _, s := range obj.Siblings {
		if s.Deleted || s.Dot == newDot {
			continue
		}
		others++
		if s.Dot.Node == self {
			own++
		}
	}
	switch {
	case others == 0:
		return obj.Clock
	case own == 0:
		return version.Join(ctx, protocol.Clock{newDot})
	}
	return ctx
}
