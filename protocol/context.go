package protocol

import (
	"encoding/base64"

	"github.com/vmihailenco/msgpack/v5"
)

// EncodeContext turns a clock into the opaque Kvmesh-Context header value:
// base64 (URL alphabet, no padding) of its msgpack form. An empty clock is
// the empty string.
func EncodeContext(c Clock) string {
	if len(c) == 0 {
		return ""
	}
	b, err := marshal(c)
	if err != nil { // a Clock always encodes
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeContext parses a Kvmesh-Context header value. The header comes
// from clients and is hostile until checked: its size, structure, node
// ids and counters are all verified. The empty string is the empty clock.
func DecodeContext(s string) (Clock, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > MaxContextLen {
		return nil, Errorf(ErrInvalidContext, "context is %d bytes, limit %d", len(s), MaxContextLen)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, Errorf(ErrInvalidContext, "context is not base64")
	}
	if err := CheckMsgpack(b, MaxDepth); err != nil {
		return nil, Errorf(ErrInvalidContext, "context: %v", err)
	}
	var c Clock
	if err := msgpack.Unmarshal(b, &c); err != nil {
		return nil, Errorf(ErrInvalidContext, "context: %v", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// EncodeSiblings is the payload of a get reply with several values: the
// msgpack array of the values.
func EncodeSiblings(values [][]byte) ([]byte, error) { return marshal(values) }

// DecodeSiblings parses the payload EncodeSiblings made.
func DecodeSiblings(b []byte) ([][]byte, error) {
	if err := CheckMsgpack(b, MaxDepth); err != nil {
		return nil, err
	}
	var vs [][]byte
	if err := msgpack.Unmarshal(b, &vs); err != nil {
		return nil, Errorf(ErrMalformed, "siblings: %v", err)
	}
	return vs, nil
}
