package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"sync"
)

// The causal context (the Kvmesh-Context header) is opaque to clients and
// sealed by the store: a clock the store issued for one key, under a tag
// only the store can compute.
//
//	base64url (no padding) of: version byte 1, tag (16 bytes), msgpack of the clock
//	tag = HMAC-SHA256(secret, "kvmesh context 1" 0 prefix 0 key 0 clock)[:16]
//
// So a context used on another key (or another store), altered,
// truncated or made up is refused with ErrInvalidContext and changes
// nothing, and no context can claim more than the store has issued: it
// cannot brick a key with a counter near MaxCounter nor supersede
// siblings its reader never saw. The empty string is the empty clock (a
// blind write) and carries no tag.

const (
	contextVersion = 1
	contextTagLen  = 16
	// MinSecretLen is the shortest store secret NewContextKey accepts.
	MinSecretLen = 16
)

// ContextKey seals and opens the causal contexts of one store. Every node
// of the store must have the same secret. It is safe for concurrent use.
type ContextKey struct {
	prefix string
	macs   sync.Pool // of hash.Hash: HMAC-SHA256 under the secret
	fp     string
}

// NewContextKey returns the context key of the store with subject prefix
// prefix and secret secret (at least MinSecretLen bytes, random).
func NewContextKey(secret []byte, prefix string) (*ContextKey, error) {
	if len(secret) < MinSecretLen {
		return nil, Errorf(ErrInvalidOption, "store secret is %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	s := append([]byte(nil), secret...)
	k := &ContextKey{prefix: prefix}
	k.macs.New = func() any { return hmac.New(sha256.New, s) }
	fp := sha256.Sum256(append([]byte("kvmesh secret fingerprint\x00"), s...))
	k.fp = hex.EncodeToString(fp[:8])
	return k, nil
}

// Fingerprint identifies the secret without revealing it, so that nodes
// can tell they were given different ones.
func (k *ContextKey) Fingerprint() string { return k.fp }

func (k *ContextKey) tag(key string, clock []byte) []byte {
	h := k.macs.Get().(hash.Hash)
	defer k.macs.Put(h)
	h.Reset()
	h.Write([]byte("kvmesh context 1\x00"))
	h.Write([]byte(k.prefix))
	h.Write([]byte{0})
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(clock)
	return h.Sum(nil)[:contextTagLen]
}

// Seal returns the context of clock c for key: "" for an empty clock.
func (k *ContextKey) Seal(key string, c Clock) string {
	if len(c) == 0 {
		return ""
	}
	raw := make([]byte, 1+contextTagLen, 1+contextTagLen+maxClockLen(c))
	raw[0] = contextVersion
	raw = appendClock(raw, c)
	copy(raw[1:], k.tag(key, raw[1+contextTagLen:]))
	return base64.RawURLEncoding.EncodeToString(raw)
}

// Open checks a Kvmesh-Context header value sent with a write of key and
// returns its clock. The header comes from clients and is hostile until
// checked: its size, then its tag, then its structure, node ids and
// counters. The empty string is the empty clock.
func (k *ContextKey) Open(key, s string) (Clock, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > MaxContextLen {
		return nil, Errorf(ErrInvalidContext, "context is %d bytes, limit %d", len(s), MaxContextLen)
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, Errorf(ErrInvalidContext, "context is not base64")
	}
	if len(raw) < 1+contextTagLen+1 || raw[0] != contextVersion {
		return nil, Errorf(ErrInvalidContext, "context was not issued by this store")
	}
	b := raw[1+contextTagLen:]
	if subtle.ConstantTimeCompare(raw[1:1+contextTagLen], k.tag(key, b)) != 1 {
		return nil, Errorf(ErrInvalidContext, "context was not issued by this store for this key")
	}
	return decodeClock(b)
}

// decodeClock decodes the msgpack form of a clock (appendClock's), checking
// its structure first and its entries after. Every error is
// ErrInvalidContext: the bytes came from a client.
func decodeClock(b []byte) (Clock, error) {
	d := decoder{b: b, what: "context"}
	c, err := decodeMessage(&d, d.clock)
	if err != nil {
		if errors.Is(err, ErrInvalidContext) {
			return nil, err
		}
		return nil, Errorf(ErrInvalidContext, "%v", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
