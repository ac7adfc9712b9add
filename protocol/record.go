package protocol

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
}

// Object is everything a replica stores for one key: the causal clock of
// all writes it has seen and the siblings no seen write superseded
// (dotted version vector set, as in Riak 2.x).
type Object struct {
	Clock    Clock
	Siblings []Sibling
}

// Live returns the siblings that are not tombstones.
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
		d := o.Siblings[i].Dot
		if err := validDot(d); err != nil {
			return err
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
