package protocol

import (
	"github.com/vmihailenco/msgpack/v5"
)

// Hand-written msgpack codecs for the records every write and read
// decodes, several times on each node. Reflection was about a seventh of
// a loaded node's CPU. The wire form is exactly what the struct tags
// describe (arrays: Dot [node, counter]; Sibling [dot, value, deleted,
// time]; Object [clock, siblings]), so stored records and peers of either
// kind agree; TestRecordCodecMatchesReflection pins that. Callers check
// structure (CheckMsgpack) before decoding, so a declared length is never
// larger than the bytes behind it.

var (
	_ msgpack.CustomEncoder = (*Dot)(nil)
	_ msgpack.CustomDecoder = (*Dot)(nil)
	_ msgpack.CustomEncoder = (*Sibling)(nil)
	_ msgpack.CustomDecoder = (*Sibling)(nil)
	_ msgpack.CustomEncoder = (*Object)(nil)
	_ msgpack.CustomDecoder = (*Object)(nil)
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

// EncodeMsgpack implements msgpack.CustomEncoder.
func (s *Sibling) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(4); err != nil {
		return err
	}
	if err := s.Dot.EncodeMsgpack(e); err != nil {
		return err
	}
	if err := e.EncodeBytes(s.Value); err != nil {
		return err
	}
	if err := e.EncodeBool(s.Deleted); err != nil {
		return err
	}
	return e.EncodeInt(s.Time)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (s *Sibling) DecodeMsgpack(dec *msgpack.Decoder) error {
	if err := arrayLen(dec, 4, "sibling"); err != nil {
		return err
	}
	if err := s.Dot.DecodeMsgpack(dec); err != nil {
		return err
	}
	var err error
	if s.Value, err = dec.DecodeBytes(); err != nil {
		return err
	}
	if s.Deleted, err = dec.DecodeBool(); err != nil {
		return err
	}
	s.Time, err = dec.DecodeInt64()
	return err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (o *Object) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := encodeClock(e, o.Clock); err != nil {
		return err
	}
	if o.Siblings == nil {
		if err := e.EncodeNil(); err != nil {
			return err
		}
		return nil
	}
	if err := e.EncodeArrayLen(len(o.Siblings)); err != nil {
		return err
	}
	for i := range o.Siblings {
		if err := o.Siblings[i].EncodeMsgpack(e); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (o *Object) DecodeMsgpack(dec *msgpack.Decoder) error {
	if err := arrayLen(dec, 2, "object"); err != nil {
		return err
	}
	var err error
	if o.Clock, err = decodeClock(dec); err != nil {
		return err
	}
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n < 0 {
		o.Siblings = nil
		return nil
	}
	o.Siblings = make([]Sibling, n)
	for i := range o.Siblings {
		if err := o.Siblings[i].DecodeMsgpack(dec); err != nil {
			return err
		}
	}
	return nil
}

func encodeClock(e *msgpack.Encoder, c Clock) error {
	if c == nil {
		return e.EncodeNil()
	}
	if err := e.EncodeArrayLen(len(c)); err != nil {
		return err
	}
	for i := range c {
		if err := c[i].EncodeMsgpack(e); err != nil {
			return err
		}
	}
	return nil
}

func decodeClock(dec *msgpack.Decoder) (Clock, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	c := make(Clock, n)
	for i := range c {
		if err := c[i].DecodeMsgpack(dec); err != nil {
			return nil, err
		}
	}
	return c, nil
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
