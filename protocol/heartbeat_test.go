package protocol

import (
	"bytes"
	"errors"
	"math/rand"
	"reflect"
	"testing"
)

func randHeartbeat(rng *rand.Rand) *Heartbeat {
	h := &Heartbeat{V: Version, From: randNodeID(rng), Time: rng.Int63() - rng.Int63()}
	if rng.Intn(2) == 0 {
		h.Secret = "0123456789abcdef"
	}
	if rng.Intn(2) == 0 {
		h.Digest = bytes.Repeat([]byte{byte(rng.Intn(256))}, digestLen)
	}
	for range rng.Intn(4) {
		h.Records = append(h.Records, *randMemberRecord(rng))
	}
	if rng.Intn(2) == 0 {
		h.Serving, h.Target, h.Ready, h.Settled = rng.Uint64(), rng.Uint64()>>uint(rng.Intn(64)), uint64(rng.Intn(2)), rng.Uint64()>>uint(rng.Intn(64))
	}
	if rng.Intn(2) == 0 {
		h.Sig = bytes.Repeat([]byte{byte(rng.Intn(256))}, sigLen)
	}
	if rng.Intn(2) == 0 {
		h.Conflicts = "lww"
	}
	return h
}

func TestHeartbeatRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(propertySeed))
	for range 500 {
		h := randHeartbeat(rng)
		b, _ := EncodeHeartbeat(h)
		got := checkDecodeHeartbeat(t, b)
		if got == nil || !reflect.DeepEqual(got, h) {
			t.Fatalf("round trip:\n%+v\n%+v", h, got)
		}
		unsigned := *h
		unsigned.Sig = nil
		want, _ := EncodeHeartbeat(&unsigned)
		if !bytes.Equal(h.SigningBytes(), want) {
			t.Fatal("SigningBytes is not the encoding without the signature")
		}
	}
}

func TestDecodeHeartbeatRefuses(t *testing.T) {
	good := func() *Heartbeat {
		return &Heartbeat{V: Version, From: "n1", Time: 5, Digest: make([]byte, digestLen), Sig: make([]byte, sigLen),
			Records: []MemberRecord{{V: Version, ID: "n1", Key: testNodeKey, Status: MemberUp, Incarnation: 1, Version: 1}}}
	}
	for name, edit := range map[string]func(h *Heartbeat){
		"bad sender":    func(h *Heartbeat) { h.From = "n.1" },
		"version":       func(h *Heartbeat) { h.V = Version + 1 },
		"long secret":   func(h *Heartbeat) { h.Secret = string(make([]byte, maxSecretLen+1)) },
		"long mode":     func(h *Heartbeat) { h.Conflicts = string(make([]byte, maxConflictsLen+1)) },
		"short digest":  func(h *Heartbeat) { h.Digest = h.Digest[:31] },
		"short sig":     func(h *Heartbeat) { h.Sig = h.Sig[:63] },
		"bad record":    func(h *Heartbeat) { h.Records[0].Key = "U" + testNodeKey[1:] },
		"record status": func(h *Heartbeat) { h.Records[0].Status = 9 },
	} {
		h := good()
		edit(h)
		b, _ := EncodeHeartbeat(h)
		if got, err := DecodeHeartbeat(b); err == nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: decoded %+v, %v", name, got, err)
		}
	}
	b, _ := EncodeHeartbeat(good())
	if _, err := DecodeHeartbeat(b); err != nil {
		t.Fatal(err)
	}
	for i := range len(b) {
		if _, err := DecodeHeartbeat(b[:i]); err == nil {
			t.Fatalf("a heartbeat cut to %d of %d bytes decoded", i, len(b))
		}
	}
}

// checkDecodeHeartbeat asserts DecodeHeartbeat's contract on b
// (checkDecoded).
func checkDecodeHeartbeat(t testing.TB, b []byte) *Heartbeat {
	t.Helper()
	return checkDecoded(t, "DecodeHeartbeat", b, DecodeHeartbeat, EncodeHeartbeat, func(h *Heartbeat) error {
		if ValidateNodeID(h.From) != nil || len(h.Secret) > maxSecretLen || len(h.Conflicts) > maxConflictsLen || len(h.Digest) != 0 && len(h.Digest) != digestLen ||
			len(h.Sig) != 0 && len(h.Sig) != sigLen || len(h.Records) > MaxMembers {
			return errors.New("invalid heartbeat")
		}
		return nil
	})
}

func FuzzDecodeHeartbeat(f *testing.F) {
	addHostile(f, nil)
	for _, b := range seedEncodings(8, randHeartbeat, EncodeHeartbeat) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeHeartbeat(t, b) })
}
