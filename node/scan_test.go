package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/node/store"
	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Tests of partition transfer (scan.go serves pages, transfer.go pulls
// them): nodes over the in-memory transport, real bbolt in temp dirs,
// the real clock (timeouts are short), no sleeps.

var transferSecret = []byte("kvmesh transfer test secret 0123")

const transferQ = 4 // partitions: a few thousand keys each from a few more

// tap wraps a node's transport to count the scan requests it serves and
// measure the replies it receives.
type tap struct {
	transport.Transport
	scans    atomic.Int64 // scan requests delivered to this node
	maxReply atomic.Int64 // largest reply delivered to this node, in bytes
}

func (t *tap) Start(h transport.Handler) error { return t.Transport.Start(tapHandler{h, t}) }

type tapHandler struct {
	transport.Handler
	t *tap
}

func (h tapHandler) HandleRequest(data []byte, respond func([]byte)) {
	if r, err := protocol.DecodeRequest(data); err == nil && r.Items[0].Op == protocol.RPCScan {
		h.t.scans.Add(1)
	}
	h.Handler.HandleRequest(data, respond)
}

func (h tapHandler) HandleReply(tag uint64, data []byte) {
	for {
		m := h.t.maxReply.Load()
		if int64(len(data)) <= m || h.t.maxReply.CompareAndSwap(m, int64(len(data))) {
			break
		}
	}
	h.Handler.HandleReply(tag, data)
}

// memNode is a node on a MemNetwork, restartable on the same files.
type memNode struct {
	*Node
	tap *tap
	cfg Config
}

func startMemNode(t testing.TB, net *transport.MemNetwork, id string, members []string, mutate func(*Config)) *memNode {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ID = id
	cfg.DataDir = t.TempDir()
	cfg.RunDir = t.TempDir()
	cfg.Secret = transferSecret
	cfg.Members = members
	// Every node owns every partition (N is at least the members): a node
	// drops the partitions it does not own (rebalance.go), which would
	// race the pulls these tests make by hand.
	cfg.Replicas = max(len(members), 1)
	cfg.Partitions = transferQ
	cfg.RequestTimeout = 5 * time.Second
	// Anti-entropy would race the scans these tests count: a round starts
	// two heartbeats after start and may pull a partition that differs.
	cfg.AntiEntropy = -1
	if mutate != nil {
		mutate(&cfg)
	}
	m := &memNode{cfg: cfg}
	m.start(t, net)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func (m *memNode) start(t testing.TB, net *transport.MemNetwork) {
	t.Helper()
	m.tap = &tap{Transport: net.Endpoint(m.cfg.ID)}
	m.cfg.Transport = m.tap
	n, err := New(m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Node = n
}

// restart closes the node (its store checkpoints into bbolt) and starts
// it again on the same files.
func (m *memNode) restart(t testing.TB, net *transport.MemNetwork) {
	t.Helper()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m.start(t, net)
}

// keysOf returns n keys of partition p, and n/3 of other partitions.
func keysOf(p, n int) (in, out []string) {
	for i := 0; len(in) < n || len(out) < n/3; i++ {
		k := fmt.Sprintf("user.%06d", i)
		if protocol.PartitionOf(k, transferQ) == p {
			if len(in) < n {
				in = append(in, k)
			}
		} else if len(out) < n/3 {
			out = append(out, k)
		}
	}
	return in, out
}

// history builds the object of key i as replicas would hold it: written
// once, overwritten, deleted (a tombstone), or with concurrent siblings.
func history(t testing.TB, i int, value []byte) *protocol.Object {
	t.Helper()
	a, b := protocol.NewActorID("n1", 1, 1), protocol.NewActorID("n9", 1, 2)
	must := func(o *protocol.Object, err error) *protocol.Object {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	o := must(version.Update(nil, nil, a, protocol.Sibling{Value: value, Time: int64(i)}))
	switch i % 5 {
	case 1: // overwritten by another coordinator
		o = must(version.Update(o, o.Clock, b, protocol.Sibling{Value: append([]byte("v2."), value...), Time: int64(i) + 1}))
	case 2: // deleted
		o = must(version.Update(o, o.Clock, a, protocol.Sibling{Deleted: true, Time: int64(i) + 1}))
	case 3: // a blind write from another coordinator: two siblings
		o = must(version.Update(o, nil, b, protocol.Sibling{Value: []byte("concurrent"), Time: int64(i) + 1}))
	case 4: // siblings, then a delete that saw only one of them
		seen := o.Clock
		o = must(version.Update(o, nil, b, protocol.Sibling{Value: []byte("concurrent"), Time: int64(i) + 1}))
		o = must(version.Update(o, seen, a, protocol.Sibling{Deleted: true, Time: int64(i) + 2}))
	}
	return o
}

// storeAll writes objs under keys straight into n's store (merged, as a
// replica write is), all durable on return. Callers stay below the
// store's queue (8192 writes).
func storeAll(t testing.TB, n *Node, keys []string, objs []*protocol.Object) {
	t.Helper()
	done := make(chan error, len(keys))
	for i, k := range keys {
		err := n.st.Apply(protocol.PartitionOf(k, transferQ), k, syncInto(version.KeepSiblings, objs[i]), func(_ *protocol.Object, err error) { done <- err })
		if err != nil {
			t.Fatal(err)
		}
	}
	for range keys {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// fillPartition stores history objects of count keys of partition p, and
// of keys of other partitions, on n; it returns the keys of p.
func fillPartition(t testing.TB, n *Node, p, count, valueLen int) []string {
	t.Helper()
	in, out := keysOf(p, count)
	all := append(slices.Clone(in), out...)
	for start := 0; start < len(all); start += 4096 {
		keys := all[start:min(start+4096, len(all))]
		objs := make([]*protocol.Object, len(keys))
		for i, k := range keys {
			v := []byte(k + ".")
			for len(v) < valueLen {
				v = append(v, 'v')
			}
			objs[i] = history(t, start+i, v)
		}
		storeAll(t, n, keys, objs)
	}
	return in
}

func mustGet(t testing.TB, n *Node, key string) *protocol.Object {
	t.Helper()
	o, err := n.st.Get(protocol.PartitionOf(key, transferQ), key)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// partitionKeys returns the keys n's store holds in partition p.
func partitionKeys(t testing.TB, st *store.Store, p int) []string {
	t.Helper()
	var keys []string
	if err := st.Scan(p, func(k string, _ *protocol.Object) bool { keys = append(keys, k); return true }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestServeScan: each scan item of a request is answered in a reply of
// its own (a page fills what one reply carries), next to the reply of the
// other items; a partition the store does not have is an error.
func TestServeScan(t *testing.T) {
	net := transport.NewMemNetwork(7)
	n := startMemNode(t, net, "n1", nil, nil)
	keys := fillPartition(t, n.Node, 2, 10, 10)
	b, _ := protocol.EncodeRequest(&protocol.Request{V: protocol.Version, From: "n2", Items: []protocol.Item{
		{Tag: 1, Op: protocol.RPCScan, Partition: 2},
		{Tag: 2, Op: protocol.RPCRead, Key: keys[0]},
		{Tag: 3, Op: protocol.RPCScan, Partition: 2, After: keys[4]},
		{Tag: 4, Op: protocol.RPCScan, Partition: transferQ},
	}})
	replies := make(chan []byte, 8)
	n.HandleRequest(b, func(r []byte) { replies <- r })
	got := map[uint64]protocol.Result{}
	for range 4 {
		r, err := protocol.DecodeReply(<-replies)
		if err != nil || len(r.Results) != 1 {
			t.Fatalf("reply %+v, %v: want one result a reply", r, err)
		}
		got[r.Results[0].Tag] = r.Results[0]
	}
	if recs := got[1].Recs; len(recs) != len(keys) || recs[0].Key != keys[0] || got[1].Next != "" || got[1].Code != 0 {
		t.Fatalf("whole partition: %+v", got[1])
	}
	if got[2].Obj == nil || got[2].Code != 0 {
		t.Fatalf("read: %+v", got[2])
	}
	if recs := got[3].Recs; len(recs) != len(keys)-5 || recs[0].Key != keys[5] {
		t.Fatalf("after %q: %+v", keys[4], got[3])
	}
	if bad := got[4]; !errors.Is(bad.Error(), protocol.ErrInvalidOption) {
		t.Fatalf("partition %d: %+v", transferQ, bad)
	}
}
