package protocol

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

// Property tests: random valid messages from a seeded generator survive an
// encode/decode round trip unchanged, and every prefix and random byte
// mutation of their encodings decodes to a valid value or an error, never
// a panic. The generators only build values whose msgpack form decodes
// back to an identical Go value (nil or non-empty for omitempty fields).

const propertySeed = 20240601

var (
	idAlphabet  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	keyAlphabet = []string{"a", "b", "z", "0", "-", "_", "/", ":", ".", "é", "日本", "🙂", "%", "\u00a0", "\ufffd", "~"}
)

func randNodeID(rng *rand.Rand) string {
	n := 1 + rng.Intn(8)
	if rng.Intn(20) == 0 {
		n = MaxNodeIDLen
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = idAlphabet[rng.Intn(len(idAlphabet))]
	}
	return string(b)
}

func randKey(rng *rand.Rand) string {
	var sb strings.Builder
	n := 1 + rng.Intn(12)
	for range n {
		sb.WriteString(keyAlphabet[rng.Intn(len(keyAlphabet))])
	}
	if rng.Intn(30) == 0 {
		return strings.Repeat("k", MaxKeyLen)
	}
	return sb.String()
}

func randCounter(rng *rand.Rand) uint64 {
	switch rng.Intn(4) {
	case 0:
		return 1
	case 1:
		return MaxCounter
	default:
		return 1 + uint64(rng.Int63n(MaxCounter))
	}
}

// randClock returns nil or a valid non-empty clock.
func randClock(rng *rand.Rand) Clock {
	if rng.Intn(4) == 0 {
		return nil
	}
	// Draw in a fixed order (not a map's), so a seed gives one clock.
	var c Clock
	seen := map[string]bool{}
	for n := 1 + rng.Intn(6); len(c) < n; {
		if id := randNodeID(rng); !seen[id] {
			seen[id] = true
			c = append(c, Dot{Node: id, Counter: randCounter(rng)})
		}
	}
	sortClock(c)
	return c
}

func sortClock(c Clock) {
	for i := 1; i < len(c); i++ { // insertion sort: tiny inputs, no import
		for j := i; j > 0 && c[j-1].Node > c[j].Node; j-- {
			c[j-1], c[j] = c[j], c[j-1]
		}
	}
}

func randBytes(rng *rand.Rand, allowEmpty bool) []byte {
	switch rng.Intn(5) {
	case 0:
		return nil
	case 1:
		if allowEmpty {
			return []byte{}
		}
	}
	b := make([]byte, 1+rng.Intn(40))
	rng.Read(b)
	return b
}

func randObject(rng *rand.Rand) *Object {
	o := &Object{Clock: randClock(rng)}
	if rng.Intn(5) == 0 {
		o.Clock = Clock{} // not omitempty: an empty clock survives as empty
	}
	switch rng.Intn(4) {
	case 0:
	case 1:
		o.Siblings = []Sibling{}
	default:
		for range 1 + rng.Intn(4) {
			o.Siblings = append(o.Siblings, Sibling{
				Dot:     Dot{Node: randNodeID(rng), Counter: randCounter(rng)},
				Value:   randBytes(rng, true),
				Deleted: rng.Intn(3) == 0,
				Time:    rng.Int63() - rng.Int63(),
			})
		}
	}
	return o
}

// expiring gives about half of o's siblings an expiry, drawing from
// rng. randObject, randRequest and randReply draw as they did before
// TTLs, so that the golden inputs built from them stay; the tests that
// want expiring siblings and TTLs add them with expiring, withTTLs and
// withExpiries.
func expiring(rng *rand.Rand, o *Object) *Object {
	if o == nil {
		return nil
	}
	for i := range o.Siblings {
		if rng.Intn(2) == 0 {
			o.Siblings[i].Expires = 1 + rng.Int63n(1<<uint(rng.Intn(63)))
		}
	}
	return o
}

// withTTLs gives r's objects expiring siblings and some of its
// coordinated puts a TTL.
func withTTLs(rng *rand.Rand, r *Request) *Request {
	for i := range r.Items {
		it := &r.Items[i]
		expiring(rng, it.Obj)
		if it.Op == RPCCoordinate && !it.Del && rng.Intn(2) == 0 {
			it.TTL = time.Duration(1 + rng.Int63n(int64(MaxTTL)))
		}
	}
	return r
}

// withExpiries gives r's objects expiring siblings.
func withExpiries(rng *rand.Rand, r *Reply) *Reply {
	for i := range r.Results {
		expiring(rng, r.Results[i].Obj)
	}
	return r
}

func randRequest(rng *rand.Rand) *Request {
	r := &Request{V: Version, From: randNodeID(rng)}
	for range 1 + rng.Intn(4) {
		it := Item{
			Tag: rng.Uint64(),
			Op:  []uint8{RPCRead, RPCWrite, RPCCoordinate}[rng.Intn(3)],
			Key: randKey(rng),
			Val: randBytes(rng, false),
			Ctx: randClock(rng),
			Del: rng.Intn(2) == 0,
			W:   rng.Intn(6),
		}
		if it.Op == RPCWrite || rng.Intn(4) == 0 {
			it.Obj = randObject(rng)
		}
		r.Items = append(r.Items, it)
	}
	return r
}

var resultErrors = []*Error{ErrKeyNotFound, ErrQuorumNotReached, ErrInvalidKey, ErrInternal, ErrOverloaded}

func randReply(rng *rand.Rand) *Reply {
	r := &Reply{V: Version, From: randNodeID(rng)}
	if rng.Intn(6) == 0 {
		r.Results = []Result{}
	}
	for range rng.Intn(5) {
		res := Result{Tag: rng.Uint64()}
		if rng.Intn(3) == 0 {
			res = ResultError(res.Tag, Errorf(resultErrors[rng.Intn(len(resultErrors))], "item %d", rng.Intn(100)))
		} else {
			if rng.Intn(2) == 0 {
				res.Obj = randObject(rng)
			}
			res.Ctx = randClock(rng)
		}
		r.Results = append(r.Results, res)
	}
	return r
}

func randValues(rng *rand.Rand) [][]byte {
	if rng.Intn(5) == 0 {
		return nil
	}
	vs := [][]byte{}
	for range rng.Intn(5) {
		vs = append(vs, randBytes(rng, true))
	}
	return vs
}

// noPanic runs f and turns a panic into a test failure that shows the input.
func noPanic(t *testing.T, what string, input []byte, f func()) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("%s panicked on % x: %v\n%s", what, input, p, debug.Stack())
		}
	}()
	f()
}

// roundTripAndAbuse checks one valid value: encode, decode to an equal
// value; every strict prefix of the encoding is an error; random
// single-byte mutations give a valid value or an error.
func roundTripAndAbuse[T any](t *testing.T, rng *rand.Rand, name string, v T,
	enc func(T) ([]byte, error), dec func([]byte) (T, error), check func(testing.TB, []byte) T,
) {
	t.Helper()
	b, err := enc(v)
	if err != nil {
		t.Fatalf("%s: encode: %v", name, err)
	}
	got, err := dec(b)
	if err != nil {
		t.Fatalf("%s: decode of a valid value: %v\n%#v", name, err, v)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("%s: round trip changed the value:\n%#v\n%#v", name, v, got)
	}
	for cut := 1; cut < len(b); cut++ { // the empty input: see the unit tests
		noPanic(t, name+" prefix", b[:cut], func() {
			if _, err := dec(b[:cut]); err == nil {
				t.Fatalf("%s: prefix of %d of %d bytes accepted", name, cut, len(b))
			}
		})
	}
	mut := make([]byte, len(b))
	for range 24 {
		copy(mut, b)
		i := rng.Intn(len(mut))
		switch rng.Intn(3) {
		case 0:
			mut[i] = byte(rng.Intn(256))
		case 1:
			mut[i] ^= 1 << rng.Intn(8)
		default:
			mut[i] = []byte{0xc1, 0xdd, 0xdf, 0xc6, 0xdb, 0xc9, 0xff, 0x00, 0x7f, 0x80, 0x90, 0xc0}[rng.Intn(12)]
		}
		noPanic(t, name+" mutation", mut, func() { check(t, mut) })
	}
}

func TestPropertyRequest(t *testing.T) {
	rng := rand.New(rand.NewSource(propertySeed))
	for i := range 150 {
		roundTripAndAbuse(t, rng, fmt.Sprint("request ", i), randRequest(rng), EncodeRequest, DecodeRequest, checkDecodeRequest)
		roundTripAndAbuse(t, rng, fmt.Sprint("request with ttls ", i), withTTLs(rng, randRequest(rng)), EncodeRequest, DecodeRequest, checkDecodeRequest)
	}
}

func TestPropertyReply(t *testing.T) {
	rng := rand.New(rand.NewSource(propertySeed))
	for i := range 200 {
		roundTripAndAbuse(t, rng, fmt.Sprint("reply ", i), randReply(rng), EncodeReply, DecodeReply, checkDecodeReply)
		roundTripAndAbuse(t, rng, fmt.Sprint("reply with expiries ", i), withExpiries(rng, randReply(rng)), EncodeReply, DecodeReply, checkDecodeReply)
	}
}

func TestPropertyObject(t *testing.T) {
	rng := rand.New(rand.NewSource(propertySeed))
	for i := range 300 {
		roundTripAndAbuse(t, rng, fmt.Sprint("object ", i), randObject(rng), EncodeObject, DecodeObject, checkDecodeObject)
		roundTripAndAbuse(t, rng, fmt.Sprint("expiring object ", i), expiring(rng, randObject(rng)), EncodeObject, DecodeObject, checkDecodeObject)
	}
}

func TestPropertyClock(t *testing.T) {
	rng := rand.New(rand.NewSource(propertySeed))
	encode := func(c Clock) ([]byte, error) { return []byte(sealContext(c)), nil }
	decode := func(b []byte) (Clock, error) { return openContext(string(b)) }
	check := func(t testing.TB, b []byte) Clock { return checkDecodeContext(t, string(b)) }
	for i := 0; i < 300; {
		c := randClock(rng)
		if c == nil {
			continue // the empty string: nothing to cut or mutate
		}
		i++
		roundTripAndAbuse(t, rng, fmt.Sprint("clock ", i), c, encode, decode, check)
	}
}

func TestPropertySiblings(t *testing.T) {
	rng := rand.New(rand.NewSource(propertySeed))
	for i := range 300 {
		roundTripAndAbuse(t, rng, fmt.Sprint("siblings ", i), randValues(rng), EncodeSiblings, DecodeSiblings, checkDecodeSiblings)
	}
}

// The generators must produce what the decoders accept; a generator that
// drifted into invalid values would make the round trips above vacuous.
func TestGeneratorsAreValid(t *testing.T) {
	rng := rand.New(rand.NewSource(propertySeed))
	var ops [4]int
	var ttls, expiries int
	for i := range 400 {
		r := randRequest(rng)
		if i%2 == 1 {
			r = withTTLs(rng, r)
		}
		for _, it := range r.Items {
			if it.TTL != 0 {
				ttls++
			}
			if it.Obj != nil && slices.ContainsFunc(it.Obj.Siblings, func(s Sibling) bool { return s.Expires != 0 }) {
				expiries++
			}
			ops[it.Op]++
		}
		b, _ := EncodeRequest(r)
		if !bytes.Equal(b, mustEncodeRequest(t, checkDecodeRequest(t, b))) {
			t.Fatal("request changed")
		}
	}
	if ops[RPCRead] == 0 || ops[RPCWrite] == 0 || ops[RPCCoordinate] == 0 {
		t.Fatalf("ops not all generated: %v", ops)
	}
	if ttls == 0 || expiries == 0 {
		t.Fatalf("%d ttls and %d objects with expiring siblings generated", ttls, expiries)
	}
}

func mustEncodeRequest(t testing.TB, r *Request) []byte {
	t.Helper()
	if r == nil {
		t.Fatal("nil request")
	}
	b, err := EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

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
			s := Sibling{Dot: Dot{Node: randString(rng), Counter: uint64(randInt(rng))},
				Value: randBlob(rng), Deleted: rng.Intn(2) == 0, Time: randInt(rng)}
			if rng.Intn(2) == 0 {
				s.Expires = randInt(rng)
			}
			o.Siblings = append(o.Siblings, s)
		}
	}
	return o
}
