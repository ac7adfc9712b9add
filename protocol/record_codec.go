package protocol

import (
	"github.com/vmihailenco/msgpack/v5"
)

// The msgpack codec of a Dot, for the clocks that go through msgpack
// itself (the causal context, EncodeContext/DecodeContext): the array
// [node, counter] the struct tags describe, decoded strictly. Objects and
// RPC messages have their own hand-written codec (rpc_codec.go:
// appendObject, decoder.objectOrNil), which writes the same array form;
// TestRecordCodecMatchesReflection pins that. Callers check structure
// (CheckMsgpack) before decoding, so a declared length is never larger
// than the bytes behind it.

var (
	_ msgpack.CustomEncoder = (*Dot)(nil)
	_ msgpack.CustomDecoder = (*Dot)(nil)
)

// EncodeMsgpack implements msgpack.CustomEncoder.
func (d *Dot) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := e.EncodeString(d.Node); err != nil {
		return err
	}
	return e.EncodeUint(d.Counter)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (d *Dot) DecodeMsgpack(dec *msgpack.Decoder) error {
	if err := arrayLen(dec, 2, "dot"); err != nil {
		return err
	}
	var err error
	if d.Node, err = dec.DecodeString(); err != nil {
		return err
	}
	d.Counter, err = dec.DecodeUint64()
	return err
}

// arrayLen reads an array header and requires exactly n items.
func arrayLen(dec *msgpack.Decoder, n int, what string) error {
	got, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if got != n {
		return Errorf(ErrMalformed, "%s: array of %d items, want %d", what, got, n)
	}
	return nil
}
