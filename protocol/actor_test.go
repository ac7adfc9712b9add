package protocol

import (
	"slices"
	"testing"
)

func TestActorID(t *testing.T) {
	a := NewActorID("n1", 1765000000, 0xff_ffff_ffff)
	if len(a) != len("n1.")+ActorSuffixLen || ActorNode(a) != "n1" || ActorCreated(a) != 1765000000 {
		t.Fatalf("NewActorID = %q: node %q, created %d", a, ActorNode(a), ActorCreated(a))
	}
	if err := ValidateActorID(a); err != nil {
		t.Fatalf("%q: %v", a, err)
	}
	// Ids sort by creation time within a node.
	ids := []string{NewActorID("n1", 300, 1), NewActorID("n1", 2, 9), NewActorID("n1", 40, 0)}
	slices.Sort(ids)
	for i, want := range []int64{2, 40, 300} {
		if ActorCreated(ids[i]) != want {
			t.Fatalf("sorted ids %q are not in creation order", ids)
		}
	}
	if ActorCreated("n1") != 0 || ActorNode("n1") != "n1" {
		t.Fatal("a bare node id")
	}
	for _, ok := range []string{"n1", "node-a_b.0123456789abcdv", a} {
		if err := ValidateActorID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".1", "n1.", "n1.1", "n1.0123456789abcdw", "n1.0123456789abcdef", "n1.0123456789ABCDE", "n 1.0123456789abcde", "n1.0123456789abcd.e"} {
		if err := ValidateActorID(bad); err == nil {
			t.Errorf("%q validated", bad)
		}
	}
	c := Clock{{Node: "n1", Counter: 1}, {Node: a, Counter: 3}}
	if err := c.Validate(); err != nil {
		t.Errorf("clock with a run actor: %v", err)
	}
}
