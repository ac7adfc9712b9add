package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

// Tests of join tokens and the join messages (token.go). The keys only
// need the form here: node/membership and node/join.go test the
// signatures and the sealing.

var (
	testClusterKey = "C" + testNodeKey[1:]
	testCurveKey   = "X" + testNodeKey[1:]
)

func randJoinToken(rng *rand.Rand) *JoinToken {
	t := &JoinToken{V: Version, Cluster: testClusterKey, Prefix: "kvmesh", Expires: 1 + rng.Int63(),
		Nonce: make([]byte, TokenNonceLen)}
	rng.Read(t.Nonce)
	if rng.Intn(3) == 0 {
		t.Prefix = "acme.kv_1"
	}
	for i := range 1 + rng.Intn(MaxTokenURLs) {
		t.URLs = append(t.URLs, fmt.Sprintf("nats://10.0.0.%d:%d", i, 4222+rng.Intn(1000)))
	}
	return t
}

func randSignedToken(rng *rand.Rand) *SignedToken {
	body, _ := EncodeJoinToken(randJoinToken(rng))
	sig := make([]byte, sigLen)
	rng.Read(sig)
	st, err := ParseToken((&SignedToken{Body: body, Sig: sig}).String())
	if err != nil {
		panic(err)
	}
	return st
}

func randJoinRequest(rng *rand.Rand) *JoinRequest {
	r := &JoinRequest{V: Version, Token: randSignedToken(rng), ID: randNodeID(rng), Key: testNodeKey, XKey: testCurveKey,
		Sig: make([]byte, sigLen)}
	rng.Read(r.Sig)
	return r
}

func randJoinReply(rng *rand.Rand) *JoinReply {
	r := &JoinReply{V: Version, From: randNodeID(rng), XKey: testCurveKey, Sealed: make([]byte, 1+rng.Intn(200))}
	rng.Read(r.Sealed)
	return r
}

func TestJoinTokenRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for range 200 {
		st := randSignedToken(rng)
		text := st.String()
		if len(text) > MaxTokenLen || strings.ContainsAny(text, " \t\r\n") || !strings.HasPrefix(text, TokenPrefix) {
			t.Fatalf("text form %q", text)
		}
		got, err := ParseToken(text)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, st) {
			t.Fatalf("round trip:\n%+v\n%+v", st, got)
		}

		r := randJoinRequest(rng)
		b, _ := EncodeJoinRequest(r)
		gr, err := DecodeJoinRequest(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gr, r) {
			t.Fatalf("request round trip:\n%+v\n%+v", r, gr)
		}
		unsigned := *r
		unsigned.Sig = nil
		if want, _ := EncodeJoinRequest(&unsigned); !bytes.Equal(r.SigningBytes(), want) {
			t.Fatal("SigningBytes is not the encoding without the signature")
		}

		rep := randJoinReply(rng)
		b, _ = EncodeJoinReply(rep)
		if got, err := DecodeJoinReply(b); err != nil || !reflect.DeepEqual(got, rep) {
			t.Fatalf("reply round trip: %+v %v", got, err)
		}
	}
	// The largest token fits its limit.
	tok := randJoinToken(rng)
	tok.Prefix = strings.Repeat("p", maxPrefixLen)
	tok.URLs = nil
	for range MaxTokenURLs {
		tok.URLs = append(tok.URLs, "nats://"+strings.Repeat("h", maxURLLen-7))
	}
	body, _ := EncodeJoinToken(tok)
	text := (&SignedToken{Body: body, Sig: make([]byte, sigLen)}).String()
	if _, err := ParseToken(text); err != nil {
		t.Fatalf("the largest token (%d bytes): %v", len(text), err)
	}
}

func TestParseTokenRefuses(t *testing.T) {
	good := func() *JoinToken {
		return &JoinToken{V: Version, Cluster: testClusterKey, Prefix: "kvmesh", URLs: []string{"nats://h:4222"},
			Expires: 1, Nonce: make([]byte, TokenNonceLen)}
	}
	text := func(tok *JoinToken) string {
		body, _ := EncodeJoinToken(tok)
		return (&SignedToken{Body: body, Sig: make([]byte, sigLen)}).String()
	}
	valid := text(good())
	if _, err := ParseToken(valid); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"empty":          "",
		"no prefix":      strings.TrimPrefix(valid, TokenPrefix),
		"other version":  "KVMJ2." + strings.TrimPrefix(valid, TokenPrefix),
		"no signature":   valid[:strings.LastIndexByte(valid, '.')],
		"short sig":      valid[:len(valid)-4],
		"padded":         valid + "==",
		"newline inside": valid[:10] + "\n" + valid[10:],
		"std base64":     strings.ReplaceAll(valid, "_", "/") + "+",
		"trailing dot":   valid + ".",
		"too long":       valid + strings.Repeat("A", MaxTokenLen),
		"not base64":     TokenPrefix + "!!!!." + strings.Repeat("A", 86),
		"body not msgpack": TokenPrefix + tokenEncoding.EncodeToString([]byte("hello")) + "." +
			tokenEncoding.EncodeToString(make([]byte, sigLen)),
	}
	for name, edit := range map[string]func(*JoinToken){
		"version":          func(t *JoinToken) { t.V = Version + 1 },
		"node key":         func(t *JoinToken) { t.Cluster = testNodeKey },
		"short key":        func(t *JoinToken) { t.Cluster = t.Cluster[:40] },
		"lower-case key":   func(t *JoinToken) { t.Cluster = strings.ToLower(t.Cluster) },
		"empty prefix":     func(t *JoinToken) { t.Prefix = "" },
		"wildcard prefix":  func(t *JoinToken) { t.Prefix = "kv.>" },
		"no URLs":          func(t *JoinToken) { t.URLs = nil },
		"empty URL list":   func(t *JoinToken) { t.URLs = []string{} },
		"empty URL":        func(t *JoinToken) { t.URLs = []string{""} },
		"URL with a space": func(t *JoinToken) { t.URLs = []string{"nats://h :1"} },
		"long URL":         func(t *JoinToken) { t.URLs = []string{strings.Repeat("h", maxURLLen+1)} },
		"too many URLs":    func(t *JoinToken) { t.URLs = make([]string, MaxTokenURLs+1) },
		"expiry 0":         func(t *JoinToken) { t.Expires = 0 },
		"negative expiry":  func(t *JoinToken) { t.Expires = -1 },
		"short nonce":      func(t *JoinToken) { t.Nonce = t.Nonce[:8] },
		"no nonce":         func(t *JoinToken) { t.Nonce = nil },
	} {
		tok := good()
		edit(tok)
		cases[name] = text(tok)
	}
	for name, s := range cases {
		if st, err := ParseToken(s); err == nil || st != nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: parsed %+v, %v", name, st, err)
		}
	}
}

func TestDecodeJoinMessagesRefuse(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for name, edit := range map[string]func(*JoinRequest){
		"version":     func(r *JoinRequest) { r.V = 0 },
		"no token":    func(r *JoinRequest) { r.Token = nil },
		"bad id":      func(r *JoinRequest) { r.ID = "n.1" },
		"empty id":    func(r *JoinRequest) { r.ID = "" },
		"user key":    func(r *JoinRequest) { r.Key = "U" + testNodeKey[1:] },
		"curve key":   func(r *JoinRequest) { r.Key = testCurveKey },
		"node xkey":   func(r *JoinRequest) { r.XKey = testNodeKey },
		"no sig":      func(r *JoinRequest) { r.Sig = nil },
		"short sig":   func(r *JoinRequest) { r.Sig = r.Sig[:63] },
		"long xkey":   func(r *JoinRequest) { r.XKey += "A" },
		"bad token":   func(r *JoinRequest) { r.Token.Sig = r.Token.Sig[:10] },
		"token's key": func(r *JoinRequest) { r.Token.Body, _ = EncodeJoinToken(&JoinToken{V: Version, Cluster: "bad"}) },
	} {
		r := randJoinRequest(rng)
		edit(r)
		b, _ := EncodeJoinRequest(r)
		if got, err := DecodeJoinRequest(b); err == nil || got != nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("request %s: decoded %+v, %v", name, got, err)
		}
	}
	for name, edit := range map[string]func(*JoinReply){
		"version":     func(r *JoinReply) { r.V = 2 },
		"bad from":    func(r *JoinReply) { r.From = "a b" },
		"cluster key": func(r *JoinReply) { r.XKey = testClusterKey },
		"empty":       func(r *JoinReply) { r.Sealed = nil },
		"too large":   func(r *JoinReply) { r.Sealed = make([]byte, MaxSealedLen+1) },
	} {
		r := randJoinReply(rng)
		edit(r)
		b, _ := EncodeJoinReply(r)
		if got, err := DecodeJoinReply(b); err == nil || got != nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("reply %s: decoded %+v, %v", name, got, err)
		}
	}
	// Trailing bytes, a truncated reply.
	b, _ := EncodeJoinReply(randJoinReply(rng))
	if _, err := DecodeJoinReply(append(b, 0xc0)); err == nil {
		t.Error("trailing bytes decoded")
	}
	if _, err := DecodeJoinReply(b[:len(b)-1]); err == nil {
		t.Error("a truncated reply decoded")
	}
}

// checkParseToken asserts ParseToken's contract on s: no panic, bounded
// allocation, a 400 error or a token whose text form is s itself (one
// text per token).
func checkParseToken(t testing.TB, s string) *SignedToken {
	t.Helper()
	var st *SignedToken
	var err error
	assertBounded(t, "ParseToken", len(s), func() { st, err = ParseToken(s) })
	if err != nil {
		if st != nil {
			t.Fatalf("ParseToken returned a token with error %v", err)
		}
		assertWireError(t, "ParseToken", err)
		return nil
	}
	if st.String() != s {
		t.Fatalf("ParseToken accepted %q, whose token's text is %q", s, st.String())
	}
	checkDecodeJoinToken(t, st.Body)
	return st
}

// checkDecodeJoinToken, checkDecodeJoinRequest and checkDecodeJoinReply
// assert the decoders' contract on b (checkDecoded).
func checkDecodeJoinToken(t testing.TB, b []byte) *JoinToken {
	t.Helper()
	return checkDecoded(t, "DecodeJoinToken", b, DecodeJoinToken, EncodeJoinToken, func(tok *JoinToken) error {
		if !validPublicKey(tok.Cluster, 'C') || len(tok.URLs) < 1 || len(tok.URLs) > MaxTokenURLs ||
			len(tok.Nonce) != TokenNonceLen || tok.Expires <= 0 || !literalSubject(tok.Prefix) {
			return errors.New("invalid join token")
		}
		return nil
	})
}

func checkDecodeJoinRequest(t testing.TB, b []byte) *JoinRequest {
	t.Helper()
	return checkDecoded(t, "DecodeJoinRequest", b, DecodeJoinRequest, EncodeJoinRequest, func(r *JoinRequest) error {
		if r.Token == nil || ValidateNodeID(r.ID) != nil || !validPublicKey(r.Key, 'N') || !validPublicKey(r.XKey, 'X') || len(r.Sig) != sigLen {
			return errors.New("invalid join request")
		}
		return nil
	})
}

func checkDecodeJoinReply(t testing.TB, b []byte) *JoinReply {
	t.Helper()
	return checkDecoded(t, "DecodeJoinReply", b, DecodeJoinReply, EncodeJoinReply, func(r *JoinReply) error {
		if ValidateNodeID(r.From) != nil || !validPublicKey(r.XKey, 'X') || len(r.Sealed) == 0 || len(r.Sealed) > MaxSealedLen {
			return errors.New("invalid join reply")
		}
		return nil
	})
}

func FuzzParseToken(f *testing.F) {
	for _, st := range seedEncodings(4, randSignedToken, func(st *SignedToken) ([]byte, error) { return []byte(st.String()), nil }) {
		f.Add(string(st))
	}
	f.Add(TokenPrefix + ".")
	f.Fuzz(func(t *testing.T, s string) { checkParseToken(t, s) })
}

func FuzzDecodeJoinToken(f *testing.F) {
	addHostile(f, nil)
	for _, b := range seedEncodings(8, randJoinToken, EncodeJoinToken) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeJoinToken(t, b) })
}

func FuzzDecodeJoinRequest(f *testing.F) {
	addHostile(f, nil)
	for _, b := range seedEncodings(4, randJoinRequest, EncodeJoinRequest) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeJoinRequest(t, b) })
}

func FuzzDecodeJoinReply(f *testing.F) {
	addHostile(f, nil)
	for _, b := range seedEncodings(4, randJoinReply, EncodeJoinReply) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeJoinReply(t, b) })
}
