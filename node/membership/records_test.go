package membership

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/kvmesh/kvmesh/protocol"
)

type testKeys struct {
	cluster nkeys.KeyPair
	pub     string
	node    map[string]string // id -> public key
}

func newTestKeys(t testing.TB) *testKeys {
	t.Helper()
	kp, err := nkeys.CreateServer()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	k := &testKeys{cluster: kp, pub: pub, node: map[string]string{}}
	for i := 1; i <= 5; i++ {
		nk, _ := nkeys.CreateServer()
		k.node[fmt.Sprint("n", i)], _ = nk.PublicKey()
	}
	return k
}

func (k *testKeys) record(t testing.TB, id string, st protocol.MemberStatus, inc, ver uint64) protocol.MemberRecord {
	t.Helper()
	r, err := Sign(protocol.MemberRecord{V: protocol.Version, ID: id, Key: k.node[id], Route: "nats-route://h:" + id,
		Status: st, Incarnation: inc, Version: ver}, k.cluster)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestApply(t *testing.T) {
	k := newTestKeys(t)
	var s Set
	up := k.record(t, "n1", protocol.MemberUp, 1, 2)
	s, err := s.Apply(k.record(t, "n1", protocol.MemberJoining, 1, 1), k.pub)
	if err != nil {
		t.Fatal(err)
	}
	if s, err = s.Apply(up, k.pub); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		r    protocol.MemberRecord
		want error
	}{
		"the same record again (a replay)": {up, ErrStale},
		"an older version (a replay)":      {k.record(t, "n1", protocol.MemberJoining, 1, 1), ErrStale},
		"a field changed after signing": {func() protocol.MemberRecord {
			r := k.record(t, "n1", protocol.MemberUp, 1, 9)
			r.Route = "nats-route://evil:1"
			return r
		}(), ErrForged},
		"signed by another key": {func() protocol.MemberRecord {
			other, _ := nkeys.CreateServer()
			r, _ := Sign(protocol.MemberRecord{V: protocol.Version, ID: "n2", Key: k.node["n2"], Status: protocol.MemberUp, Incarnation: 1, Version: 1}, other)
			return r
		}(), ErrForged},
		"unsigned": {protocol.MemberRecord{V: protocol.Version, ID: "n2", Key: k.node["n2"], Status: protocol.MemberUp, Incarnation: 1, Version: 1}, ErrForged},
		"a user key, not a node's": {func() protocol.MemberRecord {
			u, _ := nkeys.CreateUser()
			pub, _ := u.PublicKey()
			r, _ := Sign(protocol.MemberRecord{V: protocol.Version, ID: "n2", Key: pub, Status: protocol.MemberUp, Incarnation: 1, Version: 1}, k.cluster)
			return r
		}(), ErrInvalid},
	} {
		got, err := s.Apply(tc.r, k.pub)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
		if !got.Equal(s) {
			t.Errorf("%s changed the set", name)
		}
	}
	// Leaving is final in an incarnation; a new admission is a new one.
	left := k.record(t, "n1", protocol.MemberLeft, 1, 3)
	if s, err = s.Apply(left, k.pub); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(k.record(t, "n1", protocol.MemberUp, 1, 99), k.pub); !errors.Is(err, ErrStale) {
		t.Fatalf("an up record after the left one, same incarnation: %v", err)
	}
	if len(s.Serving())+len(s.Target()) != 0 {
		t.Fatalf("a member that left still owns partitions: %v %v", s.Serving(), s.Target())
	}
	if s, err = s.Apply(k.record(t, "n1", protocol.MemberJoining, 2, 1), k.pub); err != nil || !slices.Equal(s.Target(), []string{"n1"}) {
		t.Fatalf("readmitted: %v %v", s.Target(), err)
	}
}

// TestMergeLaws: whatever order, grouping and repetition the records come
// in, every node ends with the same set: merge is commutative,
// associative and idempotent, against a naive reference (per member, the
// greatest valid record by Supersedes).
func TestMergeLaws(t *testing.T) {
	k := newTestKeys(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var pool []protocol.MemberRecord
		for range 5 + rng.IntN(20) {
			r := k.record(t, fmt.Sprint("n", 1+rng.IntN(5)), protocol.MemberStatus(1+rng.IntN(4)), uint64(rng.IntN(3)), uint64(rng.IntN(4)))
			if rng.IntN(8) == 0 {
				r.Version++ // forged: changed after signing
			}
			pool = append(pool, r)
		}
		build := func(recs []protocol.MemberRecord) Set {
			var s Set
			for _, r := range recs {
				s, _ = s.Apply(r, k.pub)
			}
			return s
		}
		want := build(pool)
		// The reference: per member, the greatest valid record.
		ref := map[string]protocol.MemberRecord{}
		for _, r := range pool {
			if Verify(&r, k.pub) != nil {
				continue
			}
			if old, ok := ref[r.ID]; !ok || Supersedes(&r, &old) {
				ref[r.ID] = r
			}
		}
		if got := want.Records(); len(got) != len(ref) {
			t.Fatalf("round %d: %d records, reference %d", round, len(got), len(ref))
		}
		for id, r := range ref {
			if got, _ := want.Get(id); !slices.Equal(got.SigningBytes(), r.SigningBytes()) {
				t.Fatalf("round %d: %s holds %+v, reference %+v", round, id, got, r)
			}
		}
		// Any order, any split into three sets merged in any grouping.
		shuffled := slices.Clone(pool)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		a, b := rng.IntN(len(shuffled)+1), rng.IntN(len(shuffled)+1)
		a, b = min(a, b), max(a, b)
		x, y, z := build(shuffled[:a]), build(shuffled[a:b]), build(shuffled[b:])
		xy, _ := x.Merge(y, k.pub)
		xyz1, _ := xy.Merge(z, k.pub)
		yz, _ := y.Merge(z, k.pub)
		xyz2, _ := x.Merge(yz, k.pub)
		zyx, _ := z.Merge(y, k.pub)
		zyx, _ = zyx.Merge(x, k.pub)
		again, n := xyz1.Merge(xyz1, k.pub)
		for name, got := range map[string]Set{"(x+y)+z": xyz1, "x+(y+z)": xyz2, "(z+y)+x": zyx, "s+s": again} {
			if !got.Equal(want) {
				t.Fatalf("round %d: %s differs from applying every record in order", round, name)
			}
		}
		if n != 0 {
			t.Fatalf("round %d: merging a set into itself applied %d records", round, n)
		}
	}
}

func TestDigest(t *testing.T) {
	k := newTestKeys(t)
	var a, b Set
	if !bytes.Equal(a.Digest(), b.Digest()) {
		t.Fatal("empty sets differ")
	}
	r1, r2 := k.record(t, "n1", protocol.MemberUp, 1, 1), k.record(t, "n2", protocol.MemberUp, 1, 1)
	a, _ = a.Apply(r1, k.pub)
	a, _ = a.Apply(r2, k.pub)
	b, _ = b.Apply(r2, k.pub)
	if bytes.Equal(a.Digest(), b.Digest()) {
		t.Fatal("sets with different records have one digest")
	}
	b, _ = b.Apply(r1, k.pub)
	if !bytes.Equal(a.Digest(), b.Digest()) {
		t.Fatal("sets with the same records, applied in another order, differ")
	}
	b, _ = b.Apply(k.record(t, "n2", protocol.MemberUp, 1, 2), k.pub)
	if bytes.Equal(a.Digest(), b.Digest()) {
		t.Fatal("a new version did not change the digest")
	}
}
