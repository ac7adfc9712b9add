// Package pipeline batches what a process sends to many destinations: a
// queue per destination, created on first use, and one sender goroutine
// per queue that hands whatever has accumulated to a send function as one
// batch. An idle destination so gets each item at once, and under load
// the items queued while a batch goes out share the next one.
//
// The Go client (client/batch.go) pipelines its calls per node through
// it, with a window of one unanswered batch; a node (node/outbox.go) its
// replica RPC items per peer, without a window.
package pipeline

import (
	"sync"
	"time"
)

// Config says how a Pipeline batches and sends. Send is required; the
// other fields are optional.
type Config[K comparable, T any] struct {
	// Send sends batch to dest. The pipeline calls it from dest's sender
	// goroutine only, one batch at a time, and never after Close has
	// returned; it must not call Close. batch is the callee's to keep.
	// With a Window, done frees the batch's place in it: call it once,
	// when the batch is answered or given up (a send that failed
	// included), from any goroutine. Without a Window it need not be
	// called.
	Send func(dest K, batch []T, done func())
	// Fail takes the items Close found queued for dest (or taken for a
	// batch that Close stopped before it went out), from dest's sender
	// goroutine. Nil drops them.
	Fail func(dest K, items []T)
	// Claim, if set, is asked about each item as it leaves its queue for
	// a batch or for Fail; false drops the item (its caller gave up), and
	// a dropped item does not count towards a batch's limits (an item is
	// sized before it is claimed, though: one that does not fit ends the
	// batch). It may run under the queue's lock: it must be quick and not
	// call the pipeline.
	Claim func(item T) bool
	// MaxItems bounds the items of one batch; 0 is no bound.
	MaxItems int
	// Size, if set, is an item's size in bytes, and MaxSize, asked once a
	// batch, what the items of one batch may add up to. A batch holds at
	// least one item, however big. Both or neither.
	Size    func(item T) int
	MaxSize func() int
	// Window bounds the batches a destination has unanswered (sent and
	// done not yet called): with that many out, what is queued waits for
	// an answer, so the calls made during one round trip go together.
	// 0 is no window: a batch goes as soon as the last one is sent.
	Window int
	// Hold bounds how long a full window holds the next batch back (from
	// when the last batch went out), so a destination that is slow or gone
	// delays what is queued behind it by Hold only. 0 holds nothing. It
	// is wall-clock time; without a Window the pipeline reads no clock
	// and arms no timer.
	Hold time.Duration
}

// Pipeline is a set of per-destination queues and their sender
// goroutines. New starts nothing; the first Put to a destination starts
// its goroutine, which the pipeline owns until Close. Safe for concurrent
// use.
type Pipeline[K comparable, T any] struct {
	cfg  Config[K, T]
	stop chan struct{} // closed by Close
	wg   sync.WaitGroup

	mu     sync.Mutex // guards closed, queues and wg.Add; taken before queue.mu
	closed bool
	queues map[K]*queue[T]
}

// queue is what waits for one destination.
type queue[T any] struct {
	wake chan struct{} // capacity 1: "there is something to send, or a batch was answered"
	done func()        // frees a window place; the same for every batch

	mu       sync.Mutex
	items    []T
	inflight int       // batches sent and not done
	lastSent time.Time // when the last batch went out
}

// New returns a pipeline that sends with cfg.
func New[K comparable, T any](cfg Config[K, T]) *Pipeline[K, T] {
	return &Pipeline[K, T]{cfg: cfg, stop: make(chan struct{}), queues: map[K]*queue[T]{}}
}

// Put queues item for dest and returns at once, starting dest's sender on
// first use. It reports false, and queues nothing, once Close has begun.
func (p *Pipeline[K, T]) Put(dest K, item T) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	q := p.queues[dest]
	if q == nil {
		q = &queue[T]{wake: make(chan struct{}, 1)}
		q.done = q.answered
		p.queues[dest] = q
		p.wg.Add(1)
		go p.run(dest, q)
	}
	// Queue under p.mu: the sender stops only after Close set closed, so
	// what it fails last includes this item.
	q.mu.Lock()
	q.items = append(q.items, item)
	q.mu.Unlock()
	p.mu.Unlock()
	q.signal()
	return true
}

// Queued returns how many items wait for dest, not yet taken into a batch.
func (p *Pipeline[K, T]) Queued(dest K) int {
	p.mu.Lock()
	q := p.queues[dest]
	p.mu.Unlock()
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Close stops the senders: what is still queued goes to Fail, and Put
// refuses from now on. It returns once every sender goroutine has
// returned (a Send under way finishes first). It is idempotent.
func (p *Pipeline[K, T]) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Pipeline[K, T]) run(dest K, q *queue[T]) {
	defer p.wg.Done()
	var hold *time.Timer
	var held <-chan time.Time // nil without a window: never ready
	if p.cfg.Window > 0 {
		hold = time.NewTimer(p.cfg.Hold)
		hold.Stop()
		held = hold.C
		defer hold.Stop()
	}
	for {
		select {
		case <-p.stop:
			p.fail(dest, q.takeAll(p.cfg.Claim))
			return
		case <-q.wake:
		case <-held:
		}
		for {
			batch, wait := p.take(q)
			if wait > 0 {
				hold.Reset(wait)
			}
			if len(batch) == 0 {
				break
			}
			select {
			case <-p.stop: // no send once Close has begun
				p.fail(dest, batch)
				continue // the next take finds the rest; then the outer select stops
			default:
			}
			p.cfg.Send(dest, batch, q.done)
		}
	}
}

// take removes from q the items of its next batch: up to MaxItems within
// MaxSize (at least one), skipping those Claim refuses. It takes none
// while the window is full and the last batch went out less than Hold
// ago; wait then says when to look again.
func (p *Pipeline[K, T]) take(q *queue[T]) (batch []T, wait time.Duration) {
	cfg := &p.cfg
	budget := 0
	if cfg.MaxSize != nil {
		budget = cfg.MaxSize()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil, 0
	}
	if cfg.Window > 0 && q.inflight >= cfg.Window {
		if held := time.Since(q.lastSent); held < cfg.Hold {
			return nil, cfg.Hold - held
		}
	}
	n := len(q.items)
	if cfg.MaxItems > 0 {
		n = min(n, cfg.MaxItems)
	}
	batch = make([]T, 0, n)
	size, i := 0, 0
	for ; i < len(q.items) && (cfg.MaxItems <= 0 || len(batch) < cfg.MaxItems); i++ {
		it := q.items[i]
		itSize := 0
		if cfg.Size != nil {
			itSize = cfg.Size(it)
			if len(batch) > 0 && size+itSize > budget {
				break
			}
		}
		if cfg.Claim != nil && !cfg.Claim(it) {
			continue
		}
		batch = append(batch, it)
		size += itSize
	}
	rest := copy(q.items, q.items[i:])
	clear(q.items[rest:])
	q.items = q.items[:rest]
	if len(batch) > 0 {
		q.inflight++
		q.lastSent = time.Now()
	}
	return batch, 0
}

// takeAll empties q and returns what Claim keeps of it.
func (q *queue[T]) takeAll(claim func(T) bool) []T {
	q.mu.Lock()
	items := q.items
	q.items = nil
	q.mu.Unlock()
	if claim == nil {
		return items
	}
	kept := items[:0]
	for _, it := range items {
		if claim(it) {
			kept = append(kept, it)
		}
	}
	return kept
}

func (p *Pipeline[K, T]) fail(dest K, items []T) {
	if len(items) > 0 && p.cfg.Fail != nil {
		p.cfg.Fail(dest, items)
	}
}

// answered frees the window place of a batch.
func (q *queue[T]) answered() {
	q.mu.Lock()
	q.inflight--
	q.mu.Unlock()
	q.signal()
}

func (q *queue[T]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
