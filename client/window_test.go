package client

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// heldNode is a fake node "n1" that takes client batches on its batch
// subject and answers each only when the test says so.
type heldNode struct {
	t       *testing.T
	nc      *nats.Conn
	batches chan heldBatch
}

type heldBatch struct {
	reply string
	items []protocol.ClientItem
}

func newHeldNode(t *testing.T) (*heldNode, *Client) {
	t.Helper()
	srv, nc := testServer(t, "n1")
	h := &heldNode{t: t, nc: nc, batches: make(chan heldBatch, 100)}
	subjects, _ := protocol.NewSubjects("")
	sub, err := nc.Subscribe(subjects.KVNodeBatch("n1"), func(m *nats.Msg) {
		b, err := protocol.DecodeClientBatch(m.Data)
		if err != nil {
			t.Errorf("fake node: %v", err)
			return
		}
		h.batches <- heldBatch{reply: m.Reply, items: b.Items}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// No placement table: the client sends to the node it is connected to.
	c, err := Connect(srv.ClientURL(), WithTimeout(20*time.Second), WithRouting(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return h, c
}

// next returns the next batch the node received.
func (h *heldNode) next() heldBatch {
	h.t.Helper()
	select {
	case b := <-h.batches:
		return b
	case <-time.After(10 * time.Second):
		h.t.Fatal("no batch reached the node")
		return heldBatch{}
	}
}

// answer answers every item of b with success.
func (h *heldNode) answer(b heldBatch) {
	h.t.Helper()
	r := &protocol.ClientBatchReply{V: protocol.Version, From: "n1"}
	for _, it := range b.items {
		r.Results = append(r.Results, protocol.ClientResult{Tag: it.Tag, Context: "c", Siblings: 1, Values: [][]byte{[]byte("v")}})
	}
	data, err := protocol.EncodeClientBatchReply(r)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.nc.Publish(b.reply, data); err != nil {
		h.t.Fatal(err)
	}
}

// queued is how many calls wait in the client's sender for n1's puts.
func queued(c *Client) int {
	c.batch.mu.Lock()
	p := c.batch.pipe
	c.batch.mu.Unlock()
	if p == nil {
		return 0
	}
	return p.Queued(senderKey{node: "n1"})
}

func puts(t *testing.T, c *Client, n int) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Put(context.Background(), "k"+string(rune('a'+i)), []byte("v")); err != nil {
				t.Errorf("put %d: %v", i, err)
			}
		}()
	}
	return &wg
}

// TestCallsBehindAnUnansweredBatchGoTogether: while a batch is out, the
// calls made meanwhile queue, and go as one batch once it is answered.
func TestCallsBehindAnUnansweredBatchGoTogether(t *testing.T) {
	h, c := newHeldNode(t)
	c.batch.hold = time.Hour // only the answer frees the window
	first := puts(t, c, 1)
	b1 := h.next()
	if len(b1.items) != 1 {
		t.Fatalf("first batch: %d items, want 1", len(b1.items))
	}
	rest := puts(t, c, 10)
	deadline := time.Now().Add(10 * time.Second)
	for queued(c) < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want 10", queued(c))
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case b := <-h.batches:
		t.Fatalf("a batch of %d went out while the first was unanswered", len(b.items))
	default:
	}
	h.answer(b1)
	first.Wait()
	b2 := h.next()
	if len(b2.items) != 10 {
		t.Fatalf("second batch: %d items, want the 10 queued calls", len(b2.items))
	}
	h.answer(b2)
	rest.Wait()
}

// TestUnansweredBatchHoldsTheNextOnlyBriefly: a node that never answers
// delays the next calls by the hold, not by their timeout.
func TestUnansweredBatchHoldsTheNextOnlyBriefly(t *testing.T) {
	h, c := newHeldNode(t)
	c.batch.hold = 50 * time.Millisecond
	stuck, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _, _ = c.Put(stuck, "stuck", []byte("v")) }()
	h.next() // never answered
	start := time.Now()
	done := puts(t, c, 1)
	b := h.next()
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("the next batch waited %v", waited)
	}
	h.answer(b)
	done.Wait()
}

// TestGetsDoNotWaitBehindWrites: gets have their own window, so a get is
// sent while a write batch waits for its fsync.
func TestGetsDoNotWaitBehindWrites(t *testing.T) {
	h, c := newHeldNode(t)
	c.batch.hold = time.Hour
	w := puts(t, c, 1)
	bw := h.next()
	got := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), "g")
		got <- err
	}()
	bg := h.next()
	if len(bg.items) != 1 || bg.items[0].Op != protocol.BatchGet {
		t.Fatalf("want the get alone while the write is unanswered, got %+v", bg.items)
	}
	h.answer(bg)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	h.answer(bw)
	w.Wait()
}
