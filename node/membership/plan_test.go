package membership

import (
	"bytes"
	"slices"
	"testing"

	"github.com/kvmesh/kvmesh/node/ring"
	"github.com/kvmesh/kvmesh/protocol"
)

func TestServingAndTarget(t *testing.T) {
	k := newTestKeys(t)
	var s Set
	for id, st := range map[string]protocol.MemberStatus{"n1": protocol.MemberUp, "n2": protocol.MemberUp, "n3": protocol.MemberLeaving,
		"n4": protocol.MemberJoining, "n5": protocol.MemberLeft} {
		s, _ = s.Apply(k.record(t, id, st, 1, 1), k.pub)
	}
	if got := s.Serving(); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("serving %v", got)
	}
	if got := s.Target(); !slices.Equal(got, []string{"n1", "n2", "n4"}) {
		t.Fatalf("target %v", got)
	}
	if Epoch([]string{"a", "b"}) != Epoch([]string{"b", "a"}) || Epoch([]string{"a", "b"}) == Epoch([]string{"a", "c"}) || Epoch(nil) != 0 || Epoch([]string{"a"}) == 0 {
		t.Fatal("an epoch names a member list whatever its order, and none is zero")
	}
}

// TestGains: a join moves to the joiner only the partitions it must, a
// leave moves only the leaver's, and each move copies from the
// partition's serving owners.
func TestGains(t *testing.T) {
	mk := func(ids ...string) *ring.Ring {
		r, err := ring.New(ids, 256, 3)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	count := func(serving, target *ring.Ring) (moves int, by map[string]int) {
		by = map[string]int{}
		for _, id := range target.Members() {
			for _, m := range Gains(serving, target, id) {
				if !slices.Equal(m.From, serving.Owners(m.Partition)) || serving.IsOwner(m.Partition, id) || !target.IsOwner(m.Partition, id) {
					t.Fatalf("%s gains %+v", id, m)
				}
				moves++
				by[id]++
			}
		}
		// Every (partition, owner) of the target that the serving ring
		// lacks is one move, and no other.
		want := 0
		for p := range 256 {
			for _, o := range target.Owners(p) {
				if !serving.IsOwner(p, o) {
					want++
				}
			}
		}
		if moves != want {
			t.Fatalf("%d moves, want %d", moves, want)
		}
		return moves, by
	}
	three, four := mk("n1", "n2", "n3"), mk("n1", "n2", "n3", "n4")
	moves, by := count(three, four)
	if by["n4"] != len(four.PartitionsOf("n4")) || moves > by["n4"]+256*3/20 {
		t.Fatalf("join of n4: %d moves %v; n4 owns %d", moves, by, len(four.PartitionsOf("n4")))
	}
	if got := Gains(three, three, "n1"); got != nil {
		t.Fatalf("no change, yet gains %v", got)
	}
	moves, by = count(four, three)
	if by["n4"] != 0 || moves > len(four.PartitionsOf("n4"))+256*3/20 {
		t.Fatalf("leave of n4: %d moves %v; n4 owned %d", moves, by, len(four.PartitionsOf("n4")))
	}
	t.Logf("3 -> 4 nodes, N=3, Q=256: %d partition replicas move", moves)
}

// TestFlip: a transition ends the same way wherever it is signed.
func TestFlip(t *testing.T) {
	k := newTestKeys(t)
	for st, want := range map[protocol.MemberStatus]protocol.MemberStatus{protocol.MemberJoining: protocol.MemberUp, protocol.MemberLeaving: protocol.MemberLeft} {
		r := k.record(t, "n4", st, 2, 5)
		f1, ok := Flip(r)
		if !ok || f1.Status != want || f1.Version != 6 || f1.Incarnation != 2 {
			t.Fatalf("flip of %v: %+v", st, f1)
		}
		a, _ := Sign(f1, k.cluster)
		f2, _ := Flip(r)
		b, _ := Sign(f2, k.cluster)
		if !bytes.Equal(a.Sig, b.Sig) {
			t.Fatal("two flips of one record signed differently")
		}
	}
	for _, st := range []protocol.MemberStatus{protocol.MemberUp, protocol.MemberLeft} {
		if _, ok := Flip(k.record(t, "n1", st, 1, 1)); ok {
			t.Fatalf("%v flipped", st)
		}
	}
}
