package protocol

import (
	"bytes"
	"errors"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

const testNodeKey = "NBW5QSYVF3SEHMQ2HDDZRNUXGK4RN6MBEBQLYEXTIURMFC5GCDC7C5BZ"

func randMemberRecord(rng *rand.Rand) *MemberRecord {
	r := &MemberRecord{V: Version, ID: "n" + string(rune('1'+rng.Intn(9))), Key: testNodeKey,
		Status: MemberStatus(1 + rng.Intn(4)), Incarnation: uint64(rng.Intn(3)), Version: rng.Uint64() >> uint(rng.Intn(64))}
	if rng.Intn(2) == 0 {
		r.Client, r.Route = "nats://10.0.0.1:4222", "nats-route://10.0.0.1:6222"
	}
	if rng.Intn(3) == 0 {
		r.DC = "eu-west_1"
	}
	if rng.Intn(2) == 0 {
		r.Sig = bytes.Repeat([]byte{byte(rng.Intn(256))}, sigLen)
	}
	return r
}

func TestMemberRecordRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for range 200 {
		r := randMemberRecord(rng)
		b, _ := EncodeMemberRecord(r)
		got, err := DecodeMemberRecord(b)
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n%+v\n%+v", r, got)
		}
		// The signature covers everything but itself.
		unsigned := *r
		unsigned.Sig = nil
		want, _ := EncodeMemberRecord(&unsigned)
		if !bytes.Equal(r.SigningBytes(), want) {
			t.Fatal("SigningBytes is not the encoding without the signature")
		}
	}
}

func TestDecodeMemberRecordRefuses(t *testing.T) {
	good := func() *MemberRecord {
		return &MemberRecord{V: Version, ID: "n1", Key: testNodeKey, Status: MemberUp, Incarnation: 1, Version: 2, Sig: make([]byte, sigLen)}
	}
	for name, edit := range map[string]func(r *MemberRecord){
		"bad id":         func(r *MemberRecord) { r.ID = "n 1" },
		"user key":       func(r *MemberRecord) { r.Key = "U" + testNodeKey[1:] },
		"short key":      func(r *MemberRecord) { r.Key = testNodeKey[:40] },
		"key not base32": func(r *MemberRecord) { r.Key = testNodeKey[:55] + "1" },
		"status 0":       func(r *MemberRecord) { r.Status = 0 },
		"status 5":       func(r *MemberRecord) { r.Status = 5 },
		"long URL":       func(r *MemberRecord) { r.Route = "nats-route://" + strings.Repeat("h", 300) },
		"bad dc":         func(r *MemberRecord) { r.DC = "eu.west" },
		"short sig":      func(r *MemberRecord) { r.Sig = r.Sig[:10] },
		"version":        func(r *MemberRecord) { r.V = Version + 1 },
	} {
		r := good()
		edit(r)
		b, _ := EncodeMemberRecord(r)
		if got, err := DecodeMemberRecord(b); err == nil || !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: decoded %+v, %v", name, got, err)
		}
	}
	b, _ := EncodeMemberRecord(good())
	if _, err := DecodeMemberRecord(b[:len(b)-1]); err == nil {
		t.Error("a truncated record decoded")
	}
}

// checkDecodeMemberRecord asserts DecodeMemberRecord's contract on b
// (checkDecoded).
func checkDecodeMemberRecord(t testing.TB, b []byte) *MemberRecord {
	t.Helper()
	return checkDecoded(t, "DecodeMemberRecord", b, DecodeMemberRecord, EncodeMemberRecord, func(r *MemberRecord) error {
		if ValidateNodeID(r.ID) != nil || !validNodeKey(r.Key) || r.Status < MemberJoining || r.Status > MemberLeft || len(r.Sig) != 0 && len(r.Sig) != sigLen {
			return errors.New("invalid member record")
		}
		return nil
	})
}

func FuzzDecodeMemberRecord(f *testing.F) {
	addHostile(f, nil)
	for _, b := range seedEncodings(8, randMemberRecord, EncodeMemberRecord) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeMemberRecord(t, b) })
}
