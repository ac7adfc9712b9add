// Package coord decides how a node coordinates a client's read or write:
// which owners to ask and when, when a quorum is met or lost, what to
// answer, which replicas to repair, and where a write goes when this node
// may not issue its dot. Each operation is a small state machine (Read,
// Write, Forward): it starts with the effects to carry out, and each
// reply, local event and deadline given to it returns more.
//
// It is pure: no goroutines, no I/O, no clock (time comes in as an
// argument) and no locks (an operation is owned by one driver, which
// serialises its calls). The node is the driver: it sends the items,
// reads and writes its store, arms the deadlines on its Clock, and hands
// back what comes of them (node/drive.go). quorum.Tally counts the
// answers and quorum.MergeReads merges what reads return.
//
// Sloppy quorums with fallbacks and PW/PR are decided here (Write, Read),
// and a Read merges replies by the store's conflict mode
// (ReadSpec.Conflicts: siblings, or last-writer-wins); per-data-center
// quorums will be too.
package coord

import (
	"time"

	"github.com/kvmesh/kvmesh/protocol"
)

// Timer names a deadline an operation asks its driver to arm.
type Timer uint8

const (
	// Timeout is the request timeout: what has not answered by then has
	// failed.
	Timeout Timer = iota + 1
	// Hedge is a read's hedge: if the quorum is not in by then, ask every
	// owner not asked yet.
	Hedge
)

// Deadline asks the driver to call the operation's OnDeadline(Timer) at
// At (or as soon after as it can).
type Deadline struct {
	Timer Timer
	At    time.Time
}

// Send is one RPC item for node To. The driver sets Item.Tag to the
// operation's tag, so that the reply finds its way back.
type Send struct {
	To   string
	Item protocol.Item
}

// Answer is an operation's outcome for its client: a read's merged object
// (nil: no replica has the key), a write's causal context for the next
// write (and, from a Write, the new object it stored), or the error. A
// forwarded conditional write that lost its race answers ErrConflict
// with the key's clock in Ctx.
type Answer struct {
	Obj *protocol.Object
	Ctx protocol.Clock
	Err error
	// Fallbacks is how many fallbacks acknowledged a write that
	// succeeded (sloppy quorum).
	Fallbacks int
}

// Repair asks the driver to send Obj to the owners To (fire and forget)
// and to merge it into its own store if it is among them.
type Repair struct {
	Obj *protocol.Object
	To  []string
}

// Effects is what an operation asks its driver to do. The driver does it
// in field order: arm, answer, send, read locally, issue, repair, done.
type Effects struct {
	Arm    []Deadline
	Answer *Answer // given at most once per operation
	Send   []Send
	// ReadLocal: read the key from this node's store and hand the object
	// to OnResult as this node's reply.
	ReadLocal bool
	// Issue: issue the write's dot from this node's object of the key and
	// queue the local commit (Write only); report with OnLogged, OnStored
	// or OnIssueFailed.
	Issue  bool
	Repair *Repair
	// Done: the operation is over; the driver forgets it and stops its
	// deadlines. Later calls return no effects.
	Done bool
	// DigestMatches and DigestMisses count a digest read's digests taken
	// in this step: those that stood for the object (equal to this node's
	// replica, or 0: none there), and those that cost a second request
	// for it. For the driver's metrics.
	DigestMatches, DigestMisses int
}

// merge appends f's effects to e's.
func (e *Effects) merge(f Effects) {
	e.Arm = append(e.Arm, f.Arm...)
	if f.Answer != nil {
		e.Answer = f.Answer
	}
	e.Send = append(e.Send, f.Send...)
	e.ReadLocal = e.ReadLocal || f.ReadLocal
	e.Issue = e.Issue || f.Issue
	if f.Repair != nil {
		e.Repair = f.Repair
	}
	e.Done = e.Done || f.Done
	e.DigestMatches += f.DigestMatches
	e.DigestMisses += f.DigestMisses
}

// resultErr is the error of a reply: the transport's (err) or the one the
// replica put in its result.
func resultErr(res *protocol.Result, err error) error {
	if err == nil && res != nil {
		return res.Error()
	}
	return err
}
