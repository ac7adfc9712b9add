package protocol

import (
	"bytes"
	"fmt"
	"math/rand"
	"reflect"
	"testing"
)

func TestSiblingsRoundTrip(t *testing.T) {
	for _, vs := range [][][]byte{nil, {}, {nil}, {[]byte{}}, {[]byte("a"), nil, []byte("bc")}} {
		b, err := EncodeSiblings(vs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeSiblings(b)
		if err != nil || !reflect.DeepEqual(got, vs) {
			t.Fatalf("%q: got %q, %v", vs, got, err)
		}
	}
	for name, b := range map[string][]byte{
		"empty":        nil,
		"c1":           {0xc1},
		"a map":        {0x80},
		"of numbers":   {0x91, 0x01},
		"of arrays":    {0x91, 0x90},
		"truncated":    {0x92, 0xa1},
		"trailing":     {0x90, 0x90},
		"hostile":      {0xdd, 0x7f, 0xff, 0xff, 0xff},
		"hostile bin":  {0x91, 0xc6, 0x7f, 0xff, 0xff, 0xff},
		"hostile ext":  {0x91, 0xc7, 0x05, 0x01, 0xdf, 0x7f, 0xff, 0xff, 0xff},
		"too deep":     nest(MaxDepth + 1),
		"ext not bins": {0x91, 0xd4, 0x01, 0x00},
	} {
		got, err := DecodeSiblings(b)
		if err == nil {
			t.Errorf("%s: accepted %q", name, got)
			continue
		}
		assertWireError(t, name, err)
	}
}

// TestSiblingsCodecMatchesReflection: EncodeSiblings writes the bytes
// reflection wrote and DecodeSiblings reads any encoding as reflection
// read it.
func TestSiblingsCodecMatchesReflection(t *testing.T) {
	lists := [][][]byte{nil, {}, {nil}, {{}}, make([][]byte, 15), make([][]byte, 16), {make([]byte, 65536)}}
	rng := rand.New(rand.NewSource(propertySeed))
	for range 500 {
		var vs [][]byte
		if rng.Intn(5) > 0 {
			vs = [][]byte{}
			for range rng.Intn(20) {
				vs = append(vs, randBlob(rng))
			}
		}
		lists = append(lists, vs)
	}
	for i, vs := range lists {
		got, _ := EncodeSiblings(vs)
		want := compactMarshal(t, vs)
		if !bytes.Equal(got, want) {
			t.Fatalf("siblings %d:\n custom %s\n tags   %s", i, Clip(fmt.Sprintf("%x", got), 300), Clip(fmt.Sprintf("%x", want), 300))
		}
		assertSameDecode(t, "DecodeSiblings", want, DecodeSiblings, refDecodeSiblings, false)
		w := &wire{rng: rng}
		w.values(vs)
		assertSameDecode(t, "DecodeSiblings", w.b, DecodeSiblings, refDecodeSiblings, false)
	}
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
