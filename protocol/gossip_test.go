package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"
)

func randAnnounce(rng *rand.Rand) *Announce {
	a := &Announce{V: Version, From: randNodeID(rng), Time: rng.Int63() - rng.Int63()}
	switch rng.Intn(4) {
	case 0:
	case 1:
		a.Members = []string{}
	default:
		for range 1 + rng.Intn(8) {
			a.Members = append(a.Members, randNodeID(rng))
		}
	}
	if rng.Intn(2) == 0 {
		a.Secret = fmt.Sprintf("%016x", rng.Uint64())
	}
	return a
}

// anyAnnounce returns an announcement with arbitrary, mostly invalid,
// fields: the encoder must write whatever it is given exactly as
// reflection did.
func anyAnnounce(rng *rand.Rand) *Announce {
	a := &Announce{V: int(randInt(rng)), From: randString(rng), Time: randInt(rng)}
	switch rng.Intn(4) {
	case 0:
	case 1:
		a.Members = []string{}
	default:
		for range rng.Intn(20) {
			a.Members = append(a.Members, randString(rng))
		}
	}
	if rng.Intn(2) == 0 {
		a.Secret = randString(rng)
	}
	return a
}

func (w *wire) announce(a *Announce) {
	var s fieldSet
	s.add(false, "v", func() { w.int(int64(a.V)) })
	s.add(false, "f", func() { w.str(a.From) })
	s.add(false, "m", func() { w.strs(a.Members) })
	s.add(false, "t", func() { w.int(a.Time) })
	s.add(a.Secret == "", "s", func() { w.str(a.Secret) })
	w.fields(s.present, s.zero)
}

// checkDecodeAnnounce asserts DecodeAnnounce's contract on b
// (checkDecoded).
func checkDecodeAnnounce(t testing.TB, b []byte) *Announce {
	t.Helper()
	return checkDecoded(t, "DecodeAnnounce", b, DecodeAnnounce, EncodeAnnounce, func(a *Announce) error {
		if ValidateNodeID(a.From) != nil || len(a.Members) > MaxMembers || len(a.Secret) > maxSecretLen {
			return errors.New("invalid announcement")
		}
		return nil
	})
}

// TestAnnounceCodecMatchesReflection: the hand-written encoder writes the
// bytes reflection wrote, for edge cases and random values, valid or not;
// what it writes decodes as reflection decoded it.
func TestAnnounceCodecMatchesReflection(t *testing.T) {
	announces := []*Announce{
		{},
		{V: Version, From: "n1", Members: []string{}},
		{V: math.MinInt64, From: strings.Repeat("f", 300), Members: []string{"", strings.Repeat("m", 70000)}, Time: math.MaxInt64,
			Secret: strings.Repeat("s", 65536)},
		{V: Version, From: "n1", Members: idsOf(15), Time: -33},
		{V: Version, From: "n1", Members: idsOf(16), Time: math.MinInt64, Secret: "x"},
		{V: Version, From: "n1", Members: idsOf(MaxMembers + 1)},
		benchAnnounce(),
	}
	rng := rand.New(rand.NewSource(propertySeed))
	for range 500 {
		announces = append(announces, anyAnnounce(rng), randAnnounce(rng))
	}
	for i, a := range announces {
		got, _ := EncodeAnnounce(a)
		want := compactMarshal(t, (*reflAnnounce)(a))
		if !bytes.Equal(got, want) {
			t.Fatalf("announce %d %s:\n custom %s\n tags   %s", i, Clip(fmt.Sprintf("%+v", a), 300), Clip(fmt.Sprintf("%x", got), 300), Clip(fmt.Sprintf("%x", want), 300))
		}
		assertSameDecode(t, "DecodeAnnounce", want, DecodeAnnounce, refDecodeAnnounce, false)
	}
}

// TestAnnounceDecodeAnyEncoding: valid announcements written as another
// encoder might write them decode as reflection decoded them.
func TestAnnounceDecodeAnyEncoding(t *testing.T) {
	rng := rand.New(rand.NewSource(propertySeed))
	for i := range 2000 {
		w := &wire{rng: rng}
		a := randAnnounce(rng)
		w.announce(a)
		if _, err := DecodeAnnounce(w.b); err != nil {
			t.Fatalf("announce %d: %v\n%+v\n% x", i, err, a, w.b)
		}
		assertSameDecode(t, "DecodeAnnounce", w.b, DecodeAnnounce, refDecodeAnnounce, false)
	}
}

// The hand-written decoder refuses two forms that reflection read and no
// kvmesh encoder ever wrote, as the RPC decoders do: a repeated key and
// the struct spelled as the array of its fields.
func TestAnnounceDecodeRefusesWhatNoEncoderWrites(t *testing.T) {
	for name, h := range map[string]string{
		// {"v":1,"v":1,"f":"n1","m":[],"t":1}
		"repeated v": "85a17601a17601a166a26e31a16d90a17401",
		// [1,"n1",[],1,""]
		"array form": "9501a26e319001a0",
	} {
		b := mustHex(t, h)
		if _, err := refDecodeAnnounce(b); err != nil {
			t.Fatalf("%s: the reference rejects it too: %v", name, err)
		}
		if _, err := DecodeAnnounce(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestDecodeAnnounceRejects(t *testing.T) {
	for name, mutate := range map[string]func(a *Announce){
		"version 0":       func(a *Announce) { a.V = 0 },
		"version 2":       func(a *Announce) { a.V = Version + 1 },
		"no sender":       func(a *Announce) { a.From = "" },
		"bad sender":      func(a *Announce) { a.From = "a.b" },
		"bad member":      func(a *Announce) { a.Members[1] = "n 2" },
		"empty member":    func(a *Announce) { a.Members[0] = "" },
		"too many":        func(a *Announce) { a.Members = idsOf(MaxMembers + 1) },
		"secret too long": func(a *Announce) { a.Secret = strings.Repeat("s", maxSecretLen+1) },
	} {
		a := benchAnnounce()
		mutate(a)
		b, _ := EncodeAnnounce(a)
		if got, err := DecodeAnnounce(b); err == nil || got != nil {
			t.Errorf("%s: accepted", name)
		} else {
			assertWireError(t, name, err)
		}
	}
	a := benchAnnounce()
	a.Members, a.Secret = idsOf(MaxMembers), strings.Repeat("s", maxSecretLen)
	if b, _ := EncodeAnnounce(a); checkDecodeAnnounce(t, b) == nil {
		t.Fatal("an announcement at every limit rejected")
	}
	for name, h := range hostile {
		if _, err := DecodeAnnounce(mustHex(t, h)); err == nil {
			t.Errorf("hostile %s accepted", name)
		}
	}
	// {"v":1,"f":"n1","m":dd 7f ff ff ff}
	if _, err := DecodeAnnounce(mustHex(t, "83a17601a166a26e31a16ddd7fffffff")); !errors.Is(err, ErrMalformed) {
		t.Errorf("a hostile member count: %v", err)
	}
}

func TestPropertyAnnounce(t *testing.T) {
	rng := rand.New(rand.NewSource(propertySeed))
	for i := range 300 {
		roundTripAndAbuse(t, rng, fmt.Sprint("announce ", i), randAnnounce(rng), EncodeAnnounce, DecodeAnnounce, checkDecodeAnnounce)
	}
}

func FuzzDecodeAnnounce(f *testing.F) {
	addHostile(f, nil)
	for _, b := range seedEncodings(8, randAnnounce, EncodeAnnounce) {
		f.Add(b)
	}
	// {"v":1,"f":"n1","m":dd 7f ff ff ff}
	f.Add(mustHex(f, "83a17601a166a26e31a16ddd7fffffff"))
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeAnnounce(t, b) })
}
