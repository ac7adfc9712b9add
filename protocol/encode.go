package protocol

import (
	"bytes"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// encoder is a reusable msgpack encoder writing compact integers (a clock
// counter of 1 takes one byte, not nine).
type encoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.UseCompactInts(true)
	return e
}}

// marshal encodes v with a pooled encoder; prefix bytes, if any, come
// first. The result is a fresh slice the caller owns.
func marshal(v any, prefix ...byte) ([]byte, error) {
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.buf.Reset()
	e.buf.Write(prefix)
	if err := e.enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.Clone(e.buf.Bytes()), nil
}
