package protocol

// Stored records: what a replica keeps for a key, in bbolt and in the
// RPC messages that carry it. A record is a format byte (recordFormat),
// then the msgpack arrays (msgpack.go)
//
//	object  [clock, siblings]
//	sibling [dot, value, deleted, time] or [dot, value, deleted, time, expires]
//	clock   [dot, ...]
//	dot     [node, counter]
//
// with nil for a nil clock, sibling list or value. A sibling has its
// fifth element only when it expires (Expires != 0), so that the records
// of siblings without a TTL stay byte for byte what they always were and
// nodes of every version read them. A node older than TTLs refuses a
// five-element sibling as malformed: finish a rolling upgrade before
// clients write with a TTL.

// Dot is one event: the Counter-th write that node Node coordinated for a
// key. Every sibling carries the dot of the write that created it.
type Dot struct {
	Node    string
	Counter uint64
}

// Clock is a version vector: for each node, the highest counter of that
// node's writes this version has seen. Entries are sorted by Node, node
// ids are unique and counters are > 0. The algebra over clocks lives in
// node/version.
type Clock []Dot

// Sibling is one concurrent value of a key.
type Sibling struct {
	Dot     Dot
	Value   []byte
	Deleted bool  // a tombstone: the key was deleted by this write
	Time    int64 // unix nanoseconds at the coordinator when written
	// Expires is when the value expires, in unix nanoseconds: the
	// coordinator's Time plus the put's TTL. 0 means never. Every replica
	// stores the same sibling, so all of them agree on the expiry without
	// a message: from Expires on, the sibling reads as a tombstone
	// (Expired), wherever it is and however it got there.
	Expires int64
}

// Expired reports whether s has expired at now (unix nanoseconds): it
// has an expiry and now has reached it. An expired sibling is a
// tombstone to every reader (Object.LiveAt), though it is stored, merged
// and compared like any other sibling until a later write supersedes it
// or compaction purges it.
func (s *Sibling) Expired(now int64) bool { return s.Expires != 0 && s.Expires <= now }

// Tombstone reports whether s reads as deleted at now: a delete's
// tombstone, or an expired value.
func (s *Sibling) Tombstone(now int64) bool { return s.Deleted || s.Expired(now) }

// Object is everything a replica stores for one key: the causal clock of
// all writes it has seen and the siblings no seen write superseded
// (dotted version vector set, as in Riak 2.x).
type Object struct {
	Clock    Clock
	Siblings []Sibling
}

// Live returns the siblings that are not tombstones, ignoring expiry:
// the siblings a delete has not marked. Readers answer with LiveAt.
func (o *Object) Live() []Sibling {
	n := 0
	for _, s := range o.Siblings {
		if !s.Deleted {
			n++
		}
	}
	if n == len(o.Siblings) {
		return o.Siblings
	}
	live := make([]Sibling, 0, n)
	for _, s := range o.Siblings {
		if !s.Deleted {
			live = append(live, s)
		}
	}
	return live
}

// LiveAt returns the siblings that read as values at now (unix
// nanoseconds): neither tombstones nor expired (Sibling.Tombstone). A key
// with none reads as not found. It returns o.Siblings itself when every
// sibling is live, else a new slice.
func (o *Object) LiveAt(now int64) []Sibling {
	n := 0
	for i := range o.Siblings {
		if !o.Siblings[i].Tombstone(now) {
			n++
		}
	}
	if n == len(o.Siblings) {
		return o.Siblings
	}
	live := make([]Sibling, 0, n)
	for i := range o.Siblings {
		if !o.Siblings[i].Tombstone(now) {
			live = append(live, o.Siblings[i])
		}
	}
	return live
}

// Validate checks the invariants an object from the network or the disk
// must hold before any code trusts it.
func (o *Object) Validate() error {
	if err := o.Clock.Validate(); err != nil {
		return err
	}
	if len(o.Siblings) > MaxStoredSiblings {
		return Errorf(ErrMalformed, "object has %d siblings, limit %d", len(o.Siblings), MaxStoredSiblings)
	}
	for i := range o.Siblings {
		s := &o.Siblings[i]
		if err := validDot(s.Dot); err != nil {
			return err
		}
		if s.Expires < 0 {
			return Errorf(ErrMalformed, "sibling expires at %d", s.Expires)
		}
	}
	return nil
}

// Validate checks that a clock is sorted, unique, bounded and has valid
// node ids and counters.
func (c Clock) Validate() error {
	if len(c) > MaxClockEntries {
		return Errorf(ErrInvalidContext, "clock has %d entries, limit %d", len(c), MaxClockEntries)
	}
	for i, d := range c {
		if err := validDot(d); err != nil {
			return err
		}
		if i > 0 && c[i-1].Node >= d.Node {
			return Errorf(ErrInvalidContext, "clock entries not sorted and unique")
		}
	}
	return nil
}

func validDot(d Dot) error {
	if err := ValidateActorID(d.Node); err != nil {
		return Errorf(ErrInvalidContext, "bad actor id in clock")
	}
	if d.Counter == 0 || d.Counter > MaxCounter {
		return Errorf(ErrInvalidContext, "clock counter %d out of range", d.Counter)
	}
	return nil
}

// recordFormat is the first byte of every stored record, so the on-disk
// format can change without guessing.
const recordFormat = 1

// EncodeObject encodes an object for storage: a format byte, then the
// msgpack array [clock, siblings] (appendObject). It never fails; the
// error is kept for symmetry with the other encoders.
func EncodeObject(o *Object) ([]byte, error) {
	return encode(o, appendRecord), nil
}

// DecodeObject decodes and validates a stored object. A corrupt record
// gives ErrMalformed, so a bad page on disk is an error, not a crash.
func DecodeObject(b []byte) (*Object, error) {
	if len(b) < 1 || b[0] != recordFormat {
		return nil, Errorf(ErrMalformed, "record: unknown format")
	}
	d := decoder{b: b[1:], what: "record"}
	return decodeMessage(&d, d.record)
}

// DecodeObjectMeta is DecodeObject with every sibling's value left out
// (nil): what a key listing needs, without copying values it does not
// send. The record is checked as DecodeObject checks it.
func DecodeObjectMeta(b []byte) (*Object, error) {
	if len(b) < 1 || b[0] != recordFormat {
		return nil, Errorf(ErrMalformed, "record: unknown format")
	}
	d := decoder{b: b[1:], what: "record", noValues: true}
	return decodeMessage(&d, d.record)
}

func appendRecord(b []byte, o *Object) []byte { return appendObject(append(b, recordFormat), o) }

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

// appendObject writes an object as the array [clock, siblings], each
// sibling as the array [dot, value, deleted, time], with expires as a
// fifth element when it is not 0.
func appendObject(b []byte, o *Object) []byte {
	b = appendClock(append(b, 0x92), o.Clock)
	return appendList(b, o.Siblings, appendSibling)
}

func appendSibling(b []byte, s *Sibling) []byte {
	if s.Expires == 0 {
		b = append(b, 0x94)
	} else {
		b = append(b, 0x95)
	}
	b = appendDot(b, &s.Dot)
	b = appendBinOrNil(b, s.Value)
	b = appendBool(b, s.Deleted)
	b = appendInt(b, s.Time)
	if s.Expires != 0 {
		b = appendInt(b, s.Expires)
	}
	return b
}

// appendClock writes a clock as an array of dots, or nil.
func appendClock(b []byte, c Clock) []byte { return appendList(b, c, appendDot) }

// appendDot writes a dot as the array [node, counter].
func appendDot(b []byte, d *Dot) []byte {
	return appendUint(appendStr(append(b, 0x92), d.Node), d.Counter)
}

// maxClockLen bounds the length of appendClock's encoding of c: a 5-byte
// header, then per dot a 1-byte header, a string of at most 5 bytes of
// header and a counter of at most 9 bytes.
func maxClockLen(c Clock) int {
	n := 5
	for _, d := range c {
		n += 15 + len(d.Node)
	}
	return n
}

var (
	// siblingList: the smallest sibling is [["a",1],nil,false,0].
	siblingList = listSpec{name: "siblings", minSize: 8, max: MaxStoredSiblings}
	// dotList: the smallest dot is ["a",1]. A clock's entries are
	// ErrInvalidContext, as Clock.Validate says.
	dotList = listSpec{name: "clock entries", minSize: 4, max: MaxClockEntries, sentinel: ErrInvalidContext}
)

// objectOrNil reads an *Object field: nil, or what appendObject writes.
func (d *decoder) objectOrNil() (*Object, error) {
	if d.nil() {
		return nil, nil
	}
	if err := d.tuple(2, "object"); err != nil {
		return nil, err
	}
	o := &Object{}
	var err error
	if o.Clock, err = d.clock(); err != nil {
		return nil, err
	}
	if o.Siblings, err = decodeList(d, siblingList, d.sibling); err != nil {
		return nil, err
	}
	return o, nil
}

// sibling reads a sibling: an array of four elements, or five with the
// expiry (see the top of this file). The count is checked before any
// element is read.
func (d *decoder) sibling(s *Sibling) (err error) {
	n, err := d.arrayLen(1)
	if err != nil {
		return err
	}
	if n != 4 && n != 5 {
		return d.errorf("sibling: array of %d items, want 4 or 5", n)
	}
	if err = d.dot(&s.Dot); err != nil {
		return err
	}
	if d.noValues {
		n, err := d.bytesLen()
		if err != nil {
			return err
		}
		if _, err = d.raw(max(n, 0)); err != nil {
			return err
		}
	} else if s.Value, err = d.bytes(); err != nil {
		return err
	}
	if s.Deleted, err = d.bool(); err != nil {
		return err
	}
	if s.Time, err = d.int(); err != nil || n == 4 {
		return err
	}
	s.Expires, err = d.int()
	return err
}

// clock reads a Clock: nil, or an array of dots. The entry limit is
// checked before allocating; Validate checks the rest.
func (d *decoder) clock() (Clock, error) { return decodeList(d, dotList, d.dot) }

func (d *decoder) dot(dot *Dot) (err error) {
	if err = d.tuple(2, "dot"); err != nil {
		return err
	}
	if dot.Node, err = d.id(); err != nil {
		return err
	}
	dot.Counter, err = d.uint()
	return err
}
