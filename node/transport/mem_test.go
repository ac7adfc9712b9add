package transport_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmesh/kvmesh/node/transport"
)

// memRec is a Handler that records what it is given. By default it
// answers each request with "re:" + the request; with keep it keeps the
// respond funcs instead, and with hold each request waits for hold to be
// closed (to test Close's wait).
type memRec struct {
	keep bool
	hold chan struct{}

	mu       sync.Mutex
	reqs     []string
	replies  map[uint64][]string
	unreach  []string // "tag to"
	responds []func([]byte)
	gossip   []string // "topic data"
	running  atomic.Int32
}

func newMemRec() *memRec { return &memRec{replies: make(map[uint64][]string)} }

func (r *memRec) HandleRequest(data []byte, respond func([]byte)) {
	r.running.Add(1)
	defer r.running.Add(-1)
	if r.hold != nil {
		<-r.hold
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, string(data))
	if r.keep {
		r.responds = append(r.responds, respond)
	}
	r.mu.Unlock()
	if !r.keep {
		respond(append([]byte("re:"), data...))
	}
}

func (r *memRec) HandleReply(tag uint64, data []byte) {
	r.mu.Lock()
	r.replies[tag] = append(r.replies[tag], string(data))
	r.mu.Unlock()
}

func (r *memRec) HandleUnreachable(tag uint64, to string) {
	r.mu.Lock()
	r.unreach = append(r.unreach, fmt.Sprintf("%d %s", tag, to))
	r.mu.Unlock()
}

func (r *memRec) HandleGossip(topic string, data []byte) {
	r.mu.Lock()
	r.gossip = append(r.gossip, topic+" "+string(data))
	r.mu.Unlock()
}

func (r *memRec) heard() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.gossip)
}

func (r *memRec) nreqs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func (r *memRec) nreplies() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.replies {
		n += len(v)
	}
	return n
}

func (r *memRec) repliesTo(tag uint64) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.replies[tag])
}

func (r *memRec) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func (r *memRec) respond(i int, b []byte) {
	r.mu.Lock()
	f := r.responds[i]
	r.mu.Unlock()
	f(b)
}

func (r *memRec) unreachable() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.unreach)
}

// memStart starts a fresh endpoint of id with a new recorder.
func memStart(t *testing.T, net *transport.MemNetwork, id string, rec *memRec) transport.Transport {
	t.Helper()
	ep := net.Endpoint(id)
	if err := ep.Start(rec); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	return ep
}

func memSend(t *testing.T, ep transport.Transport, to string, tag uint64, msg string) {
	t.Helper()
	if err := ep.Send(to, tag, []byte(msg)); err != nil {
		t.Fatalf("send %d to %s: %v", tag, to, err)
	}
}

func TestMemDeliversRequestsAndReplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(1)
		ra, rb := newMemRec(), newMemRec()
		a := memStart(t, net, "a", ra)
		memStart(t, net, "b", rb)
		for i := range 50 {
			memSend(t, a, "b", uint64(i+1), fmt.Sprint(i))
		}
		synctest.Wait()
		if rb.nreqs() != 50 || ra.nreplies() != 50 {
			t.Fatalf("b got %d requests, a got %d replies; want 50 and 50", rb.nreqs(), ra.nreplies())
		}
		for i := range 50 {
			if got := ra.repliesTo(uint64(i + 1)); len(got) != 1 || got[0] != fmt.Sprintf("re:%d", i) {
				t.Fatalf("reply to tag %d: %q", i+1, got)
			}
		}
		if s := net.Stats(); s.Requests != 50 || s.Replies != 50 || s.Delivered != 100 || s.Dropped+s.Cut+s.Duplicated+s.Unreachable != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestMemDelaysAndReorders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(2)
		net.SetFaults(transport.MemFaults{MinDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond})
		ra := newMemRec()
		rb := newMemRec()
		a := memStart(t, net, "a", ra)
		memStart(t, net, "b", rb)
		for i := range 100 {
			memSend(t, a, "b", uint64(i+1), fmt.Sprintf("%03d", i))
		}
		time.Sleep(10*time.Millisecond - time.Nanosecond)
		synctest.Wait()
		if n := rb.nreqs(); n != 0 {
			t.Fatalf("%d requests delivered before the minimum delay", n)
		}
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		if n := rb.nreqs(); n != 100 {
			t.Fatalf("%d requests delivered after the maximum delay, want 100", n)
		}
		if slices.IsSorted(rb.requests()) {
			t.Fatal("random delays did not reorder 100 requests")
		}
		time.Sleep(50 * time.Millisecond) // the replies' delay
		synctest.Wait()
		if n := ra.nreplies(); n != 100 {
			t.Fatalf("%d replies, want 100", n)
		}
	})
}

func TestMemDropOneDropsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(3)
		net.SetFaults(transport.MemFaults{Drop: 1, Duplicate: 1})
		ra, rb := newMemRec(), newMemRec()
		a := memStart(t, net, "a", ra)
		b := memStart(t, net, "b", rb)
		for i := range 100 {
			memSend(t, a, "b", uint64(i+1), "x")
			memSend(t, b, "a", uint64(i+1), "y")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if ra.nreqs()+rb.nreqs()+ra.nreplies()+rb.nreplies() != 0 {
			t.Fatal("a message got through with drop probability 1")
		}
		if s := net.Stats(); s.Dropped != 200 || s.Delivered != 0 {
			t.Fatalf("stats %+v", s)
		}

		// Replies are dropped too: deliver the requests, then drop.
		net.SetFaults(transport.MemFaults{})
		rb.keep = true
		memSend(t, a, "b", 7, "z")
		synctest.Wait()
		net.SetFaults(transport.MemFaults{Drop: 1})
		rb.respond(0, []byte("late"))
		time.Sleep(time.Second)
		synctest.Wait()
		if ra.nreplies() != 0 {
			t.Fatal("a reply got through with drop probability 1")
		}
	})
}

func TestMemSameSeedSameFate(t *testing.T) {
	fate := func(seed int64) []uint64 {
		var got []uint64
		synctest.Test(t, func(t *testing.T) {
			net := transport.NewMemNetwork(seed)
			net.SetFaults(transport.MemFaults{Drop: 0.5})
			rb := newMemRec()
			rb.keep = true // no replies: they would draw from the source concurrently
			a := memStart(t, net, "a", newMemRec())
			memStart(t, net, "b", rb)
			for i := range 200 {
				memSend(t, a, "b", uint64(i), strconv.Itoa(i))
			}
			synctest.Wait()
			for _, r := range rb.requests() {
				i, err := strconv.ParseUint(r, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, i)
			}
			slices.Sort(got)
		})
		return got
	}
	x, y, z := fate(42), fate(42), fate(43)
	if len(x) < 50 || len(x) > 150 {
		t.Fatalf("drop 0.5 delivered %d of 200", len(x))
	}
	if !slices.Equal(x, y) {
		t.Fatalf("the same seed dropped different messages: %v vs %v", x, y)
	}
	if slices.Equal(x, z) {
		t.Fatal("different seeds dropped the same messages")
	}
}

func TestMemDuplicates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(4)
		net.SetFaults(transport.MemFaults{Duplicate: 1, MaxDelay: 5 * time.Millisecond})
		ra, rb := newMemRec(), newMemRec()
		a := memStart(t, net, "a", ra)
		memStart(t, net, "b", rb)
		memSend(t, a, "b", 9, "once")
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		// Each of the two copies is answered, and each answer is doubled.
		if rb.nreqs() != 2 || len(ra.repliesTo(9)) != 4 {
			t.Fatalf("b got %d requests, a got %d replies; want 2 and 4", rb.nreqs(), len(ra.repliesTo(9)))
		}
		if s := net.Stats(); s.Duplicated != 3 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestMemPartitionAndIsolate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(5)
		recs := map[string]*memRec{"a": newMemRec(), "b": newMemRec(), "c": newMemRec()}
		eps := map[string]transport.Transport{}
		for id, r := range recs {
			eps[id] = memStart(t, net, id, r)
		}
		// reach sends one request from -> to and reports whether its reply
		// came back.
		tag := uint64(0)
		reach := func(from, to string) bool {
			tag++
			before := recs[from].nreplies()
			memSend(t, eps[from], to, tag, "ping")
			time.Sleep(time.Millisecond)
			synctest.Wait()
			return recs[from].nreplies() == before+1
		}
		check := func(stage string, want map[[2]string]bool) {
			t.Helper()
			for pair, ok := range want {
				if got := reach(pair[0], pair[1]); got != ok {
					t.Errorf("%s: %s -> %s reachable %v, want %v", stage, pair[0], pair[1], got, ok)
				}
			}
		}
		net.Partition([]string{"a"}, []string{"b", "c"})
		check("split a|bc", map[[2]string]bool{{"a", "b"}: false, {"b", "a"}: false, {"c", "a"}: false, {"b", "c"}: true, {"c", "b"}: true})
		net.Partition([]string{"a", "b"})
		check("split ab|c (c unnamed)", map[[2]string]bool{{"a", "b"}: true, {"a", "c"}: false, {"c", "b"}: false})
		net.Heal()
		check("healed", map[[2]string]bool{{"a", "b"}: true, {"a", "c"}: true, {"b", "c"}: true})
		net.Isolate("c")
		check("isolate c", map[[2]string]bool{{"a", "b"}: true, {"b", "a"}: true, {"a", "c"}: false, {"c", "b"}: false})
		net.Heal()
		check("healed again", map[[2]string]bool{{"c", "a"}: true})
		if len(recs["a"].unreachable()) != 0 {
			t.Fatal("a partition gave an unreachable notice; it must drop silently")
		}

		// A reply is cut too when the partition comes between request and
		// reply.
		recs["b"].keep = true
		memSend(t, eps["a"], "b", 1000, "slow")
		synctest.Wait()
		net.Isolate("a")
		recs["b"].respond(0, []byte("lost"))
		synctest.Wait()
		if len(recs["a"].repliesTo(1000)) != 0 {
			t.Fatal("a reply crossed a partition")
		}
	})
}

func TestMemUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(6)
		net.SetFaults(transport.MemFaults{MinDelay: time.Millisecond, MaxDelay: time.Millisecond, Drop: 1})
		ra := newMemRec()
		a := memStart(t, net, "a", ra)
		memSend(t, a, "ghost", 1, "x")
		if got := ra.unreachable(); len(got) != 0 {
			t.Fatalf("unreachable notice inside Send: %v", got)
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		// Random drop does not apply to the notice: it is the mesh's.
		if got := ra.unreachable(); !slices.Equal(got, []string{"1 ghost"}) {
			t.Fatalf("unreachable notices %v, want [1 ghost]", got)
		}

		// A crashed node is unreachable; its restart with a fresh endpoint
		// is reachable again; the old endpoint receives nothing.
		net.SetFaults(transport.MemFaults{})
		rb1 := newMemRec()
		b1 := memStart(t, net, "b", rb1)
		memSend(t, a, "b", 2, "to b1")
		synctest.Wait()
		if err := b1.Close(); err != nil {
			t.Fatal(err)
		}
		memSend(t, a, "b", 3, "to nobody")
		synctest.Wait()
		if got := ra.unreachable(); !slices.Equal(got, []string{"1 ghost", "3 b"}) {
			t.Fatalf("unreachable notices %v", got)
		}
		rb2 := newMemRec()
		memStart(t, net, "b", rb2)
		memSend(t, a, "b", 4, "to b2")
		synctest.Wait()
		if rb1.nreqs() != 1 || rb2.nreqs() != 1 || len(ra.repliesTo(4)) != 1 {
			t.Fatalf("b1 got %d, b2 got %d requests; a got %q", rb1.nreqs(), rb2.nreqs(), ra.repliesTo(4))
		}

		// Starting a second endpoint of an id takes the requests from the
		// first; closing the first then does not unregister the second.
		rb3 := newMemRec()
		b3 := memStart(t, net, "b", rb3)
		_ = b3
		memSend(t, a, "b", 5, "to b3")
		synctest.Wait()
		if rb3.nreqs() != 1 || rb2.nreqs() != 1 {
			t.Fatalf("b2 got %d, b3 got %d", rb2.nreqs(), rb3.nreqs())
		}
	})
}

// TestMemCloseWaitsForHandlers runs outside a synctest bubble: a
// goroutine blocked in Close waits on a mutex, which is not durably
// blocking, so fake time could not pass while it waits.
func TestMemCloseWaitsForHandlers(t *testing.T) {
	net := transport.NewMemNetwork(7)
	ra, rb := newMemRec(), newMemRec()
	rb.hold = make(chan struct{})
	a := memStart(t, net, "a", ra)
	b := memStart(t, net, "b", rb)
	memSend(t, a, "b", 1, "held")
	waitFor(t, func() bool { return rb.running.Load() == 1 })
	closed := make(chan struct{})
	go func() {
		_ = b.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a Handler call was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(rb.hold)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the Handler call ended")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The reply of the request handled during Close is lost: b is gone.
	time.Sleep(10 * time.Millisecond)
	if ra.nreplies() != 0 {
		t.Fatal("a closed endpoint's reply was delivered")
	}
}

// waitFor polls cond with a deadline (real time).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMemClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(7)
		ra, rb := newMemRec(), newMemRec()
		a := memStart(t, net, "a", ra)
		b := memStart(t, net, "b", rb)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}

		// Nothing is delivered to a closed endpoint, and it sends nothing.
		if err := b.Send("a", 2, []byte("x")); !errors.Is(err, transport.ErrMemClosed) {
			t.Fatalf("Send after Close: %v", err)
		}
		if err := b.Start(rb); !errors.Is(err, transport.ErrMemClosed) {
			t.Fatalf("Start after Close: %v", err)
		}
		memSend(t, a, "b", 3, "to a closed node")
		synctest.Wait()
		if rb.nreqs() != 0 {
			t.Fatal("a closed endpoint received a request")
		}

		// A reply on its way to an endpoint that closes meanwhile is lost.
		rc := newMemRec()
		rc.keep = true
		memStart(t, net, "c", rc)
		memSend(t, a, "c", 4, "q")
		synctest.Wait()
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		rc.respond(0, []byte("to a closed sender"))
		synctest.Wait()
		if ra.nreplies() != 0 || len(ra.unreachable()) != 1 {
			t.Fatalf("closed a got %d replies and notices %v; want none and one", ra.nreplies(), ra.unreachable())
		}
	})
}

// TestMemConcurrentChaos sends from many goroutines while faults,
// partitions and endpoints change, for the race detector and to show that
// every delivery goroutine ends (synctest.Test fails on a leak that
// blocks).
func TestMemConcurrentChaos(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(8)
		net.SetFaults(transport.MemFaults{Drop: 0.1, Duplicate: 0.1, MaxDelay: 20 * time.Millisecond})
		ids := []string{"a", "b", "c", "d"}
		var mu sync.Mutex
		eps := map[string]transport.Transport{}
		for _, id := range ids {
			eps[id] = memStart(t, net, id, newMemRec())
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 200 {
					mu.Lock()
					ep := eps[ids[(g+i)%len(ids)]]
					mu.Unlock()
					_ = ep.Send(ids[(g*7+i)%len(ids)], uint64(i), []byte("m"))
					time.Sleep(time.Millisecond)
				}
			})
		}
		wg.Go(func() {
			for i := range 40 {
				switch i % 4 {
				case 0:
					net.Isolate(ids[i%len(ids)])
				case 1:
					net.Partition(ids[:2], ids[2:])
				case 2:
					net.Heal()
				case 3:
					id := ids[i%len(ids)]
					mu.Lock()
					old := eps[id]
					mu.Unlock()
					_ = old.Close()
					ep := net.Endpoint(id)
					_ = ep.Start(newMemRec())
					mu.Lock()
					eps[id] = ep
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
		wg.Wait()
		time.Sleep(time.Second)
		for _, ep := range eps {
			_ = ep.Close()
		}
		s := net.Stats()
		if s.Delivered == 0 || s.Dropped == 0 || s.Cut == 0 || s.Duplicated == 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}

// TestMemPublish: a publication reaches every other started endpoint once
// on a perfect network, never its sender, never across a partition and
// never a closed endpoint.
func TestMemPublish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(1)
		recs := map[string]*memRec{}
		eps := map[string]transport.Transport{}
		for _, id := range []string{"a", "b", "c", "d"} {
			recs[id] = newMemRec()
			eps[id] = memStart(t, net, id, recs[id])
		}
		if err := eps["a"].Publish("members", []byte("1")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for id, want := range map[string][]string{"a": nil, "b": {"members 1"}, "c": {"members 1"}, "d": {"members 1"}} {
			if got := recs[id].heard(); !slices.Equal(got, want) {
				t.Fatalf("%s heard %q, want %q", id, got, want)
			}
		}
		net.Partition([]string{"a", "b"})
		_ = eps["d"].Close()
		if err := eps["a"].Publish("members", []byte("2")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := recs["b"].heard(); len(got) != 2 || got[1] != "members 2" {
			t.Fatalf("b, on a's side, heard %q", got)
		}
		if len(recs["c"].heard()) != 1 || len(recs["d"].heard()) != 1 {
			t.Fatalf("c (cut off) heard %q, d (closed) heard %q", recs["c"].heard(), recs["d"].heard())
		}
		if err := eps["d"].Publish("members", []byte("3")); err == nil {
			t.Fatal("a closed endpoint published")
		}
		if st := net.Stats(); st.Publications != 2 {
			t.Fatalf("stats: %+v", st)
		}
	})
}
