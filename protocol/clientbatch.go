package protocol

import "strings"

// Client batches: the Go client sends the calls queued for one node in one
// message on Subjects.KVNodeBatch, and the node answers them in one reply
// per kind (gets, writes), so the per-message cost of NATS is paid once
// per batch instead of once per call (as node-to-node RPC does, see
// rpc.go). The body is msgpack, encoded and decoded by hand with the
// primitives of rpc_codec.go:
//
//	request {v: Version, i: [{t: tag, o: op, k: key, d: value, q: quorum, c: context}]}
//	reply   {v: Version, f: node, r: [{t: tag, c: code, n: name, e: message,
//	         x: context, s: siblings, vals: [values]}]}
//
// A reply result with tag 0 and an error answers a message that could not
// be decoded at all: it stands for every item of the batch.

// Client batch operations (the "o" of an item).
const (
	BatchGet uint8 = 1
	BatchPut uint8 = 2
	BatchDel uint8 = 3
)

// MaxClientBatch bounds the items of one ClientBatch.
const MaxClientBatch = 256

// ClientBatch is a batch of client operations for one node.
type ClientBatch struct {
	V     int
	Items []ClientItem
}

// ClientItem is one client operation of a ClientBatch. Quorum is the R of
// a get or the W of a put or delete, as the Kvmesh-R and Kvmesh-W headers
// carry it; Context is the causal context as the Kvmesh-Context header
// carries it. The node validates the key, quorum and context of each
// item, so one bad item fails alone.
type ClientItem struct {
	Tag     uint64
	Op      uint8
	Key     string
	Value   []byte // BatchPut
	Quorum  string
	Context string
}

// ClientBatchReply answers some or all items of a ClientBatch, in any
// order; a batch may be answered by several replies.
type ClientBatchReply struct {
	V       int
	From    string // the node that coordinated the operations
	Results []ClientResult
}

// ClientResult is the outcome of one ClientItem. Code 0 is success;
// otherwise Code, Name and Err describe an *Error (see Classify). Context
// is the causal context of a get (also with ErrKeyNotFound) or of a put;
// Siblings and Values are a get's live sibling count and values.
type ClientResult struct {
	Tag      uint64
	Code     int
	Name     string
	Err      string
	Context  string
	Siblings int
	Values   [][]byte
}

// Error returns the error a ClientResult carries, or nil.
func (r *ClientResult) Error() error {
	if r.Code == 0 {
		return nil
	}
	return FromWire(r.Code, r.Name, r.Err)
}

// ClientResultError is the result of item tag failing with err. The
// message is one line, as in the Nats-Service-Error header.
func ClientResultError(tag uint64, err error) ClientResult {
	code, name := Classify(err)
	msg := strings.NewReplacer("\r", " ", "\n", "; ").Replace(err.Error())
	return ClientResult{Tag: tag, Code: code, Name: name, Err: msg}
}

// EncodeClientBatch encodes b. It does not validate it.
func EncodeClientBatch(b *ClientBatch) ([]byte, error) {
	return encodeWith(func(out []byte) []byte { return appendClientBatch(out, b) }), nil
}

// EncodeClientBatchReply encodes r. It does not validate it.
func EncodeClientBatchReply(r *ClientBatchReply) ([]byte, error) {
	return encodeWith(func(out []byte) []byte { return appendClientBatchReply(out, r) }), nil
}

// DecodeClientBatch decodes a ClientBatch from untrusted bytes: the
// version, 1..MaxClientBatch items and each item's op are checked; keys,
// quorums and contexts are left to the node, item by item. Errors are
// ErrMalformed.
func DecodeClientBatch(b []byte) (*ClientBatch, error) {
	return decodeMessage(b, "client batch", (*decoder).clientBatch)
}

// DecodeClientBatchReply decodes a ClientBatchReply from untrusted bytes.
// Errors are ErrMalformed.
func DecodeClientBatchReply(b []byte) (*ClientBatchReply, error) {
	return decodeMessage(b, "client batch reply", (*decoder).clientBatchReply)
}

// ---- encoding ----

func appendClientBatch(b []byte, r *ClientBatch) []byte {
	b = append(b, 0x82, 0xa1, 'v')
	b = appendInt(b, int64(r.V))
	b = append(b, 0xa1, 'i')
	b = appendArrayLen(b, len(r.Items))
	for i := range r.Items {
		b = appendClientItem(b, &r.Items[i])
	}
	return b
}

func appendClientItem(b []byte, it *ClientItem) []byte {
	n := 3
	for _, present := range [...]bool{it.Value != nil, it.Quorum != "", it.Context != ""} {
		if present {
			n++
		}
	}
	b = append(b, 0x80|byte(n), 0xa1, 't')
	b = appendUint(b, it.Tag)
	b = append(b, 0xa1, 'o')
	b = appendUint(b, uint64(it.Op))
	b = append(b, 0xa1, 'k')
	b = appendStr(b, it.Key)
	if it.Value != nil {
		b = append(b, 0xa1, 'd')
		b = appendBin(b, it.Value)
	}
	if it.Quorum != "" {
		b = append(b, 0xa1, 'q')
		b = appendStr(b, it.Quorum)
	}
	if it.Context != "" {
		b = append(b, 0xa1, 'c')
		b = appendStr(b, it.Context)
	}
	return b
}

func appendClientBatchReply(b []byte, r *ClientBatchReply) []byte {
	b = append(b, 0x83, 0xa1, 'v')
	b = appendInt(b, int64(r.V))
	b = append(b, 0xa1, 'f')
	b = appendStr(b, r.From)
	b = append(b, 0xa1, 'r')
	b = appendArrayLen(b, len(r.Results))
	for i := range r.Results {
		b = appendClientResult(b, &r.Results[i])
	}
	return b
}

func appendClientResult(b []byte, res *ClientResult) []byte {
	n := 1
	for _, present := range [...]bool{res.Code != 0, res.Name != "", res.Err != "", res.Context != "", res.Siblings != 0, res.Values != nil} {
		if present {
			n++
		}
	}
	b = append(b, 0x80|byte(n), 0xa1, 't')
	b = appendUint(b, res.Tag)
	if res.Code != 0 {
		b = append(b, 0xa1, 'c')
		b = appendInt(b, int64(res.Code))
	}
	if res.Name != "" {
		b = append(b, 0xa1, 'n')
		b = appendStr(b, res.Name)
	}
	if res.Err != "" {
		b = append(b, 0xa1, 'e')
		b = appendStr(b, res.Err)
	}
	if res.Context != "" {
		b = append(b, 0xa1, 'x')
		b = appendStr(b, res.Context)
	}
	if res.Siblings != 0 {
		b = append(b, 0xa1, 's')
		b = appendInt(b, int64(res.Siblings))
	}
	if res.Values != nil {
		b = append(b, 0xa4, 'v', 'a', 'l', 's')
		b = appendArrayLen(b, len(res.Values))
		for _, v := range res.Values {
			if v == nil {
				v = []byte{} // a value is never nil on the wire
			}
			b = appendBin(b, v)
		}
	}
	return b
}

// ---- decoding ----

var (
	clientBatchKeys  = []string{"v", "i"}
	clientItemKeys   = []string{"t", "o", "k", "d", "q", "c"}
	clientReplyKeys  = []string{"v", "f", "r"}
	clientResultKeys = []string{"t", "c", "n", "e", "x", "s", "vals"}
)

// minClientItemLen is the smallest item a decoder accepts: {"o":1}.
const minClientItemLen = 4

func (d *decoder) clientBatch() (*ClientBatch, error) {
	var r ClientBatch
	err := d.fields(clientBatchKeys, func(k string) (err error) {
		switch k {
		case "v":
			r.V, err = d.version()
		case "i":
			r.Items, err = d.clientItems()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if r.V != Version {
		return nil, Errorf(ErrMalformed, "client batch: protocol version %d, want %d", r.V, Version)
	}
	if len(r.Items) == 0 {
		return nil, Errorf(ErrMalformed, "client batch: 0 items, want 1..%d", MaxClientBatch)
	}
	return &r, nil
}

func (d *decoder) clientItems() ([]ClientItem, error) {
	return decodeList(d, minClientItemLen, func(n int) error {
		if n <= 0 || n > MaxClientBatch {
			return Errorf(ErrMalformed, "client batch: %d items, want 1..%d", max(n, 0), MaxClientBatch)
		}
		return nil
	}, d.clientItem)
}

func (d *decoder) clientItem(it *ClientItem) error {
	err := d.fields(clientItemKeys, func(k string) (err error) {
		switch k {
		case "t":
			it.Tag, err = d.uint()
		case "o":
			// At full width: 257 must not pass for a get.
			var op uint64
			if op, err = d.uint(); err == nil {
				if op < uint64(BatchGet) || op > uint64(BatchDel) {
					return d.errorf("unknown op %d", op)
				}
				it.Op = uint8(op)
			}
		case "k":
			it.Key, err = d.str()
		case "d":
			it.Value, err = d.bytes()
		case "q":
			it.Quorum, err = d.str()
		case "c":
			it.Context, err = d.str()
		}
		return err
	})
	if err != nil {
		return err
	}
	if it.Op == 0 {
		return d.errorf("item without op")
	}
	return nil
}

func (d *decoder) clientBatchReply() (*ClientBatchReply, error) {
	var r ClientBatchReply
	err := d.fields(clientReplyKeys, func(k string) (err error) {
		switch k {
		case "v":
			r.V, err = d.version()
		case "f":
			r.From, err = d.sender()
		case "r":
			r.Results, err = d.clientResults()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if r.V != Version {
		return nil, Errorf(ErrMalformed, "client batch reply: protocol version %d, want %d", r.V, Version)
	}
	if r.From == "" {
		return nil, Errorf(ErrMalformed, "client batch reply: bad sender id")
	}
	return &r, nil
}

func (d *decoder) clientResults() ([]ClientResult, error) {
	return decodeList(d, minResultLen, func(n int) error {
		if n > MaxClientBatch {
			return Errorf(ErrMalformed, "client batch reply: %d results, limit %d", n, MaxClientBatch)
		}
		return nil
	}, d.clientResult)
}

func (d *decoder) clientResult(res *ClientResult) error {
	err := d.fields(clientResultKeys, func(k string) (err error) {
		switch k {
		case "t":
			res.Tag, err = d.uint()
		case "c":
			res.Code, err = d.intField()
		case "n":
			res.Name, err = d.str()
		case "e":
			res.Err, err = d.str()
		case "x":
			res.Context, err = d.str()
		case "s":
			res.Siblings, err = d.intField()
		case "vals":
			res.Values, err = d.values()
		}
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case res.Code < 0 || res.Code > 999:
		return d.errorf("result code %d", res.Code)
	case res.Siblings < 0 || res.Siblings > MaxStoredSiblings:
		return d.errorf("result with %d siblings, limit %d", res.Siblings, MaxStoredSiblings)
	case res.Code == 0 && res.Siblings < len(res.Values):
		return d.errorf("result with %d values for %d siblings", len(res.Values), res.Siblings)
	}
	return nil
}

// values reads a get's live values: nil, or an array of bins; every value
// is a non-nil slice.
func (d *decoder) values() ([][]byte, error) {
	n, err := d.arrayLen(1)
	if err != nil || n < 0 {
		return nil, err
	}
	if n > MaxStoredSiblings {
		return nil, d.errorf("%d values, limit %d", n, MaxStoredSiblings)
	}
	vals := make([][]byte, n)
	for i := range vals {
		if vals[i], err = d.bytes(); err != nil {
			return nil, err
		}
		if vals[i] == nil {
			vals[i] = []byte{}
		}
	}
	return vals, nil
}
