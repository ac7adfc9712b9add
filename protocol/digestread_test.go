package protocol

import (
	"encoding/hex"
	"math"
	"testing"
)

// Tests of digest reads (Item.DigestOnly, Result.Digest): their fields
// on the wire and what the decoders refuse.

func validDigestReadRequest() *Request {
	return &Request{V: Version, From: "n1", Items: []Item{
		{Tag: 1, Op: RPCRead, Key: "user.1", DigestOnly: true},
		{Tag: 2, Op: RPCRead, Key: "user.2", DigestOnly: true},
		{Tag: 3, Op: RPCRead, Key: "user.3"}, // a full read beside them
	}}
}

func validDigestReadReply() *Reply {
	return &Reply{V: Version, From: "n2", Results: []Result{
		{Tag: 1, Digest: math.MaxUint64},
		{Tag: 2}, // no object: digest 0
		{Tag: 3, Obj: &Object{Clock: Clock{{Node: "n2", Counter: 1}}, Siblings: []Sibling{{Dot: Dot{Node: "n2", Counter: 1}, Value: []byte("v")}}}},
	}}
}

func TestDigestReadRoundTrip(t *testing.T) {
	assertRoundTrip(t, "digest read", validDigestReadRequest(), validDigestReadReply())

	// A full read encodes as before digest reads: no new field.
	plain, _ := EncodeRequest(&Request{V: Version, From: "n1", Items: []Item{{Tag: 3, Op: RPCRead, Key: "user.3"}}})
	if want := "83a17601a166a26e31a1699183a17403a16f01a16ba6757365722e33"; hex.EncodeToString(plain) != want {
		t.Errorf("full read encodes as %x, want %s", plain, want)
	}
}

func TestDigestReadRejects(t *testing.T) {
	reqCases := map[string]func(r *Request){
		"digest of a write":      func(r *Request) { r.Items[0] = Item{Op: RPCWrite, Key: "k", Obj: &Object{}, DigestOnly: true} },
		"digest of a scan":       func(r *Request) { r.Items[0] = Item{Op: RPCScan, DigestOnly: true} },
		"digest of a coordinate": func(r *Request) { r.Items[0] = Item{Op: RPCCoordinate, Key: "k", W: 1, DigestOnly: true} },
	}
	assertRequestsRefused(t, validDigestReadRequest, reqCases, ErrMalformed)
	assertRepliesRefused(t, validDigestReadReply, map[string]func(r *Reply){
		"a digest with an object": func(r *Reply) { r.Results[0].Obj = &Object{} },
	}, ErrMalformed, func(what string, b []byte) {
		assertSameDecode(t, what, b, DecodeReply, refDecodeReply, false)
	})
}
