package client

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// placementOf builds a table: owners[p] are partition p's owners.
func placementOf(t testing.TB, members []string, n int, owners ...[]string) *protocol.Placement {
	t.Helper()
	pl, err := protocol.NewPlacement(members[0], len(owners), n, members, owners)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// keyIn returns a key of partition p among q.
func keyIn(t testing.TB, p, q int) string {
	t.Helper()
	for i := range 1000 {
		if k := "key." + string(rune('a'+i%26)) + string(rune('a'+i/26)); protocol.PartitionOf(k, q) == p {
			return k
		}
	}
	t.Fatalf("no key in partition %d of %d", p, q)
	return ""
}

func TestRoute(t *testing.T) {
	members := []string{"n1", "n2", "n3", "n4", "n5"}
	pl := placementOf(t, members, 3, []string{"n2", "n4", "n1"}, []string{"n5", "n3", "n2"})
	k0, k1 := keyIn(t, 0, 2), keyIn(t, 1, 2)
	none := func(string) bool { return false }
	downSet := func(ids ...string) func(string) bool {
		return func(id string) bool { return slices.Contains(ids, id) }
	}
	for _, tc := range []struct {
		name      string
		key       string
		connected string
		down      func(string) bool
		want      []string
	}{
		{"connected to a non-owner: preference order", k0, "n3", none, []string{"n2", "n4", "n1"}},
		{"connected to the primary", k0, "n2", none, []string{"n2", "n4", "n1"}},
		{"connected to a secondary owner: it goes first", k0, "n4", none, []string{"n4", "n2", "n1"}},
		{"connected to the last owner", k0, "n1", none, []string{"n1", "n2", "n4"}},
		{"other partition", k1, "n1", none, []string{"n5", "n3", "n2"}},
		{"other partition, connected owner", k1, "n2", none, []string{"n2", "n5", "n3"}},
		{"not a kvmesh server", k1, "", none, []string{"n5", "n3", "n2"}},
		{"unknown server", k1, "nats-7", none, []string{"n5", "n3", "n2"}},
		{"primary down goes last", k0, "n3", downSet("n2"), []string{"n4", "n1", "n2"}},
		{"connected owner down goes last", k0, "n4", downSet("n4"), []string{"n2", "n1", "n4"}},
		{"two down keep their order", k0, "n5", downSet("n2", "n4"), []string{"n1", "n2", "n4"}},
		{"all down: preference order", k1, "n3", downSet("n2", "n3", "n5"), []string{"n5", "n3", "n2"}},
		{"a down non-owner changes nothing", k0, "n3", downSet("n3", "n5"), []string{"n2", "n4", "n1"}},
	} {
		if got := route(pl, tc.key, tc.connected, tc.down); !slices.Equal(got, tc.want) {
			t.Errorf("%s: route(%s, connected %q) = %v, want %v", tc.name, tc.key, tc.connected, got, tc.want)
		}
	}
	// The table's own down list (the answering node's failure detector)
	// counts like the client's marks, and does not change the epoch.
	withDown, err := protocol.NewPlacement("n1", 2, 3, members, [][]string{{"n2", "n4", "n1"}, {"n5", "n3", "n2"}}, "n4", "n5")
	if err != nil {
		t.Fatal(err)
	}
	if got := route(withDown, k0, "n4", none); !slices.Equal(got, []string{"n2", "n1", "n4"}) {
		t.Errorf("a table with n4 down: route = %v", got)
	}
	if got := route(withDown, k1, "n3", none); !slices.Equal(got, []string{"n3", "n2", "n5"}) {
		t.Errorf("a table with n5 down: route = %v", got)
	}
	if withDown.Epoch != pl.Epoch {
		t.Errorf("the down list changed the epoch: %s, %s", withDown.Epoch, pl.Epoch)
	}
	// Routing follows the shared key hash: every key of a 256-partition
	// table goes to the owners of protocol.PartitionOf's partition.
	owners := make([][]string, 256)
	for p := range owners {
		owners[p] = []string{members[p%5], members[(p+1)%5], members[(p+3)%5]}
	}
	big := placementOf(t, members, 3, owners...)
	for i := range 500 {
		key := "user." + string(rune('A'+i%50)) + "." + string(rune('a'+i/50))
		if got, want := route(big, key, "", none), owners[protocol.PartitionOf(key, 256)]; !slices.Equal(got, want) {
			t.Fatalf("route(%q) = %v, want %v", key, got, want)
		}
	}
}

// fakeRing serves the placement endpoint of one embedded server and lets
// a test answer each fetch.
type fakeRing struct {
	nc     *nats.Conn
	asked  chan struct{} // one value per fetch received
	answer chan []byte   // the reply to each fetch, in order
	stop   chan struct{} // closed at cleanup: pending fetches give up
	clock  *fakeClock
}

func newFakeRing(t *testing.T) (*fakeRing, *router) {
	t.Helper()
	srv, nc := testServer(t, "fake")
	f := &fakeRing{nc: nc, asked: make(chan struct{}, 64), answer: make(chan []byte, 64), stop: make(chan struct{}),
		clock: &fakeClock{t: time.Unix(1e9, 0)}}
	sub, err := nc.Subscribe("kvmesh.kv.ring", func(m *nats.Msg) {
		f.asked <- struct{}{}
		select {
		case b := <-f.answer:
			_ = m.Respond(b)
		case <-f.stop:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cnc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	r := newRouter(cnc, "kvmesh.kv.ring")
	r.now = f.clock.now
	t.Cleanup(func() {
		close(f.stop)
		r.close()
		cnc.Close()
		_ = sub.Unsubscribe()
	})
	return f, r
}

// fetched waits for the next fetch to reach the fake.
func (f *fakeRing) fetched(t *testing.T) {
	t.Helper()
	select {
	case <-f.asked:
	case <-time.After(5 * time.Second):
		t.Fatal("no table fetch")
	}
}

// noFetch checks that the router started no fetch since the last one the
// test saw: one it started would still be running, since it can end only
// with an answer from f.answer (tests leave none there when they call
// noFetch) or after routeTimeout; and one that ended was seen by the fake.
func (f *fakeRing) noFetch(t *testing.T, r *router) {
	t.Helper()
	r.mu.Lock()
	running := r.fetching
	r.mu.Unlock()
	if running {
		t.Fatal("a fetch is running")
	}
	select {
	case <-f.asked:
		t.Fatal("unexpected table fetch")
	default:
	}
}

// settle waits until the router's fetch, if any, has ended.
func settle(r *router) { r.wg.Wait() }

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func encoded(t *testing.T, pl *protocol.Placement) []byte {
	t.Helper()
	b, err := protocol.EncodePlacement(pl)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRouterFetchesOnceForConcurrentCallers(t *testing.T) {
	f, r := newFakeRing(t)
	pl := placementOf(t, []string{"n1", "n2"}, 1, []string{"n2"})
	ctx := testCtx(t)
	const callers = 8
	got := make(chan *protocol.Placement, callers)
	for range callers {
		go func() { got <- r.placement(ctx) }()
	}
	f.fetched(t)
	f.answer <- encoded(t, pl)
	for range callers {
		if p := <-got; p == nil || p.Epoch != pl.Epoch {
			t.Fatalf("caller got %+v, want the table", p)
		}
	}
	settle(r)
	f.noFetch(t, r)
}

// A stale table is refreshed in the background, at most once per
// routeRetry; callers go on with the old one meanwhile.
func TestRouterRefreshesStaleTablesInTheBackground(t *testing.T) {
	f, r := newFakeRing(t)
	old := placementOf(t, []string{"n1", "n2"}, 1, []string{"n2"})
	ctx := testCtx(t)
	f.answer <- encoded(t, old)
	first := r.placement(ctx)
	if first == nil || first.Epoch != old.Epoch {
		t.Fatalf("first placement %+v", first)
	}
	f.fetched(t)
	settle(r)

	r.markDown("n2")
	if !r.isDown("n2") || r.isDown("n1") {
		t.Fatal("n2 not marked down")
	}
	if p := r.placement(ctx); p != first {
		t.Fatal("the stale table was not used")
	}
	f.noFetch(t, r) // the last fetch was less than routeRetry ago

	f.clock.advance(routeRetry)
	if p := r.placement(ctx); p != first {
		t.Fatal("a caller waited for the refresh")
	}
	f.fetched(t)
	if p := r.placement(ctx); p != first { // the fetch is in flight: single flight
		t.Fatal("a caller waited for the refresh")
	}
	grown := placementOf(t, []string{"n1", "n2", "n3"}, 1, []string{"n3"})
	f.answer <- encoded(t, grown)
	settle(r)
	if p := r.placement(ctx); p == nil || p.Epoch != grown.Epoch {
		t.Fatalf("after the refresh: %+v, want the new table", p)
	}
	f.noFetch(t, r)

	// n2 is tried last for routeDownFor, then as before.
	f.clock.advance(routeDownFor)
	if r.isDown("n2") {
		t.Fatal("n2 still down after routeDownFor")
	}
}

func TestRouterRefreshesOldTables(t *testing.T) {
	f, r := newFakeRing(t)
	pl := placementOf(t, []string{"n1"}, 1, []string{"n1"})
	ctx := testCtx(t)
	f.answer <- encoded(t, pl)
	r.placement(ctx)
	f.fetched(t)
	settle(r)
	f.clock.advance(routeMaxAge - time.Nanosecond)
	r.placement(ctx)
	f.noFetch(t, r)
	f.clock.advance(time.Nanosecond)
	r.placement(ctx)
	f.fetched(t)
	f.answer <- encoded(t, pl)
	settle(r)
}

// A store that serves no valid table is asked less and less often, and
// an invalid table never replaces a valid one.
func TestRouterBacksOffWithoutATable(t *testing.T) {
	f, r := newFakeRing(t)
	ctx := testCtx(t)
	f.answer <- []byte("not a table")
	if p := r.placement(ctx); p != nil {
		t.Fatalf("placement %+v from a bad table", p)
	}
	f.fetched(t)
	settle(r)
	for _, wait := range []time.Duration{routeRetry, 2 * routeRetry, 4 * routeRetry} {
		f.clock.advance(wait - time.Nanosecond)
		if r.placement(ctx) != nil {
			t.Fatal("a table appeared")
		}
		f.noFetch(t, r)
		f.clock.advance(time.Nanosecond)
		f.answer <- []byte(`{"v":1}`)
		if r.placement(ctx) != nil {
			t.Fatal("a table appeared")
		}
		f.fetched(t)
		settle(r)
	}
	// A good table resets the backoff; a bad one later does not replace it.
	pl := placementOf(t, []string{"n1"}, 1, []string{"n1"})
	f.clock.advance(8 * routeRetry)
	f.answer <- encoded(t, pl)
	r.placement(ctx)
	f.fetched(t)
	settle(r)
	f.clock.advance(routeMaxAge)
	f.answer <- []byte("{}")
	r.placement(ctx)
	f.fetched(t)
	settle(r)
	if p := r.placement(ctx); p == nil || p.Epoch != pl.Epoch {
		t.Fatalf("after a bad refresh: %+v, want the last good table", p)
	}
}

// close ends a fetch in flight at once and starts no other.
func TestRouterCloseStopsTheFetch(t *testing.T) {
	f, r := newFakeRing(t)
	ctx := testCtx(t)
	done := make(chan *protocol.Placement, 1)
	go func() { done <- r.placement(ctx) }()
	f.fetched(t) // the fake never answers it
	closed := make(chan struct{})
	go func() { r.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(routeTimeout / 2):
		t.Fatal("close waited for the fetch's timeout")
	}
	if p := <-done; p != nil {
		t.Fatalf("placement %+v", p)
	}
	f.clock.advance(routeMaxAge)
	if r.placement(ctx) != nil {
		t.Fatal("a table after close")
	}
	f.noFetch(t, r)
	r.close() // idempotent
}
