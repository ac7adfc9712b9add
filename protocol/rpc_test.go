package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func validObject() *Object {
	return &Object{
		Clock:    Clock{{Node: "n1", Counter: 2}, {Node: "n2", Counter: 1}},
		Siblings: []Sibling{{Dot: Dot{Node: "n1", Counter: 2}, Value: []byte("v"), Time: 1}},
	}
}

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

func badClocks() map[string]Clock {
	return map[string]Clock{
		"unsorted":          {{Node: "b", Counter: 1}, {Node: "a", Counter: 1}},
		"duplicate node":    {{Node: "a", Counter: 1}, {Node: "a", Counter: 2}},
		"zero counter":      {{Node: "a", Counter: 0}},
		"counter too big":   {{Node: "a", Counter: MaxCounter + 1}},
		"counter max u64":   {{Node: "a", Counter: 1<<64 - 1}},
		"empty node id":     {{Node: "", Counter: 1}},
		"node id with dot":  {{Node: "a.b", Counter: 1}},
		"node id too long":  {{Node: strings.Repeat("a", MaxNodeIDLen+1), Counter: 1}},
		"node id wildcard":  {{Node: ">", Counter: 1}},
		"too many entries":  manyDots(MaxClockEntries + 1),
		"second dot is bad": {{Node: "a", Counter: 1}, {Node: "b", Counter: 0}},
	}
}

func manyDots(n int) Clock {
	c := make(Clock, n)
	for i := range c {
		c[i] = Dot{Node: fmt.Sprintf("n%05d", i), Counter: 1}
	}
	return c
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
		"version 0":             func(r *Request) { r.V = 0 },
		"version 2":             func(r *Request) { r.V = Version + 1 },
		"version -1":            func(r *Request) { r.V = -1 },
		"no sender":             func(r *Request) { r.From = "" },
		"bad sender":            func(r *Request) { r.From = "a.b" },
		"no items":              func(r *Request) { r.Items = nil },
		"empty items":           func(r *Request) { r.Items = []Item{} },
		"op 0":                  func(r *Request) { r.Items[0].Op = 0 },
		"op 4":                  func(r *Request) { r.Items[1].Op = 4 },
		"op 255":                func(r *Request) { r.Items[2].Op = 255 },
		"empty key":             func(r *Request) { r.Items[0].Key = "" },
		"key too long":          func(r *Request) { r.Items[0].Key = strings.Repeat("k", MaxKeyLen+1) },
		"key not UTF-8":         func(r *Request) { r.Items[0].Key = "\xff" },
		"key with control":      func(r *Request) { r.Items[0].Key = "a\x00" },
		"write without object":  func(r *Request) { r.Items[1].Obj = nil },
		"negative write quorum": func(r *Request) { r.Items[2].W = -1 },
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

func TestDecodeObject(t *testing.T) {
	o := validObject()
	b, err := EncodeObject(o)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != recordFormat {
		t.Fatalf("format byte %d", b[0])
	}
	if got := checkDecodeObject(t, b); got == nil {
		t.Fatal("valid object rejected")
	}
	for name, b := range map[string][]byte{
		"empty":                  nil,
		"format only":            {recordFormat},
		"format 0":               append([]byte{0}, b[1:]...),
		"format 2":               append([]byte{2}, b[1:]...),
		"format 0xff":            append([]byte{0xff}, b[1:]...),
		"no format byte":         b[1:],
		"format then garbage":    {recordFormat, 0xc1},
		"format then a string":   {recordFormat, 0xa1, 'x'},
		"three fields":           append([]byte{recordFormat}, mustMarshal(t, []any{nil, nil, nil})...),
		"trailing byte":          append(append([]byte{}, b...), 0),
		"hostile array":          {recordFormat, 0xdd, 0x7f, 0xff, 0xff, 0xff},
		"hostile bin":            {recordFormat, 0x92, 0xc0, 0xc6, 0x7f, 0xff, 0xff, 0xff},
		"siblings not an array":  append([]byte{recordFormat}, mustMarshal(t, []any{nil, "x"})...),
		"sibling with bad dot":   append([]byte{recordFormat}, mustMarshal(t, []any{nil, []any{[]any{[]any{"n1", 0}, nil, false, 0}}})...),
		"clock entries unsorted": append([]byte{recordFormat}, mustMarshal(t, []any{[]any{[]any{"b", 1}, []any{"a", 1}}, nil})...),
	} {
		got, err := DecodeObject(b)
		if err == nil || got != nil {
			t.Errorf("%s: accepted: %+v", name, got)
			continue
		}
		assertWireError(t, name, err)
	}
	for name, c := range badClocks() {
		o := validObject()
		o.Clock = c
		b, _ := EncodeObject(o)
		if _, err := DecodeObject(b); err == nil {
			t.Errorf("clock %s accepted", name)
		}
	}
	// nil and empty are both a valid empty object.
	for _, b := range [][]byte{{recordFormat, 0xc0}, {recordFormat, 0x92, 0xc0, 0xc0}, {recordFormat, 0x92, 0x90, 0x90}} {
		if checkDecodeObject(t, b) == nil {
			t.Errorf("% x rejected", b)
		}
	}
	// The record codec reads the array form only (a map is malformed).
	if _, err := DecodeObject([]byte{recordFormat, 0x80}); err == nil {
		t.Error("an object encoded as a map was accepted")
	}
}

func TestObjectLive(t *testing.T) {
	o := &Object{Siblings: []Sibling{
		{Dot: Dot{Node: "a", Counter: 1}, Value: []byte("1")},
		{Dot: Dot{Node: "b", Counter: 1}, Deleted: true},
		{Dot: Dot{Node: "c", Counter: 1}, Value: []byte("3")},
	}}
	live := o.Live()
	if len(live) != 2 || string(live[0].Value) != "1" || string(live[1].Value) != "3" {
		t.Fatalf("got %+v", live)
	}
	if len(o.Siblings) != 3 || !o.Siblings[1].Deleted {
		t.Fatal("Live changed the object")
	}
	o.Siblings = o.Siblings[:1]
	if got := o.Live(); len(got) != 1 {
		t.Fatalf("got %+v", got)
	}
	if got := (&Object{}).Live(); len(got) != 0 {
		t.Fatalf("got %+v", got)
	}
}
