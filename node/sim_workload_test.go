package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/kvmesh/kvmesh/internal/history"
	"github.com/kvmesh/kvmesh/protocol"
)

// The simulation's workload and its history, in the shared checker's
// terms (internal/history). Every value is unique and sealed: a
// unique-key put writes Seal("v<client>.<seq>") under "u<client>.<seq>"
// (once), a set-add adds the element "e<client>.<seq>" to a hot key
// "hot<i>" whose value is history.EncodeSet of its elements.

// simOp is one recorded client operation: what the checker judges, and
// what a report adds to it, the node called and the clock it returned.
type simOp struct {
	history.Op
	Node  string
	Clock protocol.Clock // returned by put, add and del
}

func (o *simOp) String() string {
	s := o.Op.String() + " @" + o.Node
	if o.Clock != nil {
		s += " clock=" + history.ClockString(o.Clock)
	}
	return s
}

// simHistory is the log of every operation, appended by the clients.
type simHistory struct {
	mu  sync.Mutex
	ops []simOp
}

// add records op, numbering it, and returns it as recorded.
func (h *simHistory) add(op simOp) simOp {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.ID = len(h.ops) + 1
	h.ops = append(h.ops, op)
	return op
}

func (h *simHistory) snapshot() []simOp {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

func simLive(obj *protocol.Object) []string {
	if obj == nil {
		return nil
	}
	var out []string
	for _, s := range obj.Live() {
		out = append(out, string(s.Value))
	}
	return out
}

// simContext is a clock as a history context: "" for none.
func simContext(c protocol.Clock) string {
	if len(c) == 0 {
		return ""
	}
	return history.ClockString(c)
}

// simOwned is a unique key a client wrote and may delete.
type simOwned struct {
	key   string
	value string
	clock protocol.Clock
	acked time.Duration
}

// simClient is one client goroutine's state.
type simClient struct {
	r    *simRun
	id   int
	rng  *rand.Rand
	seq  int
	mine []simOwned
}

// run issues operations until stop is closed: 35% unique puts, 30%
// set-adds, 10% deletes of the client's own acknowledged unique keys, 25%
// reads.
func (c *simClient) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		time.Sleep(time.Duration(15+c.rng.IntN(61)) * time.Millisecond)
		c.seq++
		switch x := c.rng.IntN(100); {
		case x < 35:
			c.putUnique()
		case x < 65:
			c.setAdd()
		case x < 75 && len(c.mine) > 0 && c.r.now()-c.mine[0].acked > simDeleteAge:
			c.del()
		default:
			c.read()
		}
	}
}

// call runs one operation on a random live node, classifies its end and
// records it.
func (c *simClient) call(op simOp, f func(ctx context.Context, n simAPI, op *simOp) error) simOp {
	id, n, epoch := c.r.pick(c.rng)
	op.Worker, op.Node, op.Start = c.id, id, int64(c.r.now())
	ctx, cancel := context.WithTimeout(context.Background(), simOpTimeout)
	err := f(ctx, n, &op)
	cancel()
	op.End = int64(c.r.now())
	op.Outcome, op.Err = history.OutcomeOf(err)
	if c.r.crashedSince(id, epoch) {
		// The node called went down meanwhile: whatever it said came from
		// a process that is now gone, so nothing is known.
		op.Outcome = history.Unknown
		if err == nil {
			op.Err = "the node called crashed"
		}
	}
	return c.r.hist.add(op)
}

func (c *simClient) putUnique() {
	key := fmt.Sprintf("u%d.%d", c.id, c.seq)
	val := history.Seal(fmt.Sprintf("v%d.%d", c.id, c.seq))
	op := c.call(simOp{Op: history.Op{Kind: history.KindPut, Key: key, Value: val}},
		func(ctx context.Context, n simAPI, op *simOp) error {
			clock, err := n.Put(ctx, key, []byte(val), nil, 0)
			op.Clock = clock
			return err
		})
	if op.Outcome == history.OK {
		c.mine = append(c.mine, simOwned{key: key, value: val, clock: op.Clock, acked: time.Duration(op.End)})
	}
}

// simDeleteAge is how old a client's own key must be before it deletes
// it: a key acknowledged just before a crash then stays, so P1 can check
// it (a delete that was not refused excuses the put from P1).
const simDeleteAge = 2 * time.Second

// del deletes one of the client's own old keys: with the context of its
// put, which covers its value, or blind (the node reads a majority
// first).
func (c *simClient) del() {
	old := 0 // c.mine is in ack order
	for old < len(c.mine) && c.r.now()-c.mine[old].acked > simDeleteAge {
		old++
	}
	i := c.rng.IntN(old)
	o := c.mine[i]
	c.mine = slices.Delete(c.mine, i, i+1)
	op := simOp{Op: history.Op{Kind: history.KindDel, Key: o.key, Context: simContext(o.clock), Over: []string{o.value}}}
	cctx := o.clock
	if c.rng.IntN(2) == 0 {
		op.Context, op.Over, cctx = "", nil, nil
	}
	c.call(op, func(ctx context.Context, n simAPI, op *simOp) error {
		clock, err := n.Delete(ctx, o.key, cctx, 0)
		op.Clock = clock
		return err
	})
}

// read reads a random key with R=1 or R=2. An R=1 read is weak: with
// W=2 of 3 it need not see an acknowledged write (P6).
func (c *simClient) read() {
	c.get(c.r.randomKey(c.rng), 1+c.rng.IntN(2))
}

// get reads key with quorum r and records the read; it returns the read
// and the object the node answered.
func (c *simClient) get(key string, r int) (simOp, *protocol.Object) {
	var obj *protocol.Object
	op := c.call(simOp{Op: history.Op{Kind: history.KindRead, Key: key, Weak: r+simWriteQuorum <= simReplicas}},
		func(ctx context.Context, n simAPI, op *simOp) error {
			var err error
			obj, err = n.Get(ctx, key, r)
			op.Values = simLive(obj)
			op.Found, op.Siblings = len(op.Values) > 0, len(op.Values)
			if obj != nil {
				op.Context = simContext(obj.Clock)
			}
			return err
		})
	return op, obj
}

// setAdd is the Jepsen Riak set workload: read a hot key (r=2), take the
// union of its siblings, add a unique element and write it back with the
// read's context, so the write supersedes every sibling it merged.
func (c *simClient) setAdd() {
	key := fmt.Sprintf("hot%d", c.rng.IntN(c.r.cfg.hotKeys))
	rd, obj := c.get(key, 2)
	if rd.Outcome != history.OK {
		return
	}
	var elems []string
	for e := range history.Union(rd.Values) {
		elems = append(elems, e)
	}
	elem := fmt.Sprintf("e%d.%d", c.id, c.seq)
	val := history.EncodeSet(append(elems, elem))
	var cctx protocol.Clock
	if obj != nil {
		cctx = obj.Clock
	}
	c.call(simOp{Op: history.Op{Kind: history.KindAdd, Key: key, Elem: elem, Value: val, Context: simContext(cctx)}},
		func(ctx context.Context, n simAPI, op *simOp) error {
			clock, err := n.Put(ctx, key, []byte(val), cctx, 0)
			op.Clock = clock
			return err
		})
}
