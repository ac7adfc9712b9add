package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Tests of the node RPC messages (rpc.go): validation, what the decoders
// refuse and allocate, and the codec against reflection.

func validRequest() *Request {
	return &Request{V: Version, From: "n1", Items: []Item{
		{Tag: 1, Op: RPCRead, Key: "a"},
		{Tag: 2, Op: RPCWrite, Key: "b.c", Obj: validObject()},
		{Tag: 3, Op: RPCCoordinate, Key: "d", Val: []byte("x"), Ctx: Clock{{Node: "n1", Counter: 1}}, W: 2},
	}}
}

// wireMap marshals a request spelled as a generic map, to put on the wire
// what EncodeRequest would refuse to build.
func wireMap(t testing.TB, m map[string]any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRequestValid(t *testing.T) {
	r := validRequest()
	b, err := EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	got := checkDecodeRequest(t, b)
	if got == nil {
		t.Fatal("valid request rejected")
	}
	b2, _ := EncodeRequest(got)
	if !bytes.Equal(b, b2) {
		t.Fatal("round trip changed the request")
	}
	// Limits are inclusive.
	r.Items[0].Key = strings.Repeat("k", MaxKeyLen)
	r.Items[2].Ctx = manyDots(MaxClockEntries)
	r.Items[1].Obj.Siblings = make([]Sibling, MaxStoredSiblings)
	for i := range r.Items[1].Obj.Siblings {
		r.Items[1].Obj.Siblings[i].Dot = Dot{Node: "n1", Counter: uint64(i + 1)}
	}
	for len(r.Items) < MaxBatch {
		r.Items = append(r.Items, Item{Tag: uint64(len(r.Items)), Op: RPCRead, Key: "k"})
	}
	if checkDecodeRequest(t, mustEncodeRequest(t, r)) == nil {
		t.Fatal("a request at every limit rejected")
	}
}

func TestDecodeRequestRejects(t *testing.T) {
	type mutation func(r *Request)
	cases := map[string]mutation{
		"version 0":                   func(r *Request) { r.V = 0 },
		"version 2":                   func(r *Request) { r.V = Version + 1 },
		"version -1":                  func(r *Request) { r.V = -1 },
		"no sender":                   func(r *Request) { r.From = "" },
		"bad sender":                  func(r *Request) { r.From = "a.b" },
		"no items":                    func(r *Request) { r.Items = nil },
		"empty items":                 func(r *Request) { r.Items = []Item{} },
		"op 0":                        func(r *Request) { r.Items[0].Op = 0 },
		"op 5":                        func(r *Request) { r.Items[1].Op = 5 },
		"op 255":                      func(r *Request) { r.Items[2].Op = 255 },
		"empty key":                   func(r *Request) { r.Items[0].Key = "" },
		"key too long":                func(r *Request) { r.Items[0].Key = strings.Repeat("k", MaxKeyLen+1) },
		"key not UTF-8":               func(r *Request) { r.Items[0].Key = "\xff" },
		"key with control":            func(r *Request) { r.Items[0].Key = "a\x00" },
		"write without object":        func(r *Request) { r.Items[1].Obj = nil },
		"negative write quorum":       func(r *Request) { r.Items[2].W = -1 },
		"negative ttl":                func(r *Request) { r.Items[2].TTL = -1 },
		"ttl over the max":            func(r *Request) { r.Items[2].TTL = MaxTTL + 1 },
		"ttl on a delete":             func(r *Request) { r.Items[2].TTL, r.Items[2].Del = time.Second, true },
		"sibling expired before 1970": func(r *Request) { r.Items[1].Obj.Siblings[0].Expires = -1 },
		"too many items": func(r *Request) {
			for len(r.Items) <= MaxBatch {
				r.Items = append(r.Items, Item{Op: RPCRead, Key: "k"})
			}
		},
		"too many siblings": func(r *Request) {
			r.Items[1].Obj.Siblings = make([]Sibling, MaxStoredSiblings+1)
			for i := range r.Items[1].Obj.Siblings {
				r.Items[1].Obj.Siblings[i].Dot = Dot{Node: "n1", Counter: uint64(i + 1)}
			}
		},
		"sibling with bad dot": func(r *Request) { r.Items[1].Obj.Siblings[0].Dot.Counter = 0 },
		"sibling with bad id":  func(r *Request) { r.Items[1].Obj.Siblings[0].Dot.Node = "" },
		// An object is validated on any op, not only on writes.
		"read with a bad object": func(r *Request) {
			r.Items[0].Obj = &Object{Clock: Clock{{Node: "b", Counter: 1}, {Node: "a", Counter: 1}}}
		},
	}
	for name, c := range badClocks() {
		cases["ctx "+name] = func(r *Request) { r.Items[2].Ctx = c }
		cases["object clock "+name] = func(r *Request) { r.Items[1].Obj.Clock = c }
	}
	for name, mutate := range cases {
		r := validRequest()
		mutate(r)
		b, err := EncodeRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRequest(b)
		if err == nil || got != nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		assertWireError(t, name, err)
	}
}

func TestDecodeRequestRejectsWire(t *testing.T) {
	item := func(op any) map[string]any { return map[string]any{"t": 1, "o": op, "k": "a"} }
	req := func(items ...any) map[string]any { return map[string]any{"v": 1, "f": "n1", "i": items} }
	for name, b := range map[string][]byte{
		"empty":                   nil,
		"nil":                     {0xc0},
		"empty map":               {0x80},
		"not a map":               {0x01},
		"array form":              mustMarshal(t, []any{1, "n1", []any{item(1)}}),
		"items not an array":      wireMap(t, map[string]any{"v": 1, "f": "n1", "i": "x"}),
		"items of nils":           wireMap(t, req(nil, nil)),
		"version is a string":     wireMap(t, map[string]any{"v": "1", "f": "n1", "i": []any{item(1)}}),
		"version 2^64-1":          wireMap(t, map[string]any{"v": uint64(1<<64 - 1), "f": "n1", "i": []any{item(1)}}),
		"version 2^32+1":          wireMap(t, map[string]any{"v": uint64(1<<32 + 1), "f": "n1", "i": []any{item(1)}}),
		"op 257 (truncates to 1)": wireMap(t, req(item(257))),
		"op 258 (truncates to 2)": wireMap(t, req(item(258))),
		"op 2^32+3":               wireMap(t, req(item(uint64(1<<32+3)))),
		"op -255 (truncates)":     wireMap(t, req(item(-255))),
		"op is a float":           wireMap(t, req(item(1.0))),
		"op is a string":          wireMap(t, req(item("1"))),
		"key is a number":         wireMap(t, req(map[string]any{"t": 1, "o": 1, "k": 5})),
		"ttl is a string":         wireMap(t, req(map[string]any{"t": 1, "o": 3, "k": "a", "ttl": "30s"})),
		"ttl is a float":          wireMap(t, req(map[string]any{"t": 1, "o": 3, "k": "a", "ttl": 1.5})),
		"item is an array":        wireMap(t, req([]any{1, 1, "a", nil, nil, nil, false, 0})),
		"hostile items length":    append(mustHex(t, "83a17601a166a26e31a169"), mustHex(t, "dd7fffffff")...),
		"trailing byte":           append(mustMarshal(t, toReflRequest(validRequest())), 0xc0),
	} {
		got, err := DecodeRequest(b)
		if err == nil || got != nil {
			t.Errorf("%s: accepted: %+v", name, got)
			continue
		}
		assertWireError(t, name, err)
	}
	for name, h := range hostile {
		if _, err := DecodeRequest(mustHex(t, h)); err == nil {
			t.Errorf("hostile %s accepted", name)
		}
	}
}

// Before DecodeRequest read ops at full width, op 257 decoded as RPCRead:
// msgpack v5 stores an integer into a uint8 field modulo 256.
func TestDecodeRequestOpIsNotTruncated(t *testing.T) {
	b := mustHex(t, "83a17601a166a26e31a1699183a17401a16fcd0101a16ba161")
	if _, err := DecodeRequest(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("op 257: got %v, want ErrMalformed", err)
	}
	b[len(b)-6] = 0x00 // cd 00 01: op 1 as a uint16
	if r, err := DecodeRequest(b); err != nil || r.Items[0].Op != RPCRead {
		t.Fatalf("op 1 as a uint16: %+v, %v", r, err)
	}
}

// Duplicate map keys are refused: a message that names a field twice
// could mean either value.
func TestDecodeRequestDuplicateKeys(t *testing.T) {
	// {"v":1,"f":"n1","i":[{"t":1,"o":1,"k":"a"}],"i":[{"o":1,"o":259,"k":"a"}]}
	b := mustHex(t, "84a17601a166a26e31a1699183a17401a16f01a16ba161a1699183a16f01a16fcd0103a16ba161")
	if _, err := DecodeRequest(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v", err)
	}
	checkDecodeRequest(t, b)
}

func validReply() *Reply {
	return &Reply{V: Version, From: "n2", Results: []Result{
		{Tag: 1, Obj: validObject(), Ctx: Clock{{Node: "n1", Counter: 1}}},
		ResultError(2, fmt.Errorf("write: %w", ErrOverloaded)),
		{Tag: 3},
	}}
}

func TestDecodeReply(t *testing.T) {
	r := checkDecodeReply(t, mustMarshal(t, toReflReply(validReply())))
	if r == nil || len(r.Results) != 3 || !errors.Is(r.Results[1].Error(), ErrOverloaded) {
		t.Fatalf("got %+v", r)
	}
	if r := checkDecodeReply(t, mustMarshal(t, toReflReply(&Reply{V: Version, From: "n2"}))); r == nil {
		t.Fatal("a reply with no results rejected")
	}
	cases := map[string]func(r *Reply){
		"version 0":      func(r *Reply) { r.V = 0 },
		"version 2":      func(r *Reply) { r.V = 2 },
		"no sender":      func(r *Reply) { r.From = "" },
		"bad sender":     func(r *Reply) { r.From = "n 2" },
		"bad object":     func(r *Reply) { r.Results[0].Obj.Siblings[0].Dot.Node = "" },
		"too many sibls": func(r *Reply) { r.Results[0].Obj.Siblings = make([]Sibling, MaxStoredSiblings+1) },
		"too many results": func(r *Reply) {
			for len(r.Results) <= MaxBatch {
				r.Results = append(r.Results, Result{})
			}
		},
	}
	for name, c := range badClocks() {
		cases["ctx "+name] = func(r *Reply) { r.Results[0].Ctx = c }
		cases["object clock "+name] = func(r *Reply) { r.Results[0].Obj.Clock = c }
	}
	for name, mutate := range cases {
		r := validReply()
		mutate(r)
		b, _ := EncodeReply(r)
		got, err := DecodeReply(b)
		if err == nil || got != nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		assertWireError(t, name, err)
	}
	for name, h := range hostile {
		if _, err := DecodeReply(mustHex(t, h)); err == nil {
			t.Errorf("hostile %s accepted", name)
		}
	}
	for _, b := range [][]byte{nil, {0xc0}, {0x80}, {0x90}} {
		if _, err := DecodeReply(b); err == nil {
			t.Errorf("% x accepted", b)
		}
	}
}

// A batch too large, or larger than its bytes could hold, is refused
// before the items are allocated (each is ~100 bytes, even from a 1-byte
// nil); so are clocks and sibling lists.
func TestRPCDecodeRefusesCountsBeforeAllocating(t *testing.T) {
	head := mustHex(t, "83a17601a166a26e31a169") // {"v":1,"f":"n1","i":
	nils := func(n int) []byte { return bytes.Repeat([]byte{0xc0}, n) }
	cases := map[string][]byte{
		"MaxBatch+1 nil items": append(append(append([]byte{}, head...), 0xdc, 0x10, 0x01), nils(MaxBatch+1)...),
		"MaxBatch nil items":   append(append(append([]byte{}, head...), 0xdc, 0x10, 0x00), nils(MaxBatch)...),
		// {"v":1,"f":"n1","i":[{"o":2,"k":"a","b":[[nil×256...],nil]}]}
		"257 nil dots": append(append(append([]byte{}, head...), mustHex(t, "9183a16f02a16ba161a16292dc0101")...), append(nils(257), 0xc0)...),
		"2000 nil siblings": append(append(append([]byte{}, head...), mustHex(t, "9183a16f02a16ba161a16292c0dc07d0")...),
			nils(2000)...),
	}
	for name, b := range cases {
		if err := checkMsgpack(b, MaxDepth); err != nil {
			t.Fatalf("%s: not well-formed: %v", name, err)
		}
		if _, err := DecodeRequest(b); err == nil {
			t.Fatalf("%s: accepted", name)
		}
		if got := bytesPerRun(func() { _, _ = DecodeRequest(b) }); got > 2048 {
			t.Errorf("%s: refusing %d bytes allocated %d bytes", name, len(b), got)
		}
	}
}

// The counts refused above are those the bytes cannot hold: a message of
// the smallest valid elements, each ending the message, is accepted.
func TestRPCDecodeAcceptsSmallestElements(t *testing.T) {
	head := mustHex(t, "83a17601a166a26e31a169") // {"v":1,"f":"n1","i":
	item := mustHex(t, "82a16f01a16ba161")       // {"o":1,"k":"a"}: 8 bytes
	b := append(append([]byte{}, head...), 0xdc, 0x10, 0x00)
	for range MaxBatch {
		b = append(b, item...)
	}
	if r, err := DecodeRequest(b); err != nil || len(r.Items) != MaxBatch {
		t.Fatalf("%d items of %d bytes: %v", MaxBatch, len(item), err)
	}
	// {"o":1,"k":"a","ctx":[["-",1],["0",1],...]}: 4 bytes a dot, as many
	// as there are one-byte node ids
	ids := []byte("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
	b = append(append([]byte{}, head...), mustHex(t, "9183a16f01a16ba161a3637478dc0040")...)
	for _, id := range ids {
		b = append(b, 0x92, 0xa1, id, 0x01)
	}
	if r, err := DecodeRequest(b); err != nil || len(r.Items[0].Ctx) != len(ids) {
		t.Fatalf("%d dots of 4 bytes: %v", len(ids), err)
	}
	// {"o":2,"k":"a","b":[nil,[[["a",1],nil,false,0],...]]}: 8 bytes a sibling
	b = append(append([]byte{}, head...), mustHex(t, "9183a16f02a16ba161a16292c0dc0640")...)
	for range MaxStoredSiblings {
		b = append(b, 0x94, 0x92, 0xa1, 'a', 0x01, 0xc0, 0xc2, 0x00)
	}
	if r, err := DecodeRequest(b); err != nil || len(r.Items[0].Obj.Siblings) != MaxStoredSiblings {
		t.Fatalf("%d siblings of 8 bytes: %v", MaxStoredSiblings, err)
	}
	// {"v":1,"f":"n2","r":[{},...]}: 1 byte a result
	b = append(mustHex(t, "83a17601a166a26e32a172dc1000"), bytes.Repeat([]byte{0x80}, MaxBatch)...)
	if r, err := DecodeReply(b); err != nil || len(r.Results) != MaxBatch {
		t.Fatalf("%d empty results: %v", MaxBatch, err)
	}
}

// Negative integers in their 1-, 2- and 4-byte signed forms.
func TestRPCDecodeSignedForms(t *testing.T) {
	head := "83a17601a166a26e31a1699183a16f03a16ba161a177" // {"v":1,"f":"n1","i":[{"o":3,"k":"a","w":
	for _, w := range []string{"d0ff", "d1ffff", "d2ffffffff", "d3ffffffffffffffff", "cfffffffffffffffff", "ff"} {
		if _, err := DecodeRequest(mustHex(t, head+w)); !errors.Is(err, ErrMalformed) {
			t.Errorf("write quorum %s (-1): got %v, want ErrMalformed", w, err)
		}
	}
	for _, w := range []string{"d07f", "d17fff", "d27fffffff", "cc80", "cdffff", "ceffffffff"} {
		if _, err := DecodeRequest(mustHex(t, head+w)); err != nil {
			t.Errorf("write quorum %s: %v", w, err)
		}
	}
	// {"v":1,"f":"n2","r":[{"c":<-1>}]}
	for _, c := range []string{"d0ff", "d1ffff", "d2ffffffff", "ff"} {
		r, err := DecodeReply(mustHex(t, "83a17601a166a26e32a1729181a163"+c))
		if err != nil || r.Results[0].Code != -1 {
			t.Errorf("code %s: %+v, %v", c, r, err)
		}
	}
}

// bytesPerRun is the average heap allocation of f, in bytes.
func bytesPerRun(f func()) uint64 {
	const runs = 50
	f()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

// TestEncodeOwnsItsResult: the pooled buffer never leaks into a result.
func TestEncodeOwnsItsResult(t *testing.T) {
	reqs := benchRequests()
	want, _ := EncodeRequest(reqs["write16"])
	first, _ := EncodeRequest(reqs["write16"])
	for i := range first {
		first[i] = 0xff
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				r := reqs["read1"]
				if (g+i)%2 == 0 {
					r = reqs["write16"]
				}
				got, _ := EncodeRequest(r)
				if r == reqs["write16"] && !bytes.Equal(got, want) {
					t.Error("concurrent encodes disagree")
					return
				}
				_, _ = EncodeReply(benchReplies()["ack16"])
			}
		})
	}
	wg.Wait()
	if again, _ := EncodeRequest(reqs["write16"]); !bytes.Equal(again, want) {
		t.Fatal("writing to a returned slice changed a later encoding")
	}
}

// The decoded values own their bytes: nothing aliases the message.
func TestDecodeCopiesOutOfTheMessage(t *testing.T) {
	r := validRequest()
	b, _ := EncodeRequest(r)
	got, err := DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("clearing the message changed the request:\n%+v\n%+v", got, r)
	}
}

// checkDecodeRequest asserts DecodeRequest's contract on b (checkDecoded).
func checkDecodeRequest(t testing.TB, b []byte) *Request {
	t.Helper()
	return checkDecoded(t, "DecodeRequest", b, DecodeRequest, EncodeRequest, func(*Request) error { return nil })
}

// checkDecodeReply asserts DecodeReply's contract on b (checkDecoded);
// each result has an error exactly when it has a code.
func checkDecodeReply(t testing.TB, b []byte) *Reply {
	t.Helper()
	return checkDecoded(t, "DecodeReply", b, DecodeReply, EncodeReply, func(r *Reply) error {
		for i := range r.Results {
			if e := r.Results[i].Error(); (e == nil) != (r.Results[i].Code == 0) {
				return fmt.Errorf("result %d: code %d but error %v", i, r.Results[i].Code, e)
			}
		}
		return nil
	})
}

func FuzzDecodeRequest(f *testing.F) {
	addHostile(f, nil)
	for _, b := range seedEncodings(8, func(rng *rand.Rand) *Request { return withTTLs(rng, randRequest(rng)) }, EncodeRequest) {
		f.Add(b)
	}
	for _, b := range seedEncodings(8, randRequest, EncodeRequest) {
		f.Add(b)
	}
	for _, h := range []string{
		// {"v":1,"f":"n1","i":[{"t":1,"o":257,"k":"a"}]}: op 257 once
		// arrived as RPCRead.
		"83a17601a166a26e31a1699183a17401a16fcd0101a16ba161",
		// {"v":1,"f":"n1","i":[{"t":1,"o":1,"k":"a","w":-1}]}
		"83a17601a166a26e31a1699184a17401a16f01a16ba161a177ff",
		// {"v":1,"f":"n1","i":dd 7f ff ff ff}
		"83a17601a166a26e31a169dd7fffffff",
	} {
		f.Add(mustHex(f, h))
	}
	for _, b := range seedEncodings(4, randScanRequest, EncodeRequest) {
		f.Add(b)
	}
	f.Add(mustEncodeRequest(f, validScanRequest()))
	// Conditional forwarded writes (Item.If), and a condition where none
	// may be: on a read, and an "absent" delete.
	for _, it := range []Item{
		{Tag: 1, Op: RPCCoordinate, Key: "a", Val: []byte("v"), W: 2, PW: 2, If: CondAbsent, TTL: time.Second},
		{Tag: 2, Op: RPCCoordinate, Key: "a", Del: true, W: 2, PW: 2, If: CondVersion, Ctx: Clock{{Node: "n1", Counter: 3}}},
		{Tag: 3, Op: RPCRead, Key: "a", If: CondVersion},
		{Tag: 4, Op: RPCCoordinate, Key: "a", Del: true, W: 2, If: CondAbsent},
		{Tag: 5, Op: RPCCoordinate, Key: "a", W: 2, If: 9},
	} {
		f.Add(mustEncodeRequest(f, &Request{V: Version, From: "n1", Items: []Item{it}}))
	}
	f.Add(mustEncodeRequest(f, validKeysRequest()))
	f.Add(mustEncodeRequest(f, validDigestReadRequest()))
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeRequest(t, b) })
}

func FuzzDecodeReply(f *testing.F) {
	addHostile(f, nil)
	for _, b := range seedEncodings(8, func(rng *rand.Rand) *Reply { return withExpiries(rng, randReply(rng)) }, EncodeReply) {
		f.Add(b)
	}
	for _, b := range seedEncodings(8, randReply, EncodeReply) {
		f.Add(b)
	}
	for _, b := range seedEncodings(4, randScanReply, EncodeReply) {
		f.Add(b)
	}
	b, _ := EncodeReply(validScanReply())
	f.Add(b)
	b, _ = EncodeReply(validKeysReply())
	f.Add(b)
	b, _ = EncodeReply(validDigestReadReply())
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeReply(t, b) })
}

// anyRequest returns a request with arbitrary, mostly invalid, fields: the
// encoder must write whatever it is given exactly as reflection did.
func anyRequest(rng *rand.Rand) *Request {
	r := &Request{V: int(randInt(rng)), From: randString(rng)}
	switch rng.Intn(8) {
	case 0:
	case 1:
		r.Items = []Item{}
	default:
		for range rng.Intn(20) {
			r.Items = append(r.Items, Item{
				Tag: uint64(randInt(rng)), Op: uint8(rng.Intn(256)), Key: randString(rng), Obj: anyObject(rng),
				Val: randBlob(rng), Ctx: anyClock(rng), Del: rng.Intn(2) == 0, W: int(randInt(rng)),
				Partition: int(randInt(rng)), After: randString(rng), Budget: int(randInt(rng)),
			})
		}
	}
	return r
}

func anyReply(rng *rand.Rand) *Reply {
	r := &Reply{V: int(randInt(rng)), From: randString(rng)}
	switch rng.Intn(8) {
	case 0:
	case 1:
		r.Results = []Result{}
	default:
		for range rng.Intn(20) {
			r.Results = append(r.Results, Result{
				Tag: uint64(randInt(rng)), Code: int(randInt(rng)), Name: randString(rng), Err: randString(rng),
				Obj: anyObject(rng), Ctx: anyClock(rng), Recs: anyRecords(rng), Next: randString(rng),
			})
		}
	}
	return r
}

func anyRecords(rng *rand.Rand) []Record {
	switch rng.Intn(4) {
	case 0:
		return nil
	case 1:
		return []Record{}
	}
	recs := make([]Record, rng.Intn(18))
	for i := range recs {
		recs[i] = Record{Key: randString(rng), Obj: anyObject(rng)}
	}
	return recs
}

// TestRPCCodecMatchesReflection: the hand-written encoders write the
// bytes reflection wrote, for edge cases and random values, valid or not;
// what they write decodes to what reflection decodes.
func TestRPCCodecMatchesReflection(t *testing.T) {
	manyItems := func(n int) []Item {
		items := make([]Item, n)
		for i := range items {
			items[i] = Item{Tag: uint64(i), Op: RPCRead, Key: "k"}
		}
		return items
	}
	requests := []*Request{
		validRequest(),
		{},
		{V: Version, From: "n1", Items: []Item{}},
		{V: -1 << 40, From: strings.Repeat("f", 300), Items: []Item{{}}},
		{V: Version, From: "n1", Items: []Item{{Tag: math.MaxUint64, Op: 255, Key: strings.Repeat("k", 70000),
			Obj: &Object{}, Val: []byte{}, Ctx: Clock{}, W: math.MinInt64}}},
		{V: Version, From: "n1", Items: []Item{{Op: RPCWrite, Key: "a", Obj: &Object{Clock: Clock{}, Siblings: []Sibling{{}}},
			Val: make([]byte, 65536), Ctx: manyDots(16), Del: true, W: math.MaxInt64}}},
		{V: Version, From: "n1", Items: manyItems(15)},
		{V: Version, From: "n1", Items: manyItems(16)},
		{V: Version, From: "n1", Items: manyItems(65536)},
	}
	for _, r := range benchRequests() {
		requests = append(requests, r)
	}
	replies := []*Reply{
		validReply(),
		{},
		{V: Version, From: "n2", Results: []Result{}},
		{V: Version, From: "n2", Results: []Result{{}, {Code: -1}, {Code: math.MinInt64, Name: strings.Repeat("n", 256), Err: strings.Repeat("e", 65536)}}},
		{V: Version, From: "n2", Results: []Result{{Obj: &Object{}, Ctx: Clock{}}, {Obj: validObject(), Ctx: manyDots(300)}}},
	}
	for _, r := range benchReplies() {
		replies = append(replies, r)
	}
	rng := rand.New(rand.NewSource(propertySeed))
	for range 500 {
		requests = append(requests, anyRequest(rng), randRequest(rng), withTTLs(rng, randRequest(rng)))
		replies = append(replies, anyReply(rng), randReply(rng), withExpiries(rng, randReply(rng)))
	}
	for i, r := range requests {
		got, _ := EncodeRequest(r)
		want := compactMarshal(t, toReflRequest(r))
		if !bytes.Equal(got, want) {
			t.Fatalf("request %d %s:\n custom %s\n tags   %s", i, Clip(fmt.Sprintf("%+v", r), 300), Clip(fmt.Sprintf("%x", got), 300), Clip(fmt.Sprintf("%x", want), 300))
		}
		assertSameDecode(t, "DecodeRequest", want, DecodeRequest, refDecodeRequest, false)
	}
	for i, r := range replies {
		got, _ := EncodeReply(r)
		want := compactMarshal(t, toReflReply(r))
		if !bytes.Equal(got, want) {
			t.Fatalf("reply %d %s:\n custom %s\n tags   %s", i, Clip(fmt.Sprintf("%+v", r), 300), Clip(fmt.Sprintf("%x", got), 300), Clip(fmt.Sprintf("%x", want), 300))
		}
		assertSameDecode(t, "DecodeReply", want, DecodeReply, refDecodeReply, false)
	}
}

func (w *wire) request(r *Request) {
	w.fields([]field{
		{"v", func() { w.int(int64(r.V)) }},
		{"f", func() { w.str(r.From) }},
		{"i", func() {
			w.arrayLen(len(r.Items))
			for i := range r.Items {
				w.item(&r.Items[i])
			}
		}},
	}, nil)
}

func (w *wire) item(it *Item) {
	var s fieldSet
	s.add(it.Tag == 0, "t", func() { w.uint(it.Tag) })
	s.add(false, "o", func() { w.uint(uint64(it.Op)) })
	s.add(false, "k", func() { w.str(it.Key) })
	s.add(it.Obj == nil, "b", func() { w.object(it.Obj) })
	s.add(len(it.Val) == 0, "val", func() { w.bin(it.Val) })
	s.add(len(it.Ctx) == 0, "ctx", func() { w.clock(it.Ctx) })
	s.add(!it.Del, "del", func() { w.bool(it.Del) })
	s.add(it.W == 0, "w", func() { w.int(int64(it.W)) })
	if it.TTL != 0 { // see the scan fields below
		s.add(false, "ttl", func() { w.int(int64(it.TTL)) })
	}
	// The scan fields join only a scan's fields: the other items draw
	// from rng as they did before scans, so the golden inputs stay.
	if it.Op == RPCScan {
		s.add(it.Partition == 0, "p", func() { w.int(int64(it.Partition)) })
		s.add(it.After == "", "a", func() { w.str(it.After) })
		s.add(it.Budget == 0, "m", func() { w.int(int64(it.Budget)) })
	}
	// Likewise the hinted-handoff fields, only when set.
	if it.Hint != "" {
		s.add(false, "h", func() { w.str(it.Hint) })
	}
	if it.PW != 0 {
		s.add(false, "pw", func() { w.int(int64(it.PW)) })
	}
	w.fields(s.present, s.zero)
}

func (w *wire) reply(r *Reply) {
	var s fieldSet
	s.add(false, "v", func() { w.int(int64(r.V)) })
	s.add(false, "f", func() { w.str(r.From) })
	s.add(r.Results == nil, "r", func() { wireList(w, r.Results, func(res Result) { w.result(&res) }) })
	w.fields(s.present, s.zero)
}

func (w *wire) result(res *Result) {
	var s fieldSet
	s.add(res.Tag == 0, "t", func() { w.uint(res.Tag) })
	s.add(res.Code == 0, "c", func() { w.int(int64(res.Code)) })
	s.add(res.Name == "", "n", func() { w.str(res.Name) })
	s.add(res.Err == "", "e", func() { w.str(res.Err) })
	s.add(res.Obj == nil, "b", func() { w.object(res.Obj) })
	s.add(len(res.Ctx) == 0, "ctx", func() { w.clock(res.Ctx) })
	if res.Recs == nil && res.Next == "" {
		w.fields(s.present, s.zero) // as before scans: see item
		return
	}
	s.add(len(res.Recs) == 0, "rec", func() {
		wireList(w, res.Recs, func(r Record) {
			w.arrayLen(3)
			w.str(r.Key)
			w.clock(r.Obj.Clock)
			w.siblings(r.Obj.Siblings)
		})
	})
	s.add(res.Next == "", "a", func() { w.str(res.Next) })
	w.fields(s.present, s.zero)
}

// TestRPCDecodeAnyEncoding: valid messages written as another encoder
// might write them decode as reflection decoded them.
func TestRPCDecodeAnyEncoding(t *testing.T) {
	rng := rand.New(rand.NewSource(propertySeed))
	for i := range 3000 {
		w := &wire{rng: rng}
		r := withTTLs(rng, randRequest(rng))
		for j := range r.Items {
			r.Items[j].W = int(randInt(rng) & math.MaxInt8) // small: every width
			if o := r.Items[j].Obj; o != nil {
				for k := range o.Siblings {
					o.Siblings[k].Time = randInt(rng)
				}
			}
		}
		w.request(r)
		if _, err := DecodeRequest(w.b); err != nil {
			t.Fatalf("request %d: %v\n%+v\n% x", i, err, r, w.b)
		}
		assertSameDecode(t, "DecodeRequest", w.b, DecodeRequest, refDecodeRequest, false)

		w.b = nil
		rep := withExpiries(rng, randReply(rng))
		for j := range rep.Results {
			rep.Results[j].Code = int(randInt(rng))
		}
		w.reply(rep)
		if _, err := DecodeReply(w.b); err != nil {
			t.Fatalf("reply %d: %v\n% x", i, err, w.b)
		}
		assertSameDecode(t, "DecodeReply", w.b, DecodeReply, refDecodeReply, false)
	}
}

// The hand-written decoder accepts less than reflection did in three
// cases no encoder of ours produced: a repeated key, which reflection
// merged, and a Reply or Result spelled as an array or a Result as nil.
func TestRPCDecodeRefusesWhatNoEncoderWrites(t *testing.T) {
	requests := map[string]string{
		// {"v":1,"v":1,"f":"n1","i":[{"t":1,"o":1,"k":"a"}]}
		"repeated v": "84a17601a17601a166a26e31a1699183a17401a16f01a16ba161",
		// {"v":1,"f":"n1","i":[{"t":1,"o":1,"k":"a","k":"b"}]}
		"repeated k": "83a17601a166a26e31a1699184a17401a16f01a16ba161a16ba162",
		// the same, the second "k" as bin
		"repeated k as bin": "83a17601a166a26e31a1699184a17401a16f01a16ba161c4016ba162",
	}
	for name, h := range requests {
		b := mustHex(t, h)
		if _, err := refDecodeRequest(b); err != nil {
			t.Fatalf("%s: the reference rejects it too: %v", name, err)
		}
		if _, err := DecodeRequest(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	replies := map[string]string{
		// {"v":1,"f":"n2","r":[{"t":1,"t":2}]}
		"repeated t": "83a17601a166a26e32a1729182a17401a17402",
		// [1,"n2",[]]
		"reply as array": "9301a26e3290",
		// {"v":1,"f":"n2","r":[[1,0,"","",nil,nil,nil,"",0,nil,nil,nil,nil,nil,0]]}:
		// as many items as Result has fields, or reflection refuses it too
		"result as array": "83a17601a166a26e32a172919f0100a0a0c0c0c0a000c0c0c0c0c000",
		// {"v":1,"f":"n2","r":[nil]}
		"nil result": "83a17601a166a26e32a17291c0",
	}
	for name, h := range replies {
		b := mustHex(t, h)
		if _, err := refDecodeReply(b); err != nil {
			t.Fatalf("%s: the reference rejects it too: %v", name, err)
		}
		if _, err := DecodeReply(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}
