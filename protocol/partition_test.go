package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Mix64 is the SplitMix64 output function: fed the generator's state it
// reproduces the published SplitMix64 sequence for seed 0.
func TestMix64IsSplitMix64(t *testing.T) {
	want := []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f}
	var state uint64
	for i, w := range want {
		state += 0x9e3779b97f4a7c15
		if got := Mix64(state); got != w {
			t.Errorf("splitmix64 output %d = %#016x, want %#016x", i, got, w)
		}
	}
}

// The key hash is the wire contract between nodes and smart clients: these
// values must hold forever (a change remaps every key in every cluster).
func TestPartitionOfGolden(t *testing.T) {
	for _, tt := range []struct {
		key                         string
		hash                        uint64
		q256, q7, q1, q1024, q65536 int
	}{
		{"", 0xf52a15e9a9b5e89b, 155, 5, 0, 155, 59547},
		{"a", 0x02c0bdbf481420f8, 248, 3, 0, 248, 8440},
		{"user:1", 0x3290bc1a92ad86c2, 194, 2, 0, 706, 34498},
		{"user:2", 0x78c78a5c53b3ed30, 48, 2, 0, 304, 60720},
		{"kvmesh", 0x21fdbc6bceda8ea8, 168, 5, 0, 680, 36520},
		{"ключ", 0x95f04555fa3bf374, 116, 5, 0, 884, 62324},
		{"a/b/c?x=1", 0xb0d661d81124bbd1, 209, 5, 0, 977, 48081},
	} {
		if got := KeyHash(tt.key); got != tt.hash {
			t.Errorf("KeyHash(%q) = %#016x, want %#016x", tt.key, got, tt.hash)
		}
		for _, c := range []struct{ q, want int }{{256, tt.q256}, {7, tt.q7}, {1, tt.q1}, {1024, tt.q1024}, {65536, tt.q65536}} {
			if got := PartitionOf(tt.key, c.q); got != c.want {
				t.Errorf("PartitionOf(%q, %d) = %d, want %d", tt.key, c.q, got, c.want)
			}
		}
	}
}

// KeyHash is the SplitMix64 finalizer over the standard library's FNV-1a.
func TestKeyHashIsMixedFNV1a(t *testing.T) {
	mix := func(x uint64) uint64 {
		x ^= x >> 30
		x *= 0xbf58476d1ce4e5b9
		x ^= x >> 27
		x *= 0x94d049bb133111eb
		return x ^ x>>31
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		b := make([]byte, r.IntN(80))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		h := fnv.New64a()
		h.Write(b)
		if got, want := KeyHash(string(b)), mix(h.Sum64()); got != want {
			t.Fatalf("KeyHash(%x) = %#x, want %#x", b, got, want)
		}
	}
}

func TestPartitionOfPanicsOnInvalidCount(t *testing.T) {
	for _, q := range []int{0, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("PartitionOf(key, %d) did not panic", q)
				}
			}()
			PartitionOf("key", q)
		}()
	}
	if p := (&Placement{}).Partition("key"); p != -1 {
		t.Errorf("Partition on an empty table = %d, want -1", p)
	}
}

func TestPartitionOfDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { PartitionOf("some/key/of/moderate/length", 256) }); n != 0 {
		t.Errorf("PartitionOf allocates %v times per call", n)
	}
}

// testPlacement is a valid table of q partitions over members with n
// owners each, placed round robin.
func testPlacement(t testing.TB, q, n int, members ...string) *Placement {
	t.Helper()
	k := min(n, len(members))
	owners := make([][]string, q)
	for p := range owners {
		for j := range k {
			owners[p] = append(owners[p], members[(p+j)%len(members)])
		}
	}
	pl, err := NewPlacement(members[0], q, n, members, owners)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func TestPlacementRoundTrip(t *testing.T) {
	in := []string{"n3", "n1", "n2", "n4"}
	pl := testPlacement(t, 8, 3, in...)
	if !slices.Equal(pl.Members, []string{"n1", "n2", "n3", "n4"}) {
		t.Fatalf("members %v, want sorted", pl.Members)
	}
	b, err := EncodePlacement(pl)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) || !strings.Contains(string(b), `"members":["n1","n2","n3","n4"]`) {
		t.Fatalf("not the readable JSON expected: %s", b)
	}
	got, err := DecodePlacement(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Epoch != pl.Epoch || got.Node != "n3" || got.Partitions != 8 || got.Replicas != 3 {
		t.Fatalf("decoded %+v, want %+v", got, pl)
	}
	for p := range 8 {
		if want := []string{in[p%4], in[(p+1)%4], in[(p+2)%4]}; !slices.Equal(got.OwnerIDs(p), want) {
			t.Errorf("partition %d owners %v, want %v", p, got.OwnerIDs(p), want)
		}
	}
	if got.OwnerIDs(-1) != nil || got.OwnerIDs(8) != nil {
		t.Error("owners of a partition out of range")
	}
	if p := got.Partition("user.42"); p != PartitionOf("user.42", 8) {
		t.Errorf("Partition = %d", p)
	}
	// The epoch names the table, not the node that sent it.
	owners := make([][]string, 8)
	for p := range owners {
		owners[p] = got.OwnerIDs(p)
	}
	other, err := NewPlacement("n4", 8, 3, []string{"n4", "n3", "n2", "n1"}, owners)
	if err != nil || other.Epoch != pl.Epoch {
		t.Errorf("same table from another node: epoch %s, want %s", other.Epoch, pl.Epoch)
	}
	if grown := testPlacement(t, 8, 3, "n1", "n2", "n3", "n4", "n5"); grown.Epoch == pl.Epoch {
		t.Error("a grown member set kept the epoch")
	}
}

func TestNewPlacementRefusesBadInput(t *testing.T) {
	for name, owners := range map[string][][]string{
		"not a member":   {{"n1", "x"}},
		"owner twice":    {{"n1", "n1"}},
		"too few owners": {{"n1"}},
		"bad count":      {{"n1", "n2"}, {"n2", "n1"}},
	} {
		if _, err := NewPlacement("n1", 1, 2, []string{"n1", "n2"}, owners); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: err = %v, want ErrInvalidOption", name, err)
		}
	}
	if _, err := NewPlacement("n1", 1, 2, []string{"n1", "n.2"}, [][]string{{"n1", "n.2"}}); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("bad member id: err = %v", err)
	}
}

// Every way a table from the network can be wrong is refused. Each case
// edits a valid table's JSON object; the epoch is recomputed unless the
// case is about the epoch, so the check that refuses it is the one named.
func TestDecodePlacementRefusesBadTables(t *testing.T) {
	valid := testPlacement(t, 4, 2, "n1", "n2", "n3")
	for _, tc := range []struct {
		name      string
		edit      func(m map[string]any)
		keepEpoch bool
	}{
		{"version", func(m map[string]any) { m["v"] = 2 }, false},
		{"no partitions", func(m map[string]any) { m["partitions"] = 0; m["owners"] = []any{} }, false},
		{"too many partitions", func(m map[string]any) { m["partitions"] = MaxPartitions + 1 }, false},
		{"partitions and owners disagree", func(m map[string]any) { m["partitions"] = 5 }, false},
		{"no replicas", func(m map[string]any) { m["replicas"] = 0 }, false},
		{"no members", func(m map[string]any) { m["members"] = []any{} }, false},
		{"member id with a dot", func(m map[string]any) { m["members"] = []any{"n1", "n2", "n3.>"} }, false},
		{"member id wildcard", func(m map[string]any) { m["members"] = []any{"*", "n2", "n3"} }, false},
		{"members unsorted", func(m map[string]any) { m["members"] = []any{"n2", "n1", "n3"} }, false},
		{"member twice", func(m map[string]any) { m["members"] = []any{"n1", "n1", "n3"} }, false},
		{"bad node", func(m map[string]any) { m["node"] = "a b" }, false},
		{"index out of range", func(m map[string]any) { m["owners"].([]any)[1] = []any{0, 3} }, false},
		{"negative index", func(m map[string]any) { m["owners"].([]any)[1] = []any{-1, 0} }, false},
		{"owner twice", func(m map[string]any) { m["owners"].([]any)[1] = []any{2, 2} }, false},
		{"short owner list", func(m map[string]any) { m["owners"].([]any)[3] = []any{1} }, false},
		{"long owner list", func(m map[string]any) { m["owners"].([]any)[0] = []any{0, 1, 2} }, false},
		{"owners not lists", func(m map[string]any) { m["owners"] = "n1" }, false},
		{"fractional index", func(m map[string]any) { m["owners"].([]any)[0] = []any{0.5, 1} }, false},
		{"down index out of range", func(m map[string]any) { m["down"] = []any{3} }, false},
		{"more down than members", func(m map[string]any) { m["down"] = []any{0, 1, 2, 0} }, false},
		{"wrong epoch", func(m map[string]any) { m["epoch"] = "0000000000000000" }, true},
		{"owners changed under the epoch", func(m map[string]any) { m["owners"].([]any)[0] = []any{2, 1} }, true},
		{"members changed under the epoch", func(m map[string]any) { m["members"] = []any{"n1", "n2", "n4"} }, true},
	} {
		b, _ := EncodePlacement(valid)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		tc.edit(m)
		if !tc.keepEpoch {
			m["epoch"] = epochOfJSON(m)
		}
		b, _ = json.Marshal(m)
		if pl, err := DecodePlacement(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: DecodePlacement(%s) = %+v, %v; want ErrMalformed", tc.name, b, pl, err)
		}
	}
	for _, b := range []string{"", "null", "{}", "[]", "{", `{"v":1}`, "\x00", strings.Repeat("[", 10000)} {
		if pl, err := DecodePlacement([]byte(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodePlacement(%.20q) = %+v, %v; want ErrMalformed", b, pl, err)
		}
	}
}

// epochOfJSON is the epoch of a table edited as a JSON object, or "" when
// the edit made it undecodable (the decoder refuses it then anyway).
func epochOfJSON(m map[string]any) string {
	b, _ := json.Marshal(m)
	var pl Placement
	if json.Unmarshal(b, &pl) != nil {
		return ""
	}
	return PlacementEpoch(&pl)
}

// A table claiming the most partitions and replicas allowed with owner
// lists that are short costs no more memory than its bytes.
func TestDecodePlacementAllocatesByInput(t *testing.T) {
	members := make([]string, MaxMembers)
	for i := range members {
		members[i] = fmt.Sprintf("m%04d", i)
	}
	owners := make([][]int, MaxPartitions)
	for i := range owners {
		owners[i] = []int{}
	}
	b, _ := json.Marshal(Placement{V: Version, Partitions: MaxPartitions, Replicas: MaxMembers, Members: members, Owners: owners})
	assertBounded(t, "placement", len(b), func() {
		if _, err := DecodePlacement(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("err = %v, want ErrMalformed", err)
		}
	})
}

func FuzzDecodePlacement(f *testing.F) {
	good, _ := EncodePlacement(testPlacement(f, 4, 3, "n1", "n2", "n3", "n4"))
	f.Add(good)
	f.Add([]byte(`{"v":1,"partitions":1,"replicas":1,"members":["a"],"owners":[[0]],"epoch":""}`))
	f.Add([]byte(`{"v":1,"partitions":65536,"replicas":1024,"members":["a"],"owners":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var pl *Placement
		var err error
		assertBounded(t, "placement", len(b), func() { pl, err = DecodePlacement(b) })
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		// An accepted table routes every key to valid, distinct members.
		for p := range pl.Partitions {
			ids := pl.OwnerIDs(p)
			if len(ids) != min(pl.Replicas, len(pl.Members)) {
				t.Fatalf("partition %d: %d owners", p, len(ids))
			}
			for i, id := range ids {
				if ValidateNodeID(id) != nil || slices.Contains(ids[:i], id) {
					t.Fatalf("partition %d: owners %q", p, ids)
				}
			}
		}
		again, err := EncodePlacement(pl)
		if err != nil {
			t.Fatal(err)
		}
		if pl2, err := DecodePlacement(again); err != nil || pl2.Epoch != pl.Epoch {
			t.Fatalf("re-encoded table: %v", err)
		}
	})
}
