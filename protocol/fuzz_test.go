package protocol

import (
	"bytes"
	"errors"
	"math/rand"
	"reflect"
	"runtime/metrics"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// What the fuzz targets of the decoders share. Every decoder has a
// target next to its tests (FuzzDecodeRequest in rpc_test.go,
// FuzzDecodeHeartbeat in heartbeat_test.go, ...), with a check* helper that
// states its contract, which the property tests of property_test.go use
// too. Each target's seed corpus is both its f.Add calls and the files in
// testdata/fuzz/<Name>/, so plain `go test` replays them; `go test -fuzz`
// explores from them.

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

// checkDecoded asserts a decoder's contract on b, the property every
// input has: no panic, an allocation bounded by b's length, and either a
// 400 error and no value, or a value that passes valid and re-encodes to
// bytes that decode again and re-encode to the same bytes. It returns the
// value, or the zero value when b was refused.
func checkDecoded[T any](t testing.TB, name string, b []byte, dec func([]byte) (T, error), enc func(T) ([]byte, error), valid func(T) error) T {
	t.Helper()
	var v, zero T
	var err error
	assertBounded(t, name, len(b), func() { v, err = dec(b) })
	if err != nil {
		if !reflect.ValueOf(&v).Elem().IsZero() {
			t.Fatalf("%s returned a value with error %v", name, err)
		}
		assertWireError(t, name, err)
		return zero
	}
	if err := valid(v); err != nil {
		t.Fatalf("%s returned an invalid value: %v\n%#v", name, err, v)
	}
	e1, err := enc(v)
	if err != nil {
		t.Fatalf("%s: encoding a decoded value: %v", name, err)
	}
	v2, err := dec(e1)
	if err != nil {
		t.Fatalf("%s: a decoded value does not decode after re-encoding: %v\n%#v", name, err, v)
	}
	if e2, _ := enc(v2); !bytes.Equal(e1, e2) {
		t.Fatalf("%s: re-encoding is not stable:\n% x\n% x", name, e1, e2)
	}
	return v
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
