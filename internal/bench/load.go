package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmesh/kvmesh/client"
)

// Operation mixes a cell can run.
const (
	kindPut    = "put"
	kindGet    = "get"
	kindMix90  = "mix90" // 90 % gets, 10 % puts
	kindMix50  = "mix50" // 50 % gets, 50 % puts
	kindFanout = "fanout"
	kindRR     = "rr"
)

// putFraction is the share of puts in a mix.
func putFraction(kind string) float64 {
	switch kind {
	case kindPut, kindFanout:
		return 1
	case kindMix90:
		return 0.1
	case kindMix50:
		return 0.5
	}
	return 0
}

// driver is one system under load, as the closed-loop workers see it.
// Worker w owns the keys it writes (see keyspace), so put never races
// another worker on the same key. Implementations are safe for concurrent
// use by different workers.
type driver interface {
	put(ctx context.Context, w int, ks *keyspace, k int, val []byte) error
	get(ctx context.Context, w int, ks *keyspace, k int, r int) error
}

// keyspace is a set of n keys "<prefix>.k<i>" of one value size. cctx[i]
// is the causal context of key i's last kvmesh put: only the worker that
// owns i touches it while a load runs, and loads are separated by waits.
type keyspace struct {
	prefix string
	n      int
	keys   []string
	cctx   []string
}

func newKeyspace(prefix string, n int) *keyspace {
	ks := &keyspace{prefix: prefix, n: n, keys: make([]string, n), cctx: make([]string, n)}
	for i := range ks.keys {
		ks.keys[i] = fmt.Sprintf("%s.k%07d", prefix, i)
	}
	return ks
}

// ownedRange is the half-open range of keys worker w of c owns.
func ownedRange(n, c, w int) (lo, hi int) { return w * n / c, (w + 1) * n / c }

// loadSpec is one closed-loop run.
type loadSpec struct {
	kind    string
	r       int // kvmesh read quorum
	c       int // workers
	val     []byte
	warmup  time.Duration
	dur     time.Duration
	seed    uint64
	timeout time.Duration // per operation
	// sequential makes each worker write its keys in order, once each,
	// and stop after the last (a load phase) instead of running for dur.
	sequential bool
	// done, if set, counts the operations finished (for progress).
	done *atomic.Int64
}

// sample is the outcome of one run of one cell.
type sample struct {
	Ops        int     `json:"ops"`
	Overloaded int     `json:"overloaded"`
	Errors     int     `json:"errors"`
	Siblings   int     `json:"siblings"` // gets that saw more than one sibling
	Seconds    float64 `json:"seconds"`
	OpsPerSec  float64 `json:"ops_per_sec"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	P999       float64 `json:"p999_ms"`
	FirstError string  `json:"first_error,omitempty"`
}

// sibCounter is implemented by drivers that can see siblings.
type sibCounter interface{ siblings() int64 }

// runLoad runs spec against d on ks with spec.c closed-loop workers and
// measures the operations that start after the warmup.
func runLoad(ctx context.Context, d driver, ks *keyspace, spec loadSpec) (sample, error) {
	if spec.c < 1 || spec.c > ks.n {
		return sample{}, fmt.Errorf("%d workers for %d keys: every worker must own a key", spec.c, ks.n)
	}
	var sib0 int64
	if sc, ok := d.(sibCounter); ok {
		sib0 = sc.siblings()
	}
	pf := putFraction(spec.kind)
	lats := make([][]int64, spec.c)
	var overloaded, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	measureFrom := start.Add(spec.warmup)
	end := measureFrom.Add(spec.dur)
	var wg sync.WaitGroup
	for w := range spec.c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(spec.seed, uint64(w)))
			lo, hi := ownedRange(ks.n, spec.c, w)
			var lat []int64
			for i := 0; ; i++ {
				if ctx.Err() != nil {
					break
				}
				var k int
				if spec.sequential {
					if lo+i >= hi {
						break
					}
					k = lo + i
				} else {
					k = lo + rng.IntN(hi-lo)
				}
				t0 := time.Now()
				if !spec.sequential && !t0.Before(end) {
					break
				}
				octx, cancel := context.WithTimeout(ctx, spec.timeout)
				var err error
				if pf == 1 || (pf > 0 && rng.Float64() < pf) {
					err = d.put(octx, w, ks, k, spec.val)
				} else {
					err = d.get(octx, w, ks, k, spec.r)
				}
				cancel()
				if spec.done != nil {
					spec.done.Add(1)
				}
				el := time.Since(t0)
				if spec.sequential || !t0.Before(measureFrom) {
					switch {
					case err == nil:
						lat = append(lat, int64(el))
					case errors.Is(err, client.ErrOverloaded):
						overloaded.Add(1)
					case ctx.Err() == nil:
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
				}
			}
			lats[w] = lat
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return sample{}, err
	}
	elapsed := time.Since(measureFrom)
	if spec.sequential {
		elapsed = time.Since(start)
	}
	s := summarize(lats, elapsed)
	s.Overloaded, s.Errors = int(overloaded.Load()), int(failed.Load())
	if e, ok := firstErr.Load().(string); ok {
		s.FirstError = e
	}
	if sc, ok := d.(sibCounter); ok {
		s.Siblings = int(sc.siblings() - sib0)
	}
	return s, nil
}

// kvmeshDriver drives a kvmesh store through the Go client: worker w uses
// the client of node w mod len(clients), and every put carries the
// context of the worker's previous put of that key, so no siblings pile
// up.
type kvmeshDriver struct {
	clients []*client.Client
	w       string // write quorum
	sibs    atomic.Int64
}

func (d *kvmeshDriver) put(ctx context.Context, w int, ks *keyspace, k int, val []byte) error {
	c := d.clients[w%len(d.clients)]
	cctx, err := c.Put(ctx, ks.keys[k], val, client.W(d.w), client.Context(ks.cctx[k]))
	if err != nil {
		// The write may have landed on some replicas: learn what the
		// store holds now, so the next put supersedes it.
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if e, gerr := c.Get(gctx, ks.keys[k], client.R("all")); gerr == nil {
			ks.cctx[k] = e.Context
		}
		cancel()
		return err
	}
	ks.cctx[k] = cctx
	return nil
}

func (d *kvmeshDriver) get(ctx context.Context, w int, ks *keyspace, k int, r int) error {
	e, err := d.clients[w%len(d.clients)].Get(ctx, ks.keys[k], client.R(fmt.Sprint(r)))
	if err == nil && e.Siblings > 1 {
		d.sibs.Add(1)
	}
	return err
}

func (d *kvmeshDriver) siblings() int64 { return d.sibs.Load() }

func (d *kvmeshDriver) close() {
	for _, c := range d.clients {
		c.Close()
	}
}

// probe waits until a write with W=all succeeds through every node: the
// store is serving and every node knows every member.
func (d *kvmeshDriver) probe(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i, c := range d.clients {
		key := fmt.Sprintf("bench-probe.%d", i)
		for {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			var cctx string
			if e, err := c.Get(pctx, key, client.R("one")); err == nil {
				cctx = e.Context // retries supersede each other
			}
			_, err := c.Put(pctx, key, []byte("probe"), client.W("all"), client.Context(cctx))
			pcancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("kvmesh not serving through node %d: %w", i+1, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func connectKvmesh(urls []string, w string) (*kvmeshDriver, error) {
	d := &kvmeshDriver{w: w}
	for _, u := range urls {
		c, err := client.Connect(u, client.WithTimeout(10*time.Second))
		if err != nil {
			d.close()
			return nil, err
		}
		d.clients = append(d.clients, c)
	}
	return d, nil
}
