package ring

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestCapacityAndFloor(t *testing.T) {
	tests := []struct {
		total, m   int
		cap, floor int
	}{
		{768, 3, 256, 217}, // n=3, 3 members: mean 256, capped at q
		{768, 4, 220, 163}, // mean 192
		{768, 50, 17, 13},  // mean 15.36
		{256, 50, 6, 4},    // mean 5.12: 1.15 rounds below ceil, so ceil
		{256, 43, 6, 5},    // mean 5.95
		{256, 42, 7, 5},    // mean 6.10
		{3, 7, 1, 0},       // fewer assignments than members
		{1000, 1000, 1, 0}, // mean exactly 1
		{2048, 2, 1024, 870},
	}
	for _, tt := range tests {
		if got := capacity(tt.total, tt.m, ownerMaxPercent, 256); got != min(tt.cap, 256) {
			t.Errorf("capacity(%d, %d) = %d, want %d", tt.total, tt.m, got, min(tt.cap, 256))
		}
		if got := floorLoad(tt.total, tt.m, ownerMinPercent); got != tt.floor {
			t.Errorf("floorLoad(%d, %d) = %d, want %d", tt.total, tt.m, got, tt.floor)
		}
	}
}

// sortPairs against the standard library's stable sort, with scores drawn
// from a small range so that ties are common.
func TestSortPairsMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, size := range []int{1, 2, 3, 17, 256, 5000} {
		for _, spread := range []uint64{1, 4, 1 << 20, 0} {
			pairs := make([]pair, size)
			for i := range pairs {
				s := r.Uint64()
				if spread != 0 {
					s = r.Uint64N(spread) << (r.UintN(8) * 8) // ties, and bytes that differ in one place only
				}
				pairs[i] = pair{score: s, partition: int32(i / 7), member: int32(i % 7)}
			}
			want := slices.Clone(pairs)
			slices.SortStableFunc(want, func(a, b pair) int { return cmp.Compare(b.score, a.score) })
			sortPairs(pairs, make([]pair, len(pairs)))
			if !slices.Equal(pairs, want) {
				t.Fatalf("size %d spread %d: sortPairs differs from a stable sort by descending score", size, spread)
			}
		}
	}
}

// The claim order: round r holds every member's r-th choice once, best
// score first, and a member's choices are its partitions by descending
// score. rank[p] is all members by descending score for p.
func TestClaimOrder(t *testing.T) {
	for _, set := range idSets()[:3] {
		for _, m := range []int{1, 2, 5, 17} {
			for _, q := range []int{1, 3, 64} {
				hashes := make([]uint64, m)
				for i, id := range set.ids[:m] {
					hashes[i] = memberHash(id)
				}
				o := newOrder(hashes, q)
				if len(o.claims) != q*m {
					t.Fatalf("m=%d q=%d: %d claims", m, q, len(o.claims))
				}
				choices := make([][]pair, m)
				for r := range q {
					round := o.claims[r*m : (r+1)*m]
					seen := make([]bool, m)
					for j, x := range round {
						if seen[x.member] {
							t.Fatalf("m=%d q=%d: member %d twice in round %d", m, q, x.member, r)
						}
						seen[x.member] = true
						if j > 0 && round[j-1].score < x.score {
							t.Fatalf("m=%d q=%d: round %d not by descending score", m, q, r)
						}
						if x.score != score(hashes[x.member], partitionHash(int(x.partition))) {
							t.Fatalf("m=%d q=%d: pair %+v has the wrong score", m, q, x)
						}
						choices[x.member] = append(choices[x.member], x)
					}
				}
				for i, c := range choices {
					if !slices.IsSortedFunc(c, func(a, b pair) int { return cmp.Compare(b.score, a.score) }) {
						t.Fatalf("m=%d q=%d: member %d's choices are not by descending score", m, q, i)
					}
				}
				for p, ranked := range o.rank {
					if len(ranked) != m {
						t.Fatalf("m=%d q=%d: rank[%d] has %d members", m, q, p, len(ranked))
					}
					ph := partitionHash(p)
					if !slices.IsSortedFunc(ranked, func(a, b int32) int {
						return cmp.Compare(score(hashes[b], ph), score(hashes[a], ph))
					}) {
						t.Fatalf("m=%d q=%d: rank[%d] not by descending score", m, q, p)
					}
				}
			}
		}
	}
}

// Before the floor is applied, the owners are the stable assignment for
// the claim order: no member below capacity has an earlier claim on a
// partition than one of its owners. This is the greedy's defining
// property and what a naive reference (take pairs in order while they
// fit) produces.
func TestFillIsStable(t *testing.T) {
	const q = DefaultPartitions
	for _, set := range sweepSets() {
		for m := 2; m <= 50; m += 3 {
			for _, k := range []int{1, 2, 3, 5} {
				k := min(k, m)
				hashes := make([]uint64, m)
				for i, id := range set.ids[:m] {
					hashes[i] = memberHash(id)
				}
				o := newOrder(hashes, q)
				a := newMatching(o.rank, m, k, capacity(q*k, m, ownerMaxPercent, q))
				a.fill(o.claims, nil)

				pos := make([]int, q*m)
				for j, x := range o.claims {
					pos[int(x.partition)*m+int(x.member)] = j
				}
				for p, got := range a.got {
					if len(got) != k {
						t.Fatalf("%s m=%d k=%d: partition %d has %d owners", set.name, m, k, p, len(got))
					}
					latest := 0
					for _, v := range got {
						latest = max(latest, pos[p*m+int(v)])
					}
					for u := range m {
						if a.load[u] < a.limit && !slices.Contains(got, int32(u)) && pos[p*m+u] < latest {
							t.Errorf("%s m=%d k=%d: member %d (load %d < %d) has an earlier claim on %d than an owner",
								set.name, m, k, u, a.load[u], a.limit, p)
						}
					}
				}
			}
		}
	}
}

// A partition the greedy pass leaves short, because the only member with
// room already owns it, is completed by an augmenting path.
func TestAugmentCompletesShortPartition(t *testing.T) {
	const a, b, c = 0, 1, 2
	all := []int32{a, b, c}
	m := newMatching([][]int32{all, all, all}, 3, 2, 2)
	claims := []pair{
		{partition: 0, member: a}, {partition: 0, member: b},
		{partition: 1, member: a}, {partition: 1, member: b},
		{partition: 2, member: a}, {partition: 2, member: b}, // a and b are full
		{partition: 2, member: c},
		{partition: 0, member: c}, {partition: 1, member: c},
	}
	// Without augmenting, partition 2 would end with c alone, as c's later
	// claims find partitions 0 and 1 full.
	m.fill(claims, nil)
	for p, got := range m.got {
		if len(got) != 2 || got[0] == got[1] {
			t.Errorf("partition %d owners %v, want 2 distinct", p, got)
		}
	}
	if !slices.Equal(m.load, []int{2, 2, 2}) {
		t.Errorf("loads %v, want [2 2 2]", m.load)
	}
}

// When no assignment fits the limit (primaries restricted to owners), fill
// raises the limit rather than loop or leave a partition empty.
func TestFillRaisesLimitWhenInfeasible(t *testing.T) {
	// Both partitions may only have member 0 as primary.
	m := newMatching([][]int32{{0}, {0}}, 2, 1, 1)
	m.fill([]pair{{partition: 0, member: 0}, {partition: 1, member: 0}}, []bool{true, false, true, false})
	if m.got[0][0] != 0 || m.got[1][0] != 0 || m.limit != 2 {
		t.Errorf("got %v, limit %d; want member 0 on both, limit 2", m.got, m.limit)
	}
}

// A member below the floor whose own candidates are held by members at
// the floor is lifted through a chain: c takes p0 from a, a takes p1 from
// b, which is above the floor.
func TestLiftThroughChain(t *testing.T) {
	const a, b, c = 0, 1, 2
	m := newMatching([][]int32{{a, c}, {a, b}, {b}}, 3, 1, 3)
	allowed := []bool{ // partition*3 + member
		true, false, true, // p0: a, c
		true, true, false, // p1: a, b
		false, true, false, // p2: b
	}
	m.got[0] = append(m.got[0], a)
	m.got[1] = append(m.got[1], b)
	m.got[2] = append(m.got[2], b)
	m.load = []int{1, 2, 0}
	// The single pass cannot help c: its only partition's holder, a, is at
	// the floor.
	m.raise([]pair{{partition: 0, member: c}, {partition: 1, member: a}}, allowed, 1)
	if m.got[0][0] != c || m.got[1][0] != a || m.got[2][0] != b {
		t.Errorf("holders %v, want p0=c p1=a p2=b", m.got)
	}
	if !slices.Equal(m.load, []int{1, 1, 1}) {
		t.Errorf("loads %v, want [1 1 1]", m.load)
	}
}

// A member that can take nothing stays below the floor; raise gives up on
// it rather than loop.
func TestRaiseGivesUpWhenNoPath(t *testing.T) {
	const a, c = 0, 1
	m := newMatching([][]int32{{a}, {a}}, 2, 1, 2)
	allowed := []bool{true, false, true, false} // c may hold nothing
	m.got[0] = append(m.got[0], a)
	m.got[1] = append(m.got[1], a)
	m.load = []int{2, 0}
	m.raise([]pair{{partition: 0, member: c}, {partition: 1, member: c}}, allowed, 1)
	if m.got[0][0] != a || m.got[1][0] != a || !slices.Equal(m.load, []int{2, 0}) {
		t.Errorf("holders %v loads %v, want both partitions still on a", m.got, m.load)
	}
}
