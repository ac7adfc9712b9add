package protocol

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// The tests seal the contexts they build with testContextKey for
// testCtxKey; sealRaw seals raw bytes (a hostile clock) so that they pass
// the tag and reach the clock decoder.
var testContextKey, _ = NewContextKey([]byte("0123456789abcdef"), "kvmesh")

const testCtxKey = "k"

func sealContext(c Clock) string { return testContextKey.Seal(testCtxKey, c) }

func openContext(s string) (Clock, error) { return testContextKey.Open(testCtxKey, s) }

func sealRaw(b []byte) string {
	raw := append([]byte{contextVersion}, testContextKey.tag(testCtxKey, b)...)
	return b64(append(raw, b...))
}

// TestContextSealed is finding 3 of issue 15: a context is good only for
// the key and the store it was issued for, whole and unaltered.
func TestContextSealed(t *testing.T) {
	c := Clock{{Node: "a", Counter: 3}, {Node: "b", Counter: 1}}
	s := testContextKey.Seal("user.42", c)
	if got, err := testContextKey.Open("user.42", s); err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("Open of its own context: %v, %v", got, err)
	}
	other, _ := NewContextKey([]byte("another secret, 16+"), "kvmesh")
	otherPrefix, _ := NewContextKey([]byte("0123456789abcdef"), "other")
	cases := map[string]func() (Clock, error){
		"another key":    func() (Clock, error) { return testContextKey.Open("user.43", s) },
		"another secret": func() (Clock, error) { return other.Open("user.42", s) },
		"another store":  func() (Clock, error) { return otherPrefix.Open("user.42", s) },
		"truncated":      func() (Clock, error) { return testContextKey.Open("user.42", s[:len(s)-2]) },
		"made up":        func() (Clock, error) { return testContextKey.Open("user.42", b64(mustMarshal(t, toReflClock(c)))) },
		"huge counter": func() (Clock, error) {
			return testContextKey.Open("user.42", b64(append([]byte{contextVersion}, append(make([]byte, contextTagLen), mustMarshal(t, toReflClock(Clock{{Node: "a", Counter: MaxCounter}}))...)...)))
		},
	}
	for i := range len(s) {
		b := []byte(s)
		b[i] ^= 1
		alt := string(b)
		cases[fmt.Sprintf("byte %d altered", i)] = func() (Clock, error) { return testContextKey.Open("user.42", alt) }
	}
	for name, open := range cases {
		got, err := open()
		if err == nil || got != nil || !errors.Is(err, ErrInvalidContext) {
			t.Errorf("%s: Open = %v, %v; want ErrInvalidContext", name, got, err)
		}
	}
	if _, err := NewContextKey([]byte("short"), "kvmesh"); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("a 5-byte secret: %v", err)
	}
	if testContextKey.Fingerprint() == other.Fingerprint() || len(other.Fingerprint()) != 16 {
		t.Fatalf("fingerprints %q %q", testContextKey.Fingerprint(), other.Fingerprint())
	}
}

func TestContextRoundTrip(t *testing.T) {
	for _, c := range []Clock{
		{{Node: "a", Counter: 1}},
		{{Node: "A", Counter: 1}, {Node: "a", Counter: 2}, {Node: "b-1", Counter: MaxCounter}},
		manyDots(MaxClockEntries),
	} {
		s := sealContext(c)
		if s == "" || strings.ContainsAny(s, "+/=") {
			t.Fatalf("context %q is not unpadded URL base64", s)
		}
		got, err := openContext(s)
		if err != nil {
			t.Fatalf("openContext(sealContext(%v)): %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("got %v, want %v", got, c)
		}
	}
	for _, c := range []Clock{nil, {}} {
		if s := sealContext(c); s != "" {
			t.Fatalf("sealContext(%#v) = %q", c, s)
		}
	}
	if c, err := openContext(""); c != nil || err != nil {
		t.Fatalf("openContext(\"\") = %v, %v", c, err)
	}
}

func TestDecodeContextRejects(t *testing.T) {
	valid := sealContext(Clock{{Node: "a", Counter: 1}})
	cases := map[string]string{
		"not base64":                "not base64!",
		"standard alphabet":         valid[:2] + "+/" + valid[2:],
		"padded":                    valid + "=",
		"padded, standard encoding": base64.StdEncoding.EncodeToString([]byte{0x91, 0x92, 0xa1, 0x61, 0x01}),
		"one char":                  "k",
		"oversized":                 strings.Repeat("A", MaxContextLen+1),
		"oversized valid-looking":   valid + strings.Repeat("A", MaxContextLen),
		"space inside":              valid[:2] + " " + valid[2:],
		"msgpack: c1":               sealRaw([]byte{0xc1}),
		"msgpack: truncated":        sealRaw([]byte{0x91, 0x92, 0xa1}),
		"msgpack: trailing":         sealRaw([]byte{0x90, 0x00}),
		"msgpack: a map":            sealRaw([]byte{0x80}),
		"msgpack: a string":         sealRaw([]byte{0xa1, 'x'}),
		"msgpack: dot of 3":         sealRaw([]byte{0x91, 0x93, 0xa1, 'a', 0x01, 0x01}),
		"msgpack: counter string":   sealRaw([]byte{0x91, 0x92, 0xa1, 'a', 0xa1, '1'}),
		"msgpack: too deep":         sealRaw(nest(MaxDepth + 1)),
		"untagged clock":            b64([]byte{0x91, 0x92, 0xa1, 'a', 0x01}),
	}
	for name, h := range hostile {
		cases["hostile "+name] = sealRaw(mustHex(t, h))
		cases["hostile in clock "+name] = sealRaw(append([]byte{0x91, 0x92, 0xa1, 'a'}, mustHex(t, h)...))
		cases["hostile untagged "+name] = b64(mustHex(t, h))
	}
	for name, c := range badClocks() {
		cases["clock "+name] = sealContext(c)
	}
	for name, s := range cases {
		c, err := openContext(s)
		if err == nil || c != nil {
			t.Errorf("%s: accepted %v", name, c)
			continue
		}
		if !errors.Is(err, ErrInvalidContext) {
			t.Errorf("%s: error %v is not ErrInvalidContext", name, err)
		}
		assertWireError(t, name, err)
	}
}

// The empty clock has three spellings: no header, msgpack nil, msgpack [].
func TestDecodeContextEmptyForms(t *testing.T) {
	for _, s := range []string{"", sealRaw([]byte{0xc0}), sealRaw([]byte{0x90})} {
		c, err := openContext(s)
		if err != nil || len(c) != 0 {
			t.Errorf("%q: %v, %v", s, c, err)
		}
	}
}

// A context is hostile: the largest one that fits MaxContextLen must
// decode to a bounded clock and quickly.
func TestDecodeContextAtTheLimit(t *testing.T) {
	raw := []byte{0xdc, 0, 0} // array16, length set below
	n := 0
	for len(raw)+4 <= MaxContextLen*3/4-1-contextTagLen {
		raw = append(raw, 0x92, 0xa1, 'a', 0x01) // ["a", 1]
		n++
	}
	raw[1], raw[2] = byte(n>>8), byte(n)
	s := sealRaw(raw)
	if len(s) > MaxContextLen {
		t.Fatalf("test context is %d bytes", len(s))
	}
	_, err := openContext(s)
	if !errors.Is(err, ErrInvalidContext) {
		t.Fatalf("%d duplicate entries: %v", n, err)
	}
	assertBounded(t, "Open", len(s), func() { _, _ = openContext(s) })
}

// How big a clock fits in the Kvmesh-Context header. Clock.Validate takes
// up to MaxClockEntries entries of node ids up to MaxNodeIDLen bytes, and
// Seal writes each counter in its shortest form (9 bytes past 2^32), so
// even that clock, with counters near MaxCounter, seals to about 26 KB,
// within MaxContextLen, and survives a round trip through a client. This
// test pins a realistic bound and reports the worst case, should the
// limits change.
func TestContextOfLargestClock(t *testing.T) {
	clock := func(entries, idLen int) Clock {
		c := make(Clock, entries)
		for i := range c {
			c[i] = Dot{Node: fmt.Sprintf("%0*d", idLen, i), Counter: MaxCounter}
		}
		return c
	}
	const fits = 128 // entries with 64-byte ids that must fit
	c := clock(fits, MaxNodeIDLen)
	s := sealContext(c)
	if len(s) > MaxContextLen {
		t.Fatalf("a clock of %d entries with %d-byte ids encodes to %d bytes, over MaxContextLen %d", fits, MaxNodeIDLen, len(s), MaxContextLen)
	}
	if got, err := openContext(s); err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip: %v", err)
	}
	worst := sealContext(clock(MaxClockEntries, MaxNodeIDLen))
	if len(worst) > MaxContextLen {
		t.Logf("note: the largest valid clock (%d entries of %d-byte ids) encodes to %d bytes, over MaxContextLen %d",
			MaxClockEntries, MaxNodeIDLen, len(worst), MaxContextLen)
	}
}

// TestContextCodecMatchesReflection: a sealed context holds the clock's
// bytes as reflection wrote them, and the clock decoder reads any
// encoding as reflection read it.
func TestContextCodecMatchesReflection(t *testing.T) {
	clocks := []Clock{nil, {}, clockOfInts(), manyDots(15), manyDots(16), manyDots(MaxClockEntries + 1)}
	rng := rand.New(rand.NewSource(propertySeed))
	for range 500 {
		clocks = append(clocks, anyClock(rng), randClock(rng))
	}
	for i, c := range clocks {
		want := compactMarshal(t, toReflClock(c))
		if got := appendClock(nil, c); !bytes.Equal(got, want) {
			t.Fatalf("clock %d %v:\n custom %x\n tags   %x", i, c, got, want)
		}
		if s := sealContext(c); len(c) > 0 {
			raw, err := base64.RawURLEncoding.DecodeString(s)
			if err != nil || !bytes.Equal(raw[1+contextTagLen:], want) {
				t.Fatalf("clock %d: the context %q does not hold its bytes", i, s)
			}
		}
		assertSameDecode(t, "decodeClock", want, decodeClock, refDecodeClock, false)
		w := &wire{rng: rng}
		w.clock(c)
		assertSameDecode(t, "decodeClock", w.b, decodeClock, refDecodeClock, false)
	}
}

func checkDecodeContext(t testing.TB, s string) Clock {
	t.Helper()
	var c Clock
	var err error
	assertBounded(t, "Open", len(s), func() { c, err = openContext(s) })
	if err != nil {
		if c != nil {
			t.Fatalf("Open returned a value with error %v", err)
		}
		assertWireError(t, "Open", err)
		if !errors.Is(err, ErrInvalidContext) {
			t.Fatalf("Open error %v is not ErrInvalidContext", err)
		}
		return nil
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Open returned an invalid clock: %v", err)
	}
	s2 := sealContext(c)
	if len(c) == 0 {
		if s2 != "" {
			t.Fatalf("an empty clock encodes as %q", s2)
		}
		return c
	}
	if len(s2) > MaxContextLen {
		// Seal writes the shortest forms, so a context re-seals no
		// longer than it came; this guards a change of the limits (see
		// TestContextOfLargestClock).
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
