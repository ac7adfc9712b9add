package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Strings and integers at every boundary of their msgpack forms.
var (
	boundaryLens = []int{0, 1, 31, 32, 255, 256, 65535, 65536}
	boundaryInts = []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, math.MinInt16, math.MinInt16 - 1, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
)

func randInt(rng *rand.Rand) int64 {
	if rng.Intn(2) == 0 {
		return boundaryInts[rng.Intn(len(boundaryInts))]
	}
	return rng.Int63() >> rng.Intn(63) * int64(1-2*rng.Intn(2))
}

func randString(rng *rand.Rand) string {
	n := rng.Intn(40)
	if rng.Intn(8) == 0 {
		n = boundaryLens[rng.Intn(len(boundaryLens))]
	}
	return strings.Repeat("x", n)
}

func randBlob(rng *rand.Rand) []byte {
	switch rng.Intn(6) {
	case 0:
		return nil
	case 1:
		return []byte{}
	case 2:
		return make([]byte, boundaryLens[rng.Intn(len(boundaryLens))])
	}
	return make([]byte, rng.Intn(200))
}

func anyClock(rng *rand.Rand) Clock {
	switch rng.Intn(4) {
	case 0:
		return nil
	case 1:
		return Clock{}
	}
	c := make(Clock, rng.Intn(18))
	for i := range c {
		c[i] = Dot{Node: randString(rng), Counter: uint64(randInt(rng))}
	}
	return c
}

func anyObject(rng *rand.Rand) *Object {
	if rng.Intn(3) == 0 {
		return nil
	}
	o := &Object{Clock: anyClock(rng)}
	switch rng.Intn(3) {
	case 0:
	case 1:
		o.Siblings = []Sibling{}
	default:
		for range rng.Intn(18) {
			o.Siblings = append(o.Siblings, Sibling{Dot: Dot{Node: randString(rng), Counter: uint64(randInt(rng))},
				Value: randBlob(rng), Deleted: rng.Intn(2) == 0, Time: randInt(rng)})
		}
	}
	return o
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
				Obj: anyObject(rng), Ctx: anyClock(rng),
			})
		}
	}
	return r
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
		requests = append(requests, anyRequest(rng), randRequest(rng))
		replies = append(replies, anyReply(rng), randReply(rng))
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

// wire writes msgpack the way another encoder might: any width for an
// integer or a length that holds it, strings as str or bin, fields in any
// order, zero fields present, unknown fields, wider headers.
type wire struct {
	rng *rand.Rand
	b   []byte
}

func (w *wire) pick(n int) bool { return w.rng.Intn(n) == 0 }

func (w *wire) uint(v uint64) {
	type form struct {
		code  byte
		width int
	}
	forms := []form{{0xcf, 8}}
	if v <= math.MaxInt64 {
		forms = append(forms, form{0xd3, 8})
	}
	if v <= math.MaxUint32 {
		forms = append(forms, form{0xce, 4})
	}
	if v <= math.MaxInt32 {
		forms = append(forms, form{0xd2, 4})
	}
	if v <= math.MaxUint16 {
		forms = append(forms, form{0xcd, 2})
	}
	if v <= math.MaxInt16 {
		forms = append(forms, form{0xd1, 2})
	}
	if v <= math.MaxUint8 {
		forms = append(forms, form{0xcc, 1})
	}
	if v <= math.MaxInt8 {
		forms = append(forms, form{0xd0, 1}, form{byte(v), 0}, form{byte(v), 0})
	}
	f := forms[w.rng.Intn(len(forms))]
	w.b = append(w.b, f.code)
	w.b = appendBE(w.b, v, f.width)
}

func (w *wire) int(v int64) {
	if v >= 0 {
		w.uint(uint64(v))
		return
	}
	type form struct {
		code  byte
		width int
	}
	forms := []form{{0xd3, 8}, {0xcf, 8}} // a uint64 wraps to the same int64
	if v >= math.MinInt32 {
		forms = append(forms, form{0xd2, 4})
	}
	if v >= math.MinInt16 {
		forms = append(forms, form{0xd1, 2})
	}
	if v >= math.MinInt8 {
		forms = append(forms, form{0xd0, 1})
	}
	if v >= -32 {
		forms = append(forms, form{byte(v), 0}, form{byte(v), 0})
	}
	f := forms[w.rng.Intn(len(forms))]
	w.b = append(w.b, f.code)
	w.b = appendBE(w.b, uint64(v), f.width)
}

func appendBE(b []byte, v uint64, width int) []byte {
	switch width {
	case 1:
		return append(b, byte(v))
	case 2:
		return binary.BigEndian.AppendUint16(b, uint16(v))
	case 4:
		return binary.BigEndian.AppendUint32(b, uint32(v))
	case 8:
		return binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// header writes a length in one of the forms of a family: fix is the
// fixed form's base code (0 if none) and fixMax its largest length; the
// 8-, 16- and 32-bit codes follow (0 if the family lacks one).
func (w *wire) header(n int, fix byte, fixMax int, c8, c16, c32 byte) {
	type form struct {
		code  byte
		width int
	}
	forms := []form{{c32, 4}}
	if n <= math.MaxUint16 {
		forms = append(forms, form{c16, 2})
	}
	if n <= math.MaxUint8 && c8 != 0 {
		forms = append(forms, form{c8, 1})
	}
	if n <= fixMax && fix != 0 {
		forms = append(forms, form{fix | byte(n), 0}, form{fix | byte(n), 0})
	}
	f := forms[w.rng.Intn(len(forms))]
	w.b = append(w.b, f.code)
	w.b = appendBE(w.b, uint64(n), f.width)
}

func (w *wire) str(s string) { w.blob([]byte(s), false) }

func (w *wire) blob(p []byte, preferBin bool) {
	if w.pick(4) != preferBin { // msgpack v5 reads either as a string or a []byte
		w.header(len(p), 0, 0, 0xc4, 0xc5, 0xc6)
	} else {
		w.header(len(p), 0xa0, 31, 0xd9, 0xda, 0xdb)
	}
	w.b = append(w.b, p...)
}

func (w *wire) bin(p []byte) {
	if p == nil {
		w.b = append(w.b, 0xc0)
		return
	}
	w.blob(p, true)
}

func (w *wire) bool(v bool) {
	switch {
	case v:
		w.b = append(w.b, 0xc3)
	case w.pick(3):
		w.b = append(w.b, 0xc0) // nil reads as false
	default:
		w.b = append(w.b, 0xc2)
	}
}

func (w *wire) arrayLen(n int) { w.header(n, 0x90, 15, 0, 0xdc, 0xdd) }
func (w *wire) mapLen(n int)   { w.header(n, 0x80, 15, 0, 0xde, 0xdf) }

// junk writes an arbitrary well-formed value at most one level deep.
func (w *wire) junk(depth int) {
	switch w.rng.Intn(10) {
	case 0:
		w.b = append(w.b, 0xc0)
	case 9:
		w.b = append(w.b, 0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18) // a float64
	case 1:
		w.int(randInt(w.rng))
	case 2:
		w.str(randString(w.rng))
	case 3:
		w.uint(w.rng.Uint64())
	case 4:
		w.b = append(w.b, 0xca, 0x3f, 0xc0, 0, 0) // a float32
	case 5:
		// Every ext form, with data that does not begin with a map
		// header (checkMsgpack refuses those).
		exts := [][]byte{
			{0xd4, 5, 1}, {0xd5, 5, 1, 2}, {0xd6, 0xff, 0, 0, 0, 1}, append([]byte{0xd7, 5}, make([]byte, 8)...),
			append([]byte{0xd8, 5}, make([]byte, 16)...), {0xc7, 2, 5, 0x90, 0x01}, {0xc8, 0, 2, 5, 0x90, 0x01},
			{0xc9, 0, 0, 0, 2, 5, 0x90, 0x01}, {0xc7, 0, 5},
		}
		w.b = append(w.b, exts[w.rng.Intn(len(exts))]...)
	case 6:
		if depth == 0 {
			n := w.rng.Intn(3)
			w.arrayLen(n)
			for range n {
				w.junk(depth + 1)
			}
			return
		}
		w.b = append(w.b, 0xc2)
	case 7:
		if depth == 0 {
			n := w.rng.Intn(3)
			w.mapLen(n)
			for range n {
				w.str(randString(w.rng))
				w.junk(depth + 1)
			}
			return
		}
		w.b = append(w.b, 0xc3)
	default:
		w.bin(randBlob(w.rng))
	}
}

// field is one map entry: its key and a function writing its value.
type field struct {
	key   string
	value func()
}

// fields writes a map of the present fields, in random order, with some
// of the omitted ones written as zero values and a few unknown keys.
func (w *wire) fields(present []field, zero []field) {
	for _, f := range zero {
		if w.pick(3) {
			present = append(present, f)
		}
	}
	for range w.rng.Intn(3) {
		present = append(present, field{"unknown-" + randString(w.rng), func() { w.junk(0) }})
	}
	if w.pick(20) {
		present = append(present, field{"", func() { w.junk(0) }}) // a nil key is skipped too
	}
	w.rng.Shuffle(len(present), func(i, j int) { present[i], present[j] = present[j], present[i] })
	w.mapLen(len(present))
	for _, f := range present {
		if f.key == "" && w.pick(2) {
			w.b = append(w.b, 0xc0)
		} else {
			w.str(f.key)
		}
		f.value()
	}
}

func (w *wire) dot(d Dot) {
	w.arrayLen(2)
	w.str(d.Node)
	w.uint(d.Counter)
}

func (w *wire) clock(c Clock) {
	if c == nil {
		w.b = append(w.b, 0xc0)
		return
	}
	w.arrayLen(len(c))
	for _, d := range c {
		w.dot(d)
	}
}

func (w *wire) object(o *Object) {
	if o == nil {
		w.b = append(w.b, 0xc0)
		return
	}
	w.arrayLen(2)
	w.clock(o.Clock)
	if o.Siblings == nil {
		w.b = append(w.b, 0xc0)
		return
	}
	w.arrayLen(len(o.Siblings))
	for _, s := range o.Siblings {
		w.arrayLen(4)
		w.dot(s.Dot)
		w.bin(s.Value)
		w.bool(s.Deleted)
		w.int(s.Time)
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
	var present, zero []field
	add := func(isZero bool, f field) {
		if isZero {
			zero = append(zero, f)
		} else {
			present = append(present, f)
		}
	}
	add(it.Tag == 0, field{"t", func() { w.uint(it.Tag) }})
	add(false, field{"o", func() { w.uint(uint64(it.Op)) }})
	add(false, field{"k", func() { w.str(it.Key) }})
	add(it.Obj == nil, field{"b", func() { w.object(it.Obj) }})
	add(len(it.Val) == 0, field{"val", func() { w.bin(it.Val) }})
	add(len(it.Ctx) == 0, field{"ctx", func() { w.clock(it.Ctx) }})
	add(!it.Del, field{"del", func() { w.bool(it.Del) }})
	add(it.W == 0, field{"w", func() { w.int(int64(it.W)) }})
	w.fields(present, zero)
}

func (w *wire) reply(r *Reply) {
	results := field{"r", func() {
		if r.Results == nil {
			w.b = append(w.b, 0xc0)
			return
		}
		w.arrayLen(len(r.Results))
		for i := range r.Results {
			w.result(&r.Results[i])
		}
	}}
	present := []field{
		{"v", func() { w.int(int64(r.V)) }},
		{"f", func() { w.str(r.From) }},
	}
	var zero []field
	if r.Results != nil {
		present = append(present, results)
	} else {
		zero = append(zero, results)
	}
	w.fields(present, zero)
}

func (w *wire) result(res *Result) {
	var present, zero []field
	add := func(isZero bool, f field) {
		if isZero {
			zero = append(zero, f)
		} else {
			present = append(present, f)
		}
	}
	add(res.Tag == 0, field{"t", func() { w.uint(res.Tag) }})
	add(res.Code == 0, field{"c", func() { w.int(int64(res.Code)) }})
	add(res.Name == "", field{"n", func() { w.str(res.Name) }})
	add(res.Err == "", field{"e", func() { w.str(res.Err) }})
	add(res.Obj == nil, field{"b", func() { w.object(res.Obj) }})
	add(len(res.Ctx) == 0, field{"ctx", func() { w.clock(res.Ctx) }})
	w.fields(present, zero)
}

func (w *wire) strs(ss []string) {
	if ss == nil {
		w.b = append(w.b, 0xc0)
		return
	}
	w.arrayLen(len(ss))
	for _, s := range ss {
		w.str(s)
	}
}

func (w *wire) values(vs [][]byte) {
	if vs == nil {
		w.b = append(w.b, 0xc0)
		return
	}
	w.arrayLen(len(vs))
	for _, v := range vs {
		w.bin(v)
	}
}

func (w *wire) announce(a *Announce) {
	present := []field{
		{"v", func() { w.int(int64(a.V)) }},
		{"f", func() { w.str(a.From) }},
		{"m", func() { w.strs(a.Members) }},
		{"t", func() { w.int(a.Time) }},
	}
	var zero []field
	secret := field{"s", func() { w.str(a.Secret) }}
	if a.Secret != "" {
		present = append(present, secret)
	} else {
		zero = append(zero, secret)
	}
	w.fields(present, zero)
}

// TestRPCDecodeAnyEncoding: valid messages written as another encoder
// might write them decode as reflection decoded them.
func TestRPCDecodeAnyEncoding(t *testing.T) {
	rng := rand.New(rand.NewSource(propertySeed))
	for i := range 3000 {
		w := &wire{rng: rng}
		r := randRequest(rng)
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
		rep := randReply(rng)
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
		// {"v":1,"f":"n2","r":[[1,0,"","",nil,nil]]}
		"result as array": "83a17601a166a26e32a17291960100a0a0c0c0",
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
