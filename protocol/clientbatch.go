package protocol

import "strings"

// Client batches: the Go client sends the calls queued for one node in one
// message on Subjects.KVNodeBatch, and the node answers them in one reply
// per kind (gets, writes), so the per-message cost of NATS is paid once
// per batch instead of once per call (as node-to-node RPC does, see
// rpc.go). The body is msgpack, encoded and decoded by hand with the
// primitives of msgpack.go:
//
//	request {v: Version, i: [{t: tag, o: op, k: key, d: value, q: quorum, c: context,
//	         ttl: time to live}]}
//	reply   {v: Version, f: node, r: [{t: tag, c: code, n: name, e: message,
//	         x: context, s: siblings, vals: [values], xp: expires}]}
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
// carries it; TTL is a put's time to live as the Kvmesh-TTL header
// carries it (ParseTTL). The node validates the key, quorum, context and
// TTL of each item, so one bad item fails alone.
type ClientItem struct {
	Tag     uint64
	Op      uint8
	Key     string
	Value   []byte // BatchPut
	Quorum  string
	Context string
	TTL     string // BatchPut
	// If is a put's or delete's condition (Kvmesh-If), from a JSON raw
	// batch (RawOp.If) only: it is never on the msgpack wire, where an
	// older node would skip the field and write unconditionally.
	If string
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
// Siblings and Values are a get's live sibling count and values, and
// Expires, in unix nanoseconds, when the key will read as not found
// unless written again (as the Kvmesh-Expires header; 0: some value
// never expires).
type ClientResult struct {
	Tag      uint64
	Code     int
	Name     string
	Err      string
	Context  string
	Siblings int
	Values   [][]byte
	Expires  int64
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
	return encode(b, appendClientBatch), nil
}

// EncodeClientBatchReply encodes r. It does not validate it.
func EncodeClientBatchReply(r *ClientBatchReply) ([]byte, error) {
	return encode(r, appendClientBatchReply), nil
}

// DecodeClientBatch decodes a ClientBatch from untrusted bytes: the
// version, 1..MaxClientBatch items and each item's op are checked; keys,
// quorums and contexts are left to the node, item by item. Errors are
// ErrMalformed.
func DecodeClientBatch(b []byte) (*ClientBatch, error) {
	d := decoder{b: b, what: "client batch"}
	return decodeMessage(&d, d.clientBatch)
}

// DecodeClientBatchReply decodes a ClientBatchReply from untrusted bytes.
// Errors are ErrMalformed.
func DecodeClientBatchReply(b []byte) (*ClientBatchReply, error) {
	d := decoder{b: b, what: "client batch reply"}
	return decodeMessage(&d, d.clientBatchReply)
}

// ---- encoding ----

// Unlike the RPC messages, a batch writes nil lists as empty arrays and
// nil values as empty bins: its form was designed for the wire, not
// inherited from reflection.

func appendClientBatch(b []byte, r *ClientBatch) []byte {
	b, m := beginMap(b)
	b = m.int(b, "v", int64(r.V))
	b = appendArray(m.key(b, "i"), r.Items, appendClientItem)
	return m.end(b)
}

func appendClientItem(b []byte, it *ClientItem) []byte {
	b, m := beginMap(b)
	b = m.uint(b, "t", it.Tag)
	b = m.uint(b, "o", uint64(it.Op))
	b = m.str(b, "k", it.Key)
	if it.Value != nil {
		b = m.bin(b, "d", it.Value)
	}
	if it.Quorum != "" {
		b = m.str(b, "q", it.Quorum)
	}
	if it.Context != "" {
		b = m.str(b, "c", it.Context)
	}
	if it.TTL != "" {
		b = m.str(b, "ttl", it.TTL)
	}
	return m.end(b)
}

func appendClientBatchReply(b []byte, r *ClientBatchReply) []byte {
	b, m := beginMap(b)
	b = m.int(b, "v", int64(r.V))
	b = m.str(b, "f", r.From)
	b = appendArray(m.key(b, "r"), r.Results, appendClientResult)
	return m.end(b)
}

func appendClientResult(b []byte, res *ClientResult) []byte {
	b, m := beginMap(b)
	b = m.uint(b, "t", res.Tag)
	if res.Code != 0 {
		b = m.int(b, "c", int64(res.Code))
	}
	if res.Name != "" {
		b = m.str(b, "n", res.Name)
	}
	if res.Err != "" {
		b = m.str(b, "e", res.Err)
	}
	if res.Context != "" {
		b = m.str(b, "x", res.Context)
	}
	if res.Siblings != 0 {
		b = m.int(b, "s", int64(res.Siblings))
	}
	if res.Values != nil {
		b = appendArray(m.key(b, "vals"), res.Values, appendBinElem)
	}
	if res.Expires != 0 {
		b = m.int(b, "xp", res.Expires)
	}
	return m.end(b)
}

// ---- decoding ----

var (
	clientBatchKeys  = keys([]string{"v", "i"}, "v", "i")
	clientItemKeys   = keys([]string{"t", "o", "k", "d", "q", "c", "ttl"}, "o")
	clientReplyKeys  = keys([]string{"v", "f", "r"}, "v", "f")
	clientResultKeys = keys([]string{"t", "c", "n", "e", "x", "s", "vals", "xp"})

	// clientItemList: the smallest item the decoder accepts is {"o":1}.
	clientItemList   = listSpec{name: "items", minSize: 4, min: 1, max: MaxClientBatch}
	clientResultList = listSpec{name: "results", minSize: 1, max: MaxClientBatch}
	valueList        = listSpec{name: "values", minSize: 1, max: MaxStoredSiblings}
)

func (d *decoder) clientBatch() (*ClientBatch, error) { return d.clientBatchOf(clientItemList) }

// clientBatchOf reads a ClientBatch whose items spec bounds.
func (d *decoder) clientBatchOf(items listSpec) (*ClientBatch, error) {
	var r ClientBatch
	err := d.fields(clientBatchKeys, func(k string) (err error) {
		switch k {
		case "v":
			r.V, err = d.version()
		case "i":
			r.Items, err = decodeList(d, items, d.clientItem)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func (d *decoder) clientItem(it *ClientItem) error {
	return d.fields(clientItemKeys, func(k string) (err error) {
		switch k {
		case "t":
			it.Tag, err = d.uint()
		case "o":
			it.Op, err = d.op(BatchGet, BatchDel)
		case "k":
			it.Key, err = d.str()
		case "d":
			it.Value, err = d.bytes()
		case "q":
			it.Quorum, err = d.str()
		case "c":
			it.Context, err = d.str()
		case "ttl":
			it.TTL, err = d.str()
		}
		return err
	})
}

func (d *decoder) clientBatchReply() (*ClientBatchReply, error) {
	return d.clientBatchReplyOf(clientResultList)
}

// clientBatchReplyOf reads a ClientBatchReply whose results spec bounds.
func (d *decoder) clientBatchReplyOf(results listSpec) (*ClientBatchReply, error) {
	var r ClientBatchReply
	err := d.fields(clientReplyKeys, func(k string) (err error) {
		switch k {
		case "v":
			r.V, err = d.version()
		case "f":
			r.From, err = d.sender()
		case "r":
			r.Results, err = decodeList(d, results, d.clientResult)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
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
			res.Values, err = decodeList(d, valueList, d.value)
		case "xp":
			res.Expires, err = d.int()
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
	case res.Expires < 0:
		return d.errorf("result expires at %d", res.Expires)
	}
	return nil
}

// value reads one of a get's live values: a bin, never nil.
func (d *decoder) value(v *[]byte) (err error) {
	if *v, err = d.bytes(); *v == nil {
		*v = []byte{}
	}
	return err
}
