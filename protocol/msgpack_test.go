package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Tests of the primitives of msgpack.go: decoder.skip, the walk that
// bounds every length and the nesting of unknown values, against a naive
// reference checker and msgpack itself; and every decoder against hostile
// lengths. (wire_test.go writes msgpack as other encoders may spell it,
// for the families' tests of what their decoders accept.)

// checkMsgpack is the structural check kvmesh made before it decoded by
// reflection (CheckMsgpack until issue 16): decoder.skip over exactly one
// value, with nesting bounded by maxDepth. The decoders now bound every
// length as they read, with skip for the values of unknown keys; the
// reference decoders of reflection_test.go still run this check before
// msgpack.Unmarshal, as kvmesh did. The tests below hold it to refCheck.
func checkMsgpack(b []byte, maxDepth int) error {
	d := decoder{b: b, what: "msgpack"}
	_, err := decodeMessage(&d, func() (struct{}, error) { return struct{}{}, d.skip(maxDepth) })
	return err
}

// hostile are inputs whose declared lengths exceed the message. Decoded
// by reflection without checkMsgpack, several of them kill the process with a fatal
// out-of-memory error that recover cannot catch (see
// shared/notes/reliability.md §4).
var hostile = map[string]string{
	"array32 2^31-1":          "dd7fffffff",
	"array32 max":             "ddffffffff",
	"map32 2^31-1":            "df7fffffff",
	"map32 max":               "dfffffffff",
	"bin32 2^31-1":            "c67fffffff",
	"str32 2^31-1":            "db7fffffff",
	"ext32 2^31-1":            "c97fffffff01",
	"array16 max":             "dcffff",
	"map16 max":               "deffff",
	"bin16 max":               "c5ffff",
	"str16 max":               "daffff",
	"ext16 max":               "c8ffff01",
	"bin8 max":                "c4ff",
	"str8 max":                "d9ff",
	"ext8 max":                "c7ff01",
	"fixstr 31":               "bf",
	"fixarray 15":             "9f",
	"fixmap 15":               "8f",
	"array32 in array":        "91dd7fffffff",
	"array32 in map":          "81a161dd7fffffff",
	"bin32 in struct":         "82a17601a162c67fffffff",
	"array of 3, 2 present":   "930102",
	"map of 2, 3 values":      "82010203",
	"array16 claims 5 of 4":   "dc000501020304",
	"ext data is a map32":     "c70501df7fffffff",
	"fixext1 data is fixmap":  "d40181",
	"ext8 data is fixmap":     "c70301810102",
	"fixext4 data is map16":   "d601deffff00",
	"ext16 data is map32":     "c8000501df7fffffff",
	"ext data is map, nested": "91c70501df7fffffff",
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestCheckMsgpackRejectsHostileLengths(t *testing.T) {
	for name, h := range hostile {
		b := mustHex(t, h)
		err := checkMsgpack(b, MaxDepth)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s (% x): got %v, want ErrMalformed", name, b, err)
		}
		if refCheck(b, MaxDepth) {
			t.Errorf("%s: the reference checker accepts it", name)
		}
	}
}

// Every decoder refuses every hostile length, alone and as the value of
// an unknown key, and allocates no more than the bytes justify: each
// bounds lengths itself now that no structural check runs first.
func TestDecodersRefuseHostileLengths(t *testing.T) {
	decoders := map[string]func([]byte) error{
		"request":      func(b []byte) error { _, err := DecodeRequest(b); return err },
		"reply":        func(b []byte) error { _, err := DecodeReply(b); return err },
		"client batch": func(b []byte) error { _, err := DecodeClientBatch(b); return err },
		"client reply": func(b []byte) error { _, err := DecodeClientBatchReply(b); return err },
		"object":       func(b []byte) error { _, err := DecodeObject(append([]byte{recordFormat}, b...)); return err },
		"siblings":     func(b []byte) error { _, err := DecodeSiblings(b); return err },
		"clock":        func(b []byte) error { _, err := decodeClock(b); return err },
		"heartbeat":    func(b []byte) error { _, err := DecodeHeartbeat(b); return err },
	}
	for name, h := range hostile {
		for what, decode := range decoders {
			for _, b := range [][]byte{
				mustHex(t, h),
				append(mustHex(t, "81a178"), mustHex(t, h)...), // {"x": hostile}
			} {
				var err error
				assertBounded(t, what, len(b), func() { err = decode(b) })
				if err == nil {
					t.Errorf("%s: hostile %s (% x) accepted", what, name, b)
					continue
				}
				assertWireError(t, what+" "+name, err)
			}
		}
	}
}

func TestCheckMsgpackRejectsNeverUsed(t *testing.T) {
	for _, b := range [][]byte{{0xc1}, {0x91, 0xc1}, {0x81, 0xc1, 0x01}, {0x92, 0x01, 0xc1}} {
		if err := checkMsgpack(b, MaxDepth); !errors.Is(err, ErrMalformed) {
			t.Errorf("% x: got %v, want ErrMalformed", b, err)
		}
	}
}

func TestCheckMsgpackRejectsEmptyAndTrailing(t *testing.T) {
	if err := checkMsgpack(nil, MaxDepth); !errors.Is(err, ErrMalformed) {
		t.Errorf("nil: got %v", err)
	}
	for _, v := range wellFormedValues(t) {
		b := mustMarshal(t, v.v)
		for _, tail := range [][]byte{{0x00}, {0xc0}, {0xc1}, b} {
			in := append(append([]byte{}, b...), tail...)
			if err := checkMsgpack(in, MaxDepth); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s with trailing % x: got %v, want ErrMalformed", v.name, tail, err)
			}
		}
	}
}

type namedValue struct {
	name string
	v    any
}

// extRaw is a registered ext type whose data is opaque bytes.
type extRaw []byte

func (e extRaw) MarshalMsgpack() ([]byte, error) { return e, nil }
func (e *extRaw) UnmarshalMsgpack(b []byte) error {
	*e = append((*e)[:0], b...)
	return nil
}

func ptrTo[T any](v T) *T { return &v }

func init() {
	// Registered once for the test binary: msgpack's ext registry is
	// global. Id 42 is used by nothing else.
	msgpack.RegisterExt(42, (*extRaw)(nil))
}

// wellFormedValues returns Go values whose msgpack forms cover every type
// and every length boundary (fix/8/16/32) that fits in a test.
func wellFormedValues(t testing.TB) []namedValue {
	vs := []namedValue{
		{"nil", nil}, {"true", true}, {"false", false},
		{"int8 min", int8(math.MinInt8)}, {"int16 min", int16(math.MinInt16)},
		{"int32 min", int32(math.MinInt32)}, {"int64 min", int64(math.MinInt64)},
		{"uint8 max", uint8(math.MaxUint8)}, {"uint16 max", uint16(math.MaxUint16)},
		{"uint32 max", uint32(math.MaxUint32)}, {"uint64 max", uint64(math.MaxUint64)},
		{"fixint 0", 0}, {"fixint 127", 127}, {"negfixint -32", -32},
		{"int -33", -33}, {"int 128", 128}, {"int 1<<40", 1 << 40},
		{"float32", float32(1.5)}, {"float64", math.Pi}, {"NaN", math.NaN()},
		{"-Inf", math.Inf(-1)},
		{"time (timestamp ext)", time.Unix(1700000000, 123)},
		{"time seconds only", time.Unix(1700000000, 0)},
		{"time 96-bit", time.Unix(-1, 5)},
		{"registered ext empty", &extRaw{}},
		{"registered ext 1", &extRaw{1}},
		{"registered ext 3", &extRaw{1, 2, 3}},
		{"registered ext 16", ptrTo(extRaw(bytes.Repeat([]byte{7}, 16)))},
		{"registered ext 300", ptrTo(extRaw(bytes.Repeat([]byte{7}, 300)))},
		{"registered ext 70000", ptrTo(extRaw(bytes.Repeat([]byte{7}, 70000)))},
		{"nested", map[string]any{"a": []any{1, "x", []byte{1}, map[string]any{"b": nil}}, "c": []any{}}},
		{"Request", toReflRequest(&Request{V: 1, From: "n1", Items: []Item{{Tag: 1, Op: RPCWrite, Key: "k", Obj: &Object{
			Clock: Clock{{Node: "n1", Counter: 1}}, Siblings: []Sibling{{Dot: Dot{Node: "n1", Counter: 1}, Value: []byte("v")}},
		}}}})},
	}
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		vs = append(vs,
			namedValue{fmt.Sprintf("str %d", n), strings.Repeat("s", n)},
			namedValue{fmt.Sprintf("bin %d", n), bytes.Repeat([]byte{0xc1}, n)})
	}
	for _, n := range []int{0, 1, 15, 16, 65535, 65536} {
		arr := make([]any, n)
		m := make(map[string]bool, n)
		for i := range n {
			m[fmt.Sprint(i)] = true
		}
		ints := make([]int, n)
		for i := range ints {
			ints[i] = i - n/2
		}
		vs = append(vs,
			namedValue{fmt.Sprintf("array %d of nil", n), arr},
			namedValue{fmt.Sprintf("array %d of ints", n), ints},
			namedValue{fmt.Sprintf("map %d", n), m})
	}
	return vs
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return b
}

func TestCheckMsgpackAcceptsWellFormed(t *testing.T) {
	for _, v := range wellFormedValues(t) {
		b := mustMarshal(t, v.v)
		if err := checkMsgpack(b, MaxDepth); err != nil {
			t.Errorf("%s (% x...): %v", v.name, b[:min(len(b), 8)], err)
		}
		if !refCheck(b, MaxDepth) {
			t.Errorf("%s: the reference checker rejects it", v.name)
		}
	}
}

// Every encoding of every header form, written by hand so each one
// (fixext1..16, ext8/16/32, the 8/16/32 forms of str and bin) is covered
// even where the encoder would choose a shorter form.
func TestCheckMsgpackAcceptsEveryHeaderForm(t *testing.T) {
	for _, h := range []string{
		"c0", "c2", "c3", "00", "7f", "e0", "ff",
		"cc01", "cd0001", "ce00000001", "cf0000000000000001",
		"d0ff", "d1ffff", "d2ffffffff", "d3ffffffffffffffff",
		"ca3fc00000", "cb400921fb54442d18",
		"a0", "a161", "d900", "d90161", "da0000", "da000161", "db00000000", "db0000000161",
		"c400", "c40101", "c50000", "c5000101", "c600000000", "c60000000101",
		"d40101", "d5010102", "d60101020304", "d7010102030405060708",
		"d801" + strings.Repeat("00", 16),
		"c70001", "c7010100", "c8000001", "c8000101ff", "c90000000001", "c9000000010100",
		"d4ff00", "d6ff00000000", // timestamp ext type -1
		"90", "9101", "dc0000", "dc000101", "dd00000000", "dd0000000101",
		"80", "810101", "de0000", "de00010101", "df00000000", "df000000010101",
		// ext data that begins with bytes other than a map header
		"d4017f", "d40190", "c70101dc",
	} {
		b := mustHex(t, h)
		if err := checkMsgpack(b, MaxDepth); err != nil {
			t.Errorf("%s: %v", h, err)
		}
		if !refCheck(b, MaxDepth) {
			t.Errorf("%s: the reference checker rejects it", h)
		}
		if err := skipAll(b); err != nil {
			t.Errorf("%s: msgpack cannot skip it: %v", h, err)
		}
	}
}

func TestCheckMsgpackRejectsEveryTruncation(t *testing.T) {
	for _, v := range wellFormedValues(t) {
		b := mustMarshal(t, v.v)
		step := 1
		if len(b) > 4096 {
			step = len(b)/64 + 1 // the big values: a sample of cut points
		}
		for cut := 0; cut < len(b); cut += step {
			if err := checkMsgpack(b[:cut], MaxDepth); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s cut at %d of %d: got %v, want ErrMalformed", v.name, cut, len(b), err)
			}
		}
		for cut := max(0, len(b)-10); cut < len(b); cut++ { // always the last cuts
			if err := checkMsgpack(b[:cut], MaxDepth); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s cut at %d of %d: got %v, want ErrMalformed", v.name, cut, len(b), err)
			}
		}
	}
}

// nest returns n arrays nested in each other around a 1.
func nest(n int) []byte {
	return append(bytes.Repeat([]byte{0x91}, n), 0x01)
}

func TestCheckMsgpackDepth(t *testing.T) {
	for _, tc := range []struct {
		b        []byte
		maxDepth int
		ok       bool
	}{
		{nest(0), 0, true},
		{nest(1), 0, false},
		{[]byte{0x90}, 0, true}, // an empty container holds nothing deeper
		{nest(8), 8, true},
		{nest(9), 8, false},
		{append(nest(8)[:8], 0x90), 8, true},
		{append(nest(9)[:9], 0x90), 8, false},
		{nest(32), 32, true},
		{nest(33), 32, false},
		{nest(33), 1000, false}, // maxDepth is capped at 32
		{nest(1), -1, false},
		// maps count as one level, as in {"a":{"a":1}}
		{mustHex(t, "81a16181a16101"), 2, true},
		{mustHex(t, "81a16181a16101"), 1, false},
		// depth is about nesting, not about siblings
		{mustHex(t, "93910191019101"), 2, true},
		{mustHex(t, "93910191019101"), 1, false},
		{mustHex(t, "9391019101919101"), 2, false},
	} {
		err := checkMsgpack(tc.b, tc.maxDepth)
		if (err == nil) != tc.ok {
			t.Errorf("% x depth %d: got %v, want ok=%v", tc.b, tc.maxDepth, err, tc.ok)
		}
		if got := refCheck(tc.b, tc.maxDepth); got != tc.ok {
			t.Errorf("% x depth %d: reference says %v", tc.b, tc.maxDepth, got)
		}
	}
	// A very deep message is rejected, not walked into a stack overflow.
	if err := checkMsgpack(nest(1<<20), 1<<30); err == nil {
		t.Error("1M nested arrays accepted")
	}
}

// The protocol's own messages nest 7 levels deep (request → items → item →
// object → siblings → sibling → dot): they must fit in MaxDepth.
func TestCheckMsgpackMaxDepthFitsMessages(t *testing.T) {
	r := &Request{V: 1, From: "a", Items: []Item{{Tag: 1, Op: RPCWrite, Key: "k", Ctx: Clock{{Node: "a", Counter: 1}}, Obj: &Object{
		Clock:    Clock{{Node: "a", Counter: 1}},
		Siblings: []Sibling{{Dot: Dot{Node: "a", Counter: 1}, Value: []byte("v")}},
	}}}}
	b, err := EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkMsgpack(b, MaxDepth); err != nil {
		t.Fatal(err)
	}
	if err := checkMsgpack(b, 6); err == nil {
		t.Fatal("a request with an object fits in depth 6: the depth test above is not testing anything")
	}
}

// After checkMsgpack accepts, decoding must stay within a small multiple
// of the input even for inputs built to be expensive.
func TestCheckMsgpackBoundsAllocation(t *testing.T) {
	for _, h := range []string{
		"dc0100" + strings.Repeat("c0", 256),
		"dc0100" + strings.Repeat("80", 256),
		// A zero-length ext then a real map: DecodeMapLen reads through the
		// ext header into the map, whose length checkMsgpack did check.
		"92c70001" + "81a161c0",
		"92c70001" + "de0100" + strings.Repeat("a0c0", 256),
	} {
		b := mustHex(t, h)
		if err := checkMsgpack(b, MaxDepth); err != nil {
			t.Fatalf("%s: %v", h[:12], err)
		}
		assertBoundedUnmarshal(t, b)
	}
}

func TestCheckMsgpackErrorsAreMalformed(t *testing.T) {
	err := checkMsgpack([]byte{0xdd, 0x7f, 0xff, 0xff, 0xff}, MaxDepth)
	if code, name := Classify(err); code != 400 || name != ErrMalformed.Name {
		t.Fatalf("got %d %s", code, name)
	}
}

// skipAll asks msgpack itself to walk b as one value.
func skipAll(b []byte) error {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	if err := d.Skip(); err != nil {
		return err
	}
	if d.Buffered().(*bytes.Reader).Len() != 0 {
		return errors.New("trailing bytes")
	}
	return nil
}

// refCheck is a naive recursive reference for checkMsgpack: it accepts
// exactly one value, with every length within the message, no 0xc1, no
// ext whose data begins with a map header, and no non-empty container
// nested deeper than min(maxDepth, 32).
func refCheck(b []byte, maxDepth int) bool {
	maxDepth = min(maxDepth, 32)
	end, ok := refValue(b, 0, 0, maxDepth)
	return ok && end == len(b)
}

func refValue(b []byte, pos, depth, maxDepth int) (int, bool) {
	if pos >= len(b) {
		return 0, false
	}
	c := b[pos]
	pos++
	readUint := func(n int) (uint64, bool) {
		if len(b)-pos < n {
			return 0, false
		}
		var v uint64
		for i := range n {
			v = v<<8 | uint64(b[pos+i])
		}
		pos += n
		return v, true
	}
	var (
		payload, items uint64
		isExt, ok      = false, true
	)
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return pos, true
	case c >= 0x80 && c <= 0x8f:
		items = 2 * uint64(c-0x80)
	case c >= 0x90 && c <= 0x9f:
		items = uint64(c - 0x90)
	case c >= 0xa0 && c <= 0xbf:
		payload = uint64(c - 0xa0)
	case c == 0xc4 || c == 0xd9:
		payload, ok = readUint(1)
	case c == 0xc5 || c == 0xda:
		payload, ok = readUint(2)
	case c == 0xc6 || c == 0xdb:
		payload, ok = readUint(4)
	case c >= 0xc7 && c <= 0xc9:
		payload, ok = readUint([]int{1, 2, 4}[c-0xc7])
		payload++ // the type byte
		isExt = true
	case c >= 0xca && c <= 0xd3:
		payload = uint64([]int{4, 8, 1, 2, 4, 8, 1, 2, 4, 8}[c-0xca])
	case c >= 0xd4 && c <= 0xd8:
		payload = 1 + uint64([]int{1, 2, 4, 8, 16}[c-0xd4])
		isExt = true
	case c == 0xdc:
		items, ok = readUint(2)
	case c == 0xdd:
		items, ok = readUint(4)
	case c == 0xde:
		items, ok = readUint(2)
		items *= 2
	case c == 0xdf:
		items, ok = readUint(4)
		items *= 2
	default:
		return 0, false
	}
	if !ok || payload > uint64(len(b)-pos) {
		return 0, false
	}
	if isExt && payload > 1 && (b[pos+1]&0xf0 == 0x80 || b[pos+1] == 0xde || b[pos+1] == 0xdf) {
		return 0, false
	}
	pos += int(payload)
	if items > 0 && depth >= maxDepth {
		return 0, false
	}
	for range items {
		if pos, ok = refValue(b, pos, depth+1, maxDepth); !ok {
			return 0, false
		}
	}
	return pos, true
}

// The price of refusing ext data that begins with a map header: a few
// legitimate ext values are refused too, such as msgpack timestamps whose
// first data byte happens to be 0x80..0x8f (32-bit seconds from 2038-01-19
// to 2046, or some 64-bit nanosecond fields). kvmesh puts no ext values on
// the wire (times are int64 nanoseconds), so this costs nothing today.
func TestCheckMsgpackRefusesExtDataThatLooksLikeAMap(t *testing.T) {
	for _, v := range []any{
		time.Unix(0x80000000, 0).UTC(),
		time.Unix(1, 0x20000000).UTC(), // 64-bit form: nsec>>22 == 0x80
		&extRaw{0xde, 0, 0},
		&extRaw{0x81, 1, 2},
	} {
		b := mustMarshal(t, v)
		if err := checkMsgpack(b, MaxDepth); !errors.Is(err, ErrMalformed) {
			t.Errorf("%v (% x): got %v, want ErrMalformed", v, b, err)
		}
	}
	// Ext data beginning with any other byte is opaque and accepted.
	for c := range 256 {
		if isMapHeader(byte(c)) {
			continue
		}
		b := mustMarshal(t, &extRaw{byte(c), 0xdd, 0x7f, 0xff, 0xff, 0xff})
		if err := checkMsgpack(b, MaxDepth); err != nil {
			t.Errorf("ext data %02x...: %v", c, err)
		}
		assertBoundedUnmarshal(t, b)
	}
}

// checkCheckMsgpack asserts checkMsgpack's contract on b: it agrees with
// the naive reference at several depths, its errors are ErrMalformed,
// what it accepts msgpack can walk to the end, and what it accepts decodes
// into any target within the allocation budget.
func checkCheckMsgpack(t testing.TB, b []byte) {
	t.Helper()
	prevOK := false
	for _, depth := range []int{0, 1, 2, MaxDepth, 32} {
		err := checkMsgpack(b, depth)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("depth %d: error %v is not ErrMalformed", depth, err)
		}
		if ref := refCheck(b, depth); ref != (err == nil) {
			t.Fatalf("depth %d: checkMsgpack says %v, the reference says ok=%v", depth, err, ref)
		}
		if prevOK && err != nil {
			t.Fatalf("accepted at a lower depth, rejected at %d: %v", depth, err)
		}
		prevOK = err == nil
	}
	if checkMsgpack(b, MaxDepth) != nil {
		return
	}
	if err := skipAll(b); err != nil {
		t.Fatalf("checkMsgpack accepts what msgpack cannot walk: %v", err)
	}
	assertBoundedUnmarshal(t, b)
}

func FuzzCheckMsgpack(f *testing.F) {
	addHostile(f, nil)
	for _, v := range wellFormedValues(f) {
		if b := mustMarshal(f, v.v); len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Add(nest(9))
	f.Add(nest(33))
	f.Fuzz(func(t *testing.T, b []byte) { checkCheckMsgpack(t, b) })
}
