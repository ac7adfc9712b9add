package protocol

import "encoding/binary"

// CheckMsgpack walks b once and verifies that it is exactly one
// well-formed msgpack value: every declared str, bin, ext, array and map
// length fits in the bytes that remain (an array of n items needs at least
// n bytes, a map at least 2n), nesting is at most maxDepth, and nothing
// trails the value. msgpack v5 trusts declared lengths when it allocates,
// so every decoder of untrusted bytes calls this first; after it passes,
// no allocation can exceed a small multiple of len(b).
//
// Ext data is opaque to this walk, with one exception: msgpack v5 decodes
// a map through an ext header (Decoder.DecodeMapLen skips the header and
// reads the ext data as a map), so an ext whose data begins with a map
// header is refused; otherwise the 8 bytes c7 05 01 df 7f ff ff ff, decoded
// into a map[string]any, would ask for a map of 2^31-1 entries. For the
// same reason, never register an ext decoder that parses its data as msgpack.
func CheckMsgpack(b []byte, maxDepth int) error {
	// pending[i] is how many values the i-th open container still needs.
	var stack [32]int
	pending := stack[:0]
	if maxDepth > len(stack) {
		maxDepth = len(stack)
	}
	pos := 0
	need := func(n uint64) bool { return uint64(len(b)-pos) >= n }
	for values := 1; values > 0 || len(pending) > 0; {
		if values == 0 { // current container done: pop
			values = pending[len(pending)-1]
			pending = pending[:len(pending)-1]
			continue
		}
		values--
		if pos >= len(b) {
			return Errorf(ErrMalformed, "msgpack: truncated at byte %d", pos)
		}
		c := b[pos]
		pos++
		var skip uint64     // bytes of payload to skip
		var children uint64 // items of a container that starts here
		container := false
		ext := false // skip covers an ext's type byte and data
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			children, container = 2*uint64(c&0x0f), true
		case c >= 0x90 && c <= 0x9f:
			children, container = uint64(c&0x0f), true
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		case c == 0xc4 || c == 0xd9: // bin8, str8
			if !need(1) {
				return truncated(pos)
			}
			skip = uint64(b[pos])
			pos++
		case c == 0xc5 || c == 0xda: // bin16, str16
			if !need(2) {
				return truncated(pos)
			}
			skip = uint64(binary.BigEndian.Uint16(b[pos:]))
			pos += 2
		case c == 0xc6 || c == 0xdb: // bin32, str32
			if !need(4) {
				return truncated(pos)
			}
			skip = uint64(binary.BigEndian.Uint32(b[pos:]))
			pos += 4
		case c == 0xc7: // ext8: len, type
			if !need(2) {
				return truncated(pos)
			}
			skip = uint64(b[pos]) + 1
			pos++
			ext = true
		case c == 0xc8:
			if !need(3) {
				return truncated(pos)
			}
			skip = uint64(binary.BigEndian.Uint16(b[pos:])) + 1
			pos += 2
			ext = true
		case c == 0xc9:
			if !need(5) {
				return truncated(pos)
			}
			skip = uint64(binary.BigEndian.Uint32(b[pos:])) + 1
			pos += 4
			ext = true
		case c == 0xca:
			skip = 4
		case c == 0xcb:
			skip = 8
		case c == 0xcc || c == 0xd0:
			skip = 1
		case c == 0xcd || c == 0xd1:
			skip = 2
		case c == 0xce || c == 0xd2:
			skip = 4
		case c == 0xcf || c == 0xd3:
			skip = 8
		case c >= 0xd4 && c <= 0xd8: // fixext 1,2,4,8,16 plus type byte
			skip = 1 + (1 << (c - 0xd4))
			ext = true
		case c == 0xdc || c == 0xde: // array16, map16
			if !need(2) {
				return truncated(pos)
			}
			children, container = uint64(binary.BigEndian.Uint16(b[pos:])), true
			pos += 2
			if c == 0xde {
				children *= 2
			}
		case c == 0xdd || c == 0xdf: // array32, map32
			if !need(4) {
				return truncated(pos)
			}
			children, container = uint64(binary.BigEndian.Uint32(b[pos:])), true
			pos += 4
			if c == 0xdf {
				children *= 2
			}
		default: // 0xc1 is never used
			return Errorf(ErrMalformed, "msgpack: invalid byte 0x%02x at %d", c, pos-1)
		}
		if !need(skip) {
			return Errorf(ErrMalformed, "msgpack: length %d at byte %d exceeds the message", skip, pos)
		}
		if ext && skip > 1 && isMapHeader(b[pos+1]) {
			return Errorf(ErrMalformed, "msgpack: ext data at byte %d begins with a map header", pos+1)
		}
		pos += int(skip)
		if container {
			if !need(children) {
				return Errorf(ErrMalformed, "msgpack: container of %d items at byte %d exceeds the message", children, pos)
			}
			if children == 0 {
				continue
			}
			if len(pending) >= maxDepth {
				return Errorf(ErrMalformed, "msgpack: nested deeper than %d", maxDepth)
			}
			pending = append(pending, values)
			values = int(children)
		}
	}
	if pos != len(b) {
		return Errorf(ErrMalformed, "msgpack: %d trailing bytes", len(b)-pos)
	}
	return nil
}

func truncated(pos int) error { return Errorf(ErrMalformed, "msgpack: truncated at byte %d", pos) }

// isMapHeader reports whether c starts a msgpack map (fixmap, map16, map32).
func isMapHeader(c byte) bool { return c >= 0x80 && c <= 0x8f || c == 0xde || c == 0xdf }
