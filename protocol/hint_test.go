package protocol

import (
	"bytes"
	"errors"
	"testing"
)

// validHintRequest is a hinted write to a fallback and a forwarded write
// with a primary write quorum.
func validHintRequest() *Request {
	obj := &Object{Clock: Clock{{Node: "n1", Counter: 1}}, Siblings: []Sibling{{Dot: Dot{Node: "n1", Counter: 1}, Value: []byte("v")}}}
	return &Request{V: Version, From: "n1", Items: []Item{
		{Tag: 1, Op: RPCWrite, Key: "user.42", Obj: obj, Hint: "n2"},
		{Tag: 2, Op: RPCCoordinate, Key: "user.43", Val: []byte("v"), W: 2, PW: 2},
	}}
}

// TestHintFieldsRoundTrip: the hinted owner and pw survive the wire, the
// way reflection decoded them.
func TestHintFieldsRoundTrip(t *testing.T) {
	b, _ := EncodeRequest(validHintRequest())
	got, err := DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Items[0].Hint != "n2" || got.Items[1].PW != 2 || got.Items[1].W != 2 {
		t.Fatalf("decoded %+v", got.Items)
	}
	b2, _ := EncodeRequest(got)
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding changed the request")
	}
	assertSameDecode(t, "hinted request", b, DecodeRequest, refDecodeRequest, false)
}

// TestHintFieldsRejected: a hint that is no node id, a hint on anything
// but a replica write, and a pw out of 0..w are refused as malformed.
func TestHintFieldsRejected(t *testing.T) {
	cases := map[string]func(r *Request){
		"hint not an id":      func(r *Request) { r.Items[0].Hint = "n 2" },
		"hint with a dot":     func(r *Request) { r.Items[0].Hint = "n.2" },
		"hint too long":       func(r *Request) { r.Items[0].Hint = string(bytes.Repeat([]byte("n"), 1000)) },
		"hint on a read":      func(r *Request) { r.Items[0] = Item{Op: RPCRead, Key: "k", Hint: "n2"} },
		"hint on coordinate":  func(r *Request) { r.Items[1].Hint = "n2" },
		"negative pw":         func(r *Request) { r.Items[1].PW = -1 },
		"pw above w":          func(r *Request) { r.Items[1].PW = 3 },
		"pw without w at all": func(r *Request) { r.Items[1].W, r.Items[1].PW = 0, 1 },
	}
	for name, mutate := range cases {
		r := validHintRequest()
		mutate(r)
		b, _ := EncodeRequest(r)
		if got, err := DecodeRequest(b); err == nil || got != nil {
			t.Errorf("%s: accepted", name)
		} else {
			assertWireError(t, name, err)
		}
		assertSameDecode(t, name, b, DecodeRequest, refDecodeRequest, false)
	}
}

// TestParsePrimary: PR and PW take the quorum syntax, and "" or "0" for
// no requirement.
func TestParsePrimary(t *testing.T) {
	for in, want := range map[string]int{"": 0, "0": 0, "one": 1, "quorum": 2, "all": 3, "2": 2} {
		if got, err := ParsePrimary(in, 3); err != nil || got != want {
			t.Errorf("ParsePrimary(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"4", "-1", "x", " 1"} {
		if _, err := ParsePrimary(in, 3); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("ParsePrimary(%q): %v, want invalid option", in, err)
		}
	}
}
