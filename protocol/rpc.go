package protocol

import (
	"github.com/vmihailenco/msgpack/v5"
)

// RPC operations between nodes, on Subjects.NodeRPC.
const (
	// RPCRead asks a replica for its object of Key.
	RPCRead uint8 = 1
	// RPCWrite asks a replica to merge Obj into its object of Key and
	// answer once the result is durable.
	RPCWrite uint8 = 2
	// RPCCoordinate asks an owner of Key to coordinate a client put or
	// delete (Val, Ctx, Del, W) because the receiving node of the client
	// request is not an owner and so cannot issue the write's dot.
	RPCCoordinate uint8 = 3
)

// Request is one node-to-node message. It carries a batch of items so a
// node can send many operations to one peer in one NATS message; every
// item is answered by a Result with the same Tag in one Reply.
type Request struct {
	V     int    `msgpack:"v"`
	From  string `msgpack:"f"`
	Items []Item `msgpack:"i"`
}

// Item is one operation of a Request.
type Item struct {
	Tag uint64  `msgpack:"t"`
	Op  uint8   `msgpack:"o"`
	Key string  `msgpack:"k"`
	Obj *Object `msgpack:"b,omitempty"` // RPCWrite
	Val []byte  `msgpack:"val,omitempty"`
	Ctx Clock   `msgpack:"ctx,omitempty"`
	Del bool    `msgpack:"del,omitempty"`
	W   int     `msgpack:"w,omitempty"`
}

// Reply answers a Request, one Result per item, in any order.
type Reply struct {
	V       int      `msgpack:"v"`
	From    string   `msgpack:"f"`
	Results []Result `msgpack:"r"`
}

// Result is the outcome of one Item. Code 0 is success; otherwise Code,
// Name and Err describe an *Error.
type Result struct {
	Tag  uint64  `msgpack:"t"`
	Code int     `msgpack:"c,omitempty"`
	Name string  `msgpack:"n,omitempty"`
	Err  string  `msgpack:"e,omitempty"`
	Obj  *Object `msgpack:"b,omitempty"` // RPCRead: the replica's object (nil if absent)
	Ctx  Clock   `msgpack:"ctx,omitempty"`
}

// MaxBatch bounds the items of one Request.
const MaxBatch = 4096

// Error returns the error a Result carries, or nil.
func (r *Result) Error() error {
	if r.Code == 0 {
		return nil
	}
	return FromWire(r.Code, r.Name, r.Err)
}

// ResultError builds a failed Result from err.
func ResultError(tag uint64, err error) Result {
	code, name := Classify(err)
	return Result{Tag: tag, Code: code, Name: name, Err: err.Error()}
}

// EncodeRequest encodes r for the wire.
func EncodeRequest(r *Request) ([]byte, error) { return marshal(r) }

// EncodeReply encodes r for the wire.
func EncodeReply(r *Reply) ([]byte, error) { return marshal(r) }

// DecodeRequest decodes and validates a Request from the wire. Malformed
// input gives ErrMalformed (or a more specific 400 error), never a panic
// and never an allocation larger than the input justifies.
func DecodeRequest(b []byte) (*Request, error) {
	if err := CheckMsgpack(b, MaxDepth); err != nil {
		return nil, err
	}
	// A narrow pass first. msgpack v5 stores an integer into a uint8
	// field modulo 256, so op 257 would arrive as RPCRead: read the ops at
	// full width. The same pass checks the batch size before the full
	// decode allocates the items (104 bytes each, even for a 1-byte nil).
	var head requestHead
	if err := msgpack.Unmarshal(b, &head); err != nil {
		return nil, Errorf(ErrMalformed, "request: %v", err)
	}
	if head.V != Version {
		return nil, Errorf(ErrMalformed, "request: protocol version %d, want %d", head.V, Version)
	}
	if len(head.Items) == 0 || len(head.Items) > MaxBatch {
		return nil, Errorf(ErrMalformed, "request: %d items, want 1..%d", len(head.Items), MaxBatch)
	}
	for _, it := range head.Items {
		switch it.Op {
		case uint64(RPCRead), uint64(RPCWrite), uint64(RPCCoordinate):
		default:
			return nil, Errorf(ErrMalformed, "request: unknown op %d", it.Op)
		}
	}
	var r Request
	if err := msgpack.Unmarshal(b, &r); err != nil {
		return nil, Errorf(ErrMalformed, "request: %v", err)
	}
	if r.V != Version {
		return nil, Errorf(ErrMalformed, "request: protocol version %d, want %d", r.V, Version)
	}
	if err := ValidateNodeID(r.From); err != nil {
		return nil, Errorf(ErrMalformed, "request: bad sender id")
	}
	if len(r.Items) != len(head.Items) {
		return nil, Errorf(ErrMalformed, "request: inconsistent items")
	}
	for i := range r.Items {
		it := &r.Items[i]
		if uint64(it.Op) != head.Items[i].Op {
			return nil, Errorf(ErrMalformed, "request: inconsistent op")
		}
		if err := ValidateKey(it.Key); err != nil {
			return nil, err
		}
		if it.Op == RPCWrite && it.Obj == nil {
			return nil, Errorf(ErrMalformed, "request: write without object")
		}
		// Validate an object whatever the op: a handler must be able to
		// trust every field of a decoded Request.
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
	}
	return &r, nil
}

// requestHead is the part of a Request that DecodeRequest checks before
// decoding the rest; its fields have the tags of Request and Item.
type requestHead struct {
	V     int `msgpack:"v"`
	Items []struct {
		Op uint64 `msgpack:"o"`
	} `msgpack:"i"`
}

// DecodeReply decodes and validates a Reply from the wire.
func DecodeReply(b []byte) (*Reply, error) {
	if err := CheckMsgpack(b, MaxDepth); err != nil {
		return nil, err
	}
	var r Reply
	if err := msgpack.Unmarshal(b, &r); err != nil {
		return nil, Errorf(ErrMalformed, "reply: %v", err)
	}
	if r.V != Version {
		return nil, Errorf(ErrMalformed, "reply: protocol version %d, want %d", r.V, Version)
	}
	if err := ValidateNodeID(r.From); err != nil {
		return nil, Errorf(ErrMalformed, "reply: bad sender id")
	}
	if len(r.Results) > MaxBatch {
		return nil, Errorf(ErrMalformed, "reply: %d results, limit %d", len(r.Results), MaxBatch)
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
	}
	return &r, nil
}

// recordFormat is the first byte of every stored record, so the on-disk
// format can change without guessing.
const recordFormat = 1

// EncodeObject encodes an object for storage: a format byte, then msgpack.
func EncodeObject(o *Object) ([]byte, error) {
	return marshal(o, recordFormat)
}

// DecodeObject decodes and validates a stored object. A corrupt record
// gives ErrMalformed, so a bad page on disk is an error, not a crash.
func DecodeObject(b []byte) (*Object, error) {
	if len(b) < 1 || b[0] != recordFormat {
		return nil, Errorf(ErrMalformed, "record: unknown format")
	}
	b = b[1:]
	if err := CheckMsgpack(b, MaxDepth); err != nil {
		return nil, err
	}
	var o Object
	if err := msgpack.Unmarshal(b, &o); err != nil {
		return nil, Errorf(ErrMalformed, "record: %v", err)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &o, nil
}
