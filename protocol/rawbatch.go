package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// Raw batches: many gets, puts and deletes in one request on
// Subjects.KVBatch ("<prefix>.kv.batch"), for clients without the Go
// client's pipelining: a shell script with the nats CLI, a service in
// any language. The node the client is connected to coordinates every
// operation as a single request's, and answers them all in one reply,
// in the request's order. The body is JSON, or msgpack; the reply is in
// the request's encoding. A body whose first byte other than white
// space is '{' is JSON:
//
//	{"ops":[{"op":"put","key":"user.1","value":"ada","w":"2","ttl":"1h"},
//	        {"op":"put","key":"img.1","value_base64":"iVBORw0K..."},
//	        {"op":"get","key":"user.1","r":"one"},
//	        {"op":"del","key":"user.2","context":"..."},
//	        {"op":"put","key":"lock.a","value":"me","if":"absent"}]}
//
// op is get, put or del; key any valid key (it travels in the body, so
// keys that are not subject-safe need no header); a put's value is
// "value" (UTF-8 text) or "value_base64" (base64, for bytes), one of them;
// r (get) and w (put, del) are the Kvmesh-R and Kvmesh-W values;
// context, ttl and if (put, del) those of Kvmesh-Context, Kvmesh-TTL and
// Kvmesh-If: a conditional write that loses is a 409 result with the
// key's context. The msgpack form takes no condition (ClientItem.If).
// The reply:
//
//	{"results":[{"status":200,"context":"..."},
//	            {"status":200,"context":"..."},
//	            {"status":200,"context":"...","siblings":1,"values":["ada"]},
//	            {"status":404,"error":"key not found","name":"not_found"}]}
//
// status is the HTTP-style code of Nats-Service-Error-Code (200 on
// success); a get's values are "values" when they are all valid UTF-8,
// else "values_base64" (base64); "expires" as Kvmesh-Expires. Any other body
// is msgpack: a ClientBatch (clientbatch.go; tags are the client's,
// results carry them) of up to MaxRawBatch items, answered by one
// ClientBatchReply. A body that does not decode, or has no operation or
// more than MaxRawBatch, is refused whole (400), as a request.

// MaxRawBatch bounds the operations of one raw batch.
const MaxRawBatch = 1024

// rawItemList and rawResultList: a raw msgpack batch's items and its
// reply's results, up to MaxRawBatch.
var (
	rawItemList   = listSpec{name: "items", minSize: 4, min: 1, max: MaxRawBatch}
	rawResultList = listSpec{name: "results", minSize: 1, max: MaxRawBatch}
)

// DecodeRawBatchReply decodes the msgpack reply of a raw batch: a
// ClientBatchReply of up to MaxRawBatch results. Errors are
// ErrMalformed.
func DecodeRawBatchReply(b []byte) (*ClientBatchReply, error) {
	d := decoder{b: b, what: "batch reply"}
	return decodeMessage(&d, func() (*ClientBatchReply, error) { return d.clientBatchReplyOf(rawResultList) })
}

// RawBatch is the JSON form of a raw batch.
type RawBatch struct {
	Ops []RawOp `json:"ops"`
}

// RawOp is one operation of a RawBatch.
type RawOp struct {
	Op      string  `json:"op"`
	Key     string  `json:"key"`
	Value   *string `json:"value,omitempty"`
	Value64 *string `json:"value_base64,omitempty"`
	R       string  `json:"r,omitempty"`
	W       string  `json:"w,omitempty"`
	Context string  `json:"context,omitempty"`
	TTL     string  `json:"ttl,omitempty"`
	If      string  `json:"if,omitempty"`
}

// RawResult is one operation's result in the JSON reply.
type RawResult struct {
	Status   int      `json:"status"`
	Error    string   `json:"error,omitempty"`
	Name     string   `json:"name,omitempty"`
	Context  string   `json:"context,omitempty"`
	Siblings int      `json:"siblings,omitempty"`
	Values   []string `json:"values,omitempty"`
	Values64 []string `json:"values_base64,omitempty"`
	Expires  string   `json:"expires,omitempty"`
}

// RawBatchReply is the JSON reply of a raw batch.
type RawBatchReply struct {
	Results []RawResult `json:"results"`
}

// IsJSON reports whether a raw batch body is JSON: its first byte other
// than white space is '{'.
func IsJSON(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// DecodeRawBatch decodes a raw batch body, JSON or msgpack (IsJSON),
// into client items tagged with their index + 1 (JSON; msgpack items
// keep their tags). It checks the shape: 1..MaxRawBatch items, known
// ops, no unknown JSON fields, a put's one value (valid base64 for
// value_base64), no value on a get or a delete; keys, quorums, contexts and
// TTLs are the node's to check, item by item. Errors are ErrMalformed
// or ErrInvalidOption (400).
func DecodeRawBatch(b []byte) ([]ClientItem, error) {
	if !IsJSON(b) {
		d := decoder{b: b, what: "batch"}
		cb, err := decodeMessage(&d, func() (*ClientBatch, error) { return d.clientBatchOf(rawItemList) })
		if err != nil {
			return nil, err
		}
		return cb.Items, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rb RawBatch
	if err := dec.Decode(&rb); err != nil {
		return nil, Errorf(ErrMalformed, "batch: %v", err)
	}
	if dec.More() {
		return nil, Errorf(ErrMalformed, "batch: data after the JSON object")
	}
	if len(rb.Ops) == 0 || len(rb.Ops) > MaxRawBatch {
		return nil, Errorf(ErrMalformed, "batch: %d ops, want 1..%d", len(rb.Ops), MaxRawBatch)
	}
	items := make([]ClientItem, len(rb.Ops))
	for i, o := range rb.Ops {
		it := ClientItem{Tag: uint64(i + 1), Key: o.Key, Context: o.Context, TTL: o.TTL, If: o.If}
		bad := func(format string, args ...any) ([]ClientItem, error) {
			return nil, Errorf(ErrInvalidOption, "batch: op %d: "+format, append([]any{i}, args...)...)
		}
		switch o.Op {
		case OpGet:
			it.Op, it.Quorum = BatchGet, o.R
		case OpPut:
			it.Op, it.Quorum = BatchPut, o.W
		case OpDel:
			it.Op, it.Quorum = BatchDel, o.W
		default:
			return bad("op %q: want get, put or del", Clip(o.Op, 16))
		}
		if o.R != "" && it.Op != BatchGet || (o.W != "" || o.If != "") && it.Op == BatchGet {
			return bad("r is for gets, w and if for puts and deletes")
		}
		switch {
		case it.Op != BatchPut && (o.Value != nil || o.Value64 != nil):
			return bad("a value on a %s", o.Op)
		case it.Op == BatchPut && (o.Value == nil) == (o.Value64 == nil):
			return bad("a put needs one of value and value_base64")
		case o.Value != nil:
			it.Value = []byte(*o.Value)
		case o.Value64 != nil:
			v, err := base64.StdEncoding.DecodeString(*o.Value64)
			if err != nil {
				return bad("value_base64: %v", err)
			}
			it.Value = v
		}
		items[i] = it
	}
	return items, nil
}

// EncodeRawBatchReply encodes the results of a raw batch, in the order
// of its items, in the encoding of the request (asJSON): JSON as
// RawBatchReply, or msgpack as one ClientBatchReply from node.
func EncodeRawBatchReply(results []ClientResult, node string, asJSON bool) []byte {
	if !asJSON {
		b, _ := EncodeClientBatchReply(&ClientBatchReply{V: Version, From: node, Results: results})
		return b
	}
	rr := RawBatchReply{Results: make([]RawResult, len(results))}
	for i, r := range results {
		out := RawResult{Status: 200, Context: r.Context, Siblings: r.Siblings}
		if r.Code != 0 {
			out.Status, out.Name, out.Error = r.Code, r.Name, r.Err
		}
		if r.Expires != 0 {
			out.Expires = time.Unix(0, r.Expires).UTC().Format(time.RFC3339Nano)
		}
		text := true
		for _, v := range r.Values {
			text = text && utf8.Valid(v)
		}
		for _, v := range r.Values {
			if text {
				out.Values = append(out.Values, string(v))
			} else {
				out.Values64 = append(out.Values64, base64.StdEncoding.EncodeToString(v))
			}
		}
		rr.Results[i] = out
	}
	b, _ := json.Marshal(rr)
	return b
}

// RawResultSize estimates what result r adds to a raw batch reply, for
// the node to keep the reply within a message: its values as base64
// plus its other fields.
func RawResultSize(r *ClientResult) int {
	n := 256 + len(r.Context) + len(r.Err)
	for _, v := range r.Values {
		n += base64.StdEncoding.EncodedLen(len(v)) + 8
	}
	return n + len(strconv.Itoa(r.Siblings))
}
