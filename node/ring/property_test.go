package ring

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// Property 1 and 5: every partition has min(n, members) distinct owners,
// all members, and Fallbacks holds the other members once each, so Owners
// and Fallbacks partition the member set.
func TestOwnersAndFallbacksPartitionMembers(t *testing.T) {
	for _, set := range sweepSets() {
		for _, q := range []int{1, 2, 7, DefaultPartitions, 1024} {
			for _, m := range []int{1, 2, 3, 4, 5, 8, 13, 21, 34, 50} {
				for _, n := range []int{1, 2, 3, 5, 7} {
					members := set.ids[:m]
					r := mustNew(t, members, q, n)
					checkPlacement(t, r, members, q, n)
				}
			}
		}
	}
}

func checkPlacement(t *testing.T, r *Ring, members []string, q, n int) {
	t.Helper()
	isMember := make(map[string]bool, len(members))
	for _, id := range members {
		isMember[id] = true
	}
	k := min(n, len(members))
	for p := range q {
		owners, fallbacks := r.Owners(p), r.Fallbacks(p)
		if len(owners) != k {
			t.Fatalf("m=%d q=%d n=%d: Owners(%d) = %q, want %d owners", len(members), q, n, p, owners, k)
		}
		if len(owners)+len(fallbacks) != len(members) {
			t.Fatalf("m=%d q=%d n=%d p=%d: %d owners + %d fallbacks, want %d members",
				len(members), q, n, p, len(owners), len(fallbacks), len(members))
		}
		seen := make(map[string]bool, len(members))
		for _, id := range slices.Concat(owners, fallbacks) {
			if !isMember[id] {
				t.Fatalf("m=%d q=%d n=%d p=%d: %q is not a member", len(members), q, n, p, id)
			}
			if seen[id] {
				t.Fatalf("m=%d q=%d n=%d p=%d: %q twice in Owners %q / Fallbacks %q",
					len(members), q, n, p, id, owners, fallbacks)
			}
			seen[id] = true
		}
		if got := r.Primary(p); got != owners[0] {
			t.Fatalf("Primary(%d) = %q, want Owners[0] %q", p, got, owners[0])
		}
		if pref := r.Preference(p); !slices.Equal(pref, slices.Concat(owners, fallbacks)) {
			t.Fatalf("Preference(%d) = %q, want Owners+Fallbacks", p, pref)
		}
		for _, id := range members {
			if got, want := r.IsOwner(p, id), slices.Contains(owners, id); got != want {
				t.Fatalf("IsOwner(%d, %q) = %v, want %v", p, id, got, want)
			}
		}
	}
	for _, id := range members {
		var want []int
		for p := range q {
			if slices.Contains(r.Owners(p), id) {
				want = append(want, p)
			}
		}
		if got := r.PartitionsOf(id); !slices.Equal(got, want) {
			t.Fatalf("PartitionsOf(%q) = %v, want %v", id, got, want)
		}
	}
}

// Property 2: balance. Every member's replica assignments (partitions it
// owns in any slot) lie in [floor(0.85*mean), floor(1.15*mean)], the upper
// end raised to ceil(mean) where it is lower; at n=3 and 3..50 members
// that is a max/mean of at most 1.15. Primaries are capped the same way:
// at 50 members that is 6 of a mean 5.12, a ratio of 1.172, the best
// possible. The lower end is not guaranteed by construction (see raise),
// so this test is what holds it.
func TestBalance(t *testing.T) {
	type stat struct{ hi, lo, primaryHi, primaryLo float64 }
	check := func(t *testing.T, set idSet, m, q, n int, s *stat) {
		members := set.ids[:m]
		r := mustNew(t, members, q, n)
		replicas, primaries := loads(r)
		k := min(n, m)
		mean := float64(q*k) / float64(m)
		hi, lo := maxMin(replicas, members)
		if limit := capacity(q*k, m, ownerMaxPercent, q); hi > limit {
			t.Errorf("%s q=%d m=%d n=%d: a member owns %d partitions, capacity %d", set.name, q, m, n, hi, limit)
		}
		if floor := floorLoad(q*k, m, ownerMinPercent); lo < floor {
			t.Errorf("%s q=%d m=%d n=%d: a member owns %d partitions, floor %d", set.name, q, m, n, lo, floor)
		}
		if q == DefaultPartitions && n == 3 && float64(hi)/mean > 1.15 {
			t.Errorf("%s q=%d m=%d n=3: max/mean = %d/%.2f = %.3f > 1.15", set.name, q, m, hi, mean, float64(hi)/mean)
		}
		pmean := float64(q) / float64(m)
		phi, plo := maxMin(primaries, members)
		if limit := capacity(q, m, primaryMaxPercent, q); phi > limit {
			t.Errorf("%s q=%d m=%d n=%d: a member is primary of %d partitions, capacity %d", set.name, q, m, n, phi, limit)
		}
		if floor := floorLoad(q, m, primaryMinPercent); plo < floor {
			t.Errorf("%s q=%d m=%d n=%d: a member is primary of %d partitions, floor %d", set.name, q, m, n, plo, floor)
		}
		s.hi = max(s.hi, float64(hi)/mean)
		s.lo = min(s.lo, float64(lo)/mean)
		s.primaryHi = max(s.primaryHi, float64(phi)/pmean)
		s.primaryLo = min(s.primaryLo, float64(plo)/pmean)
	}
	for _, n := range []int{1, 2, 3, 4, 5} {
		s := stat{lo: 1, primaryLo: 1}
		for _, set := range sweepSets() {
			for m := 3; m <= 50; m++ {
				check(t, set, m, DefaultPartitions, n, &s)
			}
		}
		t.Logf("n=%d, q=256, 3..50 members: replicas max/mean %.3f, min/mean %.3f; primaries max/mean %.3f, min/mean %.3f",
			n, s.hi, s.lo, s.primaryHi, s.primaryLo)
		if n == 3 && s.primaryHi > 1.18 {
			t.Errorf("n=3: primaries max/mean %.3f > 1.18", s.primaryHi)
		}
	}
	sets := sweepSets()
	sets = sets[:min(2, len(sets))]
	for _, q := range []int{64, 1024} {
		s := stat{lo: 1, primaryLo: 1}
		for _, set := range sets {
			for m := 3; m <= 50; m++ {
				check(t, set, m, q, 3, &s)
			}
		}
		t.Logf("n=3, q=%d, 3..50 members: replicas max/mean %.3f, min/mean %.3f; primaries max/mean %.3f, min/mean %.3f",
			q, s.hi, s.lo, s.primaryHi, s.primaryLo)
	}
}

// movementBound is the most a single join or leave may move, as a
// fraction of the q*N replica assignments, beyond the 1/members that the
// joining or leaving member's own share must move. The design asks for 5%
// at n=3, which holds with room (about 2% measured). Smaller n give each
// member fewer assignments, so the balance band leaves less slack to absorb
// a change: n=1 keeps every member within one or two partitions of the
// mean, and such near-perfect balance costs movement in any placement that
// is a pure function of the member set.
var movementBound = map[int]float64{1: 0.20, 2: 0.06, 3: 0.05, 4: 0.05, 5: 0.05}

// Property 3: minimal movement. Adding a member to m moves at most
// 1/(m+1) + bound of the replica assignments; removing one of m+1 moves
// at most 1/(m+1) + bound, for the last, the first and a middle id.
func TestMovement(t *testing.T) {
	const q = DefaultPartitions
	for _, n := range []int{1, 2, 3, 4, 5} {
		worstAdd, worstRemove, worstPrimary := 0.0, 0.0, 0.0
		for _, set := range sweepSets() {
			for m := 1; m <= 50; m++ {
				before := mustNew(t, set.ids[:m], q, n)
				after := mustNew(t, set.ids[:m+1], q, n)
				ideal := 1 / float64(m+1)

				add := float64(moved(before, after)) / float64(q*min(n, m+1))
				if add > ideal+movementBound[n] {
					t.Errorf("%s n=%d: join %d -> %d members moves %.3f of assignments, want <= %.3f",
						set.name, n, m, m+1, add, ideal+movementBound[n])
				}
				worstAdd = max(worstAdd, add-ideal)

				// Primaries may change without moving data; not bounded,
				// only reported.
				changed := 0
				for p := range q {
					if before.Primary(p) != after.Primary(p) {
						changed++
					}
				}
				worstPrimary = max(worstPrimary, float64(changed)/q-ideal)

				for _, j := range []int{m, 0, m / 2} {
					smaller := before
					if j != m {
						smaller = mustNew(t, without(set.ids[:m+1], j), q, n)
					}
					remove := float64(moved(after, smaller)) / float64(q*min(n, m))
					if remove > ideal+movementBound[n] {
						t.Errorf("%s n=%d: leave of %q, %d -> %d members, moves %.3f of assignments, want <= %.3f",
							set.name, n, set.ids[j], m+1, m, remove, ideal+movementBound[n])
					}
					worstRemove = max(worstRemove, remove-ideal)
				}
			}
		}
		t.Logf("n=%d, q=256, 1..51 members: worst moved beyond 1/members: join %.3f, leave %.3f; primaries changed by a join %.3f",
			n, worstAdd, worstRemove, worstPrimary)
	}
}

// Property 4: placement is a function of the member set. Any order of the
// same members gives the same preference list for every partition.
func TestDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, set := range sweepSets() {
		for _, m := range []int{1, 2, 3, 5, 10, 33, 50} {
			for _, n := range []int{1, 3} {
				want := mustNew(t, set.ids[:m], DefaultPartitions, n)
				for range 5 {
					shuffled := slices.Clone(set.ids[:m])
					rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
					got := mustNew(t, shuffled, DefaultPartitions, n)
					for p := range DefaultPartitions {
						if !slices.Equal(got.Preference(p), want.Preference(p)) {
							t.Fatalf("%s m=%d n=%d order %q: Preference(%d) = %q, want %q",
								set.name, m, n, shuffled, p, got.Preference(p), want.Preference(p))
						}
					}
				}
			}
		}
	}
}

// Without the caps binding, the placement is plain rendezvous hashing:
// each partition's preference list is the members by descending score.
// With one member more than n the cap is q, far from binding, at q=1.
func TestRendezvousReference(t *testing.T) {
	for _, set := range idSets() {
		for m := 1; m <= 10; m++ {
			members := set.ids[:m]
			r := mustNew(t, members, 1, m)
			want := slices.Clone(members)
			ph := partitionHash(0)
			slices.SortFunc(want, func(a, b string) int {
				sa, sb := score(memberHash(a), ph), score(memberHash(b), ph)
				switch {
				case sa > sb:
					return -1
				case sa < sb:
					return 1
				}
				return 0
			})
			if got := r.Preference(0); !slices.Equal(got, want) {
				t.Errorf("%s m=%d: Preference(0) = %q, want rendezvous order %q", set.name, m, got, want)
			}
		}
	}
}
