package coord

import (
	"fmt"
	"slices"
	"time"

	"github.com/kvmesh/kvmesh/node/quorum"
	"github.com/kvmesh/kvmesh/node/version"
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
//
// Digest reads (ReadSpec.Digests), as Cassandra's: when this node is an
// owner, the others are asked for the digest of their replica
// (Item.DigestOnly, version.Digest), in parallel with the local read. A
// digest equal to the local replica's counts as that replica's reply, and
// digest 0 as no object; one that differs costs a second request, for
// the object. What a digest
// saves is the value in every reply and the merge of equal objects; the
// nodes asked, the quorum and the repairs are a full read's.
//
// Sloppy quorum (ReadSpec.Fallbacks): the fallbacks of the ring walk
// come after the live owners and before the owners held down, and each
// failure lets one more node be asked: a read asks at most N nodes while
// none fails, and a fallback, which may hold a write sent in a down
// owner's place, only in place of an owner that is down or failed. A
// fallback's reply counts toward r and merges like any other; pr counts
// the owners' replies only. Repairs go to owners only: a fallback holds
// a hinted copy for its owner, not a replica.
type Read struct {
	key       string
	nodes     []string          // to ask, in order: this node first when it is an owner
	owners    []string          // the key's owners (the rest of nodes are fallbacks)
	self      bool              // nodes[0] is this node
	conflicts version.Conflicts // how replies merge (ReadSpec.Conflicts)
	tally     *quorum.Tally
	objs      map[string]*protocol.Object
	answered  map[string]bool
	asked     int // nodes[:asked] were asked
	limit     int // nodes[:limit] may be asked: N, and one more per failure
	pr        int
	primaryOK int // owners (not fallbacks) that replied
	responded bool
	done      bool

	// Digest reads (ReadSpec.Digests). localIn: this node's replica was
	// read, into local (localSum its digest), or failed (localErr).
	digests   bool
	localIn   bool
	localErr  bool
	local     *protocol.Object
	localSum  uint64 // once summed: the first digest to compare computes it
	summed    bool
	digested  []string // nodes asked for a digest
	refetched []string // of those, nodes asked again for the object
	parked    []parked // digests in before this node's replica
}

// parked is a digest that came before this node's replica.
type parked struct {
	from string
	sum  uint64
}

// ReadSpec is a read to coordinate: StartRead's argument.
type ReadSpec struct {
	Self string // this node
	Key  string
	// Owners are the key's owners, in the order to ask them (the
	// driver's: live ones first).
	Owners []string
	// R is the read quorum, 1..len(Owners); PR (0: none) how many of the
	// replies must come from owners, 0..len(Owners).
	R, PR int
	// Fallbacks are the ring's other members in preference order (nil:
	// a strict quorum); Down the nodes the failure detector holds down
	// now (nil: none).
	Fallbacks, Down []string
	// Conflicts is the store's mode, by which replies merge
	// (quorum.MergeReads). The zero value keeps siblings.
	Conflicts version.Conflicts
	// Digests makes it a digest read when Self is an owner: the other
	// nodes are asked for their replica's digest first.
	Digests bool
}

// NewRead starts a read of key from owners (the key's preference list)
// answered after r replies; self is this node's id. r must be 1..len(owners).
func NewRead(self, key string, owners []string, r int, now time.Time, timeout time.Duration) (*Read, Effects) {
	return StartRead(ReadSpec{Self: self, Key: key, Owners: owners, R: r}, now, timeout)
}

// StartRead starts the read s describes: NewRead, with a sloppy quorum
// when s has fallbacks, and with pr.
func StartRead(s ReadSpec, now time.Time, timeout time.Duration) (*Read, Effects) {
	down := func(id string) bool { return len(s.Down) > 0 && slices.Contains(s.Down, id) }
	sloppy := len(s.Fallbacks) > 0
	order := make([]string, 0, len(s.Owners)+len(s.Fallbacks))
	if slices.Contains(s.Owners, s.Self) {
		order = append(order, s.Self)
	}
	for _, o := range s.Owners {
		if o != s.Self && (!sloppy || !down(o)) {
			order = append(order, o)
		}
	}
	if sloppy {
		for _, f := range s.Fallbacks {
			if f != s.Self && !down(f) {
				order = append(order, f)
			}
		}
		for _, o := range s.Owners {
			if o != s.Self && down(o) {
				order = append(order, o)
			}
		}
	}
	op := &Read{key: s.Key, conflicts: s.Conflicts, nodes: order, owners: s.Owners, self: len(order) > 0 && order[0] == s.Self,
		tally:    quorum.NewTally(order, s.R),
		objs:     make(map[string]*protocol.Object, len(s.Owners)),
		answered: make(map[string]bool, len(s.Owners)),
		limit:    min(len(s.Owners), len(order)), pr: s.PR}
	op.digests = s.Digests && op.self
	eff := Effects{Arm: []Deadline{{Timeout, now.Add(timeout)}, {Hedge, now.Add(timeout / 8)}}}
	eff.merge(op.askMore(s.R))
	return op, eff
}

// askMore asks up to k more nodes, in order, within the limit.
func (op *Read) askMore(k int) Effects {
	var eff Effects
	from := op.asked
	op.asked = min(op.asked+k, op.limit)
	for i := from; i < op.asked; i++ {
		if i == 0 && op.self {
			eff.ReadLocal = true
			continue
		}
		it := protocol.Item{Op: protocol.RPCRead, Key: op.key}
		if op.digests && !op.localErr {
			it.DigestOnly = true
			op.digested = append(op.digested, op.nodes[i])
		}
		eff.Send = append(eff.Send, Send{To: op.nodes[i], Item: it})
	}
	return eff
}

// sum is the digest of this node's replica.
func (op *Read) sum() uint64 {
	if !op.summed {
		op.localSum, op.summed = version.Digest(op.key, op.local), true
	}
	return op.localSum
}

// refetch asks node from again, for its object: its digest differs from
// this node's replica, or this node's replica could not be read.
func (op *Read) refetch(from string) Effects {
	op.refetched = append(op.refetched, from)
	return Effects{Send: []Send{{To: from, Item: protocol.Item{Op: protocol.RPCRead, Key: op.key}}}}
}

// digestIn takes node from's digest: its reply if it matches this node's
// replica or says it has none (0), else a request for the object; kept
// until this node's replica is in.
func (op *Read) digestIn(from string, sum uint64) Effects {
	switch {
	case sum == 0: // no object there: that is the whole reply
	case !op.localIn:
		op.parked = append(op.parked, parked{from, sum})
		return Effects{}
	case op.localErr || sum != op.sum():
		eff := op.refetch(from)
		eff.DigestMisses = 1
		return eff
	}
	var obj *protocol.Object
	if sum != 0 {
		obj = op.local
	}
	eff := op.reply(from, obj, nil)
	eff.DigestMatches++
	return eff
}

// succeeded reports whether r nodes replied, pr owners among them.
func (op *Read) succeeded() bool { return op.tally.Succeeded() && op.primaryOK >= op.pr }

// OnResult takes one node's reply: its object in res, or the error (err
// when the node could not be reached). Replies from nodes not asked, and
// second replies, are ignored.
func (op *Read) OnResult(from string, res *protocol.Result, err error, now time.Time) Effects {
	if op.done || op.answered[from] || !slices.Contains(op.nodes[:op.asked], from) {
		return Effects{}
	}
	err = resultErr(res, err)
	var obj *protocol.Object
	if err == nil {
		obj = res.Obj
	}
	if op.digests {
		switch {
		case from == op.nodes[0]: // this node's replica
			op.localIn, op.localErr = true, err != nil
			op.local = obj
			eff := op.reply(from, obj, err)
			for _, p := range op.parked {
				eff.merge(op.digestIn(p.from, p.sum))
			}
			op.parked = nil
			return eff
		case err == nil && obj == nil && slices.Contains(op.digested, from) && !slices.Contains(op.refetched, from):
			// A digest (an older node answers with its object).
			return op.digestIn(from, res.Digest)
		}
	}
	return op.reply(from, obj, err)
}

// reply takes node from's reply to the read: its object, or err.
func (op *Read) reply(from string, obj *protocol.Object, err error) Effects {
	if op.done || op.answered[from] {
		return Effects{}
	}
	op.answered[from] = true
	if err != nil {
		op.tally.Fail(from, err)
		op.limit = min(op.limit+1, len(op.nodes))
	} else {
		op.objs[from] = obj
		op.tally.OK(from)
		if slices.Contains(op.owners, from) {
			op.primaryOK++
		}
	}
	var eff Effects
	last := len(op.answered) == op.asked && op.asked == op.limit // nothing more to ask, nothing more to come
	if !op.responded && (op.succeeded() || last) {
		op.responded = true
		if op.succeeded() {
			merged, _ := quorum.MergeReads(op.conflicts, op.objs)
			eff.Answer = &Answer{Obj: merged}
		} else {
			eff.Answer = &Answer{Err: op.err()}
		}
	}
	switch {
	case op.responded && len(op.answered) == op.asked:
		eff.merge(op.complete())
	case err != nil && op.asked < op.limit && !op.succeeded():
		eff.merge(op.askMore(1))
	}
	return eff
}

// err is the error of a read that did not succeed.
func (op *Read) err() error {
	if op.pr > 0 && op.tally.Succeeded() {
		detail, errs := op.tally.Failures()
		fbs := op.tally.OKCount() - op.primaryOK
		msg := fmt.Sprintf("get: pr=%d but only %d primary %s replied (%d %s replied, %d of them %s", op.pr, op.primaryOK,
			plural(op.primaryOK, "owner", "owners"), op.tally.OKCount(), plural(op.tally.OKCount(), "node", "nodes"), fbs, plural(fbs, "fallback", "fallbacks"))
		if detail != "" {
			msg += "; " + detail
		}
		err := error(&sloppyError{msg: msg + ")", errs: append([]error{protocol.ErrQuorumNotReached}, errs...)})
		return QuorumErr(errFunc(func(string) error { return err }), "get")
	}
	return QuorumErr(op.tally, "get")
}

// OnDeadline takes a deadline the read armed.
func (op *Read) OnDeadline(t Timer, now time.Time) Effects {
	if op.done {
		return Effects{}
	}
	switch t {
	case Hedge:
		if !op.responded {
			return op.askMore(len(op.nodes))
		}
	case Timeout:
		var eff Effects
		if !op.responded {
			op.responded = true
			eff.Answer = &Answer{Err: op.err()}
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
// older object (never a fallback).
func (op *Read) complete() Effects {
	if op.done {
		return Effects{}
	}
	op.done = true
	eff := Effects{Done: true}
	merged, stale := quorum.MergeReads(op.conflicts, op.objs)
	if len(op.nodes) > len(op.owners) {
		stale = slices.DeleteFunc(stale, func(id string) bool { return !slices.Contains(op.owners, id) })
	}
	if merged != nil && len(stale) > 0 {
		eff.Repair = &Repair{Obj: merged, To: stale}
	}
	return eff
}
