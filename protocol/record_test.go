package protocol

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Tests of stored records (record.go): objects, clocks and dots.

func validObject() *Object {
	return &Object{
		Clock:    Clock{{Node: "n1", Counter: 2}, {Node: "n2", Counter: 1}},
		Siblings: []Sibling{{Dot: Dot{Node: "n1", Counter: 2}, Value: []byte("v"), Time: 1}},
	}
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

// TestSiblingExpiry: a sibling with an expiry reads as a tombstone from
// that instant on, not a nanosecond before; Live ignores expiry.
func TestSiblingExpiry(t *testing.T) {
	const at = 1_700_000_000_000_000_000
	for _, tc := range []struct {
		s       Sibling
		now     int64
		expired bool
		dead    bool
	}{
		{Sibling{Expires: 0}, math.MaxInt64, false, false},
		{Sibling{Expires: at}, at - 1, false, false},
		{Sibling{Expires: at}, at, true, true},
		{Sibling{Expires: at}, at + 1, true, true},
		{Sibling{Expires: at}, math.MinInt64, false, false},
		{Sibling{Deleted: true}, 0, false, true},
		{Sibling{Deleted: true, Expires: at}, at - 1, false, true},
	} {
		if got := tc.s.Expired(tc.now); got != tc.expired {
			t.Errorf("%+v at %d: Expired %v, want %v", tc.s, tc.now, got, tc.expired)
		}
		if got := tc.s.Tombstone(tc.now); got != tc.dead {
			t.Errorf("%+v at %d: Tombstone %v, want %v", tc.s, tc.now, got, tc.dead)
		}
	}

	o := &Object{Siblings: []Sibling{
		{Dot: Dot{Node: "a", Counter: 1}, Value: []byte("forever")},
		{Dot: Dot{Node: "b", Counter: 1}, Value: []byte("until at"), Expires: at},
		{Dot: Dot{Node: "c", Counter: 1}, Deleted: true},
		{Dot: Dot{Node: "d", Counter: 1}, Value: []byte("until at+10"), Expires: at + 10},
	}}
	values := func(ss []Sibling) (out []string) {
		for _, s := range ss {
			out = append(out, string(s.Value))
		}
		return out
	}
	for _, tc := range []struct {
		now  int64
		want []string
	}{
		{at - 1, []string{"forever", "until at", "until at+10"}},
		{at, []string{"forever", "until at+10"}},
		{at + 10, []string{"forever"}},
	} {
		if got := values(o.LiveAt(tc.now)); !slices.Equal(got, tc.want) {
			t.Errorf("LiveAt(at%+d) = %q, want %q", tc.now-at, got, tc.want)
		}
	}
	if got := values(o.Live()); len(got) != 3 {
		t.Errorf("Live = %q: it ignores expiry", got)
	}
	if len(o.Siblings) != 4 || o.Siblings[1].Expires != at {
		t.Fatal("LiveAt changed the object")
	}
	if live := (&Object{Siblings: o.Siblings[:1]}).LiveAt(at); &live[0] != &o.Siblings[0] {
		t.Error("LiveAt copied siblings that are all live")
	}
}

// TestRecordExpiryFormat: a sibling without an expiry is the four-element
// array records always held, byte for byte, so old records decode as
// they did; one with an expiry has it as a fifth element; nothing else
// decodes.
func TestRecordExpiryFormat(t *testing.T) {
	// A record as a node older than TTLs wrote it: [["n1",2]], with the
	// sibling [["n1",2], "v", false, 1].
	old := mustHex(t, "01"+"92"+"9192a26e3102"+"91"+"9492a26e3102c40176c201")
	o := checkDecodeObject(t, old)
	if o == nil || len(o.Siblings) != 1 || o.Siblings[0].Expires != 0 || string(o.Siblings[0].Value) != "v" {
		t.Fatalf("old record: %+v", o)
	}
	if b, _ := EncodeObject(o); !bytes.Equal(b, old) {
		t.Fatalf("old record re-encodes as % x, want % x", b, old)
	}

	o.Siblings[0].Expires = 1_700_000_000_000_000_000
	b, _ := EncodeObject(o)
	want := mustHex(t, "01"+"92"+"9192a26e3102"+"91"+"9592a26e3102c40176c201"+"cf17979cfe362a0000")
	if !bytes.Equal(b, want) {
		t.Fatalf("expiring record % x, want % x", b, want)
	}
	if got := checkDecodeObject(t, b); got == nil || got.Siblings[0].Expires != o.Siblings[0].Expires {
		t.Fatalf("expiring record decodes as %+v", got)
	}
	if (&Record{Key: "k", Obj: o}).Size() != len(appendScanRecord(nil, &Record{Key: "k", Obj: o})) {
		t.Fatal("Record.Size misses the expiry")
	}

	// Other encoders may spell "never" as a fifth element of 0 or nil.
	for _, h := range []string{"00", "c0", "d30000000000000000"} {
		b := mustHex(t, "01"+"92"+"9192a26e3102"+"91"+"9592a26e3102c40176c201"+h)
		if got := checkDecodeObject(t, b); got == nil || got.Siblings[0].Expires != 0 {
			t.Errorf("fifth element %s: %+v", h, got)
		}
	}
	for name, h := range map[string]string{
		"sibling of 3":        "91" + "9392a26e3102c40176c2",
		"sibling of 6":        "91" + "9692a26e3102c40176c20101c0",
		"expiry a string":     "91" + "9592a26e3102c40176c201a131",
		"expiry a float":      "91" + "9592a26e3102c40176c201cb3ff0000000000000",
		"expiry negative":     "91" + "9592a26e3102c40176c201ff",
		"expiry truncated":    "91" + "9592a26e3102c40176c201cf17",
		"expiry missing":      "91" + "9592a26e3102c40176c201",
		"sibling of 15 items": "91" + "9f92a26e3102c40176c201",
		// Read as five items, the sixth would pass for the list's
		// second sibling.
		"sibling of 6 ending in a sibling": "92" + "9692a26e3102c40176c20100" + "9492a26e3101c40177c201",
	} {
		b := mustHex(t, "01"+"92"+"9192a26e3102"+h)
		if got, err := DecodeObject(b); err == nil {
			t.Errorf("%s: accepted as %+v", name, got)
		} else {
			assertWireError(t, name, err)
		}
	}
}

func checkDecodeObject(t testing.TB, b []byte) *Object {
	t.Helper()
	var o *Object
	var err error
	assertBounded(t, "DecodeObject", len(b), func() { o, err = DecodeObject(b) })
	checkDecodeObjectMeta(t, b, o, err)
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

// checkDecodeObjectMeta: DecodeObjectMeta accepts exactly what
// DecodeObject does (o, err: its result on b) and gives the same object
// with every value left out.
func checkDecodeObjectMeta(t testing.TB, b []byte, o *Object, err error) {
	t.Helper()
	m, merr := DecodeObjectMeta(b)
	if (err == nil) != (merr == nil) {
		t.Fatalf("DecodeObject: %v, DecodeObjectMeta: %v", err, merr)
	}
	if err != nil {
		return
	}
	want := &Object{Clock: o.Clock, Siblings: slices.Clone(o.Siblings)}
	for i := range want.Siblings {
		want.Siblings[i].Value = nil
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("DecodeObjectMeta:\n got %+v\nwant %+v", m, want)
	}
}

func FuzzDecodeObject(f *testing.F) {
	addHostile(f, []byte{recordFormat})
	addHostile(f, nil)
	for _, b := range seedEncodings(8, randObject, EncodeObject) {
		f.Add(b)
	}
	for _, b := range seedEncodings(8, func(rng *rand.Rand) *Object { return expiring(rng, randObject(rng)) }, EncodeObject) {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{recordFormat})
	f.Add([]byte{recordFormat, 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeObject(t, b) })
}

// TestRecordCodecMatchesReflection: the hand-written codec writes the same
// bytes as the struct tags do, and reads back what it wrote.
func TestRecordCodecMatchesReflection(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		o := &Object{}
		if rng.Intn(4) > 0 {
			o.Clock = Clock{}
			for j := 0; j < rng.Intn(5); j++ {
				o.Clock = append(o.Clock, Dot{Node: string(rune('a' + j)), Counter: uint64(rng.Int63n(1 << uint(rng.Intn(63))))})
			}
		}
		if rng.Intn(4) > 0 {
			o.Siblings = []Sibling{}
			for j := 0; j < rng.Intn(4); j++ {
				s := Sibling{Dot: Dot{Node: "n1", Counter: uint64(rng.Intn(1000))}, Deleted: rng.Intn(2) == 0, Time: rng.Int63() - rng.Int63()}
				if rng.Intn(3) == 0 {
					s.Expires = rng.Int63() >> rng.Intn(63)
				}
				if rng.Intn(3) > 0 {
					s.Value = make([]byte, rng.Intn(300))
					rng.Read(s.Value)
				}
				o.Siblings = append(o.Siblings, s)
			}
		}
		got, want := appendObject(nil, o), compactMarshal(t, toReflObject(o))
		if !bytes.Equal(got, want) {
			t.Fatalf("object %+v:\n custom %x\n tags   %x", o, got, want)
		}
		back, err := (&decoder{b: got, what: "record"}).objectOrNil()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(appendObject(nil, back), got) {
			t.Fatalf("round trip changed %+v into %+v", o, back)
		}
	}
}

func TestRecordCodecRejectsWrongShapes(t *testing.T) {
	for _, b := range [][]byte{
		{0x93, 0x90, 0x90, 0x90},                              // object of 3 items
		{0x92, 0x91, 0x93, 0xa1, 'n', 0x01, 0x02, 0x90},       // dot of 3 items
		{0x92, 0x90, 0x91, 0x92, 0x92, 0xa1, 'n', 0x01, 0xc0}, // sibling of 2 items
	} {
		if _, err := (&decoder{b: b, what: "record"}).objectOrNil(); err == nil {
			t.Errorf("%x decoded", b)
		}
		if _, err := DecodeObject(append([]byte{recordFormat}, b...)); err == nil {
			t.Errorf("record %x decoded", b)
		}
	}
	// A dot of the wrong shape in a causal context.
	if _, err := decodeClock([]byte{0x91, 0x93, 0xa1, 'n', 0x01, 0x02}); err == nil {
		t.Error("a dot of 3 items decoded as a clock entry")
	}
}

func (w *wire) dot(d Dot) {
	w.arrayLen(2)
	w.str(d.Node)
	w.uint(d.Counter)
}

func (w *wire) clock(c Clock) { wireList(w, c, w.dot) }

func (w *wire) object(o *Object) {
	if o == nil {
		w.b = append(w.b, 0xc0)
		return
	}
	w.arrayLen(2)
	w.clock(o.Clock)
	w.siblings(o.Siblings)
}

// siblings writes siblings as four-element arrays, with the expiry as a
// fifth when it is not 0 (drawing nothing more from rng otherwise, so
// that the golden inputs stay).
func (w *wire) siblings(ss []Sibling) {
	wireList(w, ss, func(s Sibling) {
		if s.Expires == 0 {
			w.arrayLen(4)
		} else {
			w.arrayLen(5)
		}
		w.dot(s.Dot)
		w.bin(s.Value)
		w.bool(s.Deleted)
		w.int(s.Time)
		if s.Expires != 0 {
			w.int(s.Expires)
		}
	})
}
