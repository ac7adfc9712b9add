package ring

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// maxIDs is how many ids each test set holds: enough to grow a ring from
// 1 to 51 members.
const maxIDs = 51

// idSet is a named list of distinct node ids. Tests use prefixes of it as
// member sets, so ids[:m+1] is ids[:m] plus one join.
type idSet struct {
	name string
	ids  []string
}

// idSets returns the member id sets the property tests run over: the
// sequential ids operators type, and random-looking ids of several shapes
// drawn from seeded generators, so every run sees the same sets.
func idSets() []idSet {
	seq := make([]string, maxIDs)
	for i := range seq {
		seq[i] = fmt.Sprintf("n%d", i+1)
	}
	sets := []idSet{{"n1..n51", seq}}
	for seed := uint64(1); seed <= 5; seed++ {
		sets = append(sets, idSet{fmt.Sprintf("hex/%d", seed), randomIDs(seed, func(r *rand.Rand) string {
			return fmt.Sprintf("node-%08x", r.Uint32())
		})})
	}
	sets = append(sets, idSet{"addr", randomIDs(6, func(r *rand.Rand) string {
		return fmt.Sprintf("10.%d.%d.%d:4222", r.IntN(256), r.IntN(256), r.IntN(256))
	})})
	sets = append(sets, idSet{"uuid", randomIDs(7, func(r *rand.Rand) string {
		a, b := r.Uint64(), r.Uint64()
		return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, a>>16&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
	})})
	sets = append(sets, idSet{"word", randomIDs(8, func(r *rand.Rand) string {
		const letters = "abcdefghijklmnopqrstuvwxyz"
		w := make([]byte, 1+r.IntN(6))
		for i := range w {
			w[i] = letters[r.IntN(len(letters))]
		}
		return string(w)
	})})
	return sets
}

// sweepSets returns the id sets a property sweep runs over: all of them,
// or the first under -short and under the race detector, where the
// pure sweeps find no races and run ten times slower (the concurrency
// tests are what -race is for). The full sweep takes a few seconds.
func sweepSets() []idSet {
	sets := idSets()
	if testing.Short() || raceEnabled {
		return sets[:1]
	}
	return sets
}

// randomIDs draws maxIDs distinct ids from gen with a generator seeded by
// seed.
func randomIDs(seed uint64, gen func(*rand.Rand) string) []string {
	r := rand.New(rand.NewPCG(seed, 0x6b766d657368)) // "kvmesh"
	seen := make(map[string]bool)
	var ids []string
	for len(ids) < maxIDs {
		id := gen(r)
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// mustNew builds a ring or fails the test.
func mustNew(t testing.TB, members []string, q, n int) *Ring {
	t.Helper()
	r, err := New(members, q, n)
	if err != nil {
		t.Fatalf("New(%d members, %d, %d): %v", len(members), q, n, err)
	}
	return r
}

// without returns ids minus the one at index j, in a new slice.
func without(ids []string, j int) []string {
	out := make([]string, 0, len(ids)-1)
	out = append(out, ids[:j]...)
	return append(out, ids[j+1:]...)
}

// moved counts the replica assignments that are new in to: for each
// partition, the owners in to that were not owners in from. Each is a
// partition copy that has to stream to a new node.
func moved(from, to *Ring) int {
	n := 0
	for p := range to.Partitions() {
		for _, id := range to.Owners(p) {
			if !from.IsOwner(p, id) {
				n++
			}
		}
	}
	return n
}

// loads returns each member's number of replica assignments (any owner
// slot) and of primaries.
func loads(r *Ring) (replicas, primaries map[string]int) {
	replicas = make(map[string]int)
	primaries = make(map[string]int)
	for p := range r.Partitions() {
		for _, id := range r.Owners(p) {
			replicas[id]++
		}
		primaries[r.Primary(p)]++
	}
	return replicas, primaries
}

// maxMin returns the largest and the smallest value in counts over
// members, counting absent members as 0.
func maxMin(counts map[string]int, members []string) (hi, lo int) {
	lo = -1
	for _, id := range members {
		c := counts[id]
		hi = max(hi, c)
		if lo < 0 || c < lo {
			lo = c
		}
	}
	return hi, lo
}
