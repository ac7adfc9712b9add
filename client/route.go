package client

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// Partition-aware routing (Dynamo's client-driven coordination): the
// client keeps the store's placement table and sends a request for a key
// straight to an owner of the key, which coordinates it with its own
// replica and the other owners. Sent to a node that does not own the key,
// a write would take one more hop: that node forwards it to an owner.
//
// The table is advice: any node coordinates any key, so an old or wrong
// table costs hops, never correctness. Requests therefore never wait for
// it, except the first ones, for the first fetch.

// Routing timings. A table is refreshed when it is older than
// routeMaxAge or marked stale (an owner did not answer); fetches are at
// least routeRetry apart, doubling after each failure up to routeMaxAge,
// so a store that does not serve the table is asked rarely.
const (
	routeMaxAge  = 30 * time.Second
	routeRetry   = time.Second
	routeTimeout = 2 * time.Second // one fetch
	// routeDownFor is how long an owner that had no responders is tried
	// last: membership does not change when a node is down, so a fresh
	// table still lists it.
	routeDownFor = 5 * time.Second
)

// route returns the nodes to send a request on key to, in the order to
// try them: the owners of the key's partition in preference order, with
// the node the client is connected to first when it is one of them (its
// replica is then local to the coordinator and the request crosses no
// route), and the owners down reports last. It is pure: the table, the
// connected server's name and down decide.
func route(pl *protocol.Placement, key, connected string, down func(id string) bool) []string {
	owners := pl.OwnerIDs(pl.Partition(key))
	out := make([]string, 0, len(owners))
	var last []string
	for _, id := range owners {
		switch {
		case down(id) || pl.IsDown(id):
			last = append(last, id)
		case id == connected:
			out = slices.Insert(out, 0, id)
		default:
			out = append(out, id)
		}
	}
	return append(out, last...)
}

// router keeps a Client's placement table. The table is fetched lazily on
// first use and refreshed in the background, one fetch at a time, by a
// goroutine the router starts and close stops. Safe for concurrent use.
type router struct {
	nc      *nats.Conn
	subject string
	now     func() time.Time

	table atomic.Pointer[routeTable]
	// stale counts the stale marks; a table fetched before the latest
	// mark is stale.
	stale atomic.Uint64
	down  sync.Map // node id -> time.Time until which it is tried last

	first     chan struct{} // closed when the first fetch ended, or by close
	firstOnce sync.Once

	ctx    context.Context // canceled by close: ends a fetch in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex // guards the fields below and wg.Add
	closed   bool
	fetching bool
	next     time.Time // no fetch starts before
	failures int       // consecutive failed fetches
}

// routeTable is a validated table and when it was fetched.
type routeTable struct {
	pl    *protocol.Placement
	at    time.Time
	stale uint64 // router.stale when its fetch started
}

func newRouter(nc *nats.Conn, subject string) *router {
	ctx, cancel := context.WithCancel(context.Background())
	return &router{nc: nc, subject: subject, now: time.Now, first: make(chan struct{}), ctx: ctx, cancel: cancel}
}

// placement returns the table to route by, or nil when there is none:
// the store does not serve one (yet), or the first fetch failed or did
// not end in time. It starts a refresh when the table is missing, stale
// or old, and waits only for the first fetch, at most until half of
// ctx's time is left for the request itself.
func (r *router) placement(ctx context.Context) *protocol.Placement {
	now := r.now()
	t := r.table.Load()
	if t == nil || t.stale != r.stale.Load() || now.Sub(t.at) >= routeMaxAge {
		r.refresh(now)
	}
	if t != nil {
		return t.pl
	}
	select {
	case <-r.first:
	default:
		wait := routeTimeout
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl)/2)
		}
		timer := time.NewTimer(wait)
		select {
		case <-r.first:
		case <-ctx.Done():
		case <-timer.C:
		}
		timer.Stop()
	}
	if t := r.table.Load(); t != nil {
		return t.pl
	}
	return nil
}

// refresh starts a fetch unless one is running, the last one was too
// recent or the router is closed.
func (r *router) refresh(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.fetching || now.Before(r.next) {
		return
	}
	r.fetching = true
	r.next = now.Add(min(routeRetry<<min(r.failures, 16), routeMaxAge))
	r.wg.Add(1)
	go r.fetch(r.stale.Load())
}

// fetch asks the store for its table and keeps it if it is valid.
func (r *router) fetch(stale uint64) {
	defer r.wg.Done()
	ctx, cancel := context.WithTimeout(r.ctx, routeTimeout)
	pl, err := r.get(ctx)
	cancel()
	if err == nil {
		r.table.Store(&routeTable{pl: pl, at: r.now(), stale: stale})
	}
	r.mu.Lock()
	r.fetching = false
	if err == nil {
		r.failures = 0
	} else {
		r.failures++
	}
	r.mu.Unlock()
	r.firstOnce.Do(func() { close(r.first) })
}

func (r *router) get(ctx context.Context) (*protocol.Placement, error) {
	m, err := r.nc.RequestWithContext(ctx, r.subject, nil)
	if err != nil {
		return nil, err
	}
	if code := m.Header.Get(protocol.HdrServiceErrorCode); code != "" {
		n, _ := strconv.Atoi(code)
		return nil, protocol.FromWire(n, m.Header.Get(protocol.HdrError), m.Header.Get(protocol.HdrServiceError))
	}
	return protocol.DecodePlacement(m.Data)
}

// markDown records that node id had no responders: it is tried last for
// a while, and the table is refreshed (membership may have changed).
func (r *router) markDown(id string) {
	r.down.Store(id, r.now().Add(routeDownFor))
	r.stale.Add(1)
}

// isDown reports whether id had no responders recently.
func (r *router) isDown(id string) bool {
	v, ok := r.down.Load(id)
	if !ok {
		return false
	}
	if r.now().Before(v.(time.Time)) {
		return true
	}
	r.down.CompareAndDelete(id, v)
	return false
}

// close stops the fetch in flight, if any, and any later one. It is
// idempotent and returns when no fetch runs.
func (r *router) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	r.firstOnce.Do(func() { close(r.first) })
}
