package protocol

// Partition scans (RPCScan): a node copies a partition from a peer page
// by page. The request is an Item with Op RPCScan, no key, and
//
//	p: partition, a: cursor (the page starts after this key; left out
//	   for the first page), m: byte budget of the page's records (left
//	   out: the server's limit)
//
// and the answer a Result with
//
//	rec: [[key, clock, siblings], ...]  the records after the cursor, in
//	     key order: each an object's array (record.go) with the key in
//	     front, flat so that a reply nests no deeper than MaxDepth
//	a:   the cursor of the next page: the last key of this one, left out
//	     when the partition is done
//
// Tombstones are records like any other: they are part of the partition's
// state. A page holds at most MaxScanRecords records and, but for a single
// record larger than the budget, which goes alone, records of at most the
// budget's bytes (Record.Size); the server caps the budget at
// ScanBudget(max payload), so that the reply fits in one NATS message.

// Record is one key's object in a scan page.
type Record struct {
	Key string
	Obj *Object
}

const (
	// MaxScanRecords bounds the records of one scan page, so that a page
	// of small records costs the puller a bounded number of store writes.
	MaxScanRecords = 1024
	// ScanEnvelope is the room a scan reply needs beyond its records:
	// the reply's map, the sender id, the tag, the list header and the
	// next cursor (a key of up to MaxKeyLen bytes), with margin.
	ScanEnvelope = 4 << 10
)

// ScanBudget is the most record bytes (Record.Size) a scan page may hold
// so that its reply fits in a message of maxPayload bytes. A record
// larger than that cannot be transferred in one page at all.
func ScanBudget(maxPayload int64) int {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	return int(max(maxPayload-ScanEnvelope, 1))
}

// Size returns the bytes r takes in a scan page's record list: exactly
// what appendScanRecord writes, computed without encoding.
func (r *Record) Size() int {
	return strLen(len(r.Key)) + objectLen(r.Obj)
}

// appendScanRecord writes a record as the array [key, clock, siblings];
// a nil object as an empty one.
func appendScanRecord(b []byte, r *Record) []byte {
	b = appendStr(append(b, 0x93), r.Key)
	if r.Obj == nil {
		return append(b, 0xc0, 0xc0)
	}
	b = appendClock(b, r.Obj.Clock)
	return appendList(b, r.Obj.Siblings, appendSibling)
}

// recordList: the smallest record is ["a",nil,nil].
var recordList = listSpec{name: "records", minSize: 5, max: MaxScanRecords}

// scanRecord reads a record of a scan page: a valid key and its object.
func (d *decoder) scanRecord(r *Record) (err error) {
	if err = d.tuple(3, "record"); err != nil {
		return err
	}
	if r.Key, err = d.str(); err != nil {
		return err
	}
	r.Obj = &Object{}
	if r.Obj.Clock, err = d.clock(); err != nil {
		return err
	}
	if r.Obj.Siblings, err = decodeList(d, siblingList, d.sibling); err != nil {
		return err
	}
	if err := ValidateKey(r.Key); err != nil {
		return err
	}
	return r.Obj.Validate()
}

// validScan checks what a scan page must hold: records in strictly
// increasing key order, and a next cursor that is empty or a valid key.
func validScan(recs []Record, next string) error {
	for i := 1; i < len(recs); i++ {
		if recs[i-1].Key >= recs[i].Key {
			return Errorf(ErrMalformed, "reply: scan records out of order at %q", Clip(recs[i].Key, 64))
		}
	}
	if next != "" {
		return ValidateKey(next)
	}
	return nil
}

// The encoded lengths of a record's object and its parts, for
// Record.Size: the array header, the clock and the siblings.

func objectLen(o *Object) int {
	if o == nil {
		return 3
	}
	n := 1 + clockLen(o.Clock)
	if o.Siblings == nil {
		return n + 1
	}
	n += arrayLenLen(len(o.Siblings))
	for i := range o.Siblings {
		s := &o.Siblings[i]
		n += 1 + dotLen(&s.Dot) + 1 + intLen(s.Time)
		if s.Expires != 0 {
			n += intLen(s.Expires)
		}
		if s.Value == nil {
			n++
		} else {
			n += binLen(len(s.Value))
		}
	}
	return n
}

func clockLen(c Clock) int {
	if c == nil {
		return 1
	}
	n := arrayLenLen(len(c))
	for i := range c {
		n += dotLen(&c[i])
	}
	return n
}

func dotLen(d *Dot) int { return 1 + strLen(len(d.Node)) + uintLen(d.Counter) }

func uintLen(v uint64) int {
	switch {
	case v <= 0x7f:
		return 1
	case v <= 0xff:
		return 2
	case v <= 0xffff:
		return 3
	case v <= 0xffffffff:
		return 5
	}
	return 9
}

func intLen(v int64) int {
	switch {
	case v >= 0:
		return uintLen(uint64(v))
	case v >= -32:
		return 1
	case v >= -1<<7:
		return 2
	case v >= -1<<15:
		return 3
	case v >= -1<<31:
		return 5
	}
	return 9
}

func strLen(n int) int {
	switch {
	case n < 32:
		return 1 + n
	case n <= 0xff:
		return 2 + n
	case n <= 0xffff:
		return 3 + n
	}
	return 5 + n
}

func binLen(n int) int {
	switch {
	case n <= 0xff:
		return 2 + n
	case n <= 0xffff:
		return 3 + n
	}
	return 5 + n
}

func arrayLenLen(n int) int {
	switch {
	case n < 16:
		return 1
	case n <= 0xffff:
		return 3
	}
	return 5
}
