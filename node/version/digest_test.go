package version

import (
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

func TestDigest(t *testing.T) {
	a := protocol.Dot{Node: "n1.k7gv52o000booae", Counter: 3}
	b := protocol.Dot{Node: "n2.k7gv52o000booaf", Counter: 9}
	base := func() *protocol.Object {
		return &protocol.Object{Clock: protocol.Clock{a, b}, Siblings: []protocol.Sibling{
			{Dot: a, Value: []byte("one"), Time: 100},
			{Dot: b, Value: []byte("two"), Time: 200, Expires: 900},
		}}
	}
	d := Digest("k", base())
	if d == 0 {
		t.Fatal("an object has digest 0")
	}
	if Digest("k", nil) != 0 || Digest("k", &protocol.Object{}) != 0 {
		t.Fatal("no object must have digest 0")
	}
	swapped := base()
	swapped.Siblings[0], swapped.Siblings[1] = swapped.Siblings[1], swapped.Siblings[0]
	if Digest("k", swapped) != d {
		t.Error("siblings are a set: their order must not change the digest")
	}
	// A dot names one write: its value is not hashed, its length is.
	sameDot := base()
	sameDot.Siblings[0].Value = []byte("eno")
	if Digest("k", sameDot) != d {
		t.Error("the value of a dot was hashed")
	}
	for name, change := range map[string]func(o *protocol.Object){
		"key":            nil,
		"clock counter":  func(o *protocol.Object) { o.Clock[1].Counter++ },
		"clock entry":    func(o *protocol.Object) { o.Clock = o.Clock[:1] },
		"sibling dot":    func(o *protocol.Object) { o.Siblings[0].Dot.Counter = 2 },
		"sibling gone":   func(o *protocol.Object) { o.Siblings = o.Siblings[:1] },
		"time":           func(o *protocol.Object) { o.Siblings[0].Time++ },
		"tombstone":      func(o *protocol.Object) { o.Siblings[0].Deleted, o.Siblings[0].Value = true, []byte("one") },
		"expiry":         func(o *protocol.Object) { o.Siblings[1].Expires++ },
		"value length":   func(o *protocol.Object) { o.Siblings[0].Value = []byte("one!") },
		"clock, no sibs": func(o *protocol.Object) { o.Siblings = nil },
	} {
		o, key := base(), "k"
		if change == nil {
			key = "k2"
		} else {
			change(o)
		}
		if Digest(key, o) == d {
			t.Errorf("%s: changed, same digest", name)
		}
	}
}

// BenchmarkDigest: a digest read hashes the coordinator's replica and
// the peer's, whatever the value size.
func BenchmarkDigest(b *testing.B) {
	a := protocol.Dot{Node: "n1.k7gv52o000booae", Counter: 3}
	o := &protocol.Object{Clock: protocol.Clock{a, {Node: "n2.k7gv52o000booaf", Counter: 9}, {Node: "n3.k7gv52o000booag", Counter: 1}},
		Siblings: []protocol.Sibling{{Dot: a, Value: make([]byte, 10240), Time: 100}}}
	b.ReportAllocs()
	for b.Loop() {
		Digest("user.12345", o)
	}
}
