package node_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kvmesh/kvmesh/protocol"
)

// The simulation's workload and its history. Every value is unique: a
// unique-key put writes "v<client>.<seq>" under "u<client>.<seq>" (once),
// a set-add adds the element "e<client>.<seq>" to a hot key "hot<i>" whose
// value is the sorted comma list of its elements.

// simOutcome is what a client learned about an operation.
type simOutcome int

const (
	simOK      simOutcome = iota
	simFail               // an error: a write may still have happened on some replicas
	simUnknown            // no answer in time, or the node called crashed meanwhile
)

func (o simOutcome) String() string {
	return [...]string{"ok", "fail", "unknown"}[o]
}

// simOp is one recorded client operation.
type simOp struct {
	Client   int
	Kind     string // "put" (unique key), "add" (set-add write), "del", "get"
	Key      string
	Value    string // put: the value; add: the element added; del: "ctx" or "noctx"
	Node     string // the node called
	Invoke   time.Duration
	Complete time.Duration
	Outcome  simOutcome
	Err      string
	Clock    protocol.Clock // returned by put, add and del
	Read     []string       // get: the live sibling values
	Siblings int            // get: live siblings
	Deps     int            // put: index of the op whose context it used (add: its read), else -1
}

func (o *simOp) String() string {
	s := fmt.Sprintf("%8.3fs..%8.3fs c%d %-3s %s", o.Invoke.Seconds(), o.Complete.Seconds(), o.Client, o.Kind, o.Key)
	if o.Value != "" {
		s += " " + o.Value
	}
	s += fmt.Sprintf(" @%s => %s", o.Node, o.Outcome)
	if o.Err != "" {
		s += " (" + o.Err + ")"
	}
	if o.Clock != nil {
		s += " clock=" + simClock(o.Clock)
	}
	if o.Kind == "get" && o.Outcome == simOK {
		s += fmt.Sprintf(" read=%q", o.Read)
	}
	return s
}

func simClock(c protocol.Clock) string {
	parts := make([]string, len(c))
	for i, d := range c {
		parts[i] = fmt.Sprintf("%s:%d", d.Node, d.Counter)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// simHistory is the log of every operation, appended by the clients.
type simHistory struct {
	mu      sync.Mutex
	ops     []*simOp
	invoked map[string]map[string]bool // key -> values (put) or elements (add) invoked
}

func newSimHistory() *simHistory {
	return &simHistory{invoked: make(map[string]map[string]bool)}
}

// invoke records that value (or element) is about to be written to key,
// before the write is sent: anything read later may contain it.
func (h *simHistory) invoke(key, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.invoked[key]
	if m == nil {
		m = make(map[string]bool)
		h.invoked[key] = m
	}
	m[value] = true
}

func (h *simHistory) add(op *simOp) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
	return len(h.ops) - 1
}

func (h *simHistory) snapshot() ([]*simOp, map[string]map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops), h.invoked
}

// simElements returns the elements of a set value.
func simElements(v []byte) []string {
	if len(v) == 0 {
		return nil
	}
	return strings.Split(string(v), ",")
}

// simSetValue encodes a set as its sorted comma list.
func simSetValue(elems map[string]bool) []byte {
	s := make([]string, 0, len(elems))
	for e := range elems {
		s = append(s, e)
	}
	slices.Sort(s)
	return []byte(strings.Join(s, ","))
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

// simOwned is a unique key a client wrote and may delete.
type simOwned struct {
	key   string
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

// call runs one operation on a random live node and classifies its end.
func (c *simClient) call(op *simOp, f func(ctx context.Context, n simAPI) error) {
	id, n, epoch := c.r.pick(c.rng)
	op.Client, op.Node, op.Invoke = c.id, id, c.r.now()
	ctx, cancel := context.WithTimeout(context.Background(), simOpTimeout)
	err := f(ctx, n)
	cancel()
	op.Complete = c.r.now()
	switch {
	case c.r.crashedSince(id, epoch):
		// The node called went down meanwhile: whatever it said came from
		// a process that is now gone, so nothing is known.
		op.Outcome = simUnknown
	case err == nil:
		op.Outcome = simOK
	case errors.Is(err, context.DeadlineExceeded):
		op.Outcome = simUnknown
	default:
		op.Outcome = simFail
	}
	if err != nil {
		op.Err = err.Error()
	}
}

func (c *simClient) putUnique() {
	key := fmt.Sprintf("u%d.%d", c.id, c.seq)
	val := fmt.Sprintf("v%d.%d", c.id, c.seq)
	c.r.hist.invoke(key, val)
	op := &simOp{Kind: "put", Key: key, Value: val, Deps: -1}
	c.call(op, func(ctx context.Context, n simAPI) error {
		clock, err := n.Put(ctx, key, []byte(val), nil, 0)
		op.Clock = clock
		return err
	})
	c.r.hist.add(op)
	if op.Outcome == simOK {
		c.mine = append(c.mine, simOwned{key: key, clock: op.Clock, acked: op.Complete})
	}
}

// simDeleteAge is how old a client's own key must be before it deletes
// it: a key acknowledged just before a crash then stays, so P1 can check
// it (a delete, whatever its outcome, excuses the put from P1).
const simDeleteAge = 2 * time.Second

func (c *simClient) del() {
	old := 0 // c.mine is in ack order
	for old < len(c.mine) && c.r.now()-c.mine[old].acked > simDeleteAge {
		old++
	}
	i := c.rng.IntN(old)
	o := c.mine[i]
	c.mine = slices.Delete(c.mine, i, i+1)
	op := &simOp{Kind: "del", Key: o.key, Value: "ctx", Deps: -1}
	var cctx protocol.Clock
	if c.rng.IntN(2) == 0 {
		cctx = o.clock
	} else {
		op.Value = "noctx" // the node reads a majority first
	}
	c.call(op, func(ctx context.Context, n simAPI) error {
		clock, err := n.Delete(ctx, o.key, cctx, 0)
		op.Clock = clock
		return err
	})
	c.r.hist.add(op)
}

func (c *simClient) read() {
	key := c.r.randomKey(c.rng)
	r := 1 + c.rng.IntN(2)
	op := &simOp{Kind: "get", Key: key, Value: fmt.Sprintf("r=%d", r), Deps: -1}
	c.call(op, func(ctx context.Context, n simAPI) error {
		obj, err := n.Get(ctx, key, r)
		op.Read, op.Siblings = simLive(obj), len(simLive(obj))
		return err
	})
	c.r.hist.add(op)
}

// setAdd is the Jepsen Riak set workload: read a hot key (r=2), take the
// union of its siblings, add a unique element and write it back with the
// read's context, so the write supersedes every sibling it merged.
func (c *simClient) setAdd() {
	key := fmt.Sprintf("hot%d", c.rng.IntN(c.r.cfg.hotKeys))
	rop := &simOp{Kind: "get", Key: key, Value: "r=2", Deps: -1}
	var obj *protocol.Object
	c.call(rop, func(ctx context.Context, n simAPI) error {
		var err error
		obj, err = n.Get(ctx, key, 2)
		rop.Read, rop.Siblings = simLive(obj), len(simLive(obj))
		return err
	})
	ri := c.r.hist.add(rop)
	if rop.Outcome != simOK {
		return
	}
	set := make(map[string]bool)
	for _, v := range rop.Read {
		for _, e := range simElements([]byte(v)) {
			set[e] = true
		}
	}
	elem := fmt.Sprintf("e%d.%d", c.id, c.seq)
	set[elem] = true
	c.r.hist.invoke(key, elem)
	var cctx protocol.Clock
	if obj != nil {
		cctx = obj.Clock
	}
	op := &simOp{Kind: "add", Key: key, Value: elem, Deps: ri}
	c.call(op, func(ctx context.Context, n simAPI) error {
		clock, err := n.Put(ctx, key, simSetValue(set), cctx, 0)
		op.Clock = clock
		return err
	})
	c.r.hist.add(op)
}
