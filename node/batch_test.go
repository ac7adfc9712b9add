package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/protocol"
)

// batchTap decodes every client batch published on node i's server and
// records the largest, and every item whose target node does not own its
// key.
type batchTap struct {
	largest  atomic.Int64
	batches  atomic.Int64
	mu       sync.Mutex
	nonOwner []string
}

func (c *testCluster) batchTap(i int) *batchTap {
	c.t.Helper()
	nc, err := nats.Connect(c.nodes[i].ClientURL())
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	tap := &batchTap{}
	n := c.nodes[i]
	if _, err := nc.Subscribe("kvmesh.kv.node.*.batch", func(m *nats.Msg) {
		b, err := protocol.DecodeClientBatch(m.Data)
		if err != nil {
			return
		}
		tap.batches.Add(1)
		for {
			l := tap.largest.Load()
			if int64(len(b.Items)) <= l || tap.largest.CompareAndSwap(l, int64(len(b.Items))) {
				break
			}
		}
		to := strings.Split(m.Subject, ".")[3]
		for _, it := range b.Items {
			if !slices.Contains(n.Owners(it.Key), to) {
				tap.mu.Lock()
				tap.nonOwner = append(tap.nonOwner, it.Key+" to "+to)
				tap.mu.Unlock()
			}
		}
	}); err != nil {
		c.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		c.t.Fatal(err)
	}
	return tap
}

// TestBatchingConcurrentCallsAreCorrect: many goroutines put, read and
// delete distinct and shared keys; every result is what the operation
// must return, with batching on and off, and with it on a wiretap sees
// batches of several items, each sent to an owner of its keys.
func TestBatchingConcurrentCallsAreCorrect(t *testing.T) {
	c := startCluster(t, 5)
	for _, batching := range []bool{true, false} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			tap := c.batchTap(0)
			cl := c.client(0, client.WithBatching(batching))
			ctx := testCtx(t)
			const workers, rounds = 48, 15
			prefix := fmt.Sprintf("b%v", batching)
			shared := []string{prefix + ".shared.1", prefix + ".shared 2"} // one key is not subject-safe
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- worker(ctx, cl, fmt.Sprintf("%s.w%d", prefix, w), shared, rounds)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			// The shared keys hold only values some worker wrote.
			for _, key := range shared {
				e, err := cl.Get(ctx, key, client.R("all"))
				if err != nil {
					t.Fatalf("get %q: %v", key, err)
				}
				if e.Siblings < 1 || len(e.Values) != e.Siblings || e.Node == "" || e.Context == "" {
					t.Fatalf("get %q: %+v", key, e)
				}
				for _, v := range e.Values {
					if !strings.HasPrefix(string(v), prefix+".w") {
						t.Fatalf("get %q: value %q nobody wrote", key, v)
					}
				}
			}
			tap.mu.Lock()
			defer tap.mu.Unlock()
			if len(tap.nonOwner) > 0 {
				t.Errorf("items sent to a node that does not own their key: %v", tap.nonOwner[:min(5, len(tap.nonOwner))])
			}
			if got := tap.largest.Load(); batching && got < 2 {
				t.Fatalf("largest batch had %d items in %d batches, want several", got, tap.batches.Load())
			} else if !batching && tap.batches.Load() != 0 {
				t.Fatalf("%d batches with batching off", tap.batches.Load())
			}
			t.Logf("%d batches, largest %d items", tap.batches.Load(), tap.largest.Load())
		})
	}
}

// worker runs rounds of a read-modify-write cycle on its own keys (one
// not subject-safe) and blind puts of the shared ones, checking each
// result.
func worker(ctx context.Context, cl *client.Client, me string, shared []string, rounds int) error {
	for r := range rounds {
		for _, key := range []string{me + ".k", me + " spaced"} {
			val := []byte(fmt.Sprintf("%s.%d", key, r))
			if _, err := cl.Put(ctx, key, val); err != nil {
				return fmt.Errorf("put %q: %w", key, err)
			}
			e, err := cl.Get(ctx, key)
			if err != nil {
				return fmt.Errorf("get %q: %w", key, err)
			}
			if e.Key != key || e.Siblings != 1 || len(e.Values) != 1 || !bytes.Equal(e.Value(), val) || e.Context == "" || e.Node == "" {
				return fmt.Errorf("get %q after put %q: %+v", key, val, e)
			}
			if err := cl.Delete(ctx, key, client.Context(e.Context), client.W("all")); err != nil {
				return fmt.Errorf("delete %q: %w", key, err)
			}
			if _, err := cl.Get(ctx, key, client.R("all")); !errors.Is(err, client.ErrKeyNotFound) {
				return fmt.Errorf("get %q after delete: %v, want ErrKeyNotFound", key, err)
			}
		}
		// Read-modify-write of a shared key: concurrent writers leave
		// siblings, at most one per writer.
		key := shared[r%len(shared)]
		e, err := cl.Get(ctx, key)
		if err != nil && !errors.Is(err, client.ErrKeyNotFound) {
			return fmt.Errorf("get %q: %w", key, err)
		}
		if _, err := cl.Put(ctx, key, []byte(me), client.Context(e.Context)); err != nil {
			return fmt.Errorf("put %q: %w", key, err)
		}
	}
	return nil
}

// batchReplies sends raw bytes to node's batch subject and collects the
// results of the replies until want results came.
func batchReplies(t *testing.T, nc *nats.Conn, node string, data []byte, want int) map[uint64]protocol.ClientResult {
	t.Helper()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("kvmesh.kv.node."+node+".batch", inbox, data); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]protocol.ClientResult{}
	for len(got) < want {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("%d of %d results: %v", len(got), want, err)
		}
		r, err := protocol.DecodeClientBatchReply(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if r.From != node {
			t.Fatalf("reply from %q, want %q", r.From, node)
		}
		for _, res := range r.Results {
			if _, dup := got[res.Tag]; dup {
				t.Fatalf("tag %d answered twice", res.Tag)
			}
			got[res.Tag] = res
		}
	}
	// Nothing more: one result per item.
	if m, err := sub.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("an extra reply: %q", m.Data)
	}
	return got
}

// An invalid item fails alone: its own error, the same as a single
// request would get; the other items of its batch succeed.
func TestBatchInvalidItemsFailAlone(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	cl := c.client(0)
	if _, err := cl.Put(ctx, "inv.present", []byte("here")); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(c.nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	big := make([]byte, protocol.MaxValueLen(nc.MaxPayload())+1)
	items := []protocol.ClientItem{
		{Tag: 1, Op: protocol.BatchPut, Key: "inv.ok", Value: []byte("v1")},
		{Tag: 2, Op: protocol.BatchPut, Key: "", Value: []byte("v")},
		{Tag: 3, Op: protocol.BatchPut, Key: "inv.q", Value: []byte("v"), Quorum: "seven"},
		{Tag: 4, Op: protocol.BatchDel, Key: "inv.c", Context: "!!not base64"},
		{Tag: 5, Op: protocol.BatchPut, Key: "inv.big", Value: big},
		{Tag: 6, Op: protocol.BatchGet, Key: "inv.present", Context: "kA"},
		{Tag: 7, Op: protocol.BatchGet, Key: "inv.present", Quorum: "all"},
		{Tag: 8, Op: protocol.BatchGet, Key: "inv.absent"},
		{Tag: 9, Op: protocol.BatchGet, Key: "a\x00b"},
		{Tag: 10, Op: protocol.BatchPut, Key: "inv ok 2", Value: []byte{}, Quorum: "all"},
		{Tag: 11, Op: protocol.BatchGet, Key: "inv.present", Quorum: "4"},
	}
	data, _ := protocol.EncodeClientBatch(&protocol.ClientBatch{V: protocol.Version, Items: items})
	got := batchReplies(t, nc, "n1", data, len(items))
	wantErr := map[uint64]error{2: client.ErrInvalidKey, 3: client.ErrInvalidOption, 4: client.ErrInvalidContext,
		5: client.ErrValueTooLarge, 6: client.ErrInvalidOption, 8: client.ErrKeyNotFound, 9: client.ErrInvalidKey,
		11: client.ErrInvalidOption}
	for _, it := range items {
		res := got[it.Tag]
		if want := wantErr[it.Tag]; want != nil {
			if err := res.Error(); !errors.Is(err, want) {
				t.Errorf("item %d: %v, want %v", it.Tag, err, want)
			}
			continue
		}
		if err := res.Error(); err != nil {
			t.Errorf("item %d: %v", it.Tag, err)
		}
	}
	if r := got[7]; r.Siblings != 1 || len(r.Values) != 1 || string(r.Values[0]) != "here" || r.Context == "" {
		t.Errorf("get result %+v", r)
	}
	for _, key := range []string{"inv.ok", "inv ok 2"} {
		if _, err := cl.Get(ctx, key, client.R("all")); err != nil {
			t.Errorf("get %q: %v", key, err)
		}
	}
	for _, key := range []string{"inv.q", "inv.c", "inv.big"} {
		if _, err := cl.Get(ctx, key, client.R("all")); !errors.Is(err, client.ErrKeyNotFound) {
			t.Errorf("get %q: %v, want ErrKeyNotFound", key, err)
		}
	}
	// Through the client, batched or not, the same errors come back.
	for _, batching := range []bool{true, false} {
		cl := c.client(0, client.WithBatching(batching))
		for name, tc := range map[string]struct {
			err  error
			want error
		}{
			"bad w":       {err: func() error { _, err := cl.Put(ctx, "inv.x", nil, client.W("seven")); return err }(), want: client.ErrInvalidOption},
			"bad r":       {err: func() error { _, err := cl.Get(ctx, "inv.x", client.R("0")); return err }(), want: client.ErrInvalidOption},
			"bad context": {err: cl.Delete(ctx, "inv.x", client.Context("!!")), want: client.ErrInvalidContext},
			"context get": {err: func() error { _, err := cl.Get(ctx, "inv.x", client.Context("kA")); return err }(), want: client.ErrInvalidOption},
			"absent":      {err: func() error { _, err := cl.Get(ctx, "inv.x"); return err }(), want: client.ErrKeyNotFound},
		} {
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("batching=%v %s: %v, want %v", batching, name, tc.err, tc.want)
			}
		}
	}
}

// Bytes that are no batch get one ErrMalformed result with tag 0 and
// change nothing.
func TestMalformedBatchIsRefused(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	nc, err := nats.Connect(c.nodes[1].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	good, _ := protocol.EncodeClientBatch(&protocol.ClientBatch{V: protocol.Version, Items: []protocol.ClientItem{
		{Tag: 1, Op: protocol.BatchPut, Key: "mal.k", Value: []byte("v")}}})
	// {"v":1,"i":[{"t":1,"o":2,"k":"mal.k","d":"v"},{"t":2,"o":257,"k":"a"}]}: a good item, then a bad op.
	badOp := append(append([]byte{0x82, 0xa1, 'v', 0x01, 0xa1, 'i', 0x92}, good[7:]...), 0x83, 0xa1, 't', 0x02, 0xa1, 'o', 0xcd, 0x01, 0x01, 0xa1, 'k', 0xa1, 'a')
	if _, err := protocol.DecodeClientBatch(badOp); err == nil {
		t.Fatal("test batch is not malformed")
	}
	for name, data := range map[string][]byte{
		"empty":       nil,
		"not msgpack": []byte("\xc1\xc1"),
		"json":        []byte(`{"v":1,"i":[{"t":1,"o":2,"k":"mal.k","d":"v"}]}`),
		"truncated":   good[:len(good)-1],
		"bad op":      badOp,
		"version":     append([]byte{0x82, 0xa1, 'v', 0x63}, good[4:]...),
	} {
		got := batchReplies(t, nc, "n2", data, 1)
		r, ok := got[0]
		if !ok || !errors.Is(r.Error(), client.ErrMalformed) {
			t.Errorf("%s: %+v, want ErrMalformed with tag 0", name, got)
		}
	}
	cl := c.client(1)
	if _, err := cl.Get(ctx, "mal.k", client.R("all")); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatalf("get after malformed batches: %v, want ErrKeyNotFound", err)
	}
}

// With the key's first owner down, the batched calls for it get no
// responders and fall back to single requests to the next owner; all
// succeed.
func TestBatchFallsBackWhenTheTargetIsDown(t *testing.T) {
	c := startCluster(t, 5)
	ctx := testCtx(t)
	cl := c.client(0)
	down := 4 // n5
	var keys []string
	for j := 0; len(keys) < 40; j++ {
		key := fmt.Sprintf("fb.%d", j)
		if j%2 == 1 {
			key = fmt.Sprintf("fb %d", j) // not subject-safe: no single node subject
		}
		owners := c.nodes[0].Owners(key)
		if owners[0] == c.cfgs[down].ID && !slices.Contains(owners, c.cfgs[0].ID) {
			keys = append(keys, key)
		}
	}
	// The client fetches its table with every node up.
	if _, err := cl.Get(ctx, "fb.warmup"); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatal(err)
	}
	c.stopAndWait(down)
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	for _, key := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cl.Put(ctx, key, []byte(key)); err != nil {
				errs <- fmt.Errorf("put %q: %w", key, err)
				return
			}
			e, err := cl.Get(ctx, key)
			if err != nil || string(e.Value()) != key {
				errs <- fmt.Errorf("get %q: %q %v", key, e.Value(), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// clientGoroutines counts the goroutines running client code.
func clientGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "kvmesh/kvmesh/client.") && !strings.Contains(g, "node_test.") {
			n++
		}
	}
	return n
}

// Close with calls queued and in flight returns, every call returns, and
// no goroutine of the client is left.
func TestCloseWithCallsInFlight(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	for round := range 3 {
		cl, err := client.Connect(c.nodes[round].ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		var started sync.WaitGroup
		var wg sync.WaitGroup
		var ok atomic.Int64
		for w := range 32 {
			wg.Add(1)
			started.Add(1)
			go func() {
				defer wg.Done()
				first := true
				for k := 0; ; k++ {
					key := fmt.Sprintf("close.%d.%d.%d", round, w, k)
					_, err := cl.Put(ctx, key, []byte("v"))
					if first {
						started.Done()
						first = false
					}
					if err != nil {
						return // closed
					}
					ok.Add(1)
				}
			}()
		}
		started.Wait()
		cl.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("calls did not return after Close")
		}
		cl.Close() // idempotent
		if _, err := cl.Get(ctx, "close.after"); err == nil {
			t.Fatal("a call after Close succeeded")
		}
		if ok.Load() == 0 {
			t.Fatal("no call succeeded before Close")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for clientGoroutines() > 0 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("client goroutines left after Close:\n%s", buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A batched get returns the same Entry as a single request: values,
// sibling count, context and node, with and without a resolver. (Node
// differs only for keys that are not subject-safe: batched they go to
// an owner, single to the queue group.)
func TestBatchedEntryMatchesSingleRequest(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	resolve := client.WithResolver(func(_ string, vals [][]byte) []byte { return bytes.Join(vals, []byte("+")) })
	on, off := c.client(0), c.client(0, client.WithBatching(false))
	ron, roff := c.client(0, resolve), c.client(0, resolve, client.WithBatching(false))
	for _, key := range []string{"same.one", "same.sib", "same empty", "same spaced"} {
		vals := [][]byte{[]byte("a")}
		switch key {
		case "same.sib":
			vals = [][]byte{[]byte("a"), []byte("b"), []byte("c")}
		case "same empty":
			vals = [][]byte{{}}
		}
		for _, v := range vals {
			if _, err := on.Put(ctx, key, v, client.W("all")); err != nil {
				t.Fatal(err)
			}
		}
		for _, pair := range [][2]*client.Client{{on, off}, {ron, roff}} {
			a, err := pair[0].Get(ctx, key, client.R("all"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := pair[1].Get(ctx, key, client.R("all"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(key, " ") {
				// Batched, a key that is not subject-safe goes to an
				// owner; single, to the queue group: any node.
				a.Node, b.Node = "", ""
			}
			if fmt.Sprintf("%#v", a) != fmt.Sprintf("%#v", b) {
				t.Fatalf("%q batched %#v\nsingle %#v", key, a, b)
			}
		}
	}
}
