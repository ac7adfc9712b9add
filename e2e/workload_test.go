package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/history"
)

// The shape of the fault suite's workload (notes/reliability.md section 6,
// T2): 8 workers; 10 hot keys, each written by 4 of them.
const (
	numWorkers = 8
	numHotKeys = 10
	numRegKeys = 20
	numOwnKeys = 2 // overwritten keys per worker
)

// workload drives the clients of a fault run and records every operation
// in a history. Each worker has its own client (connected first to node
// i mod 5) and its own seeded random source; together they run at a
// bounded rate:
//
//   - 25% puts of unique keys (value = a sealed unique id);
//   - 10% overwrites of one of the worker's 2 own keys, which only it
//     writes: a put with the context of its last acknowledged write of
//     the key (none after a delete), or of a read when that write's
//     outcome is unknown; a third of them are deletes, half of those
//     without a context. Each write records the values its context
//     covers (history.Op.Over): a value it superseded must never come
//     back (P7), and a put is excused from P1 only by a write or delete
//     that could supersede it;
//   - 5% blind puts (no context) of a unique value to one of 20 register
//     keys that every worker writes: without a context each is concurrent
//     with everything stored, so every acknowledged one must stay a
//     sibling. They are the only writes whose dot no context protects:
//     a coordinator that lost a dot it had already sent to the other
//     replicas would issue it again for another value;
//   - 30% set-adds on the worker's hot keys: get (R=2), union of the
//     sibling sets plus a new element, put with the get's context;
//   - 20% reads: a hot key, a register key or a recently acknowledged
//     unique key;
//   - 10% deletes of one of the worker's own acknowledged unique keys,
//     half with the context its put returned, half without (the node
//     then reads a majority first and supersedes what it saw).
//
// A workload is safe for concurrent use by its workers.
type workload struct {
	t0        time.Time
	clients   []*client.Client
	rate      int // operations per second, all workers together
	opTimeout time.Duration
	putOpts   []client.CallOption // the unique puts' options (the planted test's W=1)
	seed      int64
	hot       []string
	regs      []string       // register keys, written blind by every worker
	hotOf     [][]string     // the hot keys each worker writes
	ownOf     [][]string     // the overwritten keys of each worker
	writers   map[string]int // writers per hot key

	mu    sync.Mutex
	ops   []history.Op
	acked []string // unique keys whose put was acknowledged, for reads
}

func newWorkload(clients []*client.Client, seed int64, rate int) *workload {
	w := &workload{t0: time.Now(), clients: clients, rate: rate, opTimeout: 5 * time.Second, seed: seed,
		hotOf: make([][]string, len(clients)), ownOf: make([][]string, len(clients)), writers: map[string]int{}}
	for i := range clients {
		for k := range numOwnKeys {
			w.ownOf[i] = append(w.ownOf[i], fmt.Sprintf("o.%d.%d", i, k))
		}
	}
	for k := 0; k < numRegKeys; k++ {
		w.regs = append(w.regs, fmt.Sprintf("r.%d", k))
	}
	for k := 0; k < numHotKeys; k++ {
		key := fmt.Sprintf("h.%d", k)
		w.hot = append(w.hot, key)
		for i := range clients {
			if k%2 == i%2 {
				w.hotOf[i] = append(w.hotOf[i], key)
				w.writers[key]++
			}
		}
	}
	return w
}

// now is the time since the run began, in nanoseconds.
func (w *workload) now() int64 { return int64(time.Since(w.t0)) }

func (w *workload) record(op history.Op) {
	w.mu.Lock()
	op.ID = len(w.ops) + 1
	w.ops = append(w.ops, op)
	w.mu.Unlock()
}

// history returns a copy of the operations recorded so far.
func (w *workload) history() []history.Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.ops)
}

// keys returns every key the history touched, sorted.
func (w *workload) keys() []string {
	w.mu.Lock()
	set := map[string]bool{}
	for _, op := range w.ops {
		set[op.Key] = true
	}
	w.mu.Unlock()
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// initHot writes every hot key as the empty set to all its replicas
// (W=all), so that a dump shows who owns it. Retried until it succeeds.
func (w *workload) initHot(ctx context.Context, cl *client.Client) error {
	val := history.EncodeSet(nil)
	for _, key := range w.hot {
		for {
			op := history.Op{Worker: -1, Kind: history.KindAdd, Key: key, Value: val, Start: w.now()}
			octx, cancel := context.WithTimeout(ctx, w.opTimeout)
			_, err := cl.Put(octx, key, []byte(val), client.W("all"))
			cancel()
			op.End = w.now()
			op.Outcome, op.Err = history.OutcomeOf(err)
			w.record(op)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("init hot key %s: %w", key, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// run drives the workers until ctx is done and returns when every worker
// has finished its last operation (each bounded by opTimeout).
func (w *workload) run(ctx context.Context) {
	tokens := make(chan struct{}, len(w.clients))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(w.rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				select {
				case tokens <- struct{}{}:
				default: // every worker is busy: the rate stays bounded
				}
			}
		}
	}()
	for i := range w.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.worker(ctx, i, tokens)
		}()
	}
	wg.Wait()
}

// workerState is one worker's own: only its goroutine touches it.
type workerState struct {
	id  int
	cl  *client.Client
	rnd *rand.Rand
	seq int
	own []ownKey // its acknowledged, not yet deleted unique keys
	ow  map[string]*overState
}

type ownKey struct{ key, value, ctx string }

// overState is what a worker knows of one of its overwritten keys.
type overState struct {
	ctx   string   // the context for the next write ("" after a delete)
	over  []string // the values ctx certainly covers
	stale bool     // the last write's outcome is unknown: read first
}

func (w *workload) worker(ctx context.Context, id int, tokens <-chan struct{}) {
	s := &workerState{id: id, cl: w.clients[id], rnd: rand.New(rand.NewPCG(uint64(w.seed), uint64(id))), ow: map[string]*overState{}}
	for _, k := range w.ownOf[id] {
		s.ow[k] = &overState{}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tokens:
		}
		switch x := s.rnd.IntN(100); {
		case x < 25:
			w.put(s)
		case x < 35:
			w.overwrite(s)
		case x < 40:
			w.blind(s)
		case x < 70:
			w.add(s)
		case x < 90:
			w.read(s)
		case len(s.own) > 0:
			w.del(s)
		default:
			w.put(s)
		}
	}
}

// strictness picks an operation's quorum: one in three is strict (PW or
// PR = the quorum: only owners count, so a strict read sees every strict
// write acknowledged before it, P6), the others sloppy (fallbacks may
// stand in for owners that are down: a sloppy write is marked so, and a
// sloppy read is weak, neither held to P6).
func (w *workload) strictness(s *workerState) (strict bool) { return s.rnd.IntN(3) == 0 }

// writeOpts adds a write's quorum option and marks op sloppy if it is.
func writeOpts(strict bool, op *history.Op, opts []client.CallOption) []client.CallOption {
	if strict {
		return append(opts, client.PW("quorum"))
	}
	op.Sloppy = true
	return opts
}

func (w *workload) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), w.opTimeout)
}

func (w *workload) put(s *workerState) {
	s.seq++
	key := fmt.Sprintf("u.%d.%d", s.id, s.seq)
	op := history.Op{Worker: s.id, Kind: history.KindPut, Key: key, Value: history.Seal("u:" + key), Start: w.now()}
	opts := w.putOpts
	if len(opts) == 0 {
		opts = writeOpts(w.strictness(s), &op, nil)
	}
	ctx, cancel := w.opContext()
	pctx, err := s.cl.Put(ctx, key, []byte(op.Value), opts...)
	cancel()
	op.End = w.now()
	op.Outcome, op.Err = history.OutcomeOf(err)
	w.record(op)
	if op.Outcome == history.OK {
		s.own = append(s.own, ownKey{key, op.Value, pctx})
		w.mu.Lock()
		w.acked = append(w.acked, key)
		w.mu.Unlock()
	}
}

// overwrite writes or deletes one of the worker's own keys, superseding
// what it last wrote there.
func (w *workload) overwrite(s *workerState) {
	mine := w.ownOf[s.id]
	key := mine[s.rnd.IntN(len(mine))]
	st := s.ow[key]
	strict := w.strictness(s)
	if st.stale {
		rd, ok := w.get(s, key, strict)
		if !ok {
			return
		}
		st.ctx, st.over, st.stale = rd.Context, rd.Values, false
	}
	s.seq++
	var opts []client.CallOption
	if st.ctx != "" {
		opts = append(opts, client.Context(st.ctx))
	}
	op := history.Op{Worker: s.id, Key: key, Context: st.ctx, Over: st.over, Start: w.now()}
	ctx, cancel := w.opContext()
	var pctx string
	var err error
	if s.rnd.IntN(3) == 0 {
		op.Kind = history.KindDel
		if s.rnd.IntN(2) == 0 {
			op.Context, op.Over, opts = "", nil, nil
		}
		opts = writeOpts(strict, &op, opts)
		err = s.cl.Delete(ctx, key, opts...)
	} else {
		op.Kind = history.KindPut
		op.Value = history.Seal(fmt.Sprintf("o:%s:w%d-%d", key, s.id, s.seq))
		opts = writeOpts(strict, &op, opts)
		pctx, err = s.cl.Put(ctx, key, []byte(op.Value), opts...)
	}
	cancel()
	op.End = w.now()
	op.Outcome, op.Err = history.OutcomeOf(err)
	w.record(op)
	switch {
	case op.Outcome == history.Unknown:
		st.stale = true
	case op.Outcome == history.Fail:
	case op.Kind == history.KindDel:
		st.ctx, st.over = "", nil
	case pctx == op.Context:
		// The reply gave back the context sent: another live value
		// written through the same node survives beside this one (an
		// earlier write of unknown outcome), so no context covers this
		// one yet. Read first, as a client must then.
		st.stale = true
	default:
		st.ctx, st.over = pctx, []string{op.Value}
	}
}

func (w *workload) blind(s *workerState) {
	s.seq++
	key := w.regs[s.rnd.IntN(len(w.regs))]
	op := history.Op{Worker: s.id, Kind: history.KindPut, Key: key,
		Value: history.Seal(fmt.Sprintf("r:%s:w%d-%d", key, s.id, s.seq)), Start: w.now()}
	opts := writeOpts(w.strictness(s), &op, nil)
	ctx, cancel := w.opContext()
	_, err := s.cl.Put(ctx, key, []byte(op.Value), opts...)
	cancel()
	op.End = w.now()
	op.Outcome, op.Err = history.OutcomeOf(err)
	w.record(op)
}

// get reads key and records the read; ok reports whether it answered.
// A strict read counts owners only (PR); a sloppy one is weak.
func (w *workload) get(s *workerState, key string, strict bool) (history.Op, bool) {
	op := history.Op{Worker: s.id, Kind: history.KindRead, Key: key, Start: w.now(), Weak: !strict}
	var opts []client.CallOption
	if strict {
		opts = append(opts, client.PR("quorum"))
	}
	ctx, cancel := w.opContext()
	e, err := s.cl.Get(ctx, key, opts...)
	cancel()
	op.End = w.now()
	op.Outcome, op.Err = history.OutcomeOf(err)
	if err == nil {
		op.Found, op.Siblings, op.Context = true, e.Siblings, e.Context
		for _, v := range e.Values {
			op.Values = append(op.Values, string(v))
		}
	}
	w.record(op)
	return op, op.Outcome == history.OK
}

func (w *workload) add(s *workerState) {
	mine := w.hotOf[s.id]
	key := mine[s.rnd.IntN(len(mine))]
	strict := w.strictness(s)
	rd, ok := w.get(s, key, strict)
	if !ok {
		return
	}
	var elems []string
	for e := range history.Union(rd.Values) {
		elems = append(elems, e)
	}
	s.seq++
	elem := fmt.Sprintf("w%d-%d", s.id, s.seq)
	op := history.Op{Worker: s.id, Kind: history.KindAdd, Key: key, Elem: elem,
		Value: history.EncodeSet(append(elems, elem)), Context: rd.Context, Start: w.now()}
	opts := writeOpts(strict, &op, []client.CallOption{client.Context(rd.Context)})
	ctx, cancel := w.opContext()
	_, err := s.cl.Put(ctx, key, []byte(op.Value), opts...)
	cancel()
	op.End = w.now()
	op.Outcome, op.Err = history.OutcomeOf(err)
	w.record(op)
}

func (w *workload) read(s *workerState) {
	key := w.hot[s.rnd.IntN(len(w.hot))]
	switch s.rnd.IntN(7) {
	case 0, 1: // a hot key
	case 2:
		key = w.regs[s.rnd.IntN(len(w.regs))]
	case 3: // anyone's overwritten key
		own := w.ownOf[s.rnd.IntN(len(w.ownOf))]
		key = own[s.rnd.IntN(len(own))]
	default:
		w.mu.Lock()
		if n := len(w.acked); n > 0 {
			recent := min(n, 200)
			key = w.acked[n-1-s.rnd.IntN(recent)]
		}
		w.mu.Unlock()
	}
	w.get(s, key, w.strictness(s))
}

func (w *workload) del(s *workerState) {
	i := s.rnd.IntN(len(s.own))
	k := s.own[i]
	s.own = slices.Delete(s.own, i, i+1)
	// The context of the key's only put, on a key nobody else writes,
	// covers its value.
	op := history.Op{Worker: s.id, Kind: history.KindDel, Key: k.key, Context: k.ctx, Over: []string{k.value}, Start: w.now()}
	var opts []client.CallOption
	if s.rnd.IntN(2) == 0 {
		op.Context, op.Over = "", nil // the node reads a majority first
	} else {
		opts = append(opts, client.Context(k.ctx))
	}
	opts = writeOpts(w.strictness(s), &op, opts)
	ctx, cancel := w.opContext()
	err := s.cl.Delete(ctx, k.key, opts...)
	cancel()
	op.End = w.now()
	op.Outcome, op.Err = history.OutcomeOf(err)
	w.record(op)
}
