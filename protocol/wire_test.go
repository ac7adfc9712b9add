package protocol

import (
	"encoding/binary"
	"math"
	"math/rand"
)

// wire writes msgpack the way another encoder might: any width for an
// integer or a length that holds it, strings as str or bin, fields in any
// order, zero fields present, unknown fields, wider headers.
type wire struct {
	rng *rand.Rand
	b   []byte
}

func (w *wire) pick(n int) bool { return w.rng.Intn(n) == 0 }

func (w *wire) uint(v uint64) {
	type form struct {
		code  byte
		width int
	}
	forms := []form{{0xcf, 8}}
	if v <= math.MaxInt64 {
		forms = append(forms, form{0xd3, 8})
	}
	if v <= math.MaxUint32 {
		forms = append(forms, form{0xce, 4})
	}
	if v <= math.MaxInt32 {
		forms = append(forms, form{0xd2, 4})
	}
	if v <= math.MaxUint16 {
		forms = append(forms, form{0xcd, 2})
	}
	if v <= math.MaxInt16 {
		forms = append(forms, form{0xd1, 2})
	}
	if v <= math.MaxUint8 {
		forms = append(forms, form{0xcc, 1})
	}
	if v <= math.MaxInt8 {
		forms = append(forms, form{0xd0, 1}, form{byte(v), 0}, form{byte(v), 0})
	}
	f := forms[w.rng.Intn(len(forms))]
	w.b = append(w.b, f.code)
	w.b = appendBE(w.b, v, f.width)
}

func (w *wire) int(v int64) {
	if v >= 0 {
		w.uint(uint64(v))
		return
	}
	type form struct {
		code  byte
		width int
	}
	forms := []form{{0xd3, 8}, {0xcf, 8}} // a uint64 wraps to the same int64
	if v >= math.MinInt32 {
		forms = append(forms, form{0xd2, 4})
	}
	if v >= math.MinInt16 {
		forms = append(forms, form{0xd1, 2})
	}
	if v >= math.MinInt8 {
		forms = append(forms, form{0xd0, 1})
	}
	if v >= -32 {
		forms = append(forms, form{byte(v), 0}, form{byte(v), 0})
	}
	f := forms[w.rng.Intn(len(forms))]
	w.b = append(w.b, f.code)
	w.b = appendBE(w.b, uint64(v), f.width)
}

func appendBE(b []byte, v uint64, width int) []byte {
	switch width {
	case 1:
		return append(b, byte(v))
	case 2:
		return binary.BigEndian.AppendUint16(b, uint16(v))
	case 4:
		return binary.BigEndian.AppendUint32(b, uint32(v))
	case 8:
		return binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// header writes a length in one of the forms of a family: fix is the
// fixed form's base code (0 if none) and fixMax its largest length; the
// 8-, 16- and 32-bit codes follow (0 if the family lacks one).
func (w *wire) header(n int, fix byte, fixMax int, c8, c16, c32 byte) {
	type form struct {
		code  byte
		width int
	}
	forms := []form{{c32, 4}}
	if n <= math.MaxUint16 {
		forms = append(forms, form{c16, 2})
	}
	if n <= math.MaxUint8 && c8 != 0 {
		forms = append(forms, form{c8, 1})
	}
	if n <= fixMax && fix != 0 {
		forms = append(forms, form{fix | byte(n), 0}, form{fix | byte(n), 0})
	}
	f := forms[w.rng.Intn(len(forms))]
	w.b = append(w.b, f.code)
	w.b = appendBE(w.b, uint64(n), f.width)
}

func (w *wire) str(s string) { w.blob([]byte(s), false) }

func (w *wire) blob(p []byte, preferBin bool) {
	if w.pick(4) != preferBin { // msgpack v5 reads either as a string or a []byte
		w.header(len(p), 0, 0, 0xc4, 0xc5, 0xc6)
	} else {
		w.header(len(p), 0xa0, 31, 0xd9, 0xda, 0xdb)
	}
	w.b = append(w.b, p...)
}

func (w *wire) bin(p []byte) {
	if p == nil {
		w.b = append(w.b, 0xc0)
		return
	}
	w.blob(p, true)
}

func (w *wire) bool(v bool) {
	switch {
	case v:
		w.b = append(w.b, 0xc3)
	case w.pick(3):
		w.b = append(w.b, 0xc0) // nil reads as false
	default:
		w.b = append(w.b, 0xc2)
	}
}

func (w *wire) arrayLen(n int) { w.header(n, 0x90, 15, 0, 0xdc, 0xdd) }
func (w *wire) mapLen(n int)   { w.header(n, 0x80, 15, 0, 0xde, 0xdf) }

// junk writes an arbitrary well-formed value at most one level deep.
func (w *wire) junk(depth int) {
	switch w.rng.Intn(10) {
	case 0:
		w.b = append(w.b, 0xc0)
	case 9:
		w.b = append(w.b, 0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18) // a float64
	case 1:
		w.int(randInt(w.rng))
	case 2:
		w.str(randString(w.rng))
	case 3:
		w.uint(w.rng.Uint64())
	case 4:
		w.b = append(w.b, 0xca, 0x3f, 0xc0, 0, 0) // a float32
	case 5:
		// Every ext form, with data that does not begin with a map
		// header (checkMsgpack refuses those).
		exts := [][]byte{
			{0xd4, 5, 1}, {0xd5, 5, 1, 2}, {0xd6, 0xff, 0, 0, 0, 1}, append([]byte{0xd7, 5}, make([]byte, 8)...),
			append([]byte{0xd8, 5}, make([]byte, 16)...), {0xc7, 2, 5, 0x90, 0x01}, {0xc8, 0, 2, 5, 0x90, 0x01},
			{0xc9, 0, 0, 0, 2, 5, 0x90, 0x01}, {0xc7, 0, 5},
		}
		w.b = append(w.b, exts[w.rng.Intn(len(exts))]...)
	case 6:
		if depth == 0 {
			n := w.rng.Intn(3)
			w.arrayLen(n)
			for range n {
				w.junk(depth + 1)
			}
			return
		}
		w.b = append(w.b, 0xc2)
	case 7:
		if depth == 0 {
			n := w.rng.Intn(3)
			w.mapLen(n)
			for range n {
				w.str(randString(w.rng))
				w.junk(depth + 1)
			}
			return
		}
		w.b = append(w.b, 0xc3)
	default:
		w.bin(randBlob(w.rng))
	}
}

// field is one map entry: its key and a function writing its value.
type field struct {
	key   string
	value func()
}

// fieldSet is a struct's fields as a reflection encoder sees them: the
// ones it writes, and the zero ones it leaves out (which fields may write
// anyway).
type fieldSet struct{ present, zero []field }

func (s *fieldSet) add(isZero bool, key string, value func()) {
	if isZero {
		s.zero = append(s.zero, field{key, value})
	} else {
		s.present = append(s.present, field{key, value})
	}
}

// fields writes a map of the present fields, in random order, with some
// of the omitted ones written as zero values and a few unknown keys.
func (w *wire) fields(present []field, zero []field) {
	for _, f := range zero {
		if w.pick(3) {
			present = append(present, f)
		}
	}
	for range w.rng.Intn(3) {
		present = append(present, field{"unknown-" + randString(w.rng), func() { w.junk(0) }})
	}
	if w.pick(20) {
		present = append(present, field{"", func() { w.junk(0) }}) // a nil key is skipped too
	}
	w.rng.Shuffle(len(present), func(i, j int) { present[i], present[j] = present[j], present[i] })
	w.mapLen(len(present))
	for _, f := range present {
		if f.key == "" && w.pick(2) {
			w.b = append(w.b, 0xc0)
		} else {
			w.str(f.key)
		}
		f.value()
	}
}

// wireList writes a list, nil as nil, each element with one.
func wireList[T any](w *wire, list []T, one func(T)) {
	if list == nil {
		w.b = append(w.b, 0xc0)
		return
	}
	w.arrayLen(len(list))
	for _, v := range list {
		one(v)
	}
}

func (w *wire) strs(ss []string) { wireList(w, ss, w.str) }

func (w *wire) values(vs [][]byte) { wireList(w, vs, w.bin) }
