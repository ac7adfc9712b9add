package protocol

import (
	"encoding/base64"
	"strings"
	"time"
)

// Join tokens and the join handshake: how a new node receives the store
// secret (node/join.go). An operator asks a member for a token
// (AdminInvite), hands it to the new node, and the new node sends a
// JoinRequest carrying it to one of the members the token lists
// (AdminJoin); the member checks the token and answers a JoinReply with
// the secret sealed to a curve key only the new node holds.
//
// A token is one line of text:
//
//	"KVMJ1." base64url(body) "." base64url(signature)
//
// without padding, where body is the msgpack map
//
//	{v: V, c: Cluster, p: Prefix, u: URLs, e: Expires, n: Nonce}
//
// and signature the cluster key's ed25519 signature over the body's bytes
// as they travel (node/membership verifies it). A token is valid for any
// number of joins until it expires.

// Limits and defaults of join tokens.
const (
	// TokenPrefix starts the text form of every join token; its digit is
	// the token format's version.
	TokenPrefix = "KVMJ1."
	// MaxTokenLen bounds the text form of a token.
	MaxTokenLen = 8 << 10
	// MaxTokenURLs bounds the client URLs a token lists.
	MaxTokenURLs = 16
	// TokenNonceLen is the length of a token's random nonce.
	TokenNonceLen = 16

	// DefaultTokenTTL is how long a token is valid unless the invite asks
	// for another validity, between MinTokenTTL and MaxTokenTTL.
	DefaultTokenTTL = time.Hour
	MinTokenTTL     = time.Minute
	MaxTokenTTL     = 7 * 24 * time.Hour

	// MaxSealedLen bounds JoinReply.Sealed: a store secret and the
	// sealing's 44 bytes (version, nonce, tag).
	MaxSealedLen = 4 << 10

	// maxPrefixLen bounds the subject prefix a token names.
	maxPrefixLen = 256
	// publicKeyLen is the length of an nkey public key of any kind: its
	// kind letter and 55 base32 digits.
	publicKeyLen = 56
)

// tokenEncoding is the base64 of the text form: URL-safe, unpadded,
// strict (ParseToken also refuses any text but the canonical one).
var tokenEncoding = base64.RawURLEncoding.Strict()

// JoinToken is the body of a join token.
type JoinToken struct {
	V       int
	Cluster string   // the cluster's public key ("C...")
	Prefix  string   // the store's subject prefix: where to send the join request
	URLs    []string // client URLs of members (nats://host:port), 1..MaxTokenURLs
	Expires int64    // unix nanoseconds after which members refuse the token
	Nonce   []byte   // TokenNonceLen random bytes: no two tokens are alike
}

// EncodeJoinToken encodes a token's body. It never fails; the error is
// kept for symmetry with the other encoders.
func EncodeJoinToken(t *JoinToken) ([]byte, error) { return encode(t, appendJoinToken), nil }

// DecodeJoinToken decodes and validates a token's body (not its
// signature: node/membership verifies that).
func DecodeJoinToken(b []byte) (*JoinToken, error) {
	d := decoder{b: b, what: "join token"}
	return decodeMessage(&d, d.joinToken)
}

func appendJoinToken(b []byte, t *JoinToken) []byte {
	b, m := beginMap(b)
	b = m.int(b, "v", int64(t.V))
	b = m.str(b, "c", t.Cluster)
	b = m.str(b, "p", t.Prefix)
	b = appendList(m.key(b, "u"), t.URLs, appendStrElem)
	b = m.int(b, "e", t.Expires)
	b = m.bin(b, "n", t.Nonce)
	return m.end(b)
}

var (
	joinTokenKeys = keys([]string{"v", "c", "p", "u", "e", "n"}, "v", "c", "p", "u", "e", "n")
	tokenURLList  = listSpec{name: "URLs", minSize: 1, min: 1, max: MaxTokenURLs}
)

func (d *decoder) joinToken() (*JoinToken, error) {
	var t JoinToken
	err := d.fields(joinTokenKeys, func(k string) (err error) {
		switch k {
		case "v":
			t.V, err = d.version()
		case "c":
			err = d.publicKey(&t.Cluster, 'C')
		case "p":
			if t.Prefix, err = d.str(); err == nil && (len(t.Prefix) > maxPrefixLen || !literalSubject(t.Prefix)) {
				err = d.errorf("bad subject prefix")
			}
		case "u":
			t.URLs, err = decodeList(d, tokenURLList, d.url)
		case "e":
			if t.Expires, err = d.int(); err == nil && t.Expires <= 0 {
				err = d.errorf("expiry %d", t.Expires)
			}
		case "n":
			if t.Nonce, err = d.bytes(); err == nil && len(t.Nonce) != TokenNonceLen {
				err = d.errorf("nonce of %d bytes", len(t.Nonce))
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// SignedToken is a join token as it travels: its body's bytes, the
// signature over them, and the body decoded.
type SignedToken struct {
	Body  []byte
	Sig   []byte
	Token *JoinToken
}

// String returns the token's text form.
func (s *SignedToken) String() string {
	return TokenPrefix + tokenEncoding.EncodeToString(s.Body) + "." + tokenEncoding.EncodeToString(s.Sig)
}

// ParseToken reads the text form of a join token and decodes its body.
// It checks the form only: a signature of the right size, a valid body;
// node/membership checks the signature and the expiry. Its errors are
// ErrMalformed.
func ParseToken(s string) (*SignedToken, error) {
	if len(s) > MaxTokenLen {
		return nil, Errorf(ErrMalformed, "join token of %d bytes, limit %d", len(s), MaxTokenLen)
	}
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	body64, sig64, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return nil, Errorf(ErrMalformed, "not a join token (want %s...)", TokenPrefix)
	}
	body, err := tokenEncoding.DecodeString(body64)
	if err != nil || tokenEncoding.EncodeToString(body) != body64 {
		return nil, Errorf(ErrMalformed, "join token: bad base64 in its body")
	}
	sig, err := tokenEncoding.DecodeString(sig64)
	if err != nil || len(sig) != sigLen || tokenEncoding.EncodeToString(sig) != sig64 {
		return nil, Errorf(ErrMalformed, "join token: bad signature")
	}
	t, err := DecodeJoinToken(body)
	if err != nil {
		return nil, err
	}
	return &SignedToken{Body: body, Sig: sig, Token: t}, nil
}

// JoinRequest asks a member for the store secret. The node signs it with
// its key, over its encoding without the signature (SigningBytes), so a
// member admits the key that asked. On the wire it is the msgpack map
//
//	{v: V, t: Token, i: ID, k: Key, x: XKey, g: Sig}
//
// with Token in its text form and g left out when empty (as in
// SigningBytes; the decoder requires it).
type JoinRequest struct {
	V     int
	Token *SignedToken
	ID    string // the joining node's id
	Key   string // its public key ("N...")
	XKey  string // a curve public key ("X...") made for this request: the secret is sealed to it
	Sig   []byte // the node key's signature over SigningBytes
}

// EncodeJoinRequest encodes r for the wire. It never fails; the error is
// kept for symmetry with the other encoders.
func EncodeJoinRequest(r *JoinRequest) ([]byte, error) { return encode(r, appendJoinRequest), nil }

// SigningBytes is what the request's signature covers: its encoding
// without the signature.
func (r *JoinRequest) SigningBytes() []byte {
	u := *r
	u.Sig = nil
	return encode(&u, appendJoinRequest)
}

// DecodeJoinRequest decodes and validates a join request: the token's
// form, the id, the keys' form. The signatures are the receiver's to
// check.
func DecodeJoinRequest(b []byte) (*JoinRequest, error) {
	d := decoder{b: b, what: "join request"}
	return decodeMessage(&d, d.joinRequest)
}

func appendJoinRequest(b []byte, r *JoinRequest) []byte {
	b, m := beginMap(b)
	b = m.int(b, "v", int64(r.V))
	var token string
	if r.Token != nil {
		token = r.Token.String()
	}
	b = m.str(b, "t", token)
	b = m.str(b, "i", r.ID)
	b = m.str(b, "k", r.Key)
	b = m.str(b, "x", r.XKey)
	if len(r.Sig) > 0 {
		b = m.bin(b, "g", r.Sig)
	}
	return m.end(b)
}

var joinRequestKeys = keys([]string{"v", "t", "i", "k", "x", "g"}, "v", "t", "i", "k", "x", "g")

func (d *decoder) joinRequest() (*JoinRequest, error) {
	var r JoinRequest
	err := d.fields(joinRequestKeys, func(k string) (err error) {
		switch k {
		case "v":
			r.V, err = d.version()
		case "t":
			var p []byte
			if p, err = d.rawStr(); err == nil {
				r.Token, err = ParseToken(string(p))
			}
		case "i":
			if r.ID, err = d.str(); err == nil && ValidateNodeID(r.ID) != nil {
				err = d.errorf("bad node id")
			}
		case "k":
			err = d.publicKey(&r.Key, 'N')
		case "x":
			err = d.publicKey(&r.XKey, 'X')
		case "g":
			if r.Sig, err = d.bytes(); err == nil && len(r.Sig) != sigLen {
				err = d.errorf("signature of %d bytes", len(r.Sig))
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// JoinReply is a member's answer to a JoinRequest: the store secret
// sealed (nkeys' curve Seal: X25519, XSalsa20-Poly1305) from the
// member's one-time curve key XKey to the request's XKey. Refusals
// travel as error headers instead. On the wire it is the msgpack map
//
//	{v: V, f: From, x: XKey, s: Sealed}
type JoinReply struct {
	V      int
	From   string // the answering member's id
	XKey   string // the member's curve public key for this reply ("X...")
	Sealed []byte // the secret, sealed
}

// EncodeJoinReply encodes r for the wire. It never fails; the error is
// kept for symmetry with the other encoders.
func EncodeJoinReply(r *JoinReply) ([]byte, error) { return encode(r, appendJoinReply), nil }

// DecodeJoinReply decodes and validates a join reply.
func DecodeJoinReply(b []byte) (*JoinReply, error) {
	d := decoder{b: b, what: "join reply"}
	return decodeMessage(&d, d.joinReply)
}

func appendJoinReply(b []byte, r *JoinReply) []byte {
	b, m := beginMap(b)
	b = m.int(b, "v", int64(r.V))
	b = m.str(b, "f", r.From)
	b = m.str(b, "x", r.XKey)
	b = m.bin(b, "s", r.Sealed)
	return m.end(b)
}

var joinReplyKeys = keys([]string{"v", "f", "x", "s"}, "v", "f", "x", "s")

func (d *decoder) joinReply() (*JoinReply, error) {
	var r JoinReply
	err := d.fields(joinReplyKeys, func(k string) (err error) {
		switch k {
		case "v":
			r.V, err = d.version()
		case "f":
			r.From, err = d.sender()
		case "x":
			err = d.publicKey(&r.XKey, 'X')
		case "s":
			if r.Sealed, err = d.bytes(); err == nil && (len(r.Sealed) == 0 || len(r.Sealed) > MaxSealedLen) {
				err = d.errorf("sealed secret of %d bytes", len(r.Sealed))
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// publicKey reads an nkey public key of the given kind ('C' cluster, 'N'
// node, 'X' curve) and checks its form; the receiver's nkeys check its
// checksum when it uses it.
func (d *decoder) publicKey(k *string, kind byte) (err error) {
	if *k, err = d.str(); err == nil && !validPublicKey(*k, kind) {
		err = d.errorf("bad %c key", kind)
	}
	return err
}

// url reads a client URL of a token.
func (d *decoder) url(u *string) (err error) {
	if *u, err = d.str(); err == nil && (*u == "" || len(*u) > maxURLLen || !printable(*u)) {
		err = d.errorf("bad URL")
	}
	return err
}

// validPublicKey checks the form of an nkey public key of the given kind.
func validPublicKey(k string, kind byte) bool {
	if len(k) != publicKeyLen || k[0] != kind {
		return false
	}
	for i := 1; i < len(k); i++ {
		if c := k[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// printable reports whether s is printable ASCII without spaces: a URL
// that goes into logs and onto a command line.
func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f })
}
