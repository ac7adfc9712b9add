package protocol

import "github.com/vmihailenco/msgpack/v5"

// MaxMembers bounds the member set of one store.
const MaxMembers = 1024

// Announce is a node's periodic membership announcement: who it is and
// which members it knows. It doubles as a heartbeat. (Signing comes with
// the security work; until then only cluster members can publish on the
// gossip subjects.)
type Announce struct {
	V       int      `msgpack:"v"`
	From    string   `msgpack:"f"`
	Members []string `msgpack:"m"`
	Time    int64    `msgpack:"t"` // unix nanoseconds at the sender
	// Secret is the fingerprint of the sender's store secret
	// (ContextKey.Fingerprint): nodes with different secrets refuse each
	// other's causal contexts, and say so.
	Secret string `msgpack:"s,omitempty"`
}

// EncodeAnnounce encodes a for the wire.
func EncodeAnnounce(a *Announce) ([]byte, error) { return marshal(a) }

// DecodeAnnounce decodes and validates an announcement.
func DecodeAnnounce(b []byte) (*Announce, error) {
	if err := CheckMsgpack(b, MaxDepth); err != nil {
		return nil, err
	}
	var a Announce
	if err := msgpack.Unmarshal(b, &a); err != nil {
		return nil, Errorf(ErrMalformed, "announce: %v", err)
	}
	if a.V != Version {
		return nil, Errorf(ErrMalformed, "announce: protocol version %d, want %d", a.V, Version)
	}
	if err := ValidateNodeID(a.From); err != nil {
		return nil, Errorf(ErrMalformed, "announce: bad sender id")
	}
	if len(a.Secret) > 64 {
		return nil, Errorf(ErrMalformed, "announce: secret fingerprint of %d bytes", len(a.Secret))
	}
	if len(a.Members) > MaxMembers {
		return nil, Errorf(ErrMalformed, "announce: %d members, limit %d", len(a.Members), MaxMembers)
	}
	for _, m := range a.Members {
		if err := ValidateNodeID(m); err != nil {
			return nil, Errorf(ErrMalformed, "announce: bad member id")
		}
	}
	return &a, nil
}
