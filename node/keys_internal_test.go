package node

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestListKeys50k: a coordinator lists 50,000 keys from three replicas
// (over the in-memory transport, real bbolt) whose stores disagree as
// replicas do: a delete one replica missed, a write only one replica
// has, expired values, keys outside the prefix. Paging gives every key
// whose merge is live once, in order, across page boundaries, and a
// page's allocations (the coordinator's and the replicas', which share
// the process) stay those of a page.
func TestListKeys50k(t *testing.T) {
	net := transport.NewMemNetwork(3)
	ids := []string{"n1", "n2", "n3"}
	var nodes []*memNode
	for _, id := range ids {
		nodes = append(nodes, startMemNode(t, net, id, ids, func(c *Config) {
			c.Partitions = 64
			c.AntiEntropy = -1 // it would repair the replicas, and allocate during the pages
		}))
	}
	const total = 50000
	a := protocol.NewActorID("n1", 1, 1)
	must := func(o *protocol.Object, err error) *protocol.Object {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	var want []string
	keys := make([][]string, 3)
	objs := make([][]*protocol.Object, 3)
	add := func(i int, k string, o *protocol.Object) {
		keys[i] = append(keys[i], k)
		objs[i] = append(objs[i], o)
	}
	for i := range total + 100 {
		k := fmt.Sprintf("item.%06d", i)
		if i >= total {
			k = fmt.Sprintf("other.%06d", i) // outside the prefix
		}
		o := must(version.Update(nil, nil, a, protocol.Sibling{Value: []byte("value"), Time: int64(i + 1)}))
		switch {
		case i >= total:
			for r := range 3 {
				add(r, k, o)
			}
		case i%10 == 3: // deleted; n3 missed the delete
			del := must(version.Update(o, o.Clock, a, protocol.Sibling{Deleted: true, Time: int64(i + 2)}))
			add(0, k, del)
			add(1, k, del)
			add(2, k, o)
		case i%13 == 5: // expired long ago, everywhere
			exp := must(version.Update(nil, nil, a, protocol.Sibling{Value: []byte("v"), Time: 1, Expires: 2}))
			for r := range 3 {
				add(r, k, exp)
			}
		case i%17 == 7: // only n3 has it
			add(2, k, o)
			want = append(want, k)
		default:
			for r := range 3 {
				add(r, k, o)
			}
			want = append(want, k)
		}
	}
	for r, n := range nodes {
		for start := 0; start < len(keys[r]); start += 4096 {
			end := min(start+4096, len(keys[r]))
			storeIn(t, n.Node, keys[r][start:end], objs[r][start:end])
		}
		n.restart(t, net) // the records move into bbolt
	}
	objs = nil

	coord := nodes[0]
	const pageSize = 999
	var got []string
	pages := 0
	var maxAlloc, sumAlloc uint64
	var allocs []uint64
	var ms runtime.MemStats
	ctx := testContext(t)
	for cursor := ""; ; {
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		page, next, err := coord.listKeys(ctx, keysQuery{prefix: "item.", after: cursor, limit: pageSize, r: 2})
		runtime.ReadMemStats(&ms)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		alloc := ms.TotalAlloc - before
		maxAlloc, sumAlloc = max(maxAlloc, alloc), sumAlloc+alloc
		allocs = append(allocs, alloc>>10)
		if len(page) > pageSize || len(page) < pageSize && next != "" && len(page) > 0 && pages < total/pageSize {
			// A short page with more to come is allowed (deleted keys)
			// but these records are mostly live: it would be a bug.
			t.Fatalf("page %d: %d keys, next %q", pages, len(page), next)
		}
		for _, lk := range page {
			got = append(got, lk.key)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("listed %d keys, want %d; first difference at %d", len(got), len(want), i)
	}
	t.Logf("%d of %d keys listed in %d pages of %d: the coordinator and 3 replicas allocated %d KiB per page on average, %d KiB at most",
		len(got), total, pages, pageSize, sumAlloc/uint64(pages)>>10, maxAlloc>>10)
	if maxAlloc > 16<<20 {
		t.Errorf("a page allocated %d bytes; KiB per page: %v", maxAlloc, allocs)
	}

	// One replica's share: its page of 999 records of all 64 partitions,
	// from the middle of the store.
	parts := make([]int, 64)
	for i := range parts {
		parts[i] = i
	}
	budget := protocol.ScanBudget(int64(coord.cfg.MaxPayload))
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	res := keysPage(nodes[1].st, parts, "item.", "item.025000", pageSize, budget)
	runtime.ReadMemStats(&ms)
	if len(res.Recs) != pageSize || res.Next == "" {
		t.Fatalf("replica page: %d records, next %q, %v", len(res.Recs), res.Next, res.Error())
	}
	t.Logf("a replica's page of %d records: %d KiB allocated", pageSize, (ms.TotalAlloc-before)>>10)
}

// storeIn writes objs under keys straight into n's store, as storeAll,
// in the partitions of n's ring.
func storeIn(t testing.TB, n *Node, keys []string, objs []*protocol.Object) {
	t.Helper()
	done := make(chan error, len(keys))
	rg := n.mem.ring()
	for i, k := range keys {
		err := n.st.Apply(rg.Partition(k), k, syncInto(version.KeepSiblings, objs[i]), func(_ *protocol.Object, err error) { done <- err })
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

// TestMergeKeyPages: the merge of one round lists a key only up to the
// smallest last key of the pages that have more, merges the owners'
// objects (a tombstone hides a value it supersedes), and cuts at the
// limit.
func TestMergeKeyPages(t *testing.T) {
	a := protocol.NewActorID("n1", 1, 1)
	live, _ := version.Update(nil, nil, a, protocol.Sibling{Time: 1})
	dead, _ := version.Update(live, live.Clock, a, protocol.Sibling{Deleted: true, Time: 2})
	rec := func(k string, o *protocol.Object) protocol.Record { return protocol.Record{Key: k, Obj: o} }
	pages := map[string]keyPage{
		"n1": {recs: []protocol.Record{rec("a", live), rec("b", dead), rec("c", live), rec("d", live)}, next: "d"},
		"n2": {recs: []protocol.Record{rec("a", live), rec("b", live), rec("c", live)}, next: "c"},
		"n3": {err: fmt.Errorf("down")},
	}
	keysOf := func(l []listedKey) []string {
		var ks []string
		for _, k := range l {
			ks = append(ks, k.key)
		}
		return ks
	}
	if l, next := mergeKeyPages(version.KeepSiblings, pages, "", "", 10, 10); !slices.Equal(keysOf(l), []string{"a", "c"}) || next != "c" {
		t.Fatalf("merge = %q, next %q; want [a c], next c", keysOf(l), next)
	}
	if l, next := mergeKeyPages(version.KeepSiblings, pages, "", "", 10, 1); !slices.Equal(keysOf(l), []string{"a"}) || next != "a" {
		t.Fatalf("merge with limit 1 = %q, next %q; want [a], next a", keysOf(l), next)
	}
	pages["n2"] = keyPage{recs: []protocol.Record{rec("a", live)}}
	pages["n1"] = keyPage{recs: []protocol.Record{rec("b", dead), rec("d", live)}}
	if l, next := mergeKeyPages(version.KeepSiblings, pages, "", "a", 10, 10); !slices.Equal(keysOf(l), []string{"d"}) || next != "" {
		t.Fatalf("last round = %q, next %q; want [d] and done", keysOf(l), next)
	}
	_ = context.Background
}
