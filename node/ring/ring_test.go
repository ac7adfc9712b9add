package ring

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestNewRejectsInvalidInput(t *testing.T) {
	tests := []struct {
		name    string
		members []string
		q, n    int
		want    error
	}{
		{"nil members", nil, 256, 3, ErrNoMembers},
		{"no members", []string{}, 256, 3, ErrNoMembers},
		{"empty id", []string{"a", ""}, 256, 3, ErrInvalidMember},
		{"duplicate", []string{"a", "b", "a"}, 256, 3, ErrDuplicateMember},
		{"duplicate adjacent", []string{"b", "b"}, 256, 1, ErrDuplicateMember},
		{"zero partitions", []string{"a"}, 0, 3, ErrInvalidPartitions},
		{"negative partitions", []string{"a"}, -5, 3, ErrInvalidPartitions},
		{"too many partitions", []string{"a"}, MaxPartitions + 1, 3, ErrInvalidPartitions},
		{"zero replicas", []string{"a"}, 256, 0, ErrInvalidReplicas},
		{"negative replicas", []string{"a"}, 256, -1, ErrInvalidReplicas},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.members, tt.q, tt.n)
			if !errors.Is(err, tt.want) {
				t.Fatalf("New(%q, %d, %d) error = %v, want %v", tt.members, tt.q, tt.n, err, tt.want)
			}
			if r != nil {
				t.Errorf("New returned a ring with error %v", err)
			}
		})
	}
}

func TestNewAcceptsEdgeCases(t *testing.T) {
	tests := []struct {
		name    string
		members []string
		q, n    int
	}{
		{"one member", []string{"solo"}, DefaultPartitions, 3},
		{"one partition", []string{"a", "b", "c", "d"}, 1, 3},
		{"n above members", []string{"a", "b"}, 16, 5},
		{"n equals members", []string{"a", "b", "c"}, 16, 3},
		{"more partitions than fit evenly", []string{"a", "b", "c"}, 1000, 2},
		{"max partitions", []string{"a", "b", "c", "d"}, MaxPartitions, 3},
		{"fewer partitions than members", []string{"a", "b", "c", "d", "e", "f", "g"}, 3, 2},
		{"unicode and odd ids", []string{"ノード", "node with spaces", "*", ">", "a.b.c"}, 64, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustNew(t, tt.members, tt.q, tt.n)
			if r.Partitions() != tt.q || r.N() != tt.n {
				t.Errorf("Partitions, N = %d, %d; want %d, %d", r.Partitions(), r.N(), tt.q, tt.n)
			}
			checkPlacement(t, r, tt.members, tt.q, tt.n)
		})
	}
}

// With no more members than n, every member owns every partition.
func TestFewMembersOwnEverything(t *testing.T) {
	for m := 1; m <= 5; m++ {
		members := idSets()[0].ids[:m]
		r := mustNew(t, members, DefaultPartitions, 5)
		for p := range DefaultPartitions {
			if got := slices.Sorted(slices.Values(r.Owners(p))); !slices.Equal(got, slices.Sorted(slices.Values(members))) {
				t.Fatalf("m=%d: Owners(%d) = %q, want all members", m, p, r.Owners(p))
			}
			if len(r.Fallbacks(p)) != 0 {
				t.Fatalf("m=%d: Fallbacks(%d) = %q, want none", m, p, r.Fallbacks(p))
			}
		}
	}
}

func TestAccessors(t *testing.T) {
	members := []string{"n3", "n1", "n2", "n5", "n4"}
	r := mustNew(t, members, 64, 3)
	if got, want := r.Members(), []string{"n1", "n2", "n3", "n4", "n5"}; !slices.Equal(got, want) {
		t.Errorf("Members() = %q, want %q", got, want)
	}
	if r.Partitions() != 64 || r.N() != 3 {
		t.Errorf("Partitions, N = %d, %d; want 64, 3", r.Partitions(), r.N())
	}
	for _, key := range []string{"", "a", "user:42", "ключ"} {
		if got, want := r.Partition(key), PartitionOf(key, 64); got != want {
			t.Errorf("Partition(%q) = %d, want PartitionOf = %d", key, got, want)
		}
	}
}

// The ring keeps its own copy of the members: neither the caller's input
// nor the slice Members returns can change it.
func TestRingIsImmutable(t *testing.T) {
	members := []string{"c", "a", "b", "d"}
	r := mustNew(t, members, 32, 3)
	before := snapshot(r)

	members[0], members[1] = "x", "y"
	got := r.Members()
	got[0] = "mutated"
	r.PartitionsOf("a")[0] = -1

	// Appending to a returned Owners slice must not write into the
	// Fallbacks that follow it in memory.
	for p := range r.Partitions() {
		_ = append(r.Owners(p), "appended")
	}
	if after := snapshot(r); after != before {
		t.Errorf("ring changed through a returned or input slice:\nbefore %s\nafter  %s", before, after)
	}
	if !slices.Equal(r.Members(), []string{"a", "b", "c", "d"}) {
		t.Errorf("Members() = %q after mutating input and output", r.Members())
	}
}

func snapshot(r *Ring) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q ", r.Members())
	for p := range r.Partitions() {
		fmt.Fprintf(&b, "%d:%q/%q ", p, r.Owners(p), r.Fallbacks(p))
	}
	for _, id := range r.Members() {
		fmt.Fprintf(&b, "%s:%v ", id, r.PartitionsOf(id))
	}
	return b.String()
}

// Partition numbers can arrive from the network: out of range, a ring
// answers "nothing", never panics.
func TestUnknownPartitionAndNode(t *testing.T) {
	r := mustNew(t, []string{"a", "b", "c", "d"}, 16, 3)
	for _, p := range []int{-1, 16, 1 << 40, -1 << 40} {
		if got := r.Owners(p); got != nil {
			t.Errorf("Owners(%d) = %q, want nil", p, got)
		}
		if got := r.Fallbacks(p); got != nil {
			t.Errorf("Fallbacks(%d) = %q, want nil", p, got)
		}
		if got := r.Preference(p); got != nil {
			t.Errorf("Preference(%d) = %q, want nil", p, got)
		}
		if got := r.Primary(p); got != "" {
			t.Errorf("Primary(%d) = %q, want empty", p, got)
		}
		if r.IsOwner(p, "a") {
			t.Errorf("IsOwner(%d, a) = true", p)
		}
	}
	if got := r.PartitionsOf("stranger"); got != nil {
		t.Errorf("PartitionsOf(stranger) = %v, want nil", got)
	}
	for p := range 16 {
		if r.IsOwner(p, "stranger") || r.IsOwner(p, "") {
			t.Errorf("IsOwner(%d, non-member) = true", p)
		}
	}
}

// Placement is part of the cluster contract too: nodes running different
// builds during a rolling upgrade must agree on it. These pins catch any
// change to the hashes or the algorithm; changing them is a breaking,
// cluster-wide migration.
func TestPlacementGolden(t *testing.T) {
	r := mustNew(t, []string{"n1", "n2", "n3", "n4", "n5"}, 8, 3)
	want := []struct{ owners, fallbacks []string }{
		{[]string{"n5", "n1", "n2"}, []string{"n4", "n3"}},
		{[]string{"n4", "n5", "n3"}, []string{"n2", "n1"}},
		{[]string{"n3", "n5", "n4"}, []string{"n2", "n1"}},
		{[]string{"n1", "n5", "n2"}, []string{"n4", "n3"}},
		{[]string{"n2", "n3", "n4"}, []string{"n5", "n1"}},
		{[]string{"n1", "n4", "n3"}, []string{"n2", "n5"}},
		{[]string{"n3", "n1", "n5"}, []string{"n4", "n2"}},
		{[]string{"n2", "n1", "n4"}, []string{"n5", "n3"}},
	}
	for p, w := range want {
		if !slices.Equal(r.Owners(p), w.owners) || !slices.Equal(r.Fallbacks(p), w.fallbacks) {
			t.Errorf("partition %d: Owners %q Fallbacks %q, want %q %q", p, r.Owners(p), r.Fallbacks(p), w.owners, w.fallbacks)
		}
	}

	seq := func(m int) []string {
		ids := make([]string, m)
		for i := range ids {
			ids[i] = fmt.Sprintf("n%d", i+1)
		}
		return ids
	}
	hex := []string{"node-e31538d3", "node-a16e6598", "node-9a278683", "node-09f8b622", "node-69191a5a", "node-21a1954e", "node-61a21a6e"}
	addr := []string{"10.96.118.114:4222", "10.164.85.19:4222", "10.83.10.175:4222", "10.209.214.25:4222",
		"10.118.187.26:4222", "10.83.34.2:4222", "10.166.241.61:4222", "10.11.52.109:4222", "10.48.91.221:4222",
		"10.193.136.171:4222", "10.10.254.45:4222", "10.44.157.85:4222", "10.25.120.1:4222", "10.40.100.75:4222",
		"10.118.186.247:4222", "10.105.3.42:4222", "10.187.0.151:4222", "10.177.197.154:4222", "10.227.72.144:4222",
		"10.109.21.76:4222"}
	digests := []struct {
		members []string
		q, n    int
		digest  uint64
	}{
		{seq(50), 256, 3, 0x98a9d497c29c6243},
		{seq(3), 256, 5, 0xa4bf98f196600057},
		{hex, 256, 3, 0xfc2049f79c609d6d},
		{addr, 1024, 2, 0xa290a9caa4928283},
	}
	for _, d := range digests {
		r := mustNew(t, d.members, d.q, d.n)
		if got := placementDigest(r); got != d.digest {
			t.Errorf("%d members %q..., q=%d, n=%d: placement digest %#016x, want %#016x",
				len(d.members), d.members[0], d.q, d.n, got, d.digest)
		}
	}
}

// placementDigest hashes every partition's preference list, in order.
func placementDigest(r *Ring) uint64 {
	var b strings.Builder
	for p := range r.Partitions() {
		b.WriteString(strings.Join(r.Preference(p), ","))
		b.WriteString(";")
	}
	h := fnv.New64a()
	h.Write([]byte(b.String()))
	return h.Sum64()
}

// The lookups on the request path do not allocate.
func TestLookupsDoNotAllocate(t *testing.T) {
	r := mustNew(t, idSets()[0].ids[:10], DefaultPartitions, 3)
	for name, f := range map[string]func(){
		"Partition": func() { r.Partition("user:1234") },
		"Owners":    func() { r.Owners(17) },
		"Fallbacks": func() { r.Fallbacks(17) },
		"Primary":   func() { r.Primary(17) },
		"IsOwner":   func() { r.IsOwner(17, "n7") },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}

// A Ring is read by many goroutines at once; run with -race.
func TestConcurrentReads(t *testing.T) {
	r := mustNew(t, idSets()[1].ids[:12], DefaultPartitions, 3)
	want := snapshot(r)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				p := r.Partition(fmt.Sprint(g, i))
				owners := r.Owners(p)
				if !r.IsOwner(p, owners[len(owners)-1]) || len(r.Fallbacks(p)) != 9 {
					t.Errorf("inconsistent read of partition %d", p)
					return
				}
				_ = r.PartitionsOf(owners[0])
				_ = r.Members()
			}
		})
	}
	wg.Wait()
	if got := snapshot(r); got != want {
		t.Error("ring changed under concurrent reads")
	}
}
