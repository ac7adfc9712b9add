package coord

import (
	"slices"
	"testing"

	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Digest reads (ReadSpec.Digests): the other owners are asked for their
// digest, in parallel with the local read; an equal digest counts as the
// local replica, a different one costs a second request for the object.

func digestRead(t *testing.T, self string, r int) (*Read, Effects) {
	t.Helper()
	return StartRead(ReadSpec{Self: self, Key: "k", Owners: []string{"a", "b", "c"}, R: r, Digests: true}, t0, timeout)
}

// readsOf returns eff's reads, by destination.
func readsOf(eff Effects) map[string]protocol.Item {
	m := map[string]protocol.Item{}
	for _, s := range eff.Send {
		if s.Item.Op == protocol.RPCRead {
			m[s.To] = s.Item
		}
	}
	return m
}

func digestOf(o *protocol.Object) *protocol.Result {
	return &protocol.Result{Digest: version.Digest("k", o)}
}

func TestDigestReadOfEqualReplicas(t *testing.T) {
	cur := obj(t, nil, "a", "v1")
	for _, localFirst := range []bool{true, false} {
		op, eff := digestRead(t, "a", 2)
		got := readsOf(eff)
		if !eff.ReadLocal || len(got) != 1 || !got["b"].DigestOnly {
			t.Fatalf("a digest read reads locally and asks b for its digest at once: %+v", eff)
		}
		if localFirst {
			none(t, "local replica alone", withoutAnswer(op.OnResult("a", ok(cur), nil, t0)))
			eff = op.OnResult("b", digestOf(cur), nil, t0)
		} else {
			none(t, "a digest before the local replica", op.OnResult("b", digestOf(cur), nil, t0))
			eff = op.OnResult("a", ok(cur), nil, t0)
		}
		if eff.Answer == nil || eff.Answer.Err != nil || !version.Equal(eff.Answer.Obj, cur) {
			t.Fatalf("local first %v: b's equal digest answers with the local object: %+v", localFirst, eff.Answer)
		}
		if !eff.Done || eff.Repair != nil || len(eff.Send) > 0 || eff.DigestMatches != 1 || eff.DigestMisses != 0 {
			t.Fatalf("local first %v: equal replicas: one match, no second request, no repair: %+v", localFirst, eff)
		}
	}
}

// withoutAnswer drops an answer that a step may not give yet: R=2 needs
// two replies, so the local replica alone answers nothing.
func withoutAnswer(eff Effects) Effects {
	if eff.Answer != nil {
		panic("answered early")
	}
	return eff
}

func TestDigestReadOfADifferentReplica(t *testing.T) {
	old := obj(t, nil, "a", "v1")
	cur := obj(t, old, "b", "v2")
	for _, localFirst := range []bool{true, false} {
		op, _ := digestRead(t, "a", 2)
		var eff Effects
		if localFirst {
			op.OnResult("a", ok(old), nil, t0)
			eff = op.OnResult("b", digestOf(cur), nil, t0)
		} else {
			op.OnResult("b", digestOf(cur), nil, t0)
			eff = op.OnResult("a", ok(old), nil, t0)
		}
		if it, sent := readsOf(eff)["b"]; !sent || it.DigestOnly || eff.Answer != nil || eff.DigestMisses != 1 {
			t.Fatalf("local first %v: a differing digest asks b for its object: %+v", localFirst, eff)
		}
		eff = op.OnResult("b", ok(cur), nil, t0)
		if eff.Answer == nil || !version.Equal(eff.Answer.Obj, cur) {
			t.Fatalf("b's newer object wins: %+v", eff.Answer)
		}
		if eff.Repair == nil || !slices.Equal(eff.Repair.To, []string{"a"}) {
			t.Fatalf("the local replica is repaired: %+v", eff.Repair)
		}
	}
	// The other way round: b is stale, and repaired.
	op, _ := digestRead(t, "a", 2)
	op.OnResult("a", ok(cur), nil, t0)
	op.OnResult("b", digestOf(old), nil, t0)
	eff := op.OnResult("b", ok(old), nil, t0)
	if eff.Answer == nil || !version.Equal(eff.Answer.Obj, cur) || eff.Repair == nil || !slices.Equal(eff.Repair.To, []string{"b"}) {
		t.Fatalf("a stale b is read and repaired: %+v", eff)
	}
}

func TestDigestReadOfAnAbsentKey(t *testing.T) {
	op, _ := digestRead(t, "a", 2)
	op.OnResult("a", ok(nil), nil, t0)
	eff := op.OnResult("b", &protocol.Result{}, nil, t0)
	if eff.Answer == nil || eff.Answer.Err != nil || eff.Answer.Obj != nil || eff.Repair != nil || eff.DigestMatches != 1 {
		t.Fatalf("both absent: not found, no repair: %+v", eff)
	}
}

// An older node answers a digest read with its object: taken as is.
func TestDigestReadOfAnOlderNode(t *testing.T) {
	old := obj(t, nil, "a", "v1")
	cur := obj(t, old, "b", "v2")
	op, _ := digestRead(t, "a", 2)
	op.OnResult("a", ok(old), nil, t0)
	eff := op.OnResult("b", ok(cur), nil, t0)
	if eff.Answer == nil || !version.Equal(eff.Answer.Obj, cur) || len(eff.Send) > 0 {
		t.Fatalf("an object in answer to a digest read is a reply: %+v", eff)
	}
}

// Digest 0 says the node has no object: a whole reply, whatever this
// node's replica, even one not read or not readable.
func TestDigestReadOfAnEmptyReplica(t *testing.T) {
	cur := obj(t, nil, "a", "v1")
	op, _ := digestRead(t, "a", 2)
	op.OnResult("a", ok(cur), nil, t0)
	eff := op.OnResult("b", ok(nil), nil, t0)
	if len(eff.Send) > 0 || eff.Answer == nil || !version.Equal(eff.Answer.Obj, cur) || eff.Repair == nil || !slices.Equal(eff.Repair.To, []string{"b"}) {
		t.Fatalf("b has nothing: the local object, b repaired, no second request: %+v", eff)
	}
	op, _ = digestRead(t, "a", 3)
	if eff := op.OnResult("b", ok(nil), nil, t0); len(eff.Send) > 0 || eff.DigestMatches != 1 {
		t.Fatalf("b has nothing: a reply before the local replica: %+v", eff)
	}
	op.OnResult("a", nil, errBusy, t0)
	eff = op.OnResult("c", digestOf(cur), nil, t0)
	if it, sent := readsOf(eff)["c"]; !sent || it.DigestOnly {
		t.Fatalf("no local replica to compare c's digest with: c is asked for its object: %+v", eff)
	}
	eff = op.OnResult("c", ok(cur), nil, t0)
	if eff.Answer == nil || eff.Answer.Err == nil {
		t.Fatalf("R=3 with the local read failed cannot succeed: %+v", eff.Answer)
	}
}

func TestDigestReadWhenTheLocalReadFails(t *testing.T) {
	cur := obj(t, nil, "b", "v")
	for _, localFirst := range []bool{true, false} {
		op, _ := digestRead(t, "a", 2)
		var eff Effects
		if localFirst {
			eff = op.OnResult("a", nil, errBusy, t0)
			got := readsOf(eff)
			if len(got) != 1 || got["c"].DigestOnly {
				t.Fatalf("the local read failed: c is asked in full: %+v", eff.Send)
			}
			eff = op.OnResult("b", digestOf(cur), nil, t0)
		} else {
			op.OnResult("b", digestOf(cur), nil, t0)
			eff = op.OnResult("a", nil, errBusy, t0)
			if got := readsOf(eff)["c"]; got.DigestOnly {
				t.Fatalf("the local read failed: c is asked in full: %+v", eff.Send)
			}
		}
		if it, sent := readsOf(eff)["b"]; !sent || it.DigestOnly {
			t.Fatalf("local first %v: no local replica to compare b's digest with: b is asked for its object: %+v", localFirst, eff)
		}
		op.OnResult("b", ok(cur), nil, t0)
		eff = op.OnResult("c", ok(cur), nil, t0)
		if eff.Answer == nil || eff.Answer.Err != nil || !version.Equal(eff.Answer.Obj, cur) {
			t.Fatalf("local first %v: b and c make the quorum: %+v", localFirst, eff.Answer)
		}
	}
}

func TestDigestReadHedges(t *testing.T) {
	cur := obj(t, nil, "a", "v")
	op, _ := digestRead(t, "a", 2)
	eff := op.OnDeadline(Hedge, t0.Add(timeout/8))
	if it := readsOf(eff)["c"]; !it.DigestOnly {
		t.Fatalf("the hedge asks c for a digest too: %+v", eff.Send)
	}
	op.OnResult("c", digestOf(cur), nil, t0)
	eff = op.OnResult("a", ok(cur), nil, t0)
	if eff.Answer == nil || eff.Answer.Err != nil || eff.DigestMatches != 1 {
		t.Fatalf("a and c's parked digest make the quorum: %+v", eff)
	}
}

func TestDigestReadAtANonOwner(t *testing.T) {
	_, eff := digestRead(t, "x", 2)
	got := readsOf(eff)
	if eff.ReadLocal || len(got) != 2 || got["a"].DigestOnly || got["b"].DigestOnly {
		t.Fatalf("a non-owner has no replica to compare: it asks in full: %+v", eff)
	}
}
