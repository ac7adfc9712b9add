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
// Sloppy quorum (WriteSpec.Fallbacks): an owner the failure detector
// holds down gets no write; the next fallback of the ring walk takes it
// in its place at once, as a hinted write naming the owner (Item.Hint),
// and so does the next one whenever an owner (or a fallback standing in)
// fails. A fallback's acknowledgement counts toward w; pw counts only
// the owners' own, for clients that prefer an error to a write held by
// fallbacks.
//
// While the ring changes, a write is joint (NewJointWrite): it goes to
// the owners of the key in every ring a node may still read from, and
// needs w acknowledgements among each ring's owners, so that a quorum
// read in any of them sees it (Raft's joint consensus, per key). A joint
// write takes no fallbacks: which ring's quorum a fallback's copy would
// stand for is not clear, and a transition lasts a few heartbeats.
type Write struct {
	id       string // this node
	actor    string // the actor this node issues dots under
	key      string
	targets  []string       // every owner, of every ring, once
	ctx      protocol.Clock // the client's context
	del      bool
	tally    *quorum.Tally    // the owners' of the ring this node reads from
	joint    []*quorum.Tally  // the other rings' owners'
	answered int              // distinct targets that answered (or were passed over as down)
	obj      *protocol.Object // the new object, once logged
	done     bool

	// Sloppy quorum: w and pw, the ring walk's fallbacks, the nodes held
	// down, and the fallbacks standing in for owners.
	w, pw     int
	fallbacks []string
	down      []string
	next      int     // fallbacks[:next] were taken or passed over
	stands    []stand // in the order they were sent
}

// stand is a fallback standing in for an owner.
type stand struct {
	fallback, owner string
	state           uint8 // standSent, standOK or standFailed
	err             error
}

const (
	standSent uint8 = iota
	standOK
	standFailed
)

// WriteSpec is a write to coordinate: StartWrite's argument.
type WriteSpec struct {
	ID    string // this node, an owner of the key
	Actor string // the actor this node issues dots under
	Key   string
	// Owners are the key's owners in the serving ring, in preference
	// order; Also the owner sets of the other rings a joint write must
	// reach too (nil while no transition is on).
	Owners []string
	Also   [][]string
	Ctx    protocol.Clock // the client's context
	Del    bool
	// W is the write quorum, 1..len(Owners); PW (0: none) how many of
	// the acknowledgements must come from owners, 0..len(Owners).
	W, PW int
	// Fallbacks are the ring's other members in preference order (the
	// ring walk after the owners): nil for a strict quorum. Down are the
	// nodes the failure detector holds down now (nil: none).
	Fallbacks, Down []string
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
	return StartWrite(WriteSpec{ID: id, Actor: actor, Key: key, Owners: owners, Also: also, Ctx: ctx, Del: del, W: w}, now, timeout)
}

// StartWrite starts the write s describes: NewJointWrite, with a sloppy
// quorum when s has fallbacks and no other ring, and with pw.
func StartWrite(s WriteSpec, now time.Time, timeout time.Duration) (*Write, Effects) {
	op := &Write{id: s.ID, actor: s.Actor, key: s.Key, targets: s.Owners, ctx: s.Ctx, del: s.Del,
		tally: quorum.NewTally(s.Owners, s.W), w: s.W, pw: s.PW}
	if len(s.Also) == 0 {
		op.fallbacks, op.down = s.Fallbacks, s.Down
	} else {
		op.targets = slices.Clone(s.Owners) // grows below; owners is the caller's
	}
	for _, set := range s.Also {
		op.joint = append(op.joint, quorum.NewTally(set, min(s.W, len(set))))
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
// file: it may leave the node now, to the other owners, and to a
// fallback in place of each owner held down.
func (op *Write) OnLogged(obj *protocol.Object) Effects {
	if op.done {
		return Effects{}
	}
	op.obj = obj
	var eff Effects
	for _, o := range op.targets {
		if o == op.id {
			continue
		}
		if len(op.down) > 0 && slices.Contains(op.down, o) {
			if s, ok := op.standIn(o); ok {
				op.tally.Fail(o, errHeldDown)
				op.answered++
				eff.Send = append(eff.Send, s)
				continue
			}
		}
		eff.Send = append(eff.Send, Send{To: o, Item: protocol.Item{Op: protocol.RPCWrite, Key: op.key, Obj: obj}})
	}
	return eff
}

// errHeldDown is the failure of an owner a sloppy write passed over.
var errHeldDown = protocol.Errorf(protocol.ErrNodeUnavailable, "held down by the failure detector")

// standIn picks the next fallback that is not down to stand in for
// owner, and returns the hinted write to send it; false when none is
// left (or the write takes no fallbacks).
func (op *Write) standIn(owner string) (Send, bool) {
	for op.next < len(op.fallbacks) {
		f := op.fallbacks[op.next]
		op.next++
		if f == op.id || slices.Contains(op.down, f) {
			continue
		}
		op.stands = append(op.stands, stand{fallback: f, owner: owner})
		return Send{To: f, Item: protocol.Item{Op: protocol.RPCWrite, Key: op.key, Obj: op.obj, Hint: owner}}, true
	}
	return Send{}, false
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
// when it could not be reached, err), or a fallback's. A failed owner, or
// fallback, of a sloppy write has the next fallback stand in for it.
func (op *Write) OnResult(from string, res *protocol.Result, err error, now time.Time) Effects {
	if op.done {
		return Effects{}
	}
	err = resultErr(res, err)
	var eff Effects
	if i := op.stand(from); i >= 0 {
		st := &op.stands[i]
		if err != nil {
			st.state, st.err = standFailed, err
			if s, ok := op.standIn(st.owner); ok {
				eff.Send = append(eff.Send, s)
			}
		} else {
			st.state = standOK
		}
		return op.settle(eff)
	}
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
	if err != nil && op.obj != nil && op.next < len(op.fallbacks) {
		if s, ok := op.standIn(from); ok {
			eff.Send = append(eff.Send, s)
		}
	}
	return op.settle(eff)
}

// stand returns the index of fallback f's stand still waited for, or -1.
func (op *Write) stand(f string) int {
	for i := range op.stands {
		if op.stands[i].fallback == f && op.stands[i].state == standSent {
			return i
		}
	}
	return -1
}

// settle ends the write once it succeeded, or once nothing it waits for
// is left; otherwise it returns eff.
func (op *Write) settle(eff Effects) Effects {
	switch {
	case op.succeeded():
		eff.merge(op.end(Answer{Obj: op.obj, Ctx: WriteContext(op.obj, op.ctx, op.actor), Fallbacks: countOK(op.stands)}))
	case op.answered == len(op.targets) && !op.waitingOnStands():
		eff.merge(op.end(Answer{Err: op.err()}))
	}
	return eff
}

// waitingOnStands reports whether a fallback's answer is still due.
func (op *Write) waitingOnStands() bool {
	for i := range op.stands {
		if op.stands[i].state == standSent {
			return true
		}
	}
	return false
}

// succeeded reports whether every ring's owners acknowledged enough; for
// a sloppy write, whether w nodes did, owners or fallbacks, pw owners
// among them.
func (op *Write) succeeded() bool {
	if len(op.stands) > 0 || op.pw > 0 {
		owners := op.tally.OKCount()
		return owners+countOK(op.stands) >= op.w && owners >= op.pw
	}
	return op.tally.Succeeded() && !slices.ContainsFunc(op.joint, func(t *quorum.Tally) bool { return !t.Succeeded() })
}

// err is the quorum error of the first ring whose owners did not
// acknowledge enough: the read ring's, then the others'. A sloppy write
// that fell short also says what its fallbacks did; one that missed pw
// says that owners were missing.
func (op *Write) err() error {
	if len(op.stands) > 0 || op.pw > 0 {
		return sloppyErr(OpName(op.del), "pw", "acknowledged", op.tally, op.stands, op.w, op.pw)
	}
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
