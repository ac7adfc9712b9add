package protocol

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
)

// kvmesh's one msgpack codec: every message it sends or stores (node RPC,
// client batches, stored objects, the siblings payload, causal contexts,
// heartbeats) is encoded by append functions and decoded by a decoder
// that reads the bytes directly, both written by hand. msgpack reflection
// was about a sixth of a loaded node's CPU, and msgpack v5 trusts declared
// lengths: five bytes could make it allocate until the process died.
//
// The wire form is exactly what msgpack v5 wrote by reflection, with
// compact integers, from the struct tags the types had: each message
// struct is a map of its fields under short keys, in field order, with
// the optional ones left out when zero; every integer and length takes
// its shortest form; Object, Sibling and Dot are arrays. (Client batches,
// designed for the wire later, write nil lists and values as empty ones.)
// Each family's file documents its form. The golden test
// (testdata/wire.golden) and the *MatchesReflection tests pin the bytes,
// so peers of every version agree and old stores stay readable.
//
// The decoder reads any encoding reflection read (keys in any order, any
// integer width, str or bin for either, unknown keys skipped), except
// forms no encoder of ours ever wrote, which are malformed: a message
// struct spelled as an array, a nil Result, and a map that repeats a
// field's key (reflection merged the values).
//
// It reads in one pass, and it bounds every declared length by the bytes
// that remain before it allocates or moves past it: a str or bin longer
// than what is left, a list of more elements than the bytes could hold at
// the smallest size of one, or more than the limits allow, is refused
// first. It reads ops and lengths at full width (msgpack v5 stored op 257
// into a uint8 as RPCRead).

// A message family's file (rpc.go, clientbatch.go, record.go, context.go,
// siblings.go, gossip.go) holds its types, its append functions, its
// decoder methods and their validation, built from the primitives below.

// ---- encoding ----

// encodeBufs holds the scratch buffers of the encoders. A message is
// built in a pooled buffer and copied out once at its exact size: one
// allocation whatever the batch.
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf is the largest scratch buffer kept for reuse, so one huge
// batch does not pin its buffer for the life of the process.
const maxPooledBuf = DefaultMaxPayload

// encode builds the message v with appendMsg in a pooled buffer and
// returns a copy the caller owns.
func encode[T any](v T, appendMsg func([]byte, T) []byte) []byte {
	bp := encodeBufs.Get().(*[]byte)
	b := appendMsg((*bp)[:0], v)
	out := make([]byte, len(b))
	copy(out, b)
	if cap(b) <= maxPooledBuf {
		*bp = b
		encodeBufs.Put(bp)
	}
	return out
}

// mapHeader writes a struct as a map of its present fields: each field
// method writes a key and its value and counts it, and end writes the
// count into the header, one byte since no struct has more than 15 fields
// (keys checks). The buffer stays in the caller's variable, as with every
// append function: kept in the struct, each append would pay a write
// barrier while the GC runs.
type mapHeader struct {
	at int // index of the header byte
	n  byte
}

func beginMap(b []byte) ([]byte, mapHeader) { return append(b, 0x80), mapHeader{at: len(b)} }

// key writes the key of the next field, for its value to be appended.
func (m *mapHeader) key(b []byte, k string) []byte {
	m.n++
	return append(append(b, 0xa0|byte(len(k))), k...) // keys are fixstrs
}

func (m *mapHeader) uint(b []byte, k string, v uint64) []byte { return appendUint(m.key(b, k), v) }
func (m *mapHeader) int(b []byte, k string, v int64) []byte   { return appendInt(m.key(b, k), v) }
func (m *mapHeader) str(b []byte, k, v string) []byte         { return appendStr(m.key(b, k), v) }
func (m *mapHeader) bin(b []byte, k string, v []byte) []byte  { return appendBin(m.key(b, k), v) }
func (m *mapHeader) bool(b []byte, k string, v bool) []byte   { return appendBool(m.key(b, k), v) }

func (m *mapHeader) end(b []byte) []byte {
	if m.n <= 15 {
		b[m.at] = 0x80 | m.n
		return b
	}
	// More fields than a fixmap holds (rare: a struct with many optional
	// fields set): a map16 header, two bytes longer.
	b = slices.Insert(b, m.at+1, 0, 0)
	b[m.at] = 0xde
	binary.BigEndian.PutUint16(b[m.at+1:], uint16(m.n))
	return b
}

// appendList writes list as an array of its elements, each written by
// appendOne, or as nil for a nil list, as reflection wrote a nil slice.
func appendList[T any](b []byte, list []T, appendOne func([]byte, *T) []byte) []byte {
	if list == nil {
		return append(b, 0xc0)
	}
	return appendArray(b, list, appendOne)
}

// appendArray writes list as an array, empty for a nil list.
func appendArray[T any](b []byte, list []T, appendOne func([]byte, *T) []byte) []byte {
	b = appendArrayLen(b, len(list))
	for i := range list {
		b = appendOne(b, &list[i])
	}
	return b
}

// The elements of lists of strings and byte strings.

func appendStrElem(b []byte, s *string) []byte      { return appendStr(b, *s) }
func appendBinElem(b []byte, v *[]byte) []byte      { return appendBin(b, *v) }
func appendBinOrNilElem(b []byte, v *[]byte) []byte { return appendBinOrNil(b, *v) }

// The primitives below write what msgpack v5's Encoder writes with
// UseCompactInts(true): the shortest form of every length and integer.

func appendUint(b []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), n)
}

func appendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
}

func appendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

// appendBin writes v as bin, empty for a nil slice.
func appendBin(b []byte, v []byte) []byte {
	switch n := len(v); {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, v...)
}

// appendBinOrNil writes v as bin, or nil for a nil slice (as reflection
// wrote a []byte).
func appendBinOrNil(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, 0xc0)
	}
	return appendBin(b, v)
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// ---- decoding ----

// decoder reads one message from b. Its methods accept what msgpack v5's
// Decoder accepts for the Go type they read (any integer width, str or
// bin for a string, nil for a zero value), so any encoding reflection
// read decodes to the same value. Its errors are ErrMalformed.
type decoder struct {
	b    []byte
	pos  int
	what string // the message, for errors: "request", "heartbeat", ...
	// depth is the number of maps and lists open around pos, so that the
	// value of an unknown key, which only a map holds, nests at most
	// MaxDepth deep in all.
	depth int
	// noValues: siblings' values are checked and skipped, left nil
	// (DecodeObjectMeta).
	noValues bool
	// ids are node ids read so far: a batch names the same few nodes in
	// every clock, and each is allocated once.
	ids  [8]string
	nids int
}

// decodeMessage reads a whole message with read, a method of d: whatever
// it leaves unread is malformed. (d is the caller's, and read a method
// value, so that the decoder stays on the caller's stack.)
func decodeMessage[T any](d *decoder, read func() (T, error)) (T, error) {
	v, err := read()
	if err == nil && d.left() > 0 {
		err = d.errorf("%d trailing bytes", d.left())
	}
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

func (d *decoder) errorf(format string, args ...any) error {
	return Errorf(ErrMalformed, "%s: byte %d: %s", d.what, d.pos, fmt.Sprintf(format, args...))
}

func (d *decoder) left() int { return len(d.b) - d.pos }

func (d *decoder) code() (byte, error) {
	if d.pos >= len(d.b) {
		return 0, d.errorf("truncated")
	}
	c := d.b[d.pos]
	d.pos++
	return c, nil
}

// raw returns the next n bytes, without copying.
func (d *decoder) raw(n int) ([]byte, error) {
	if n < 0 || n > d.left() {
		return nil, d.errorf("length %d exceeds the message", n)
	}
	p := d.b[d.pos : d.pos+n]
	d.pos += n
	return p, nil
}

// be reads an n-byte big-endian unsigned integer (n is 1, 2, 4 or 8).
func (d *decoder) be(n int) (uint64, error) {
	p, err := d.raw(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// uint reads any msgpack integer or nil as a uint64, as DecodeUint64:
// negative integers wrap, nil is 0.
func (d *decoder) uint() (uint64, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f || c >= 0xe0:
		return uint64(int64(int8(c))), nil
	case c == 0xc0:
		return 0, nil
	case c >= 0xcc && c <= 0xcf: // uint 8..64
		return d.be(1 << (c - 0xcc))
	case c >= 0xd0 && c <= 0xd3: // int 8..64: sign-extend
		w := 1 << (c - 0xd0)
		v, err := d.be(w)
		shift := 64 - 8*w
		return uint64(int64(v<<shift) >> shift), err
	}
	return 0, d.errorf("want an integer, got 0x%02x", c)
}

// int reads any msgpack integer or nil as an int64, as DecodeInt64:
// uint64 values above MaxInt64 wrap.
func (d *decoder) int() (int64, error) {
	v, err := d.uint()
	return int64(v), err
}

// intField reads an integer into a Go int, refusing what does not fit.
func (d *decoder) intField() (int, error) {
	v, err := d.int()
	if err == nil && int64(int(v)) != v {
		return 0, d.errorf("integer %d out of range", v)
	}
	return int(v), err
}

// bytesLen reads the header of a str or bin (msgpack v5 reads either as
// a string or a []byte); nil gives -1.
func (d *decoder) bytesLen() (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	switch {
	case c >= 0xa0 && c <= 0xbf:
		return int(c & 0x1f), nil
	case c == 0xc0:
		return -1, nil
	case c == 0xc4 || c == 0xd9:
		v, err := d.be(1)
		return int(v), err
	case c == 0xc5 || c == 0xda:
		v, err := d.be(2)
		return int(v), err
	case c == 0xc6 || c == 0xdb:
		v, err := d.be(4)
		return int(v), err
	}
	return 0, d.errorf("want a string, got 0x%02x", c)
}

// rawStr reads a str, bin or nil without copying; nil is empty.
func (d *decoder) rawStr() ([]byte, error) {
	n, err := d.bytesLen()
	if err != nil || n < 0 {
		return nil, err
	}
	return d.raw(n)
}

func (d *decoder) str() (string, error) {
	p, err := d.rawStr()
	return string(p), err
}

// id reads a string that is likely a node id seen before in the message.
func (d *decoder) id() (string, error) {
	p, err := d.rawStr()
	if err != nil {
		return "", err
	}
	for _, s := range d.ids[:d.nids] {
		if s == string(p) {
			return s, nil
		}
	}
	s := string(p)
	if d.nids < len(d.ids) {
		d.ids[d.nids] = s
		d.nids++
	}
	return s, nil
}

// bytes reads a bin or str into a new slice; nil stays nil, an empty
// value is an empty non-nil slice (as DecodeBytes).
func (d *decoder) bytes() ([]byte, error) {
	n, err := d.bytesLen()
	if err != nil || n < 0 {
		return nil, err
	}
	p, err := d.raw(n)
	if err != nil {
		return nil, err
	}
	return append(make([]byte, 0, n), p...), nil
}

func (d *decoder) bool() (bool, error) {
	c, err := d.code()
	if err != nil {
		return false, err
	}
	switch c {
	case 0xc0, 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	}
	return false, d.errorf("want a bool, got 0x%02x", c)
}

// nil consumes a nil if one comes next.
func (d *decoder) nil() bool {
	if d.pos < len(d.b) && d.b[d.pos] == 0xc0 {
		d.pos++
		return true
	}
	return false
}

// arrayLen reads an array header; nil gives -1. A count the remaining
// bytes cannot hold, at minLen bytes per element, is refused.
func (d *decoder) arrayLen(minLen int) (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c >= 0x90 && c <= 0x9f:
		n = uint64(c & 0x0f)
	case c == 0xc0:
		return -1, nil
	case c == 0xdc:
		n, err = d.be(2)
	case c == 0xdd:
		n, err = d.be(4)
	default:
		return 0, d.errorf("want an array, got 0x%02x", c)
	}
	if err != nil {
		return 0, err
	}
	if n*uint64(minLen) > uint64(d.left()) {
		return 0, d.errorf("array of %d items exceeds the message", n)
	}
	return int(n), nil
}

// tuple reads an array header that must have exactly n items.
func (d *decoder) tuple(n int, what string) error {
	got, err := d.arrayLen(1)
	if err != nil {
		return err
	}
	if got != n {
		return d.errorf("%s: array of %d items, want %d", what, got, n)
	}
	return nil
}

// mapLen reads the header of a struct's map; nothing else is a struct.
func (d *decoder) mapLen() (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c >= 0x80 && c <= 0x8f:
		n = uint64(c & 0x0f)
	case c == 0xde:
		n, err = d.be(2)
	case c == 0xdf:
		n, err = d.be(4)
	default:
		return 0, d.errorf("want a map, got 0x%02x", c)
	}
	if err != nil {
		return 0, err
	}
	if 2*n > uint64(d.left()) {
		return 0, d.errorf("map of %d entries exceeds the message", n)
	}
	return int(n), nil
}

// keySet is the keys of a struct's map, in field order, and which of
// them a message must have.
type keySet struct {
	names    []string
	required uint32 // bit i: names[i] must be present
}

// keys returns the key set of names, of which required must be present.
// A struct has at most 32 fields.
func keys(names []string, required ...string) keySet {
	if len(names) > 32 {
		panic("protocol: a struct of more than 32 fields")
	}
	ks := keySet{names: names}
	for _, r := range required {
		i := slices.Index(names, r)
		if i < 0 {
			panic("protocol: required key " + r + " is not a key")
		}
		ks.required |= 1 << i
	}
	return ks
}

// fields reads a map of the keys ks, each at most once, the required ones
// at least once: it calls fn with each known key to decode that key's
// value, and skips the values of other keys.
func (d *decoder) fields(ks keySet, fn func(key string) error) error {
	n, err := d.mapLen()
	if err != nil {
		return err
	}
	var seen uint32
	d.depth++
	for range n {
		k, err := d.field(ks.names, &seen)
		if err != nil {
			return err
		}
		if k == "" {
			err = d.skip(MaxDepth - d.depth)
		} else {
			err = fn(k)
		}
		if err != nil {
			return err
		}
	}
	d.depth--
	if missing := ks.required &^ seen; missing != 0 {
		return d.errorf("field %q missing", ks.names[bits.TrailingZeros32(missing)])
	}
	return nil
}

// field reads a map key and returns it if it is one of keys, or "" for a
// key to skip. seen has bit i set once keys[i] was read in this map: a
// repeated field is malformed.
func (d *decoder) field(keys []string, seen *uint32) (string, error) {
	k, err := d.rawStr()
	if err != nil {
		return "", err
	}
	for i, name := range keys {
		if string(k) == name {
			if *seen&(1<<i) != 0 {
				return "", d.errorf("field %q repeated", name)
			}
			*seen |= 1 << i
			return name, nil
		}
	}
	return "", nil
}

// listSpec bounds a list before the decoder allocates for it.
type listSpec struct {
	name     string // its elements, for errors: "items", "members", ...
	minSize  int    // bytes of the smallest element the decoder accepts
	min, max int    // counts allowed; nil counts as 0
	sentinel *Error // the error of a count out of range, if not ErrMalformed
}

// decodeList reads a list: nil gives a nil slice. A count the remaining
// bytes cannot hold at spec.minSize bytes an element, or that spec does
// not allow, is refused before anything is allocated; then one reads
// each element.
func decodeList[T any](d *decoder, spec listSpec, one func(*T) error) ([]T, error) {
	n, err := d.arrayLen(spec.minSize)
	if err != nil {
		return nil, err
	}
	if max(n, 0) < spec.min || n > spec.max {
		return nil, Errorf(cmp.Or(spec.sentinel, ErrMalformed), "%s: %d %s, want %d..%d", d.what, max(n, 0), spec.name, spec.min, spec.max)
	}
	if n < 0 {
		return nil, nil
	}
	out := make([]T, n)
	d.depth++
	for i := range out {
		if err := one(&out[i]); err != nil {
			return nil, err
		}
	}
	d.depth--
	return out, nil
}

// bytesElem reads an element of a list of byte strings.
func (d *decoder) bytesElem(v *[]byte) (err error) {
	*v, err = d.bytes()
	return err
}

// skip skips one value of any type: the value of a key the decoder does
// not know. Like every read, it refuses a declared length the remaining
// bytes cannot hold (a str, bin or ext payload longer than what is left,
// an array of n items in fewer than n bytes, a map of n entries in fewer
// than 2n) before it moves past it; and it refuses a value whose
// non-empty containers nest more than depth levels, 0xc1 (never used),
// and an ext whose data begins with a map header. The last two are what
// the structural check before reflection decoding refused (msgpack v5
// read a map through an ext header), kept so that a message is accepted
// exactly when older nodes accepted it.
func (d *decoder) skip(depth int) error {
	var stack [32]int // for each open container, the values it still holds
	open := stack[:0]
	depth = min(depth, len(stack))
	for values := 1; values > 0 || len(open) > 0; {
		if values == 0 { // the innermost container is done
			values, open = open[len(open)-1], open[:len(open)-1]
			continue
		}
		values--
		c, err := d.code()
		if err != nil {
			return err
		}
		var size uint64     // payload bytes to skip
		var children uint64 // values of a container that starts here
		container, ext := false, false
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			children, container = 2*uint64(c&0x0f), true
		case c >= 0x90 && c <= 0x9f:
			children, container = uint64(c&0x0f), true
		case c >= 0xa0 && c <= 0xbf:
			size = uint64(c & 0x1f)
		case c == 0xc4 || c == 0xd9:
			size, err = d.be(1)
		case c == 0xc5 || c == 0xda:
			size, err = d.be(2)
		case c == 0xc6 || c == 0xdb:
			size, err = d.be(4)
		case c >= 0xc7 && c <= 0xc9: // ext 8, 16, 32: length, then a type byte
			size, err = d.be(1 << (c - 0xc7))
			size, ext = size+1, true
		case c == 0xca, c == 0xce, c == 0xd2:
			size = 4
		case c == 0xcb, c == 0xcf, c == 0xd3:
			size = 8
		case c == 0xcc, c == 0xd0:
			size = 1
		case c == 0xcd, c == 0xd1:
			size = 2
		case c >= 0xd4 && c <= 0xd8: // fixext: a type byte and 1..16 bytes
			size, ext = 1+1<<(c-0xd4), true
		case c == 0xdc || c == 0xde: // array16, map16
			children, err = d.be(2)
			container = true
		case c == 0xdd || c == 0xdf: // array32, map32
			children, err = d.be(4)
			container = true
		default:
			return d.errorf("invalid byte 0x%02x", c)
		}
		if err != nil {
			return err
		}
		if c == 0xde || c == 0xdf {
			children *= 2
		}
		if size > uint64(d.left()) {
			return d.errorf("length %d exceeds the message", size)
		}
		if ext && size > 1 && isMapHeader(d.b[d.pos+1]) {
			return d.errorf("ext data begins with a map header")
		}
		d.pos += int(size)
		if !container || children == 0 {
			continue
		}
		// Each value takes a byte at least: refuse at once what would
		// run out of bytes anyway, and keep the count within an int.
		if children > uint64(d.left()) {
			return d.errorf("container of %d values exceeds the message", children)
		}
		if len(open) >= depth {
			return d.errorf("nested deeper than %d", MaxDepth)
		}
		open = append(open, values)
		values = int(children)
	}
	return nil
}

// isMapHeader reports whether c starts a msgpack map (fixmap, map16, map32).
func isMapHeader(c byte) bool { return c >= 0x80 && c <= 0x8f || c == 0xde || c == 0xdf }

// version reads and checks the protocol version.
func (d *decoder) version() (int, error) {
	v, err := d.int()
	if err != nil {
		return 0, err
	}
	if v != Version {
		return 0, Errorf(ErrMalformed, "%s: protocol version %d, want %d", d.what, v, Version)
	}
	return Version, nil
}

// sender reads and checks the id of the sending node.
func (d *decoder) sender() (string, error) {
	s, err := d.id()
	if err != nil {
		return "", err
	}
	if ValidateNodeID(s) != nil {
		return "", Errorf(ErrMalformed, "%s: bad sender id", d.what)
	}
	return s, nil
}

// op reads an op at full width (a uint8 would take 257 for 1) and
// refuses one outside first..last.
func (d *decoder) op(first, last uint8) (uint8, error) {
	op, err := d.uint()
	if err != nil {
		return 0, err
	}
	if op < uint64(first) || op > uint64(last) {
		return 0, d.errorf("unknown op %d", op)
	}
	return uint8(op), nil
}
