package protocol

import (
	"bytes"
	"math/rand"
	"testing"
)

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

func BenchmarkDecodeObject(b *testing.B) {
	o := &Object{Clock: Clock{{Node: "n1", Counter: 7}, {Node: "n2", Counter: 3}},
		Siblings: []Sibling{{Dot: Dot{Node: "n1", Counter: 7}, Value: make([]byte, 100), Time: 1}}}
	rec, _ := EncodeObject(o)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeObject(rec); err != nil {
			b.Fatal(err)
		}
	}
}
