package protocol

import (
	"errors"
	"strings"
	"testing"
)

// Tests of the listing op (keys.go): its fields in requests and replies
// and what the decoders refuse.

func validKeysRequest() *Request {
	return &Request{V: Version, From: "n1", Items: []Item{
		{Tag: 1, Op: RPCKeys, Parts: []int{0, 1, 255, MaxPartitions - 1}, Prefix: "user.", Limit: MaxScanRecords, Budget: 1 << 20},
		{Tag: 2, Op: RPCKeys, Parts: []int{7}, After: "user.42", Limit: 1},
		{Tag: 3, Op: RPCKeys}, // no partitions: an empty page
	}}
}

func validKeysReply() *Reply {
	return &Reply{V: Version, From: "n2", Results: []Result{
		{Tag: 1, Recs: []Record{
			{Key: "user.1", Obj: &Object{Clock: Clock{{Node: "n1", Counter: 2}}, Siblings: []Sibling{{Dot: Dot{Node: "n1", Counter: 2}, Time: 5}}}},
			{Key: "user.2", Obj: &Object{Clock: Clock{{Node: "n2", Counter: 1}}, Siblings: []Sibling{{Dot: Dot{Node: "n2", Counter: 1}, Deleted: true, Time: 6}}}},
		}, Next: "user.2"},
		{Tag: 2}, // done, nothing after the cursor
	}}
}

func TestKeysRoundTrip(t *testing.T) {
	assertRoundTrip(t, "keys", validKeysRequest(), validKeysReply())
}

func TestKeysRejects(t *testing.T) {
	reqCases := map[string]func(r *Request){
		"keys with a key":          func(r *Request) { r.Items[0].Key = "k" },
		"partitions not ascending": func(r *Request) { r.Items[0].Parts[1] = 0 },
		"repeated partition":       func(r *Request) { r.Items[0].Parts[2] = 1 },
		"negative partition":       func(r *Request) { r.Items[1].Parts[0] = -1 },
		"partition too large":      func(r *Request) { r.Items[0].Parts[3] = MaxPartitions },
		"negative limit":           func(r *Request) { r.Items[0].Limit = -1 },
		"limit too large":          func(r *Request) { r.Items[0].Limit = MaxScanRecords + 1 },
		"bad prefix":               func(r *Request) { r.Items[0].Prefix = "\xff" },
		"prefix too long":          func(r *Request) { r.Items[0].Prefix = strings.Repeat("p", MaxKeyLen+1) },
		"control in prefix":        func(r *Request) { r.Items[0].Prefix = "a\nb" },
		"bad cursor":               func(r *Request) { r.Items[1].After = "\xff" },
		"prefix on a read":         func(r *Request) { r.Items[2] = Item{Op: RPCRead, Key: "k", Prefix: "k"} },
		"partitions on a scan":     func(r *Request) { r.Items[2] = Item{Op: RPCScan, Parts: []int{1}} },
		"limit on a write":         func(r *Request) { r.Items[2] = Item{Op: RPCWrite, Key: "k", Obj: &Object{}, Limit: 3} },
	}
	assertRequestsRefused(t, validKeysRequest, reqCases, nil)
	repCases := map[string]func(r *Reply){
		"records out of order": func(r *Reply) { k := r.Results[0].Recs; k[0], k[1] = k[1], k[0] },
		"repeated record":      func(r *Reply) { r.Results[0].Recs[1].Key = "user.1" },
		"bad next":             func(r *Reply) { r.Results[0].Next = "\xff" },
	}
	assertRepliesRefused(t, validKeysReply, repCases, nil, nil)
}

// TestKeysRefusesCountsBeforeAllocating: a partition count the message
// cannot hold is refused before anything is allocated for it.
func TestKeysRefusesCountsBeforeAllocating(t *testing.T) {
	// {"v":1,"f":"n1","i":[{"o":7,"ps":<array of 65535 declared>}]}
	b := mustHex(t, "83a17601a166a26e31a1699182a16f07a27073dcffff")
	if _, err := DecodeRequest(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, p := range []string{"", "a", "user.", "user. ", "*", ">", "é日本"} {
		if err := ValidatePrefix(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"\xff", "a\tb", strings.Repeat("k", MaxKeyLen+1)} {
		if err := ValidatePrefix(p); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%q: got %v, want ErrInvalidKey", p, err)
		}
	}
}
