package protocol

import (
	"bytes"
	"errors"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The reference the hand-written codecs are held to: msgpack v5 encoding
// and decoding by reflection, as kvmesh did before its codecs were
// written by hand, over twins of the message types that carry the struct
// tags the types had then (the types themselves have none now). Dot keeps
// the strict codec it had, an array of exactly [node, counter].
//
// The *MatchesReflection tests compare the bytes of both encoders and the
// results of both decoders, so the hand-written codecs write standard
// msgpack that any library reads, and read what reflection read.

// compactMarshal encodes v as kvmesh's pooled reflection encoder did:
// with compact integers.
func compactMarshal(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.UseCompactInts(true)
	if err := e.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type reflDot struct {
	Node    string
	Counter uint64
}

var (
	_ msgpack.CustomEncoder = (*reflDot)(nil)
	_ msgpack.CustomDecoder = (*reflDot)(nil)
)

// EncodeMsgpack implements msgpack.CustomEncoder.
func (d *reflDot) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := e.EncodeString(d.Node); err != nil {
		return err
	}
	return e.EncodeUint(d.Counter)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (d *reflDot) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != 2 {
		return Errorf(ErrMalformed, "dot: array of %d items, want 2", n)
	}
	if d.Node, err = dec.DecodeString(); err != nil {
		return err
	}
	d.Counter, err = dec.DecodeUint64()
	return err
}

// reflSibling is a sibling's twin. Reflection wrote a sibling as the
// array [dot, value, deleted, time] (as_array) and refused any other
// length; the format has since grown an optional fifth element, the
// expiry, written only when it is not 0. The twin spells that by hand,
// as reflDot does, and is otherwise what as_array did: it reads nil for
// any element as its zero value, and nil for the whole sibling as the
// zero sibling (which no valid object holds).
type reflSibling struct {
	Dot     reflDot
	Value   []byte
	Deleted bool
	Time    int64
	Expires int64
}

var (
	_ msgpack.CustomEncoder = (*reflSibling)(nil)
	_ msgpack.CustomDecoder = (*reflSibling)(nil)
)

// EncodeMsgpack implements msgpack.CustomEncoder.
func (s *reflSibling) EncodeMsgpack(e *msgpack.Encoder) error {
	n := 4
	if s.Expires != 0 {
		n = 5
	}
	if err := e.EncodeArrayLen(n); err != nil {
		return err
	}
	if err := e.Encode(&s.Dot); err != nil {
		return err
	}
	if err := e.EncodeBytes(s.Value); err != nil {
		return err
	}
	if err := e.EncodeBool(s.Deleted); err != nil {
		return err
	}
	if err := e.EncodeInt(s.Time); err != nil {
		return err
	}
	if n == 5 {
		return e.EncodeInt(s.Expires)
	}
	return nil
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (s *reflSibling) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != 4 && n != 5 {
		return Errorf(ErrMalformed, "sibling: array of %d items, want 4 or 5", n)
	}
	if err := dec.Decode(&s.Dot); err != nil {
		return err
	}
	if s.Value, err = dec.DecodeBytes(); err != nil {
		return err
	}
	if s.Deleted, err = dec.DecodeBool(); err != nil {
		return err
	}
	if s.Time, err = dec.DecodeInt64(); err != nil || n == 4 {
		return err
	}
	s.Expires, err = dec.DecodeInt64()
	return err
}

type reflObject struct {
	_msgpack struct{} `msgpack:",as_array"`
	Clock    []reflDot
	Siblings []reflSibling
}

type reflRequest struct {
	V     int        `msgpack:"v"`
	From  string     `msgpack:"f"`
	Items []reflItem `msgpack:"i"`
}

type reflItem struct {
	Tag uint64      `msgpack:"t"`
	Op  uint8       `msgpack:"o"`
	Key string      `msgpack:"k"`
	Obj *reflObject `msgpack:"b,omitempty"`
	Val []byte      `msgpack:"val,omitempty"`
	Ctx []reflDot   `msgpack:"ctx,omitempty"`
	Del bool        `msgpack:"del,omitempty"`
	W   int         `msgpack:"w,omitempty"`

	Partition int    `msgpack:"p,omitempty"`
	After     string `msgpack:"a,omitempty"`
	Budget    int    `msgpack:"m,omitempty"`

	Level   int      `msgpack:"l,omitempty"`
	Nodes   []int    `msgpack:"tn,omitempty"`
	Hashes  []uint64 `msgpack:"th,omitempty"`
	Buckets []int    `msgpack:"bk,omitempty"`

	Hint string `msgpack:"h,omitempty"`
	PW   int    `msgpack:"pw,omitempty"`
	TTL  int64  `msgpack:"ttl,omitempty"`

	Parts  []int  `msgpack:"ps,omitempty"`
	Prefix string `msgpack:"px,omitempty"`
	Limit  int    `msgpack:"n,omitempty"`

	DigestOnly bool `msgpack:"do,omitempty"`
}

type reflReply struct {
	V       int          `msgpack:"v"`
	From    string       `msgpack:"f"`
	Results []reflResult `msgpack:"r"`
}

type reflResult struct {
	Tag  uint64      `msgpack:"t"`
	Code int         `msgpack:"c,omitempty"`
	Name string      `msgpack:"n,omitempty"`
	Err  string      `msgpack:"e,omitempty"`
	Obj  *reflObject `msgpack:"b,omitempty"`
	Ctx  []reflDot   `msgpack:"ctx,omitempty"`

	Recs []reflRecord `msgpack:"rec,omitempty"`
	Next string       `msgpack:"a,omitempty"`

	Level   int      `msgpack:"l,omitempty"`
	Nodes   []int    `msgpack:"tn,omitempty"`
	Hashes  []uint64 `msgpack:"th,omitempty"`
	Diff    []int    `msgpack:"d,omitempty"`
	Keys    []string `msgpack:"ks,omitempty"`
	Digests []uint64 `msgpack:"ds,omitempty"`
	Digest  uint64   `msgpack:"dg,omitempty"`
}

// reflRecord is the twin of a scan page's Record: an object's array
// with the key in front.
type reflRecord struct {
	_msgpack struct{} `msgpack:",as_array"`
	Key      string
	Clock    []reflDot
	Siblings []reflSibling
}

func toReflRecord(r Record) reflRecord {
	o := toReflObject(r.Obj)
	if o == nil {
		return reflRecord{Key: r.Key}
	}
	return reflRecord{Key: r.Key, Clock: o.Clock, Siblings: o.Siblings}
}

func fromReflRecord(r reflRecord) Record {
	return Record{Key: r.Key, Obj: fromReflObject(&reflObject{Clock: r.Clock, Siblings: r.Siblings})}
}

// convert converts each element of a list, keeping nil and empty apart,
// as the conversions below do.
func convert[A, B any](in []A, f func(A) B) []B {
	if in == nil {
		return nil
	}
	out := make([]B, len(in))
	for i, a := range in {
		out[i] = f(a)
	}
	return out
}

func toReflClock(c Clock) []reflDot { return convert(c, func(d Dot) reflDot { return reflDot(d) }) }

func fromReflClock(c []reflDot) Clock { return convert(c, func(d reflDot) Dot { return Dot(d) }) }

func toReflObject(o *Object) *reflObject {
	if o == nil {
		return nil
	}
	return &reflObject{Clock: toReflClock(o.Clock), Siblings: convert(o.Siblings, func(s Sibling) reflSibling {
		return reflSibling{Dot: reflDot(s.Dot), Value: s.Value, Deleted: s.Deleted, Time: s.Time, Expires: s.Expires}
	})}
}

func fromReflObject(r *reflObject) *Object {
	if r == nil {
		return nil
	}
	return &Object{Clock: fromReflClock(r.Clock), Siblings: convert(r.Siblings, func(s reflSibling) Sibling {
		return Sibling{Dot: Dot(s.Dot), Value: s.Value, Deleted: s.Deleted, Time: s.Time, Expires: s.Expires}
	})}
}

func toReflRequest(r *Request) *reflRequest {
	return &reflRequest{V: r.V, From: r.From, Items: convert(r.Items, func(it Item) reflItem {
		return reflItem{Tag: it.Tag, Op: it.Op, Key: it.Key, Obj: toReflObject(it.Obj), Val: it.Val,
			Ctx: toReflClock(it.Ctx), Del: it.Del, W: it.W, Partition: it.Partition, After: it.After, Budget: it.Budget,
			Level: it.Level, Nodes: it.Nodes, Hashes: it.Hashes, Buckets: it.Buckets, Hint: it.Hint, PW: it.PW, TTL: int64(it.TTL),
			Parts: it.Parts, Prefix: it.Prefix, Limit: it.Limit, DigestOnly: it.DigestOnly}
	})}
}

func fromReflRequest(r *reflRequest) *Request {
	return &Request{V: r.V, From: r.From, Items: convert(r.Items, func(it reflItem) Item {
		return Item{Tag: it.Tag, Op: it.Op, Key: it.Key, Obj: fromReflObject(it.Obj), Val: it.Val,
			Ctx: fromReflClock(it.Ctx), Del: it.Del, W: it.W, Partition: it.Partition, After: it.After, Budget: it.Budget,
			Level: it.Level, Nodes: it.Nodes, Hashes: it.Hashes, Buckets: it.Buckets, Hint: it.Hint, PW: it.PW, TTL: time.Duration(it.TTL),
			Parts: it.Parts, Prefix: it.Prefix, Limit: it.Limit, DigestOnly: it.DigestOnly}
	})}
}

func toReflReply(r *Reply) *reflReply {
	return &reflReply{V: r.V, From: r.From, Results: convert(r.Results, func(res Result) reflResult {
		return reflResult{Tag: res.Tag, Code: res.Code, Name: res.Name, Err: res.Err,
			Obj: toReflObject(res.Obj), Ctx: toReflClock(res.Ctx), Next: res.Next,
			Recs: convert(res.Recs, toReflRecord), Level: res.Level, Nodes: res.Nodes, Hashes: res.Hashes,
			Diff: res.Diff, Keys: res.Keys, Digests: res.Digests, Digest: res.Digest}
	})}
}

func fromReflReply(r *reflReply) *Reply {
	return &Reply{V: r.V, From: r.From, Results: convert(r.Results, func(res reflResult) Result {
		return Result{Tag: res.Tag, Code: res.Code, Name: res.Name, Err: res.Err,
			Obj: fromReflObject(res.Obj), Ctx: fromReflClock(res.Ctx), Next: res.Next,
			Recs: convert(res.Recs, fromReflRecord), Level: res.Level, Nodes: res.Nodes, Hashes: res.Hashes,
			Diff: res.Diff, Keys: res.Keys, Digests: res.Digests, Digest: res.Digest}
	})}
}

// refDecodeRequest is DecodeRequest as it was with reflection: the
// reference the hand-written decoder is held to.
func refDecodeRequest(b []byte) (*Request, error) {
	if err := checkMsgpack(b, MaxDepth); err != nil {
		return nil, err
	}
	var head struct {
		V     int `msgpack:"v"`
		Items []struct {
			Op uint64 `msgpack:"o"`
		} `msgpack:"i"`
	}
	if err := msgpack.Unmarshal(b, &head); err != nil {
		return nil, Errorf(ErrMalformed, "request: %v", err)
	}
	if head.V != Version {
		return nil, Errorf(ErrMalformed, "request: protocol version %d", head.V)
	}
	if len(head.Items) == 0 || len(head.Items) > MaxBatch {
		return nil, Errorf(ErrMalformed, "request: %d items", len(head.Items))
	}
	for _, it := range head.Items {
		if it.Op < uint64(RPCRead) || it.Op > uint64(RPCKeys) {
			return nil, Errorf(ErrMalformed, "request: unknown op %d", it.Op)
		}
	}
	var rr reflRequest
	if err := msgpack.Unmarshal(b, &rr); err != nil {
		return nil, Errorf(ErrMalformed, "request: %v", err)
	}
	r := fromReflRequest(&rr)
	if r.V != Version || ValidateNodeID(r.From) != nil || len(r.Items) != len(head.Items) {
		return nil, Errorf(ErrMalformed, "request: bad envelope")
	}
	for i := range r.Items {
		it := &r.Items[i]
		if uint64(it.Op) != head.Items[i].Op {
			return nil, Errorf(ErrMalformed, "request: inconsistent op")
		}
		if it.Op == RPCScan || it.Op == RPCTree || it.Op == RPCBuckets || it.Op == RPCKeys {
			if it.Key != "" {
				return nil, Errorf(ErrMalformed, "request: op with a key")
			}
		} else if err := ValidateKey(it.Key); err != nil {
			return nil, err
		}
		if len(it.Nodes) > MaxTreeNodes || len(it.Hashes) > MaxTreeNodes || len(it.Buckets) > MaxTreeNodes {
			return nil, Errorf(ErrMalformed, "request: too many tree nodes")
		}
		if err := validFrontier("request", it.Level, it.Nodes, it.Hashes); err != nil {
			return nil, err
		}
		if err := ascending("request: buckets", it.Buckets); err != nil {
			return nil, err
		}
		if it.Op == RPCWrite && it.Obj == nil {
			return nil, Errorf(ErrMalformed, "request: write without object")
		}
		if it.Obj != nil {
			if err := it.Obj.Validate(); err != nil {
				return nil, err
			}
		}
		if err := it.Ctx.Validate(); err != nil {
			return nil, err
		}
		if it.W < 0 {
			return nil, Errorf(ErrMalformed, "request: write quorum %d", it.W)
		}
		if it.Partition < 0 || it.Partition >= MaxPartitions || it.Budget < 0 {
			return nil, Errorf(ErrMalformed, "request: bad scan")
		}
		if it.After != "" {
			if err := ValidateKey(it.After); err != nil {
				return nil, err
			}
		}
		if it.Hint != "" && (it.Op != RPCWrite || ValidateNodeID(it.Hint) != nil) {
			return nil, Errorf(ErrMalformed, "request: bad hint")
		}
		if it.PW < 0 || it.PW > it.W {
			return nil, Errorf(ErrMalformed, "request: bad pw")
		}
		if it.TTL < 0 || it.TTL > MaxTTL || it.TTL != 0 && it.Del {
			return nil, Errorf(ErrMalformed, "request: bad ttl")
		}
		if len(it.Parts) > MaxPartitions {
			return nil, Errorf(ErrMalformed, "request: too many partitions")
		}
		if err := validKeysItem(it); err != nil {
			return nil, err
		}
		if err := validDigestRead(it); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// refDecodeReply is DecodeReply as it was with reflection.
func refDecodeReply(b []byte) (*Reply, error) {
	if err := checkMsgpack(b, MaxDepth); err != nil {
		return nil, err
	}
	var rr reflReply
	if err := msgpack.Unmarshal(b, &rr); err != nil {
		return nil, Errorf(ErrMalformed, "reply: %v", err)
	}
	r := fromReflReply(&rr)
	if r.V != Version || ValidateNodeID(r.From) != nil || len(r.Results) > MaxBatch {
		return nil, Errorf(ErrMalformed, "reply: bad envelope")
	}
	for i := range r.Results {
		res := &r.Results[i]
		if res.Obj != nil {
			if err := res.Obj.Validate(); err != nil {
				return nil, err
			}
		}
		if err := res.Ctx.Validate(); err != nil {
			return nil, err
		}
		if len(res.Recs) > MaxScanRecords {
			return nil, Errorf(ErrMalformed, "reply: %d records", len(res.Recs))
		}
		for _, rec := range res.Recs {
			if err := ValidateKey(rec.Key); err != nil {
				return nil, err
			}
			if err := rec.Obj.Validate(); err != nil {
				return nil, err
			}
		}
		if err := validScan(res.Recs, res.Next); err != nil {
			return nil, err
		}
		if len(res.Nodes) > MaxTreeNodes || len(res.Hashes) > MaxTreeNodes || len(res.Diff) > MaxTreeNodes ||
			len(res.Keys) > MaxBucketKeys || len(res.Digests) > MaxBucketKeys {
			return nil, Errorf(ErrMalformed, "reply: too many tree nodes or keys")
		}
		if err := validFrontier("reply", res.Level, res.Nodes, res.Hashes); err != nil {
			return nil, err
		}
		if err := ascending("reply: differing buckets", res.Diff); err != nil {
			return nil, err
		}
		if err := validBucketKeys(res.Keys, res.Digests); err != nil {
			return nil, err
		}
		if res.Digest != 0 && res.Obj != nil {
			return nil, Errorf(ErrMalformed, "reply: a digest with an object")
		}
	}
	return r, nil
}

// refDecodeClock is the decoder of a context's clock as it was with
// reflection.
func refDecodeClock(b []byte) (Clock, error) {
	if err := checkMsgpack(b, MaxDepth); err != nil {
		return nil, Errorf(ErrInvalidContext, "context: %v", err)
	}
	var rc []reflDot
	if err := msgpack.Unmarshal(b, &rc); err != nil {
		return nil, Errorf(ErrInvalidContext, "context: %v", err)
	}
	c := fromReflClock(rc)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// refDecodeSiblings is DecodeSiblings as it was with reflection.
func refDecodeSiblings(b []byte) ([][]byte, error) {
	if err := checkMsgpack(b, MaxDepth); err != nil {
		return nil, err
	}
	var vs [][]byte
	if err := msgpack.Unmarshal(b, &vs); err != nil {
		return nil, Errorf(ErrMalformed, "siblings: %v", err)
	}
	return vs, nil
}

// structKeys are the keys of the structs reflection decoded.
var structKeys = map[string]bool{"v": true, "f": true, "i": true, "r": true,
	"t": true, "o": true, "k": true, "b": true, "val": true, "ctx": true, "del": true, "w": true,
	"c": true, "n": true, "e": true, "m": true, "s": true, "p": true, "a": true, "rec": true, "h": true, "pw": true, "ttl": true}

// hasRepeatedKey reports whether a map anywhere in b, which checkMsgpack
// accepted, has a struct key twice (str and bin count as the same).
func hasRepeatedKey(b []byte) bool {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	var walk func() bool
	walk = func() bool {
		c, err := d.PeekCode()
		if err != nil {
			return false
		}
		switch {
		case c >= 0x80 && c <= 0x8f || c == 0xde || c == 0xdf:
			n, err := d.DecodeMapLen()
			if err != nil {
				return false
			}
			seen := map[string]bool{}
			for range n {
				k, err := d.DecodeString()
				if err != nil {
					return false // not a struct key: reflection fails anyway
				}
				if seen[k] && structKeys[k] {
					return true
				}
				seen[k] = true
				if walk() {
					return true
				}
			}
		case c >= 0x90 && c <= 0x9f || c == 0xdc || c == 0xdd:
			n, err := d.DecodeArrayLen()
			if err != nil {
				return false
			}
			for range n {
				if walk() {
					return true
				}
			}
		default:
			_ = d.Skip()
		}
		return false
	}
	if checkMsgpack(b, MaxDepth) != nil {
		return false
	}
	return walk()
}

// isArray reports whether b begins with an array header: a struct spelled
// as the array of its fields, which reflection read and no kvmesh encoder
// wrote.
func isArray(b []byte) bool {
	return len(b) > 0 && (b[0]&0xf0 == 0x90 || b[0] == 0xdc || b[0] == 0xdd)
}

// assertSameDecode: dec accepts b exactly when ref, its reflection
// reference, does, with an equal result, and its errors are 400 errors.
// With onPurpose, dec may refuse what ref accepted: b is a form no kvmesh
// encoder wrote and the hand-written decoders refuse by design (a
// repeated key, a struct spelled as an array).
func assertSameDecode[T any](t testing.TB, what string, b []byte, dec, ref func([]byte) (T, error), onPurpose bool) {
	t.Helper()
	got, err := dec(b)
	want, werr := ref(b)
	switch {
	case err == nil && werr != nil:
		t.Fatalf("%s: % x accepted, reflection refused it: %v", what, Clip(string(b), 200), werr)
	case err != nil && werr == nil && !onPurpose:
		t.Fatalf("%s: % x refused, reflection accepted it: %v", what, Clip(string(b), 200), err)
	case err != nil:
		assertWireError(t, what, err)
	case !reflect.DeepEqual(got, want):
		t.Fatalf("%s: % x:\n hand-written %+v\n reflection   %+v", what, Clip(string(b), 200), got, want)
	}
}

// FuzzCodecMatchesReflection holds the hand-written decoders to the
// reflection ones on arbitrary bytes: whatever they accept, reflection
// accepted with an equal value, and they refuse what reflection accepted
// only for the forms they refuse by design (see assertSameDecode).
func FuzzCodecMatchesReflection(f *testing.F) {
	rng := rand.New(rand.NewSource(1))
	for range 8 {
		w := &wire{rng: rng}
		w.request(randRequest(rng))
		f.Add(w.b)
		w.b = nil
		w.reply(randReply(rng))
		f.Add(w.b)
		w.b = nil
		w.clock(randClock(rng))
		f.Add(w.b)
		w.b = nil
		w.values(randValues(rng))
		f.Add(w.b)
		w.b = nil
		w.request(randScanRequest(rng))
		f.Add(w.b)
		w.b = nil
		w.reply(randScanReply(rng))
		f.Add(w.b)
	}
	for range 8 {
		w := &wire{rng: rng}
		w.request(withTTLs(rng, randRequest(rng)))
		f.Add(w.b)
		w.b = nil
		w.reply(withExpiries(rng, randReply(rng)))
		f.Add(w.b)
	}
	addHostile(f, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		assertSameDecode(t, "request", b, DecodeRequest, refDecodeRequest, hasRepeatedKey(b))
		assertSameDecode(t, "reply", b, DecodeReply, refDecodeReply, true)
		assertSameDecode(t, "clock", b, decodeClock, refDecodeClock, false)
		assertSameDecode(t, "siblings", b, DecodeSiblings, refDecodeSiblings, false)
	})
}

// assertRoundTrip checks that req and rep decode to what was encoded,
// and as the reflection reference decodes them.
func assertRoundTrip(t *testing.T, what string, req *Request, rep *Reply) {
	t.Helper()
	b, _ := EncodeRequest(req)
	got, err := DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, req) {
		t.Errorf("%s request:\n got %+v\nwant %+v", what, got, req)
	}
	assertSameDecode(t, what+" request", b, DecodeRequest, refDecodeRequest, false)
	b, _ = EncodeReply(rep)
	gotRep, err := DecodeReply(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotRep, rep) {
		t.Errorf("%s reply:\n got %+v\nwant %+v", what, gotRep, rep)
	}
	assertSameDecode(t, what+" reply", b, DecodeReply, refDecodeReply, false)
}

// assertRequestsRefused checks that the decoder refuses valid() changed
// by each case, with a 400 wire error (want, if not nil), as the
// reflection reference does.
func assertRequestsRefused(t *testing.T, valid func() *Request, cases map[string]func(r *Request), want error) {
	t.Helper()
	for name, mutate := range cases {
		r := valid()
		mutate(r)
		b, _ := EncodeRequest(r)
		assertRefused(t, "request "+name, b, DecodeRequest, want)
		assertSameDecode(t, "request "+name, b, DecodeRequest, refDecodeRequest, false)
	}
}

// assertRepliesRefused is assertRequestsRefused for replies; ref, if not
// nil, also compares each encoding's decoding with the reference.
func assertRepliesRefused(t *testing.T, valid func() *Reply, cases map[string]func(r *Reply), want error, ref func(what string, b []byte)) {
	t.Helper()
	for name, mutate := range cases {
		r := valid()
		mutate(r)
		b, _ := EncodeReply(r)
		assertRefused(t, "reply "+name, b, DecodeReply, want)
		if ref != nil {
			ref("reply "+name, b)
		}
	}
}

// assertRefused checks that dec refuses b, returning no value and a 400
// wire error (want, if not nil).
func assertRefused[T comparable](t *testing.T, what string, b []byte, dec func([]byte) (T, error), want error) {
	t.Helper()
	var zero T
	got, err := dec(b)
	if err == nil || got != zero {
		t.Errorf("%s: accepted", what)
		return
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
	assertWireError(t, what, err)
}
