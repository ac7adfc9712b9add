package node_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestDigestReads: a coordinator that owns the key asks the other owners
// for their replica's digest. An equal one counts as its own replica
// (DigestMatches, no repair); one that differs (DigestMisses) is read
// again in full, and its newer object wins the merge and repairs the
// coordinator's own. Values of up to 1 KiB come whole, digest or not.
func TestDigestReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork(1)
		nodes := startMemNodes(t, net, []string{"n1", "n2", "n3"}, true)
		ctx := context.Background()
		n1 := nodes[0]
		big := strings.Repeat("x", 2000)
		value := func(obj *protocol.Object) string {
			if obj == nil || len(obj.Siblings) != 1 {
				t.Fatalf("object %+v, want one sibling", obj)
			}
			return strings.TrimPrefix(string(obj.Siblings[0].Value), big)
		}
		small, err := n1.Put(ctx, "small", []byte("v"), nil, 3)
		if err != nil {
			t.Fatal(err)
		}
		if obj, err := n1.Get(ctx, "small", 3); err != nil || value(obj) != "v" || small == nil {
			t.Fatalf("R=3 read of a small value: %v %v", obj, err)
		}
		synctest.Wait()
		if st := n1.Status(); st.DigestMatches != 0 || st.DigestMisses != 0 {
			t.Fatalf("a small value came as a digest: %d matches, %d misses", st.DigestMatches, st.DigestMisses)
		}
		v1, err := n1.Put(ctx, "k", []byte(big+"v1"), nil, 3)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := n1.Get(ctx, "k", 2)
		if err != nil || value(obj) != "v1" {
			t.Fatalf("R=2 read: %v %v", obj, err)
		}
		synctest.Wait()
		if st := n1.Status(); st.DigestMatches != 1 || st.DigestMisses != 0 || st.ReadRepairs != 0 {
			t.Fatalf("equal replicas: %d digest matches, %d misses, %d repairs; want 1, 0 and 0", st.DigestMatches, st.DigestMisses, st.ReadRepairs)
		}

		// n1 misses v2.
		net.Isolate("n1")
		if _, err := nodes[1].Put(ctx, "k", []byte(big+"v2"), v1, 2); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		net.Heal()
		for _, r := range []int{2, 3} {
			obj, err = n1.Get(ctx, "k", r)
			if err != nil || value(obj) != "v2" {
				t.Fatalf("R=%d read at the stale owner: %q %v, want v2", r, value(obj), err)
			}
			synctest.Wait()
		}
		st := n1.Status()
		if st.DigestMisses < 1 {
			t.Fatalf("the stale owner's reads had no digest miss")
		}
		if st.ReadRepairs < 1 {
			t.Fatalf("the stale replica was not repaired: %d repairs", st.ReadRepairs)
		}
		if r, err := n1.Replica("k"); err != nil || value(r) != "v2" {
			t.Fatalf("n1's replica after the repair: %v %v", r, err)
		}
		// Repaired: the next read is answered by digest again.
		before := st.DigestMatches
		if obj, err = n1.Get(ctx, "k", 3); err != nil || value(obj) != "v2" {
			t.Fatalf("R=3 read after the repair: %v %v", obj, err)
		}
		synctest.Wait()
		if got := n1.Status().DigestMatches - before; got != 2 {
			t.Fatalf("after the repair an R=3 read had %d digest matches, want 2", got)
		}
	})
}
