package ring

import "slices"

// Placement is a capacitated assignment of partitions to members, driven
// by one fixed order on (partition, member) pairs.
//
// Claim order. Every pair has a rendezvous score, a hash of the two ids.
// Each member ranks the q partitions by its scores; the claim order lists
// every member's first choice, then every member's second, and so on,
// each round by descending score. A pair's place in this order depends on
// its two ids only, never on who else is a member: that is what keeps a
// join or leave local. Ranking per member, rather than ordering by raw
// score, gives every member the same pace of claims, so a member whose
// scores happen to be low is not starved (measured at n=3, 3..50 members:
// the least loaded member rises from 0.39 to 0.64 of the mean, and a join
// moves less).
//
// Owners. Pairs are taken in claim order while the partition needs owners
// and the member is below its capacity, floor(1.15 * mean) but never below
// ceil(mean): the stable assignment for this order. A newcomer takes the
// pairs it claims first, and each one frees a slot that is refilled along
// a short chain. (Uncapped, the busiest member would hold up to 1.4 times
// the mean at n=3; plain rendezvous hashing, about 1.6.) A member left
// below floor(0.85 * mean), one whose early claims mostly found partitions
// already full, then takes partitions in claim order from owners above that
// floor. Every member ends within [floor(0.85 * mean), floor(1.15 * mean)].
//
// Primaries. Data movement depends on the owner sets only, so each
// partition's primary is then chosen among its owners the same way, in the
// same claim order and band, to spread coordinator load.
//
// When the greedy pass leaves a partition short (the only members with
// room already own it) or the floor pass leaves a member short (every
// partition it could take is held by members at the floor), an augmenting
// path, the textbook bipartite b-matching step, shifts assignments along a
// chain. Both are rare and short.

// Balance bands for replica assignments and for primaries, in percent of
// the mean.
const (
	ownerMaxPercent   = 115
	ownerMinPercent   = 85
	primaryMaxPercent = 115
	primaryMinPercent = 85
)

// pair is one (partition, member) candidate with its rendezvous score.
type pair struct {
	score     uint64
	partition int32
	member    int32
}

// sortPairs sorts pairs best score first, keeping the existing order of
// equal scores (which takes a 64-bit collision). It is an LSD radix sort
// on the score, a byte at a time: several times faster than a comparison
// sort on the q*m pairs, which would be most of New's work. tmp must be as
// long as pairs.
func sortPairs(pairs, tmp []pair) {
	var count [256]int
	for shift := uint(0); shift < 64; shift += 8 {
		count = [256]int{}
		for _, x := range pairs {
			count[byte(^x.score>>shift)]++
		}
		if count[byte(^pairs[0].score>>shift)] == len(pairs) {
			continue // every score has this byte: the pass would move nothing
		}
		pos := 0
		for d, c := range count {
			count[d] = pos
			pos += c
		}
		for _, x := range pairs {
			d := byte(^x.score >> shift)
			tmp[count[d]] = x
			count[d]++
		}
		copy(pairs, tmp)
	}
}

// capacity returns the most assignments one of m members may take when
// total are shared out: floor(percent% of the mean), but at least
// ceil(mean) so that the total fits, and at most limit.
func capacity(total, m, percent, limit int) int {
	c := total * percent / (100 * m)
	return min(max(c, (total+m-1)/m), limit)
}

// floorLoad returns the fewest assignments each of m members should get
// when total are shared out: floor(percent% of the mean).
func floorLoad(total, m, percent int) int {
	return total * percent / (100 * m)
}

// order is the claim order for q partitions and members with the given
// id hashes, and each partition's members by descending score.
type order struct {
	claims []pair    // every pair, in claim order
	rank   [][]int32 // rank[p]: all members, best score for p first
}

func newOrder(hashes []uint64, q int) order {
	m := len(hashes)
	// Generated in (partition, member) order, which the stable sort keeps
	// for equal scores: the order is total and the same in every process.
	pairs := make([]pair, 0, q*m)
	for p := range q {
		ph := partitionHash(p)
		for i, mh := range hashes {
			pairs = append(pairs, pair{score(mh, ph), int32(p), int32(i)})
		}
	}
	claims := make([]pair, len(pairs))
	sortPairs(pairs, claims)

	// Restricted to one member, the score order is that member's ranking
	// of the partitions, so its r-th pair seen here is its r-th choice.
	// Round r of the claim order, claims[r*m:(r+1)*m], holds each member's
	// r-th choice, still by descending score.
	rank := make([][]int32, q)
	rankBuf := make([]int32, q*m)
	for p := range rank {
		rank[p] = rankBuf[p*m : p*m : p*m+m]
	}
	round := make([]int, m) // per member: its next round
	fill := make([]int, q)  // per round: pairs placed so far
	for _, x := range pairs {
		r := round[x.member]
		round[x.member]++
		claims[r*m+fill[r]] = x
		fill[r]++
		rank[x.partition] = append(rank[x.partition], x.member)
	}
	return order{claims: claims, rank: rank}
}

// place computes the preference list of each of q partitions for the
// members with the given id hashes (sorted-id order) and k owners per
// partition, 1 <= k <= len(hashes): the owners, primary first, then the
// other members best score first. Lists hold member indices.
func place(hashes []uint64, q, k int) [][]int32 {
	m := len(hashes)
	o := newOrder(hashes, q)

	owners := newMatching(o.rank, m, k, capacity(q*k, m, ownerMaxPercent, q))
	owners.fill(o.claims, nil)
	owners.raise(o.claims, nil, floorLoad(q*k, m, ownerMinPercent))

	// Primaries: one per partition, among that partition's owners.
	isOwner := make([]bool, q*m)
	cand := make([][]int32, q)
	candBuf := make([]int32, 0, q*k)
	for p, got := range owners.got {
		for _, i := range got {
			isOwner[p*m+int(i)] = true
		}
		start := len(candBuf)
		for _, i := range o.rank[p] {
			if isOwner[p*m+int(i)] {
				candBuf = append(candBuf, i)
			}
		}
		cand[p] = candBuf[start:len(candBuf):len(candBuf)]
	}
	primaries := newMatching(cand, m, 1, capacity(q, m, primaryMaxPercent, q))
	primaries.fill(o.claims, isOwner)
	primaries.raise(o.claims, isOwner, floorLoad(q, m, primaryMinPercent))

	// Preference lists: primary, the other owners, then everyone else,
	// each group best score first.
	prefs := make([][]int32, q)
	prefBuf := make([]int32, q*m)
	for p := range prefs {
		pref := prefBuf[p*m : p*m+m : p*m+m]
		primary := primaries.got[p][0]
		pref[0] = primary
		j := 1
		for _, i := range cand[p] {
			if i != primary {
				pref[j] = i
				j++
			}
		}
		for _, i := range o.rank[p] {
			if !isOwner[p*m+int(i)] {
				pref[j] = i
				j++
			}
		}
		prefs[p] = pref
	}
	return prefs
}

// matching assigns each partition need distinct members out of its
// candidates, no member taking more than limit partitions.
type matching struct {
	cand  [][]int32 // per partition, in preference order
	got   [][]int32 // per partition, the members assigned so far
	load  []int     // per member, partitions assigned
	need  int
	limit int
}

func newMatching(cand [][]int32, m, need, limit int) *matching {
	q := len(cand)
	got := make([][]int32, q)
	buf := make([]int32, q*need)
	for p := range got {
		got[p] = buf[p*need : p*need : p*need+need]
	}
	return &matching{cand: cand, got: got, load: make([]int, m), need: need, limit: limit}
}

// fill assigns greedily in claim order, skipping pairs not allowed
// (allowed is indexed partition*members+member; nil allows all), then
// completes every partition left short with augmenting paths.
func (a *matching) fill(claims []pair, allowed []bool) {
	m := len(a.load)
	for _, x := range claims {
		p, i := int(x.partition), int(x.member)
		if len(a.got[p]) == a.need || a.load[i] >= a.limit {
			continue
		}
		if allowed != nil && !allowed[p*m+i] {
			continue
		}
		a.got[p] = append(a.got[p], x.member)
		a.load[i]++
	}
	for p := range a.got {
		for len(a.got[p]) < a.need {
			if !a.augment(p) {
				// No assignment fits the limit. That cannot happen for
				// owners (every member is a candidate and the limits add
				// up to the total); for primaries, whose candidates are
				// the owners only, allow one more each and go on.
				a.limit++
			}
		}
	}
}

// augment gives partition p0 one more member by a shortest augmenting
// path: p0 takes member u0 from partition p1, p1 takes u1 from p2, ...,
// and the last partition takes a member that is below the limit. Only
// that last member's load grows. It reports whether a path exists.
func (a *matching) augment(p0 int) bool {
	q := len(a.got)
	prev := make([]int, q) // the partition a visited one hands its member to; -1: unvisited
	via := make([]int32, q)
	for p := range prev {
		prev[p] = -1
	}
	seen := make([]bool, len(a.load))
	prev[p0] = p0
	queue := []int{p0}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, u := range a.cand[x] {
			if seen[u] || slices.Contains(a.got[x], u) {
				continue
			}
			seen[u] = true
			if a.load[u] < a.limit {
				a.load[u]++
				// Walk back: each partition on the path swaps the member
				// it hands on for the one it receives.
				for z := x; z != p0; z = prev[z] {
					j := slices.Index(a.got[z], via[z])
					a.got[z][j], u = u, via[z]
				}
				a.got[p0] = append(a.got[p0], u)
				return true
			}
			for y, got := range a.got {
				if prev[y] < 0 && slices.Contains(got, u) {
					prev[y] = x
					via[y] = u
					queue = append(queue, y)
				}
			}
		}
	}
	return false
}

// raise brings members below floor up to it: in claim order, a member
// below floor that may take the pair's partition (allowed, as for fill)
// and does not hold it takes it from the holder with the latest claim on
// it among those above floor. Donors stay at or above floor, so members
// only move towards the band. This one pass nearly always suffices; a
// member it leaves short is lifted by an augmenting path.
func (a *matching) raise(claims []pair, allowed []bool, floor int) {
	m := len(a.load)
	pos := make([]int, len(a.got)*m) // claim position, by partition*m+member
	for j, x := range claims {
		pos[int(x.partition)*m+int(x.member)] = j
	}
	for _, x := range claims {
		p, u := int(x.partition), x.member
		if a.load[u] >= floor || !a.mayTake(allowed, p, u) {
			continue
		}
		donor := -1
		for j, v := range a.got[p] {
			if a.load[v] > floor && (donor < 0 || pos[p*m+int(v)] > pos[p*m+int(a.got[p][donor])]) {
				donor = j
			}
		}
		if donor < 0 {
			continue
		}
		a.load[a.got[p][donor]]--
		a.got[p][donor] = u
		a.load[u]++
	}
	for u := range a.load {
		for a.load[u] < floor && a.lift(int32(u), allowed, floor) {
		}
	}
}

// mayTake reports whether member u may take partition p and does not
// hold it already.
func (a *matching) mayTake(allowed []bool, p int, u int32) bool {
	if allowed != nil && !allowed[p*len(a.load)+int(u)] {
		return false
	}
	return !slices.Contains(a.got[p], u)
}

// lift gives member u0 one more partition by a shortest augmenting path:
// u0 takes p1 from v1, v1 takes p2 from v2, ..., and the last member,
// which is above floor, only gives. Only u0's and that member's loads
// change. It reports whether a path exists.
func (a *matching) lift(u0 int32, allowed []bool, floor int) bool {
	m := len(a.load)
	prev := make([]int32, m) // the member a visited one gives to; -1: unvisited
	via := make([]int, m)    // the partition it gives
	for i := range prev {
		prev[i] = -1
	}
	prev[u0] = u0
	queue := []int32{u0}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for p, got := range a.got {
			if !a.mayTake(allowed, p, x) {
				continue
			}
			for _, v := range got {
				if prev[v] >= 0 {
					continue
				}
				prev[v], via[v] = x, p
				if a.load[v] > floor {
					a.load[v]--
					a.load[u0]++
					for z := v; z != u0; z = prev[z] {
						j := slices.Index(a.got[via[z]], z)
						a.got[via[z]][j] = prev[z]
					}
					return true
				}
				queue = append(queue, v)
			}
		}
	}
	return false
}
