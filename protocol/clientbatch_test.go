package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func randClientBatch(rng *rand.Rand) *ClientBatch {
	b := &ClientBatch{V: Version, Items: make([]ClientItem, 1+rng.Intn(8))}
	for i := range b.Items {
		it := &b.Items[i]
		it.Tag = rng.Uint64()
		it.Op = uint8(1 + rng.Intn(3))
		it.Key = randKey(rng)
		if it.Op == BatchPut {
			it.Value = randBytes(rng, true)
			if rng.Intn(2) == 0 {
				it.TTL = []string{"30s", "1", "1h30m", "-1", "junk"}[rng.Intn(5)] // checked by the node
			}
		}
		it.Quorum = []string{"", "one", "quorum", "all", "2"}[rng.Intn(5)]
		if rng.Intn(2) == 0 {
			it.Context = sealContext(randClock(rng))
		}
	}
	return b
}

func randClientBatchReply(rng *rand.Rand) *ClientBatchReply {
	r := &ClientBatchReply{V: Version, From: randNodeID(rng), Results: make([]ClientResult, rng.Intn(8))}
	for i := range r.Results {
		res := &r.Results[i]
		res.Tag = rng.Uint64()
		if rng.Intn(3) == 0 {
			*res = ClientResultError(res.Tag, Errorf(sentinels[rng.Intn(len(sentinels))], "item %d\nfailed", i))
		} else if rng.Intn(2) == 0 {
			res.Values = randValues(rng)
			for j, v := range res.Values {
				if v == nil {
					res.Values[j] = []byte{} // a value is never nil on the wire
				}
			}
			res.Siblings = len(res.Values)
			if rng.Intn(2) == 0 {
				res.Expires = 1 + rng.Int63n(1<<uint(rng.Intn(63)))
			}
		}
		if rng.Intn(2) == 0 {
			res.Context = sealContext(randClock(rng))
		}
	}
	return r
}

// checkDecodeClientBatch asserts DecodeClientBatch's contract on b
// (checkDecoded): 1..MaxClientBatch items of known ops.
func checkDecodeClientBatch(t testing.TB, b []byte) *ClientBatch {
	t.Helper()
	return checkDecoded(t, "DecodeClientBatch", b, DecodeClientBatch, EncodeClientBatch, func(r *ClientBatch) error {
		if len(r.Items) < 1 || len(r.Items) > MaxClientBatch {
			return fmt.Errorf("decoded %d items", len(r.Items))
		}
		for i := range r.Items {
			if op := r.Items[i].Op; op < BatchGet || op > BatchDel {
				return fmt.Errorf("item %d: op %d", i, op)
			}
		}
		return nil
	})
}

// checkDecodeClientBatchReply asserts DecodeClientBatchReply's contract
// on b (checkDecoded): each result has an error exactly when it has a
// code, and no nil value.
func checkDecodeClientBatchReply(t testing.TB, b []byte) *ClientBatchReply {
	t.Helper()
	return checkDecoded(t, "DecodeClientBatchReply", b, DecodeClientBatchReply, EncodeClientBatchReply, func(r *ClientBatchReply) error {
		for i := range r.Results {
			res := &r.Results[i]
			if e := res.Error(); (e == nil) != (res.Code == 0) {
				return fmt.Errorf("result %d: code %d but error %v", i, res.Code, e)
			}
			for _, v := range res.Values {
				if v == nil {
					return fmt.Errorf("result %d: a nil value", i)
				}
			}
		}
		return nil
	})
}

func TestClientBatchRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for range 500 {
		b := randClientBatch(rng)
		enc, err := EncodeClientBatch(b)
		if err != nil {
			t.Fatal(err)
		}
		got := checkDecodeClientBatch(t, enc)
		if !reflect.DeepEqual(got, b) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", got, b)
		}
		// Any truncation is an error, never a panic or a partial batch.
		if cut := rng.Intn(len(enc)); cut > 0 {
			if _, err := DecodeClientBatch(enc[:cut]); err == nil {
				t.Fatalf("truncated batch of %d/%d bytes decoded", cut, len(enc))
			}
		}
	}
	for range 500 {
		r := randClientBatchReply(rng)
		enc, err := EncodeClientBatchReply(r)
		if err != nil {
			t.Fatal(err)
		}
		got := checkDecodeClientBatchReply(t, enc)
		if len(r.Results) == 0 {
			r.Results = got.Results // empty, whether nil or not
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", got, r)
		}
	}
}

// The wire form is what msgpack writes for the documented maps, so any
// msgpack library can speak it.
func TestClientBatchWireForm(t *testing.T) {
	b := &ClientBatch{V: Version, Items: []ClientItem{
		{Tag: 1, Op: BatchGet, Key: "a b", Quorum: "one"},
		{Tag: 300, Op: BatchPut, Key: "k", Value: []byte("v"), Quorum: "all", Context: "kA", TTL: "30s"},
		{Tag: 2, Op: BatchDel, Key: "k"},
	}}
	enc, _ := EncodeClientBatch(b)
	var m map[string]any
	if err := msgpack.Unmarshal(enc, &m); err != nil {
		t.Fatal(err)
	}
	items := m["i"].([]any)
	if len(m) != 2 || len(items) != 3 {
		t.Fatalf("wire form %v", m)
	}
	put := items[1].(map[string]any)
	if put["k"] != "k" || !bytes.Equal(put["d"].([]byte), []byte("v")) || put["q"] != "all" || put["c"] != "kA" || put["ttl"] != "30s" {
		t.Fatalf("put item %v", put)
	}
	// And what a generic encoder writes decodes.
	generic, err := msgpack.Marshal(map[string]any{"v": Version, "i": []any{
		map[string]any{"t": uint64(9), "o": int64(2), "k": "x", "d": []byte("val"), "q": "2", "extra": []int{1}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeClientBatch(generic)
	if err != nil {
		t.Fatal(err)
	}
	want := ClientItem{Tag: 9, Op: BatchPut, Key: "x", Value: []byte("val"), Quorum: "2"}
	if !reflect.DeepEqual(got.Items, []ClientItem{want}) {
		t.Fatalf("decoded %#v", got.Items)
	}
}

func TestClientBatchRefusals(t *testing.T) {
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	item := func(op any) map[string]any { return map[string]any{"t": 1, "o": op, "k": "a"} }
	many := make([]any, MaxClientBatch+1)
	for i := range many {
		many[i] = item(1)
	}
	for name, b := range map[string][]byte{
		"empty":           nil,
		"not a map":       enc([]int{1}),
		"no items":        enc(map[string]any{"v": Version, "i": []any{}}),
		"nil items":       enc(map[string]any{"v": Version, "i": nil}),
		"no version":      enc(map[string]any{"i": []any{item(1)}}),
		"old version":     enc(map[string]any{"v": Version + 1, "i": []any{item(1)}}),
		"op 0":            enc(map[string]any{"v": Version, "i": []any{item(0)}}),
		"op 4":            enc(map[string]any{"v": Version, "i": []any{item(4)}}),
		"op 257":          enc(map[string]any{"v": Version, "i": []any{item(257)}}),
		"op -255":         enc(map[string]any{"v": Version, "i": []any{item(-255)}}),
		"no op":           enc(map[string]any{"v": Version, "i": []any{map[string]any{"t": 1, "k": "a"}}}),
		"repeated field":  mustHex(t, "82a17601a1699183a17401a16f01a16f01"),
		"too many items":  enc(map[string]any{"v": Version, "i": many}),
		"huge item count": mustHex(t, "82a17601a169dd7fffffff"),
		"trailing bytes":  append(enc(map[string]any{"v": Version, "i": []any{item(1)}}), 0),
		"value not bytes": enc(map[string]any{"v": Version, "i": []any{map[string]any{"o": 2, "k": "a", "d": 5}}}),
		"ttl not a str":   enc(map[string]any{"v": Version, "i": []any{map[string]any{"o": 2, "k": "a", "ttl": 5}}}),
	} {
		r, err := DecodeClientBatch(b)
		if err == nil || r != nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, %v; want ErrMalformed", name, r, err)
		}
	}
	// Keys, quorums and contexts are checked by the node item by item.
	b := enc(map[string]any{"v": Version, "i": []any{map[string]any{"t": 1, "o": 1, "k": "", "q": "seven", "c": "!!"}}})
	if _, err := DecodeClientBatch(b); err != nil {
		t.Fatalf("a bad key, quorum or context fails the whole batch: %v", err)
	}
	for name, r := range map[string]*ClientBatchReply{
		"negative siblings": {V: Version, From: "n1", Results: []ClientResult{{Tag: 1, Siblings: -1}}},
		"more values":       {V: Version, From: "n1", Results: []ClientResult{{Tag: 1, Siblings: 1, Values: [][]byte{{1}, {2}}}}},
		"bad sender":        {V: Version, From: "a.b", Results: nil},
		"no sender":         {V: Version},
		"bad code":          {V: Version, From: "n1", Results: []ClientResult{{Tag: 1, Code: -3}}},
		"negative expires":  {V: Version, From: "n1", Results: []ClientResult{{Tag: 1, Siblings: 1, Values: [][]byte{{1}}, Expires: -1}}},
	} {
		b, _ := EncodeClientBatchReply(r)
		if got, err := DecodeClientBatchReply(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, %v; want ErrMalformed", name, got, err)
		}
	}
}

func TestClientResultErrorCrossesTheWire(t *testing.T) {
	for _, s := range sentinels {
		res := ClientResultError(5, Errorf(s, "line one\r\nline two"))
		b, _ := EncodeClientBatchReply(&ClientBatchReply{V: Version, From: "n1", Results: []ClientResult{res}})
		r, err := DecodeClientBatchReply(b)
		if err != nil {
			t.Fatal(err)
		}
		got := r.Results[0].Error()
		if !errors.Is(got, s) || strings.ContainsAny(got.Error(), "\r\n") {
			t.Errorf("%s: got %v", s.Name, got)
		}
	}
	ok := ClientResult{Tag: 1}
	if ok.Error() != nil {
		t.Fatal("code 0 is an error")
	}
}

func FuzzDecodeClientBatch(f *testing.F) {
	addHostile(f, nil)
	for _, b := range seedEncodings(8, randClientBatch, EncodeClientBatch) {
		f.Add(b)
	}
	for _, h := range []string{
		// {"v":1,"i":[{"t":1,"o":257,"k":"a"}]}
		"82a17601a1699183a17401a16fcd0101a16ba161",
		// {"v":1,"i":dd 7f ff ff ff}
		"82a17601a169dd7fffffff",
	} {
		f.Add(mustHex(f, h))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeClientBatch(t, b) })
}

func FuzzDecodeClientBatchReply(f *testing.F) {
	addHostile(f, nil)
	for _, b := range seedEncodings(8, randClientBatchReply, EncodeClientBatchReply) {
		f.Add(b)
	}
	// {"v":1,"f":"n1","r":[{"t":1,"vals":dd 7f ff ff ff}]}
	f.Add(mustHex(f, "83a17601a166a26e31a1729182a17401a476616c73dd7fffffff"))
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeClientBatchReply(t, b) })
}
