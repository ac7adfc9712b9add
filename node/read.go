package node

import (
	"sync"
	"time"

	"github.com/kvmesh/kvmesh/node/quorum"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// readOp reads a key from its owners. It asks r of them (its own replica
// first, from the local store), answers after r replies with their merged
// object, and asks the next owner whenever one fails; if the quorum is
// not in after a hedge delay it asks every owner left. Once every owner
// it asked answered (or the request timeout), it sends the merged object
// to those that answered with something older (read repair). Asking only
// r owners halves a quorum read's messages; the owners not asked are
// repaired by later reads and writes (and anti-entropy).
type readOp struct {
	n      *Node
	tag    uint64
	key    string
	p      int
	owners []string // this node first when it is an owner
	finish func(obj *protocol.Object, err error)

	mu        sync.Mutex
	tally     *quorum.Tally
	objs      map[string]*protocol.Object
	answered  map[string]bool
	asked     int // owners[:asked] were asked
	responded bool
	done      bool
	timer     *time.Timer
	hedge     *time.Timer
}

func (n *Node) coordinateRead(key string, p int, owners []string, r int, finish func(*protocol.Object, error)) {
	order := make([]string, 0, len(owners))
	if isOwner(owners, n.cfg.ID) {
		order = append(order, n.cfg.ID)
	}
	for _, o := range owners {
		if o != n.cfg.ID {
			order = append(order, o)
		}
	}
	op := &readOp{n: n, key: key, p: p, owners: order, finish: finish,
		tally: quorum.NewTally(order, r), objs: make(map[string]*protocol.Object, len(order)),
		answered: make(map[string]bool, len(order))}
	op.mu.Lock() // held until the timers exist: abort may come at once
	op.tag = n.pending.add(op)
	op.timer = time.AfterFunc(n.cfg.RequestTimeout, op.timeout)
	op.hedge = time.AfterFunc(n.cfg.RequestTimeout/8, func() { op.askMore(len(op.owners)) })
	op.mu.Unlock()
	op.askMore(r)
}

// askMore asks up to k more owners, in order.
func (op *readOp) askMore(k int) {
	op.mu.Lock()
	if op.done {
		op.mu.Unlock()
		return
	}
	from := op.asked
	op.asked = min(op.asked+k, len(op.owners))
	ask := op.owners[from:op.asked]
	op.mu.Unlock()
	local := false
	for _, o := range ask {
		if o == op.n.cfg.ID {
			local = true
			continue
		}
		op.n.send(o, op, protocol.Item{Tag: op.tag, Op: protocol.RPCRead, Key: op.key})
	}
	if local {
		obj, err := op.n.st.Get(op.p, op.key)
		op.result(op.n.cfg.ID, &protocol.Result{Tag: op.tag, Obj: obj}, err)
	}
}

func (op *readOp) result(from string, res *protocol.Result, err error) {
	if err == nil && res != nil {
		err = res.Error()
	}
	op.mu.Lock()
	if op.done || op.answered[from] || !isOwner(op.owners, from) {
		op.mu.Unlock()
		return
	}
	op.answered[from] = true
	if err != nil {
		op.tally.Fail(from, err)
	} else {
		op.objs[from] = res.Obj
		op.tally.OK(from)
	}
	retry := err != nil && op.asked < len(op.owners) && !op.tally.Succeeded()
	var answer func()
	if !op.responded && (op.tally.Succeeded() || len(op.answered) == len(op.owners)) {
		op.responded = true
		op.hedge.Stop()
		if op.tally.Succeeded() {
			merged, _ := quorum.MergeReads(op.objs)
			answer = func() { op.finish(merged, nil) }
		} else {
			qerr := quorumErr(op.tally, "get")
			answer = func() { op.finish(nil, qerr) }
		}
	}
	complete := op.responded && len(op.answered) == op.asked
	op.mu.Unlock()
	if answer != nil {
		answer()
	}
	if retry {
		op.askMore(1)
	}
	if complete {
		op.complete()
	}
}

func (op *readOp) timeout() {
	op.mu.Lock()
	var answer func()
	if !op.responded {
		op.responded = true
		qerr := quorumErr(op.tally, "get")
		answer = func() { op.finish(nil, qerr) }
	}
	op.mu.Unlock()
	if answer != nil {
		answer()
	}
	op.complete()
}

func (op *readOp) abort(err error) {
	op.mu.Lock()
	respond := !op.responded
	op.responded, op.done = true, true
	op.hedge.Stop()
	op.timer.Stop()
	op.mu.Unlock()
	if respond {
		op.finish(nil, err)
	}
}

// complete ends the operation and repairs the owners that answered with
// an older object.
func (op *readOp) complete() {
	op.mu.Lock()
	if op.done {
		op.mu.Unlock()
		return
	}
	op.done = true
	op.timer.Stop()
	op.hedge.Stop()
	merged, stale := quorum.MergeReads(op.objs)
	op.mu.Unlock()
	op.n.pending.remove(op.tag)
	if merged == nil || len(stale) == 0 {
		return
	}
	op.n.repair(op.p, op.key, merged, stale)
}

// repair sends obj to the given replicas (fire and forget: anti-entropy
// catches what a lost repair misses) and merges it locally if this node is
// among them.
func (n *Node) repair(p int, key string, obj *protocol.Object, nodes []string) {
	n.sendAll(nil, nodes, protocol.Item{Tag: noReplyTag, Op: protocol.RPCWrite, Key: key, Obj: obj})
	if isOwner(nodes, n.cfg.ID) {
		_ = n.st.Apply(p, key, syncInto(obj), func(*protocol.Object, error) {})
	}
}

// syncInto returns the store merge that folds obj into the stored object,
// writing nothing when the stored object already contains it.
func syncInto(obj *protocol.Object) func(*protocol.Object) (*protocol.Object, error) {
	return func(old *protocol.Object) (*protocol.Object, error) {
		m := version.Sync(old, obj)
		if old != nil && version.Equal(m, old) {
			return nil, nil
		}
		return m, nil
	}
}
