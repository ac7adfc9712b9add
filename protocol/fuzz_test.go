package protocol

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math/rand"
	"reflect"
	"runtime/metrics"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// The fuzz targets of every decoder in the package. Each one's seed corpus
// is both the f.Add calls below and the files in testdata/fuzz/<Name>/, so
// plain `go test` replays them; `go test -fuzz` explores from them. The
// properties they share live in the check* helpers, which the property
// tests in property_test.go use too.

// heapAllocs is the process's cumulative heap allocation in bytes. Small
// allocations are counted a span at a time, so it is exact only to a few
// hundred KiB: enough to tell "a few times the input" from "gigabytes".
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// allocBudget is what decoding n checked bytes may allocate. Decoding a
// 1-byte nil into a zero struct costs up to ~100 bytes (an Item), and a
// fixmap header becomes a whole Go map, so the factor is generous: what it
// must catch is a declared length trusted by msgpack, which costs GiBs.
func allocBudget(n int) uint64 { return 4<<20 + 1024*uint64(n) }

// assertBounded runs decode and fails if it allocates beyond the budget
// for n input bytes.
func assertBounded(t testing.TB, what string, n int, decode func()) {
	t.Helper()
	before := heapAllocs()
	decode()
	if got := heapAllocs() - before; got > allocBudget(n) {
		t.Fatalf("%s: decoding %d bytes allocated %d bytes", what, n, got)
	}
}

// assertBoundedUnmarshal decodes b, which checkMsgpack accepted, into
// every kind of target other packages may use, and fails if any decode
// allocates beyond the budget. Decode errors are fine: only memory counts.
func assertBoundedUnmarshal(t testing.TB, b []byte) {
	t.Helper()
	targets := []func() any{
		func() any { return new(any) },
		func() any { return new(map[string]any) },
		func() any { return new(map[string]string) },
		func() any { return new(map[string][]byte) },
		func() any { return new(map[string][]any) },
		func() any { return new([]any) },
		func() any { return new([]map[string]any) },
		func() any { return new([][]byte) },
		func() any { return new([]string) },
		func() any { return new([]uint64) },
		func() any { return new(string) },
		func() any { return new([]byte) },
		func() any { return new(reflRequest) },
		func() any { return new(reflReply) },
		func() any { return new(reflObject) },
		func() any { return new([]reflDot) },
		func() any { return new(reflAnnounce) },
	}
	for _, newTarget := range targets {
		v := newTarget()
		assertBounded(t, reflect.TypeOf(v).Elem().String(), len(b), func() { _ = msgpack.Unmarshal(b, v) })
	}
}

// assertWireError checks that a decoder's error is a 400 *Error: input
// errors never look like a node failure on the wire.
func assertWireError(t testing.TB, what string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v (%T) carries no *Error", what, err, err)
	}
	if code, _ := Classify(err); code != 400 {
		t.Fatalf("%s: error %v has code %d, want 400", what, err, code)
	}
}

// checkDecodeRequest asserts DecodeRequest's contract on b: no panic, a
// bounded allocation, a 400 error or a value that re-encodes to bytes that
// decode again to the same encoding. It returns the value or nil.
func checkDecodeRequest(t testing.TB, b []byte) *Request {
	t.Helper()
	var r *Request
	var err error
	assertBounded(t, "DecodeRequest", len(b), func() { r, err = DecodeRequest(b) })
	if err != nil {
		if r != nil {
			t.Fatalf("DecodeRequest returned a value with error %v", err)
		}
		assertWireError(t, "DecodeRequest", err)
		return nil
	}
	e1, err := EncodeRequest(r)
	if err != nil {
		t.Fatalf("EncodeRequest of a decoded request: %v", err)
	}
	r2, err := DecodeRequest(e1)
	if err != nil {
		t.Fatalf("a decoded request does not decode after re-encoding: %v\n%#v", err, r)
	}
	if e2, _ := EncodeRequest(r2); !bytes.Equal(e1, e2) {
		t.Fatalf("re-encoding is not stable:\n% x\n% x", e1, e2)
	}
	return r
}

func checkDecodeReply(t testing.TB, b []byte) *Reply {
	t.Helper()
	var r *Reply
	var err error
	assertBounded(t, "DecodeReply", len(b), func() { r, err = DecodeReply(b) })
	if err != nil {
		if r != nil {
			t.Fatalf("DecodeReply returned a value with error %v", err)
		}
		assertWireError(t, "DecodeReply", err)
		return nil
	}
	for i := range r.Results {
		if e := r.Results[i].Error(); (e == nil) != (r.Results[i].Code == 0) {
			t.Fatalf("result %d: code %d but error %v", i, r.Results[i].Code, e)
		}
	}
	e1, err := EncodeReply(r)
	if err != nil {
		t.Fatalf("EncodeReply of a decoded reply: %v", err)
	}
	r2, err := DecodeReply(e1)
	if err != nil {
		t.Fatalf("a decoded reply does not decode after re-encoding: %v\n%#v", err, r)
	}
	if e2, _ := EncodeReply(r2); !bytes.Equal(e1, e2) {
		t.Fatalf("re-encoding is not stable:\n% x\n% x", e1, e2)
	}
	return r
}

func checkDecodeObject(t testing.TB, b []byte) *Object {
	t.Helper()
	var o *Object
	var err error
	assertBounded(t, "DecodeObject", len(b), func() { o, err = DecodeObject(b) })
	if err != nil {
		if o != nil {
			t.Fatalf("DecodeObject returned a value with error %v", err)
		}
		assertWireError(t, "DecodeObject", err)
		return nil
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("DecodeObject returned an invalid object: %v", err)
	}
	if live := o.Live(); len(live) > len(o.Siblings) {
		t.Fatalf("Live returned %d of %d siblings", len(live), len(o.Siblings))
	}
	e1, err := EncodeObject(o)
	if err != nil {
		t.Fatalf("EncodeObject of a decoded object: %v", err)
	}
	o2, err := DecodeObject(e1)
	if err != nil {
		t.Fatalf("a decoded object does not decode after re-encoding: %v\n%#v", err, o)
	}
	if !reflect.DeepEqual(o, o2) {
		t.Fatalf("object changed in a round trip:\n%#v\n%#v", o, o2)
	}
	return o
}

func checkDecodeContext(t testing.TB, s string) Clock {
	t.Helper()
	var c Clock
	var err error
	assertBounded(t, "Open", len(s), func() { c, err = openContext(s) })
	if err != nil {
		if c != nil {
			t.Fatalf("DecodeContext returned a value with error %v", err)
		}
		assertWireError(t, "Open", err)
		if !errors.Is(err, ErrInvalidContext) {
			t.Fatalf("DecodeContext error %v is not ErrInvalidContext", err)
		}
		return nil
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("DecodeContext returned an invalid clock: %v", err)
	}
	s2 := sealContext(c)
	if len(c) == 0 {
		if s2 != "" {
			t.Fatalf("an empty clock encodes as %q", s2)
		}
		return c
	}
	if len(s2) > MaxContextLen {
		// EncodeContext writes counters as 9-byte uint64s, so a compact
		// hostile context can re-encode larger than MaxContextLen; see
		// TestContextOfLargestClock.
		return c
	}
	c2, err := openContext(s2)
	if err != nil {
		t.Fatalf("a decoded context does not decode after re-encoding: %v", err)
	}
	if !reflect.DeepEqual(c, c2) {
		t.Fatalf("clock changed in a round trip:\n%v\n%v", c, c2)
	}
	return c
}

func checkDecodeSiblings(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var vs [][]byte
	var err error
	assertBounded(t, "DecodeSiblings", len(b), func() { vs, err = DecodeSiblings(b) })
	if err != nil {
		if vs != nil {
			t.Fatalf("DecodeSiblings returned a value with error %v", err)
		}
		assertWireError(t, "DecodeSiblings", err)
		return nil
	}
	e, err := EncodeSiblings(vs)
	if err != nil {
		t.Fatalf("EncodeSiblings of decoded siblings: %v", err)
	}
	vs2, err := DecodeSiblings(e)
	if err != nil {
		t.Fatalf("decoded siblings do not decode after re-encoding: %v", err)
	}
	if !reflect.DeepEqual(vs, vs2) {
		t.Fatalf("siblings changed in a round trip:\n%q\n%q", vs, vs2)
	}
	return vs
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

func checkKeyFromSubject(t testing.TB, op, subject string) {
	t.Helper()
	s := Subjects{Prefix: DefaultPrefix}
	key, err := s.KeyFromSubject(op, subject)
	if err != nil {
		if key != "" {
			t.Fatalf("key %q returned with error %v", key, err)
		}
		if !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("error %v is not ErrInvalidKey", err)
		}
		return
	}
	if s.KV(op, key) != subject {
		t.Fatalf("KV(%q, %q) = %q, not the subject %q", op, key, s.KV(op, key), subject)
	}
	if len(key) == 0 || len(key) > MaxKeyLen || !utf8.ValidString(key) {
		t.Fatalf("key %q breaks the data-model limits", key)
	}
	for _, tok := range strings.Split(key, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
			t.Fatalf("key %q has the token %q", key, tok)
		}
	}
	if k2, err := s.KeyFromSubject(op, s.KV(op, key)); err != nil || k2 != key {
		t.Fatalf("round trip of %q: %q, %v", key, k2, err)
	}
}

// seedEncodings returns valid encodings of n random values from a fixed
// seed, as fuzz seeds.
func seedEncodings[T any](n int, gen func(*rand.Rand) T, enc func(T) ([]byte, error)) [][]byte {
	rng := rand.New(rand.NewSource(1))
	var out [][]byte
	for range n {
		b, err := enc(gen(rng))
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

func addHostile(f *testing.F, prefix []byte) {
	for _, h := range hostile {
		f.Add(append(append([]byte{}, prefix...), mustHex(f, h)...))
	}
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

func FuzzDecodeRequest(f *testing.F) {
	addHostile(f, nil)
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
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeRequest(t, b) })
}

func FuzzDecodeReply(f *testing.F) {
	addHostile(f, nil)
	for _, b := range seedEncodings(8, randReply, EncodeReply) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeReply(t, b) })
}

func FuzzDecodeObject(f *testing.F) {
	addHostile(f, []byte{recordFormat})
	addHostile(f, nil)
	for _, b := range seedEncodings(8, randObject, EncodeObject) {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{recordFormat})
	f.Add([]byte{recordFormat, 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeObject(t, b) })
}

func FuzzDecodeContext(f *testing.F) {
	for _, b := range seedEncodings(8, randClock, func(c Clock) ([]byte, error) { return []byte(sealContext(c)), nil }) {
		f.Add(string(b))
	}
	for _, h := range hostile {
		f.Add(b64(mustHex(f, h)))
	}
	for _, s := range []string{"", "=", "!!!!", "kA", "kA==", "wA", "kZKhYQE", strings.Repeat("A", MaxContextLen+1)} {
		f.Add(s)
	}
	// An input is a context as a client may send it and, if it is
	// base64, the raw bytes of a clock, sealed so that they reach the
	// decoder behind the tag.
	f.Fuzz(func(t *testing.T, s string) {
		checkDecodeContext(t, s)
		if raw, err := base64.RawURLEncoding.DecodeString(s); err == nil && len(raw) > 0 && len(s) < MaxContextLen-32 {
			checkDecodeContext(t, sealRaw(raw))
		}
	})
}

func FuzzDecodeSiblings(f *testing.F) {
	addHostile(f, nil)
	for _, b := range seedEncodings(8, randValues, EncodeSiblings) {
		f.Add(b)
	}
	f.Add([]byte{0xc0})
	f.Add([]byte{0x90})
	f.Add([]byte{0x91, 0xa0})
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeSiblings(t, b) })
}

func FuzzKeyFromSubject(f *testing.F) {
	for _, tc := range keyFromSubjectCases {
		f.Add(tc.op, tc.subject)
	}
	f.Fuzz(func(t *testing.T, op, subject string) { checkKeyFromSubject(t, op, subject) })
}
