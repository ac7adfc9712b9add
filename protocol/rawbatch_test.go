package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

// Tests of raw batches (rawbatch.go): the JSON form, the msgpack form
// with more items than a Go client's batch, and what the decoder refuses.

func TestDecodeRawBatch(t *testing.T) {
	items, err := DecodeRawBatch([]byte(` {"ops":[{"op":"put","key":"a b","value":"x","w":"all","ttl":"1h","context":"c"},
		{"op":"put","key":"b","value_base64":"/wA="},{"op":"get","key":"c","r":"one"},{"op":"del","key":"d"},
		{"op":"put","key":"e","value":"y","if":"absent"},{"op":"del","key":"f","context":"c","if":"version"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []ClientItem{
		{Tag: 1, Op: BatchPut, Key: "a b", Value: []byte("x"), Quorum: "all", Context: "c", TTL: "1h"},
		{Tag: 2, Op: BatchPut, Key: "b", Value: []byte{0xff, 0}},
		{Tag: 3, Op: BatchGet, Key: "c", Quorum: "one"},
		{Tag: 4, Op: BatchDel, Key: "d"},
		{Tag: 5, Op: BatchPut, Key: "e", Value: []byte("y"), If: "absent"},
		{Tag: 6, Op: BatchDel, Key: "f", Context: "c", If: "version"},
	}
	if b1, b2 := mustJSON(items), mustJSON(want); b1 != b2 {
		t.Fatalf("items:\n got %s\nwant %s", b1, b2)
	}
	var cb ClientBatch
	cb.V = Version
	for i := range MaxRawBatch {
		cb.Items = append(cb.Items, ClientItem{Tag: uint64(i), Op: BatchGet, Key: "k"})
	}
	b, _ := EncodeClientBatch(&cb)
	if items, err := DecodeRawBatch(b); err != nil || len(items) != MaxRawBatch {
		t.Fatalf("msgpack of %d items: %d, %v", MaxRawBatch, len(items), err)
	}
	cb.Items = append(cb.Items, ClientItem{Op: BatchGet, Key: "k"})
	b, _ = EncodeClientBatch(&cb)
	if _, err := DecodeRawBatch(b); err == nil {
		t.Fatal("msgpack of too many items accepted")
	}
	for _, body := range []string{"", " ", "{", `{"ops":null}`, `{"ops":[]} {}`, `{"ops":[{"op":"get","key":"a","ttl":1}]}`,
		`{"ops":[{"op":"del","key":"a","r":"one"}]}`, `{"ops":[{"op":"put","key":"a","value":"x","value_base64":"eA=="}]}`,
		`{"ops":[{"op":"get","key":"a","if":"absent"}]}`} {
		if items, err := DecodeRawBatch([]byte(body)); err == nil || items != nil {
			t.Errorf("%q accepted", body)
		} else {
			assertWireError(t, body, err)
		}
	}
}

func TestEncodeRawBatchReply(t *testing.T) {
	results := []ClientResult{
		{Tag: 1, Context: "c1", Siblings: 2, Values: [][]byte{[]byte("a"), []byte("b")}, Expires: 1},
		{Tag: 2, Siblings: 1, Values: [][]byte{{0xff}}},
		ClientResultError(3, ErrKeyNotFound),
	}
	var r RawBatchReply
	if err := json.Unmarshal(EncodeRawBatchReply(results, "n1", true), &r); err != nil {
		t.Fatal(err)
	}
	got := mustJSON(r)
	want := `{"results":[{"status":200,"context":"c1","siblings":2,"values":["a","b"],"expires":"1970-01-01T00:00:00.000000001Z"},` +
		`{"status":200,"siblings":1,"values_base64":["/w=="]},{"status":404,"error":"key not found","name":"not_found"}]}`
	if got != want {
		t.Fatalf("reply:\n got %s\nwant %s", got, want)
	}
	rep, err := DecodeRawBatchReply(EncodeRawBatchReply(results, "n1", false))
	if err != nil || len(rep.Results) != 3 || rep.From != "n1" || rep.Results[2].Code != 404 {
		t.Fatalf("msgpack reply: %+v, %v", rep, err)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func FuzzDecodeRawBatch(f *testing.F) {
	addHostile(f, nil)
	for _, s := range []string{
		`{"ops":[{"op":"put","key":"a","value":"x","w":"2","ttl":"1s","context":"c"},{"op":"get","key":"b","r":"one"},{"op":"del","key":"c"}]}`,
		`{"ops":[{"op":"put","key":"a","value_base64":"/wA="}]}`,
		`{"ops":[` + strings.Repeat(`{"op":"get","key":"a"},`, 3) + `{}]}`,
		`{"ops":[{"op":"get","key":"\u0000"}]}`,
		"\x82\xa1v\x01\xa1i\x91\x83\xa1t\x01\xa1o\x01\xa1k\xa1a",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var items []ClientItem
		var err error
		assertBounded(t, "DecodeRawBatch", len(b), func() { items, err = DecodeRawBatch(b) })
		if err != nil {
			if items != nil {
				t.Fatalf("items with error %v", err)
			}
			assertWireError(t, "DecodeRawBatch", err)
			return
		}
		if len(items) < 1 || len(items) > MaxRawBatch {
			t.Fatalf("%d items", len(items))
		}
		for _, it := range items {
			if it.Op < BatchGet || it.Op > BatchDel || IsJSON(b) && it.Op != BatchPut && it.Value != nil {
				t.Fatalf("item %+v", it)
			}
		}
	})
}

// A condition never travels in msgpack: an older node would skip the
// field and write unconditionally. Only JSON raw batches carry one.
func TestClientItemConditionNotOnTheWire(t *testing.T) {
	b, _ := EncodeClientBatch(&ClientBatch{V: Version, Items: []ClientItem{{Tag: 1, Op: BatchPut, Key: "k", Value: []byte("v"), If: IfAbsent}}})
	if strings.Contains(string(b), IfAbsent) {
		t.Fatalf("the condition is in the msgpack encoding: %q", b)
	}
	items, err := DecodeRawBatch(b)
	if err != nil || len(items) != 1 || items[0].If != "" {
		t.Fatalf("decoded %+v, %v: want one unconditional put", items, err)
	}
}
