package protocol

import "time"

// Node-to-node RPC, on Subjects.NodeRPC: a node sends a peer a batch of
// replica operations in one message and the peer answers them all in one
// reply. The body is msgpack (msgpack.go), maps with the keys below; the
// fields after k in an item and after t in a result are left out when
// zero:
//
//	request {v: Version, f: sender, i: [{t: tag, o: op, k: key, b: object,
//	         val: value, ctx: clock, del: delete, w: write quorum,
//	         p: partition, a: cursor, m: byte budget, h: hinted owner,
//	         pw: primary write quorum, ttl: nanoseconds,
//	         if: condition}]}
//	reply   {v: Version, f: sender, r: [{t: tag, c: code, n: name,
//	         e: message, b: object, ctx: clock, rec: records, a: cursor}]}
//
// An object is the array of record.go; records and the scan fields are
// scan.go's. Fields were only ever added, left out when zero, so what an
// older node sends decodes the same, and it skips the keys it does not
// know. A node refuses a request with an op it does not know as a whole
// (a reply of one error result with tag 0): a newer op goes to an older
// peer alone in its message, or it fails the other items with it.

// RPC operations between nodes, on Subjects.NodeRPC.
const (
	// RPCRead asks a replica for its object of Key.
	RPCRead uint8 = 1
	// RPCWrite asks a replica to merge Obj into its object of Key and
	// answer once the result is durable.
	RPCWrite uint8 = 2
	// RPCCoordinate asks an owner of Key to coordinate a client put or
	// delete (Val, Ctx, Del, W, TTL) because the receiving node of the
	// client request is not an owner and so cannot issue the write's dot.
	RPCCoordinate uint8 = 3
	// RPCScan asks a node for a page of the records of partition
	// Partition after the key After, of at most Budget bytes (scan.go).
	RPCScan uint8 = 4
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
	// TTL is an RPCCoordinate put's time to live (0: none, else
	// 1..MaxTTL): the owner sets the sibling's Expires from it.
	TTL time.Duration
	// RPCScan: the partition, the cursor ("" for the partition's start)
	// and the byte budget of the page's records (0: the server's limit).
	Partition int
	After     string
	Budget    int
	// RPCTree: the sender's frontier (tree.go). RPCBuckets: the leaf
	// buckets whose keys to list, with After and Budget paging.
	Level   int
	Nodes   []int
	Hashes  []uint64
	Buckets []int
	// Hint, on an RPCWrite to a fallback (sloppy quorum), names the owner
	// of the key the write stands in for: the fallback keeps a durable
	// hint and delivers the key's partition to that owner once it is
	// back (hinted handoff). A node id; "" for a write to an owner.
	Hint string
	// PW, on an RPCCoordinate, is how many of the W acknowledgements
	// must come from owners of the key (0: no requirement).
	PW int
	// If, on an RPCCoordinate, makes the write conditional (Kvmesh-If):
	// the receiving owner serialises it with the key's other conditional
	// writes, checks the condition against a quorum read and answers a
	// failed check with ErrConflict and the key's clock in the result's
	// Ctx.
	If Condition
	// RPCKeys (keys.go): the partitions to list, ascending; the key
	// prefix ("" for every key); at most this many records (0: the
	// server's limit, MaxScanRecords). After and Budget page as a scan's.
	Parts  []int
	Prefix string
	Limit  int
	// DigestOnly, on an RPCRead, asks for the replica's digest
	// (Result.Digest) instead of its object: the asker compares it with
	// its own replica's and reads the object only if they differ. A
	// replica may answer with the object all the same (kvmesh does for
	// values of up to 1 KiB, older nodes always), which the asker takes
	// as a reply.
	DigestOnly bool
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
	// RPCScan: the page's records in key order, and the cursor of the
	// next page ("" when the partition is done).
	Recs []Record
	Next string
	// RPCTree: the answering side's frontier, or the differing leaf
	// buckets (tree.go). RPCBuckets: the page's keys and their digests,
	// with Next.
	Level   int
	Nodes   []int
	Hashes  []uint64
	Diff    []int
	Keys    []string
	Digests []uint64
	// Digest answers an RPCRead with DigestOnly: the replica's
	// node/version.Digest, 0 (left out) when it has no object. Obj is then
	// nil.
	Digest uint64
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

// EncodeRequest encodes r for the wire (see msgpack.go). The result is
// a fresh slice the caller owns; the error is always nil, kept for
// symmetry with the other encoders.
func EncodeRequest(r *Request) ([]byte, error) {
	return encode(r, appendRequest), nil
}

// EncodeReply encodes r for the wire, as EncodeRequest.
func EncodeReply(r *Reply) ([]byte, error) {
	return encode(r, appendReply), nil
}

// DecodeRequest decodes and validates a Request from the wire. Malformed
// input gives ErrMalformed (or a more specific 400 error), never a panic
// and never an allocation larger than the input justifies. Every field of
// the result is checked: the sender id, the op of each item (read at full
// width), its key (none for a scan), object, context, write quorum,
// partition, cursor and budget.
func DecodeRequest(b []byte) (*Request, error) {
	d := decoder{b: b, what: "request"}
	return decodeMessage(&d, d.request)
}

// DecodeReply decodes and validates a Reply from the wire: the sender id,
// the number of results and the object and context of each, and the
// records (valid keys in increasing order, each with a valid object) and
// cursor of a scan page.
func DecodeReply(b []byte) (*Reply, error) {
	d := decoder{b: b, what: "reply"}
	return decodeMessage(&d, d.reply)
}

// The map forms of the messages. Each struct is a map whose keys are its
// tags, in field order, with omitempty fields left out when zero: what
// msgpack v5 wrote by reflection.

func appendRequest(b []byte, r *Request) []byte {
	b, m := beginMap(b)
	b = m.int(b, "v", int64(r.V))
	b = m.str(b, "f", r.From)
	b = appendList(m.key(b, "i"), r.Items, appendItem)
	return m.end(b)
}

func appendItem(b []byte, it *Item) []byte {
	b, m := beginMap(b)
	b = m.uint(b, "t", it.Tag)
	b = m.uint(b, "o", uint64(it.Op))
	b = m.str(b, "k", it.Key)
	if it.Obj != nil {
		b = appendObject(m.key(b, "b"), it.Obj)
	}
	if len(it.Val) > 0 {
		b = m.bin(b, "val", it.Val)
	}
	if len(it.Ctx) > 0 {
		b = appendClock(m.key(b, "ctx"), it.Ctx)
	}
	if it.Del {
		b = m.bool(b, "del", true)
	}
	if it.W != 0 {
		b = m.int(b, "w", int64(it.W))
	}
	if it.Partition != 0 {
		b = m.int(b, "p", int64(it.Partition))
	}
	if it.After != "" {
		b = m.str(b, "a", it.After)
	}
	if it.Budget != 0 {
		b = m.int(b, "m", int64(it.Budget))
	}
	b = appendTreeFields(b, &m, it.Level, it.Nodes, it.Hashes)
	if len(it.Buckets) > 0 {
		b = appendArray(m.key(b, "bk"), it.Buckets, appendIntElem)
	}
	if it.Hint != "" {
		b = m.str(b, "h", it.Hint)
	}
	if it.PW != 0 {
		b = m.int(b, "pw", int64(it.PW))
	}
	if it.TTL != 0 {
		b = m.int(b, "ttl", int64(it.TTL))
	}
	if it.If != CondNone {
		b = m.uint(b, "if", uint64(it.If))
	}
	if len(it.Parts) > 0 {
		b = appendArray(m.key(b, "ps"), it.Parts, appendIntElem)
	}
	if it.Prefix != "" {
		b = m.str(b, "px", it.Prefix)
	}
	if it.Limit != 0 {
		b = m.int(b, "n", int64(it.Limit))
	}
	if it.DigestOnly {
		b = m.bool(b, "do", true)
	}
	return m.end(b)
}

func appendReply(b []byte, r *Reply) []byte {
	b, m := beginMap(b)
	b = m.int(b, "v", int64(r.V))
	b = m.str(b, "f", r.From)
	b = appendList(m.key(b, "r"), r.Results, appendResult)
	return m.end(b)
}

func appendResult(b []byte, res *Result) []byte {
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
	if res.Obj != nil {
		b = appendObject(m.key(b, "b"), res.Obj)
	}
	if len(res.Ctx) > 0 {
		b = appendClock(m.key(b, "ctx"), res.Ctx)
	}
	if len(res.Recs) > 0 {
		b = appendArray(m.key(b, "rec"), res.Recs, appendScanRecord)
	}
	if res.Next != "" {
		b = m.str(b, "a", res.Next)
	}
	b = appendTreeFields(b, &m, res.Level, res.Nodes, res.Hashes)
	if len(res.Diff) > 0 {
		b = appendArray(m.key(b, "d"), res.Diff, appendIntElem)
	}
	if len(res.Keys) > 0 {
		b = appendArray(m.key(b, "ks"), res.Keys, appendStrElem)
		b = appendArray(m.key(b, "ds"), res.Digests, appendUintElem)
	}
	if res.Digest != 0 {
		b = m.uint(b, "dg", res.Digest)
	}
	return m.end(b)
}

var (
	requestKeys = keys([]string{"v", "f", "i"}, "v", "f", "i")
	itemKeys    = keys([]string{"t", "o", "k", "b", "val", "ctx", "del", "w", "p", "a", "m", "l", "tn", "th", "bk", "h", "pw", "ttl", "if", "ps", "px", "n", "do"}, "o")
	replyKeys   = keys([]string{"v", "f", "r"}, "v", "f")
	resultKeys  = keys([]string{"t", "c", "n", "e", "b", "ctx", "rec", "a", "l", "tn", "th", "d", "ks", "ds", "dg"})

	// itemList: the smallest item is {"o":1,"k":"a"}.
	itemList = listSpec{name: "items", minSize: 8, min: 1, max: MaxBatch}
	// resultList: the smallest result is {}.
	resultList = listSpec{name: "results", minSize: 1, max: MaxBatch}
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
			r.Items, err = decodeList(d, itemList, d.item)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// item reads one Item and applies every check a handler relies on.
func (d *decoder) item(it *Item) error {
	err := d.fields(itemKeys, func(k string) (err error) {
		switch k {
		case "t":
			it.Tag, err = d.uint()
		case "o":
			it.Op, err = d.op(RPCRead, RPCKeys)
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
		case "p":
			it.Partition, err = d.intField()
		case "a":
			it.After, err = d.str()
		case "m":
			it.Budget, err = d.intField()
		case "l":
			it.Level, err = d.intField()
		case "tn":
			it.Nodes, err = decodeList(d, treeNodes, d.intElem)
		case "th":
			it.Hashes, err = decodeList(d, treeNodes, d.uintElem)
		case "bk":
			it.Buckets, err = decodeList(d, treeNodes, d.intElem)
		case "h":
			it.Hint, err = d.str()
		case "pw":
			it.PW, err = d.intField()
		case "ttl":
			var ttl int64
			ttl, err = d.int()
			it.TTL = time.Duration(ttl)
		case "if":
			var c uint64
			c, err = d.uint()
			it.If = Condition(min(c, 255))
		case "ps":
			it.Parts, err = decodeList(d, keysParts, d.intElem)
		case "px":
			it.Prefix, err = d.str()
		case "n":
			it.Limit, err = d.intField()
		case "do":
			it.DigestOnly, err = d.bool()
		}
		return err
	})
	if err != nil {
		return err
	}
	if it.Op == RPCScan || it.Op == RPCTree || it.Op == RPCBuckets || it.Op == RPCKeys {
		if it.Key != "" {
			return Errorf(ErrMalformed, "request: op %d with a key", it.Op)
		}
	} else if err := ValidateKey(it.Key); err != nil {
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
	if it.Partition < 0 || it.Partition >= MaxPartitions {
		return Errorf(ErrMalformed, "request: partition %d", it.Partition)
	}
	if it.After != "" {
		if err := ValidateKey(it.After); err != nil {
			return err
		}
	}
	if it.Budget < 0 {
		return Errorf(ErrMalformed, "request: scan budget %d", it.Budget)
	}
	if it.TTL < 0 || it.TTL > MaxTTL {
		return Errorf(ErrMalformed, "request: ttl %d", int64(it.TTL))
	}
	if it.TTL != 0 && it.Del {
		return Errorf(ErrMalformed, "request: ttl on a delete")
	}
	if err := validFrontier("request", it.Level, it.Nodes, it.Hashes); err != nil {
		return err
	}
	if it.Hint != "" {
		if it.Op != RPCWrite {
			return Errorf(ErrMalformed, "request: hint on op %d", it.Op)
		}
		if err := ValidateNodeID(it.Hint); err != nil {
			return Errorf(ErrMalformed, "request: hinted owner: %v", err)
		}
	}
	if it.If > CondVersion || (it.If != CondNone && it.Op != RPCCoordinate) {
		return Errorf(ErrMalformed, "request: condition %d on op %d", it.If, it.Op)
	}
	if it.If == CondAbsent && it.Del {
		return Errorf(ErrMalformed, "request: delete if absent")
	}
	if it.PW < 0 || it.PW > it.W {
		return Errorf(ErrMalformed, "request: primary write quorum %d with w=%d", it.PW, it.W)
	}
	if err := validKeysItem(it); err != nil {
		return err
	}
	if err := validDigestRead(it); err != nil {
		return err
	}
	return ascending("request: buckets", it.Buckets)
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
			r.Results, err = decodeList(d, resultList, d.result)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
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
		case "rec":
			res.Recs, err = decodeList(d, recordList, d.scanRecord)
		case "a":
			res.Next, err = d.str()
		case "l":
			res.Level, err = d.intField()
		case "tn":
			res.Nodes, err = decodeList(d, treeNodes, d.intElem)
		case "th":
			res.Hashes, err = decodeList(d, treeNodes, d.uintElem)
		case "d":
			res.Diff, err = decodeList(d, treeNodes, d.intElem)
		case "ks":
			res.Keys, err = decodeList(d, bucketKeys, d.strElem)
		case "ds":
			res.Digests, err = decodeList(d, bucketDigst, d.uintElem)
		case "dg":
			res.Digest, err = d.uint()
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
	if err := res.Ctx.Validate(); err != nil {
		return err
	}
	if err := validFrontier("reply", res.Level, res.Nodes, res.Hashes); err != nil {
		return err
	}
	if err := ascending("reply: differing buckets", res.Diff); err != nil {
		return err
	}
	if err := validBucketKeys(res.Keys, res.Digests); err != nil {
		return err
	}
	if res.Digest != 0 && res.Obj != nil {
		return Errorf(ErrMalformed, "reply: a digest with an object")
	}
	return validScan(res.Recs, res.Next)
}

// validDigestRead checks that only an RPCRead asks for a digest.
func validDigestRead(it *Item) error {
	if it.DigestOnly && it.Op != RPCRead {
		return Errorf(ErrMalformed, "request: digest read on op %d", it.Op)
	}
	return nil
}
