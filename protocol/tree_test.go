package protocol

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// Tests of the anti-entropy ops (tree.go): their fields in requests and
// replies and what the decoders refuse.

func validTreeRequest() *Request {
	return &Request{V: Version, From: "n1", Items: []Item{
		{Tag: 1, Op: RPCTree, Partition: 3, Nodes: []int{0}, Hashes: []uint64{math.MaxUint64}},
		{Tag: 2, Op: RPCTree, Partition: 4, Level: 2, Nodes: []int{0, 5, 255}, Hashes: []uint64{1, 0, 1 << 40}},
		{Tag: 3, Op: RPCBuckets, Partition: 5, Buckets: []int{0, 17, MaxTreeNodes - 1}, After: "user.1", Budget: 1 << 20},
	}}
}

func validTreeReply() *Reply {
	return &Reply{V: Version, From: "n2", Results: []Result{
		{Tag: 1, Level: 1, Nodes: []int{1, 2}, Hashes: []uint64{7, 8}},
		{Tag: 2, Diff: []int{3, 4095}},
		{Tag: 3, Keys: []string{"user.2", "user.3"}, Digests: []uint64{9, math.MaxUint64}, Next: "user.3"},
		{Tag: 4}, // the trees agree
	}}
}

func TestTreeRoundTrip(t *testing.T) {
	assertRoundTrip(t, "tree", validTreeRequest(), validTreeReply())
}

func TestTreeRejects(t *testing.T) {
	reqCases := map[string]func(r *Request){
		"tree with a key":       func(r *Request) { r.Items[0].Key = "k" },
		"buckets with a key":    func(r *Request) { r.Items[2].Key = "k" },
		"level -1":              func(r *Request) { r.Items[1].Level = -1 },
		"level too deep":        func(r *Request) { r.Items[1].Level = MaxTreeLevel + 1 },
		"more hashes":           func(r *Request) { r.Items[1].Hashes = append(r.Items[1].Hashes, 1) },
		"fewer hashes":          func(r *Request) { r.Items[1].Hashes = r.Items[1].Hashes[:1] },
		"nodes not ascending":   func(r *Request) { r.Items[1].Nodes[1] = 0 },
		"negative node":         func(r *Request) { r.Items[1].Nodes[0] = -1 },
		"node too large":        func(r *Request) { r.Items[1].Nodes[2] = MaxTreeNodes },
		"buckets not ascending": func(r *Request) { r.Items[2].Buckets[2] = 17 },
		"negative bucket":       func(r *Request) { r.Items[2].Buckets[0] = -5 },
		"bad cursor":            func(r *Request) { r.Items[2].After = "\xff" },
	}
	assertRequestsRefused(t, validTreeRequest, reqCases, nil)
	repCases := map[string]func(r *Reply){
		"frontier mismatch":  func(r *Reply) { r.Results[0].Hashes = nil },
		"frontier level":     func(r *Reply) { r.Results[0].Level = 99 },
		"diff not ascending": func(r *Reply) { r.Results[1].Diff = []int{4, 3} },
		"keys out of order":  func(r *Reply) { k := r.Results[2].Keys; k[0], k[1] = k[1], k[0] },
		"repeated key":       func(r *Reply) { r.Results[2].Keys[1] = "user.2" },
		"invalid key":        func(r *Reply) { r.Results[2].Keys[0] = strings.Repeat("k", MaxKeyLen+1) },
		"digests mismatch":   func(r *Reply) { r.Results[2].Digests = r.Results[2].Digests[:1] },
	}
	assertRepliesRefused(t, validTreeReply, repCases, nil, nil)
}

// TestTreeRefusesCountsBeforeAllocating: a list count the message cannot
// hold is refused before anything is allocated for it.
func TestTreeRefusesCountsBeforeAllocating(t *testing.T) {
	// {"v":1,"f":"n1","i":[{"o":5,"tn":<array of 65535 declared>}]}
	b := mustHex(t, "83a17601a166a26e31a1699182a16f05a2746edcffff")
	if _, err := DecodeRequest(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
	// {"v":1,"f":"n2","r":[{"ks":<array of 2^32-1 declared>}]}
	b = mustHex(t, "83a17601a166a26e32a1729181a26b73ddffffffff")
	if _, err := DecodeReply(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
}

// TestMapOfManyFields: a struct with more than 15 fields set is written
// with a map16 header and read back.
func TestMapOfManyFields(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q"}
	b, m := beginMap([]byte{0xff}) // something before the map, as in a list
	for i, k := range names {
		b = m.int(b, k, int64(i))
	}
	b = m.end(b)
	if b[0] != 0xff || b[1] != 0xde || b[2] != 0 || b[3] != byte(len(names)) {
		t.Fatalf("header % x", b[:4])
	}
	d := decoder{b: b[1:], what: "test"}
	got := map[string]int{}
	err := d.fields(keys(names, "q"), func(k string) error {
		v, err := d.intField()
		got[k] = v
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range names {
		if got[k] != i {
			t.Errorf("%s = %d, want %d", k, got[k], i)
		}
	}
}
