package protocol

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
	V     int
	From  string
	Items []Item
}

// Item is one operation of a Request.
type Item struct {
	Tag uint64
	Op  uint8
	Key string
	Obj *Object // RPCWrite
	Val []byte
	Ctx Clock
	Del bool
	W   int
}

// Reply answers a Request, one Result per item, in any order.
type Reply struct {
	V       int
	From    string
	Results []Result
}

// Result is the outcome of one Item. Code 0 is success; otherwise Code,
// Name and Err describe an *Error.
type Result struct {
	Tag  uint64
	Code int
	Name string
	Err  string
	Obj  *Object // RPCRead: the replica's object (nil if absent)
	Ctx  Clock
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

// EncodeRequest encodes r for the wire (see rpc_codec.go). The result is
// a fresh slice the caller owns; the error is always nil, kept for
// symmetry with the other encoders.
func EncodeRequest(r *Request) ([]byte, error) {
	return encodeWith(func(b []byte) []byte { return appendRequest(b, r) }), nil
}

// EncodeReply encodes r for the wire, as EncodeRequest.
func EncodeReply(r *Reply) ([]byte, error) {
	return encodeWith(func(b []byte) []byte { return appendReply(b, r) }), nil
}

// DecodeRequest decodes and validates a Request from the wire. Malformed
// input gives ErrMalformed (or a more specific 400 error), never a panic
// and never an allocation larger than the input justifies. Every field of
// the result is checked: the sender id, the op of each item (read at full
// width), its key, object, context and write quorum.
func DecodeRequest(b []byte) (*Request, error) {
	return decodeMessage(b, "request", (*decoder).request)
}

// DecodeReply decodes and validates a Reply from the wire: the sender id,
// the number of results and the object and context of each.
func DecodeReply(b []byte) (*Reply, error) {
	return decodeMessage(b, "reply", (*decoder).reply)
}

// recordFormat is the first byte of every stored record, so the on-disk
// format can change without guessing.
const recordFormat = 1

// EncodeObject encodes an object for storage: a format byte, then
// msgpack (the array form of rpc_codec.go). It never fails; the error is
// kept for symmetry with the other encoders.
func EncodeObject(o *Object) ([]byte, error) {
	return encodeWith(func(b []byte) []byte { return appendObject(append(b, recordFormat), o) }), nil
}

// DecodeObject decodes and validates a stored object. A corrupt record
// gives ErrMalformed, so a bad page on disk is an error, not a crash.
func DecodeObject(b []byte) (*Object, error) {
	if len(b) < 1 || b[0] != recordFormat {
		return nil, Errorf(ErrMalformed, "record: unknown format")
	}
	return decodeMessage(b[1:], "record", (*decoder).record)
}

// record reads a stored object: nil decodes as the empty object, as it
// always did.
func (d *decoder) record() (*Object, error) {
	o, err := d.objectOrNil()
	if err != nil {
		return nil, err
	}
	if o == nil {
		o = &Object{}
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// The map forms of the messages. Each struct is a map whose keys are its
// tags, in field order, with omitempty fields left out when zero: what
// msgpack v5 wrote by reflection (see rpc_codec.go for the primitives).

func appendRequest(b []byte, r *Request) []byte {
	b = append(b, 0x83, 0xa1, 'v')
	b = appendInt(b, int64(r.V))
	b = append(b, 0xa1, 'f')
	b = appendStr(b, r.From)
	b = append(b, 0xa1, 'i')
	if r.Items == nil {
		return append(b, 0xc0)
	}
	b = appendArrayLen(b, len(r.Items))
	for i := range r.Items {
		b = appendItem(b, &r.Items[i])
	}
	return b
}

func appendItem(b []byte, it *Item) []byte {
	n := 3
	for _, present := range [...]bool{it.Obj != nil, len(it.Val) > 0, len(it.Ctx) > 0, it.Del, it.W != 0} {
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
	if it.Obj != nil {
		b = append(b, 0xa1, 'b')
		b = appendObject(b, it.Obj)
	}
	if len(it.Val) > 0 {
		b = append(b, 0xa3, 'v', 'a', 'l')
		b = appendBin(b, it.Val)
	}
	if len(it.Ctx) > 0 {
		b = append(b, 0xa3, 'c', 't', 'x')
		b = appendClock(b, it.Ctx)
	}
	if it.Del {
		b = append(b, 0xa3, 'd', 'e', 'l', 0xc3)
	}
	if it.W != 0 {
		b = append(b, 0xa1, 'w')
		b = appendInt(b, int64(it.W))
	}
	return b
}

func appendReply(b []byte, r *Reply) []byte {
	b = append(b, 0x83, 0xa1, 'v')
	b = appendInt(b, int64(r.V))
	b = append(b, 0xa1, 'f')
	b = appendStr(b, r.From)
	b = append(b, 0xa1, 'r')
	if r.Results == nil {
		return append(b, 0xc0)
	}
	b = appendArrayLen(b, len(r.Results))
	for i := range r.Results {
		b = appendResult(b, &r.Results[i])
	}
	return b
}

func appendResult(b []byte, res *Result) []byte {
	n := 1
	for _, present := range [...]bool{res.Code != 0, res.Name != "", res.Err != "", res.Obj != nil, len(res.Ctx) > 0} {
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
	if res.Obj != nil {
		b = append(b, 0xa1, 'b')
		b = appendObject(b, res.Obj)
	}
	if len(res.Ctx) > 0 {
		b = append(b, 0xa3, 'c', 't', 'x')
		b = appendClock(b, res.Ctx)
	}
	return b
}

var (
	requestKeys = []string{"v", "f", "i"}
	itemKeys    = []string{"t", "o", "k", "b", "val", "ctx", "del", "w"}
	replyKeys   = []string{"v", "f", "r"}
	resultKeys  = []string{"t", "c", "n", "e", "b", "ctx"}
)

// request reads and validates a Request.
func (d *decoder) request() (*Request, error) {
	var r Request
	err := d.fields(requestKeys, func(k string) (err error) {
		switch k {
		case "v":
			r.V, err = d.version()
		case "f":
			r.From, err = d.sender()
		case "i":
			r.Items, err = d.items()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// A missing key leaves its zero value, which the checks refuse.
	if r.V != Version {
		return nil, Errorf(ErrMalformed, "request: protocol version %d, want %d", r.V, Version)
	}
	if r.From == "" {
		return nil, Errorf(ErrMalformed, "request: bad sender id")
	}
	if len(r.Items) == 0 {
		return nil, Errorf(ErrMalformed, "request: 0 items, want 1..%d", MaxBatch)
	}
	return &r, nil
}

func (d *decoder) items() ([]Item, error) {
	return decodeList(d, minItemLen, func(n int) error {
		if n <= 0 || n > MaxBatch {
			return Errorf(ErrMalformed, "request: %d items, want 1..%d", max(n, 0), MaxBatch)
		}
		return nil
	}, d.item)
}

// item decodes one Item and applies every check a handler relies on.
func (d *decoder) item(it *Item) error {
	err := d.fields(itemKeys, func(k string) (err error) {
		switch k {
		case "t":
			it.Tag, err = d.uint()
		case "o":
			// At full width: a uint8 field would take 257 for RPCRead.
			var op uint64
			if op, err = d.uint(); err == nil {
				if op < uint64(RPCRead) || op > uint64(RPCCoordinate) {
					return Errorf(ErrMalformed, "request: unknown op %d", op)
				}
				it.Op = uint8(op)
			}
		case "k":
			it.Key, err = d.str()
		case "b":
			it.Obj, err = d.objectOrNil()
		case "val":
			it.Val, err = d.bytes()
		case "ctx":
			it.Ctx, err = d.clock()
		case "del":
			it.Del, err = d.bool()
		case "w":
			it.W, err = d.intField()
		}
		return err
	})
	if err != nil {
		return err
	}
	if it.Op == 0 {
		return Errorf(ErrMalformed, "request: unknown op 0")
	}
	if err := ValidateKey(it.Key); err != nil {
		return err
	}
	if it.Op == RPCWrite && it.Obj == nil {
		return Errorf(ErrMalformed, "request: write without object")
	}
	// Validate an object whatever the op: a handler must be able to trust
	// every field of a decoded Request.
	if it.Obj != nil {
		if err := it.Obj.Validate(); err != nil {
			return err
		}
	}
	if err := it.Ctx.Validate(); err != nil {
		return err
	}
	if it.W < 0 {
		return Errorf(ErrMalformed, "request: write quorum %d", it.W)
	}
	return nil
}

// reply reads and validates a Reply.
func (d *decoder) reply() (*Reply, error) {
	var r Reply
	err := d.fields(replyKeys, func(k string) (err error) {
		switch k {
		case "v":
			r.V, err = d.version()
		case "f":
			r.From, err = d.sender()
		case "r":
			r.Results, err = d.results()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if r.V != Version {
		return nil, Errorf(ErrMalformed, "reply: protocol version %d, want %d", r.V, Version)
	}
	if r.From == "" {
		return nil, Errorf(ErrMalformed, "reply: bad sender id")
	}
	return &r, nil
}

func (d *decoder) results() ([]Result, error) {
	return decodeList(d, minResultLen, func(n int) error {
		if n > MaxBatch {
			return Errorf(ErrMalformed, "reply: %d results, limit %d", n, MaxBatch)
		}
		return nil
	}, d.result)
}

func (d *decoder) result(res *Result) error {
	err := d.fields(resultKeys, func(k string) (err error) {
		switch k {
		case "t":
			res.Tag, err = d.uint()
		case "c":
			res.Code, err = d.intField()
		case "n":
			res.Name, err = d.str()
		case "e":
			res.Err, err = d.str()
		case "b":
			res.Obj, err = d.objectOrNil()
		case "ctx":
			res.Ctx, err = d.clock()
		}
		return err
	})
	if err != nil {
		return err
	}
	if res.Obj != nil {
		if err := res.Obj.Validate(); err != nil {
			return err
		}
	}
	return res.Ctx.Validate()
}
