package version

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

func sib(node string, n uint64, value string) protocol.Sibling {
	return protocol.Sibling{Dot: dot(node, n), Value: []byte(value)}
}

func obj(clock string, sibs ...protocol.Sibling) *protocol.Object {
	return &protocol.Object{Clock: clk(clock), Siblings: sibs}
}

// clone deep-copies an object, values included, to detect mutation.
func clone(o *protocol.Object) *protocol.Object {
	if o == nil {
		return nil
	}
	c := &protocol.Object{Clock: slices.Clone(o.Clock)}
	for _, s := range o.Siblings {
		s.Value = slices.Clone(s.Value)
		c.Siblings = append(c.Siblings, s)
	}
	return c
}

// identical is stricter than Equal: same order and nil-ness too.
func identical(a, b *protocol.Object) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil {
		return true
	}
	return slices.Equal(a.Clock, b.Clock) && slices.EqualFunc(a.Siblings, b.Siblings, func(x, y protocol.Sibling) bool {
		return cmpSibling(x, y) == 0
	})
}

func fmtObj(o *protocol.Object) string {
	if o == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString(fmtClock(o.Clock))
	b.WriteString(" {")
	for i, s := range o.Siblings {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s:%d=%q", s.Dot.Node, s.Dot.Counter, s.Value)
		if s.Deleted {
			b.WriteString("(del)")
		}
	}
	b.WriteString("}")
	return b.String()
}

// checkValid asserts the invariants every object this package returns
// keeps: a valid clock; sibling dots valid, sorted, unique and covered by
// the clock; and at most protocol.MaxSiblings siblings per coordinating
// node. The total may exceed protocol.MaxSiblings after a Sync (see
// TestSyncMayExceedMaxSiblings), so protocol.Object.Validate is not used.
func checkValid(t testing.TB, o *protocol.Object) {
	t.Helper()
	if o == nil {
		return
	}
	if err := o.Clock.Validate(); err != nil {
		t.Fatalf("invalid clock in %s: %v", fmtObj(o), err)
	}
	perNode := map[string]int{}
	for i, s := range o.Siblings {
		if err := (protocol.Clock{s.Dot}).Validate(); err != nil {
			t.Fatalf("object %s: sibling dot %v: %v", fmtObj(o), s.Dot, err)
		}
		if !Covers(o.Clock, s.Dot) {
			t.Fatalf("object %s: clock does not cover sibling %v", fmtObj(o), s.Dot)
		}
		if i > 0 && cmpDot(o.Siblings[i-1].Dot, s.Dot) >= 0 {
			t.Fatalf("object %s: siblings not sorted by unique dot", fmtObj(o))
		}
		if perNode[s.Dot.Node]++; perNode[s.Dot.Node] > protocol.MaxSiblings {
			t.Fatalf("object %s: more than %d siblings from %s", fmtObj(o), protocol.MaxSiblings, s.Dot.Node)
		}
	}
}

func TestUpdate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		local *protocol.Object
		ctx   string
		node  string
		s     *protocol.Sibling // default: value "new" with a dot Update must replace
		want  *protocol.Object
	}{
		{
			name: "first write",
			node: "a",
			want: obj("a:1", sib("a", 1, "new")),
		},
		{
			name:  "first write on an empty object",
			local: &protocol.Object{},
			node:  "a",
			want:  obj("a:1", sib("a", 1, "new")),
		},
		{
			name:  "blind write keeps the sibling",
			local: obj("a:1", sib("a", 1, "x")),
			node:  "a",
			want:  obj("a:2", sib("a", 1, "x"), sib("a", 2, "new")),
		},
		{
			name:  "write with the read's context supersedes",
			local: obj("a:1", sib("a", 1, "x")),
			ctx:   "a:1",
			node:  "a",
			want:  obj("a:2", sib("a", 2, "new")),
		},
		{
			name:  "context supersedes only what it covers",
			local: obj("a:3 b:2", sib("a", 2, "x"), sib("a", 3, "y"), sib("b", 2, "z")),
			ctx:   "a:2 b:2",
			node:  "a",
			want:  obj("a:4 b:2", sib("a", 3, "y"), sib("a", 4, "new")),
		},
		{
			name:  "coordinator without an entry yet",
			local: obj("b:2", sib("b", 2, "z")),
			ctx:   "b:2",
			node:  "a",
			want:  obj("a:1 b:2", sib("a", 1, "new")),
		},
		{
			name:  "new dot sorts between nodes",
			local: obj("a:1 c:1", sib("a", 1, "x"), sib("c", 1, "z")),
			node:  "b",
			want:  obj("a:1 b:1 c:1", sib("a", 1, "x"), sib("b", 1, "new"), sib("c", 1, "z")),
		},
		{
			name:  "context joined into the clock",
			local: obj("a:1", sib("a", 1, "x")),
			ctx:   "a:1 c:7",
			node:  "a",
			want:  obj("a:2 c:7", sib("a", 2, "new")),
		},
		{
			name:  "context from another replica supersedes nothing here",
			local: obj("a:1", sib("a", 1, "x")),
			ctx:   "b:3",
			node:  "a",
			want:  obj("a:2 b:3", sib("a", 1, "x"), sib("a", 2, "new")),
		},
		{
			name:  "context claims more than local: no dot reuse",
			local: obj("a:2", sib("a", 2, "x")),
			ctx:   "a:5",
			node:  "a",
			want:  obj("a:6", sib("a", 6, "new")),
		},
		{
			name: "absent local, context from before a crash",
			ctx:  "a:9 b:1",
			node: "a",
			want: obj("a:10 b:1", sib("a", 10, "new")),
		},
		{
			name:  "a sibling its clock does not cover is not reused",
			local: obj("", sib("a", 4, "bad")),
			node:  "a",
			want:  obj("a:5", sib("a", 4, "bad"), sib("a", 5, "new")),
		},
		{
			name:  "unsorted local siblings come out sorted",
			local: obj("a:2 b:1", sib("b", 1, "y"), sib("a", 2, "x")),
			node:  "a",
			want:  obj("a:3 b:1", sib("a", 2, "x"), sib("a", 3, "new"), sib("b", 1, "y")),
		},
		{
			name:  "tombstone write",
			local: obj("a:1", sib("a", 1, "x")),
			ctx:   "a:1",
			node:  "b",
			s:     &protocol.Sibling{Deleted: true, Time: 7},
			want:  obj("a:1 b:1", protocol.Sibling{Dot: dot("b", 1), Deleted: true, Time: 7}),
		},
		{
			name:  "a write with a TTL keeps its expiry",
			local: obj("a:1", sib("a", 1, "x")),
			node:  "a",
			s:     &protocol.Sibling{Value: []byte("new"), Time: 7, Expires: 37},
			want:  obj("a:2", sib("a", 1, "x"), protocol.Sibling{Dot: dot("a", 2), Value: []byte("new"), Time: 7, Expires: 37}),
		},
		{
			name:  "a write without a TTL supersedes an expiring value",
			local: obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 37}),
			ctx:   "a:1",
			node:  "b",
			want:  obj("a:1 b:1", sib("b", 1, "new")),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := protocol.Sibling{Dot: dot("ignored", 42), Value: []byte("new")}
			if tc.s != nil {
				s = *tc.s
			}
			ctx := clk(tc.ctx)
			local0, ctx0 := clone(tc.local), slices.Clone(ctx)
			got, err := Update(tc.local, ctx, tc.node, s)
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if !identical(got, tc.want) {
				t.Fatalf("Update(%s, %s, %s) = %s, want %s", fmtObj(tc.local), tc.ctx, tc.node, fmtObj(got), fmtObj(tc.want))
			}
			if !identical(tc.local, local0) || !slices.Equal(ctx, ctx0) {
				t.Fatal("Update modified its input")
			}
			checkValid(t, got)
			// The result owns its slices.
			for i := range got.Clock {
				got.Clock[i].Counter++
			}
			for i := range got.Siblings {
				got.Siblings[i].Dot.Counter++
			}
			if !identical(tc.local, local0) || !slices.Equal(ctx, ctx0) {
				t.Fatal("Update returned memory shared with its input")
			}
		})
	}
}

func manySiblings(node string, n int) *protocol.Object {
	o := &protocol.Object{Clock: protocol.Clock{dot(node, uint64(n))}}
	for i := 1; i <= n; i++ {
		o.Siblings = append(o.Siblings, sib(node, uint64(i), "v"))
	}
	return o
}

func TestUpdateErrors(t *testing.T) {
	bigClock := func(n int, skip string) protocol.Clock {
		var c protocol.Clock
		for i := range n {
			if name := fmt.Sprintf("n%03d", i); name != skip {
				c = append(c, dot(name, 1))
			}
		}
		return c
	}
	for _, tc := range []struct {
		name  string
		local *protocol.Object
		ctx   protocol.Clock
		node  string
		want  error // nil: must succeed
	}{
		{"at the sibling limit", manySiblings("a", protocol.MaxSiblings-1), nil, "a", nil},
		{"past the sibling limit", manySiblings("a", protocol.MaxSiblings), nil, "a", protocol.ErrTooManySiblings},
		{"tombstones count", func() *protocol.Object {
			o := manySiblings("a", protocol.MaxSiblings)
			for i := range o.Siblings {
				o.Siblings[i].Deleted = true
			}
			return o
		}(), nil, "a", protocol.ErrTooManySiblings},
		{"a context that supersedes makes room", manySiblings("a", protocol.MaxSiblings), clk("a:1"), "a", nil},
		{"counter at the limit", obj(fmt.Sprintf("a:%d", uint64(protocol.MaxCounter-1))), nil, "a", nil},
		{"counter past the limit", obj(fmt.Sprintf("a:%d", uint64(protocol.MaxCounter))), nil, "a", protocol.ErrInvalidContext},
		{"context counter past the limit", nil, clk(fmt.Sprintf("a:%d", uint64(protocol.MaxCounter))), "a", protocol.ErrInvalidContext},
		{"other node at the counter limit is fine", nil, clk(fmt.Sprintf("b:%d", uint64(protocol.MaxCounter))), "a", nil},
		{"clock at the entry limit", &protocol.Object{Clock: bigClock(protocol.MaxClockEntries, "")}, nil, "n000", nil},
		{"clock gains the last entry", &protocol.Object{Clock: bigClock(protocol.MaxClockEntries, "n000")}, nil, "n000", nil},
		{"clock past the entry limit", &protocol.Object{Clock: bigClock(protocol.MaxClockEntries, "")}, nil, "zz", protocol.ErrInvalidContext},
		{"context pushes the clock past the limit", &protocol.Object{Clock: bigClock(protocol.MaxClockEntries-1, "")}, clk("zy:1"), "zz", protocol.ErrInvalidContext},
		{"context too long", nil, bigClock(protocol.MaxClockEntries+1, ""), "a", protocol.ErrInvalidContext},
		{"context unsorted", nil, clk("b:1 a:1"), "a", protocol.ErrInvalidContext},
		{"context duplicate", nil, clk("a:1 a:2"), "a", protocol.ErrInvalidContext},
		{"context zero counter", nil, clk("a:0"), "a", protocol.ErrInvalidContext},
		{"context bad node id", nil, clk("a.b:1"), "a", protocol.ErrInvalidContext},
		{"empty coordinator id", nil, nil, "", protocol.ErrInvalidOption},
		{"bad coordinator id", nil, nil, "a b", protocol.ErrInvalidOption},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local0 := clone(tc.local)
			got, err := Update(tc.local, tc.ctx, tc.node, sib("x", 1, "new"))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Update: %v", err)
				}
				checkValid(t, got)
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Update error = %v, want %v", err, tc.want)
			}
			if got != nil {
				t.Fatalf("Update returned %s with an error", fmtObj(got))
			}
			if !identical(tc.local, local0) {
				t.Fatal("a failed Update modified its input")
			}
			if c, _ := protocol.Classify(err); c != tc.want.(*protocol.Error).Code {
				t.Fatalf("Classify(%v) = %d", err, c)
			}
		})
	}
}

func TestSync(t *testing.T) {
	for _, tc := range []struct {
		name    string
		a, b    *protocol.Object
		want    *protocol.Object
		nilSafe bool // want is nil
	}{
		{name: "both absent", nilSafe: true},
		{
			name: "one absent",
			a:    obj("a:2", sib("a", 1, "x"), sib("a", 2, "y")),
			want: obj("a:2", sib("a", 1, "x"), sib("a", 2, "y")),
		},
		{
			name: "one empty",
			a:    obj("a:1", sib("a", 1, "x")),
			b:    &protocol.Object{},
			want: obj("a:1", sib("a", 1, "x")),
		},
		{
			name: "same",
			a:    obj("a:1", sib("a", 1, "x")),
			b:    obj("a:1", sib("a", 1, "x")),
			want: obj("a:1", sib("a", 1, "x")),
		},
		{
			name: "newer supersedes older",
			a:    obj("a:1", sib("a", 1, "x")),
			b:    obj("a:2", sib("a", 2, "y")),
			want: obj("a:2", sib("a", 2, "y")),
		},
		{
			name: "concurrent writes become siblings",
			a:    obj("a:1", sib("a", 1, "x")),
			b:    obj("b:1", sib("b", 1, "y")),
			want: obj("a:1 b:1", sib("a", 1, "x"), sib("b", 1, "y")),
		},
		{
			name: "shared sibling kept once, superseded one dropped",
			a:    obj("a:2 b:1", sib("a", 2, "x"), sib("b", 1, "y")),
			b:    obj("a:2 b:2", sib("a", 2, "x"), sib("b", 2, "z")),
			want: obj("a:2 b:2", sib("a", 2, "x"), sib("b", 2, "z")),
		},
		{
			name: "a sibling the other has not seen survives",
			a:    obj("a:3", sib("a", 3, "x")),
			b:    obj("a:2 b:1", sib("b", 1, "y")),
			want: obj("a:3 b:1", sib("a", 3, "x"), sib("b", 1, "y")),
		},
		{
			name: "seen and dropped stays dropped",
			a:    obj("a:1 b:1", sib("a", 1, "x"), sib("b", 1, "y")),
			b:    obj("a:2 b:1", sib("a", 2, "z")),
			want: obj("a:2 b:1", sib("a", 2, "z")),
		},
		{
			name: "unsorted inputs",
			a:    obj("a:1 b:1 c:1", sib("c", 1, "z"), sib("a", 1, "x"), sib("b", 1, "y")),
			b:    obj("d:1", sib("d", 1, "w")),
			want: obj("a:1 b:1 c:1 d:1", sib("a", 1, "x"), sib("b", 1, "y"), sib("c", 1, "z"), sib("d", 1, "w")),
		},
		{
			name: "conflicting values for one dot: later time wins",
			a:    obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Time: 2}),
			b:    obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("y"), Time: 1}),
			want: obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Time: 2}),
		},
		{
			name: "conflicting values for one dot: tombstone wins a tie",
			a:    obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x")}),
			b:    obj("a:1", protocol.Sibling{Dot: dot("a", 1), Deleted: true}),
			want: obj("a:1", protocol.Sibling{Dot: dot("a", 1), Deleted: true}),
		},
		{
			name: "conflicting values for one dot: greater value wins a tie",
			a:    obj("a:1", sib("a", 1, "x")),
			b:    obj("a:1", sib("a", 1, "y")),
			want: obj("a:1", sib("a", 1, "y")),
		},
		{
			name: "conflicting expiries for one dot: the later wins a tie",
			a:    obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 9}),
			b:    obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 8}),
			want: obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 9}),
		},
		{
			name: "an expiring sibling merges like any other",
			a:    obj("a:1 b:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 9}, sib("b", 1, "y")),
			b:    obj("a:1 b:2", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 9}, sib("b", 2, "z")),
			want: obj("a:1 b:2", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 9}, sib("b", 2, "z")),
		},
		{
			name: "a later write supersedes an expiring one",
			a:    obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 9}),
			b:    obj("a:2", sib("a", 2, "y")),
			want: obj("a:2", sib("a", 2, "y")),
		},
		{
			name: "duplicate dot inside one input",
			a:    obj("a:1", sib("a", 1, "x"), sib("a", 1, "y")),
			want: obj("a:1", sib("a", 1, "y")),
		},
		{
			name: "clock only",
			a:    obj("a:3"),
			b:    obj("a:2", sib("a", 2, "x")),
			want: obj("a:3"),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, swap := range []bool{false, true} {
				a, b := tc.a, tc.b
				if swap {
					a, b = b, a
				}
				a0, b0 := clone(a), clone(b)
				got := Sync(a, b)
				if tc.nilSafe {
					if got != nil {
						t.Fatalf("Sync(nil, nil) = %s", fmtObj(got))
					}
					continue
				}
				if !identical(got, tc.want) {
					t.Fatalf("Sync(%s, %s) = %s, want %s", fmtObj(a), fmtObj(b), fmtObj(got), fmtObj(tc.want))
				}
				if !identical(a, a0) || !identical(b, b0) {
					t.Fatal("Sync modified its input")
				}
				for i := range got.Clock {
					got.Clock[i].Counter++
				}
				for i := range got.Siblings {
					got.Siblings[i].Dot.Counter++
				}
				if !identical(a, a0) || !identical(b, b0) {
					t.Fatal("Sync returned memory shared with its input")
				}
			}
		})
	}
}

func TestEqual(t *testing.T) {
	x := obj("a:1 b:1", sib("a", 1, "x"), sib("b", 1, "y"))
	for _, tc := range []struct {
		name string
		a, b *protocol.Object
		want bool
	}{
		{"nil nil", nil, nil, true},
		{"nil empty", nil, &protocol.Object{}, true},
		{"empty slices", &protocol.Object{Clock: protocol.Clock{}, Siblings: []protocol.Sibling{}}, &protocol.Object{}, true},
		{"nil object", nil, x, false},
		{"same", x, clone(x), true},
		{"sibling order", x, obj("a:1 b:1", sib("b", 1, "y"), sib("a", 1, "x")), true},
		{"nil and empty value", obj("a:1", sib("a", 1, "")), obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte{}}), true},
		{"clock differs", x, obj("a:1 b:2", sib("a", 1, "x"), sib("b", 1, "y")), false},
		{"clock entry missing", x, obj("a:1", sib("a", 1, "x"), sib("b", 1, "y")), false},
		{"sibling missing", x, obj("a:1 b:1", sib("a", 1, "x")), false},
		{"value differs", x, obj("a:1 b:1", sib("a", 1, "x"), sib("b", 1, "z")), false},
		{"dot differs", obj("a:2", sib("a", 1, "x")), obj("a:2", sib("a", 2, "x")), false},
		{"tombstone differs", obj("a:1", sib("a", 1, "")), obj("a:1", protocol.Sibling{Dot: dot("a", 1), Deleted: true}), false},
		{"time differs", obj("a:1", sib("a", 1, "x")), obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Time: 1}), false},
		{"expiry set", obj("a:1", sib("a", 1, "x")), obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 5}), false},
		{"expiry differs", obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 6}), obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 5}), false},
		{"same expiry", obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 5}), obj("a:1", protocol.Sibling{Dot: dot("a", 1), Value: []byte("x"), Expires: 5}), true},
		{"duplicates are not a set", obj("a:1", sib("a", 1, "x"), sib("a", 1, "x")), obj("a:1", sib("a", 1, "x")), false},
	} {
		if got := Equal(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: Equal(%s, %s) = %v, want %v", tc.name, fmtObj(tc.a), fmtObj(tc.b), got, tc.want)
		}
		if got := Equal(tc.b, tc.a); got != tc.want {
			t.Errorf("%s: Equal(%s, %s) = %v, want %v", tc.name, fmtObj(tc.b), fmtObj(tc.a), got, tc.want)
		}
	}
}

// TestConcurrentWritesBecomeSiblings is the basic Dynamo story: two
// clients write blind at two replicas; a read shows both values; a write
// with the read's context collapses them into one.
func TestConcurrentWritesBecomeSiblings(t *testing.T) {
	a := mustUpdate(t, nil, nil, "a", "from client 1")
	b := mustUpdate(t, nil, nil, "b", "from client 2")
	read := Sync(a, b)
	if len(read.Siblings) != 2 || Compare(a.Clock, b.Clock) != Concurrent {
		t.Fatalf("read = %s, want two siblings", fmtObj(read))
	}
	// A third blind write at a replica that has both adds a third sibling.
	c := mustUpdate(t, read, nil, "a", "from client 3")
	if len(c.Siblings) != 3 {
		t.Fatalf("blind write over two siblings = %s, want three", fmtObj(c))
	}
	// The resolving write, with the context of the read, keeps only
	// client 3's value, which the read did not see, and its own.
	res := mustUpdate(t, c, read.Clock, "b", "resolved")
	if got := values(res); !slices.Equal(got, []string{"from client 3", "resolved"}) {
		t.Fatalf("resolving write = %s", fmtObj(res))
	}
	// A write with the context of everything collapses to one value, and
	// replicas that still hold the old siblings take it on sync.
	final := mustUpdate(t, res, res.Clock, "a", "final")
	for _, other := range []*protocol.Object{a, b, c, read, res} {
		if got := values(Sync(other, final)); !slices.Equal(got, []string{"final"}) {
			t.Fatalf("Sync(%s, final) = %v", fmtObj(other), got)
		}
	}
}

// TestDeleteIsATombstone: a delete with the read's context leaves one
// tombstone that supersedes the value everywhere; a concurrent put
// survives next to it.
func TestDeleteIsATombstone(t *testing.T) {
	v := mustUpdate(t, nil, nil, "a", "v")
	del, err := Update(v, v.Clock, "a", protocol.Sibling{Deleted: true})
	if err != nil {
		t.Fatal(err)
	}
	concurrent := mustUpdate(t, v, nil, "b", "w") // b got v by replication, client wrote blind
	got := Sync(del, concurrent)
	if len(got.Siblings) != 2 || !got.Siblings[0].Deleted || string(got.Siblings[1].Value) != "w" {
		t.Fatalf("Sync(delete, concurrent put) = %s", fmtObj(got))
	}
	if live := got.Live(); len(live) != 1 || string(live[0].Value) != "w" {
		t.Fatalf("live siblings = %v", live)
	}
}

// TestOwnContextBoundsSiblings: a writer that passes on the context its
// previous put returned never has more than one sibling of its own, even
// when each put lands on a different replica.
func TestOwnContextBoundsSiblings(t *testing.T) {
	replicas := map[string]*protocol.Object{}
	var ctx protocol.Clock
	nodes := []string{"a", "b", "c"}
	for i := range 30 {
		node := nodes[i%3]
		o, err := Update(replicas[node], ctx, node, protocol.Sibling{Value: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		replicas[node] = o
		ctx = o.Clock
		all := Sync(Sync(replicas["a"], replicas["b"]), replicas["c"])
		if len(all.Siblings) != 1 || string(all.Siblings[0].Value) != fmt.Sprint(i) {
			t.Fatalf("after write %d: %s", i, fmtObj(all))
		}
	}
}

// TestResultContextSupersedesUnseenSiblings documents a hazard for the
// code that answers a put: the object clock after a write covers every
// sibling the coordinator held, including concurrent ones the writer
// never saw. A client that passes that clock on as its next context
// supersedes them. That is what bounds siblings per writer, but it is a
// lost update unless the put reply also shows the writer those siblings.
func TestResultContextSupersedesUnseenSiblings(t *testing.T) {
	other := mustUpdate(t, nil, nil, "a", "other writer")
	mine := mustUpdate(t, other, nil, "a", "mine") // blind: did not see "other writer"
	if got := values(mine); !slices.Equal(got, []string{"other writer", "mine"}) {
		t.Fatalf("after my first put: %v", got)
	}
	next := mustUpdate(t, mine, mine.Clock, "a", "mine again")
	if got := values(next); !slices.Equal(got, []string{"mine again"}) {
		t.Fatalf("after my second put: %v", got)
	}
	// The exact context of "mine" alone is the blind context plus its dot,
	// which a version vector can express only when the dot is the next
	// counter after the context's entry; here it is not.
	if Get(nil, "a")+1 == mine.Siblings[1].Dot.Counter {
		t.Fatal("test setup: want a gap between the context and the dot")
	}
}

func mustUpdate(t testing.TB, local *protocol.Object, ctx protocol.Clock, node, value string) *protocol.Object {
	t.Helper()
	o, err := Update(local, ctx, node, protocol.Sibling{Value: []byte(value)})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	checkValid(t, o)
	return o
}

// values lists the values of o's siblings in dot order.
func values(o *protocol.Object) []string {
	var vs []string
	for _, s := range o.Siblings {
		vs = append(vs, string(s.Value))
	}
	return vs
}

// TestSyncMayExceedMaxSiblings: Update refuses a write that would leave
// more than protocol.MaxSiblings siblings at its coordinator, but replicas
// coordinating concurrently can each stay under the limit while their
// merge exceeds it. Sync must not drop any of them (that would lose
// acknowledged writes), so its result can hold up to MaxSiblings per
// coordinating node.
func TestSyncMayExceedMaxSiblings(t *testing.T) {
	var a, b *protocol.Object
	for i := range 60 {
		a = mustUpdate(t, a, nil, "a", fmt.Sprint("a", i))
		b = mustUpdate(t, b, nil, "b", fmt.Sprint("b", i))
	}
	m := Sync(a, b)
	checkValid(t, m)
	if len(m.Siblings) != 120 {
		t.Fatalf("Sync kept %d siblings, want 120", len(m.Siblings))
	}
	// A blind write is refused at the merged replica; one with the read's
	// context is not.
	if _, err := Update(m, nil, "a", sib("", 0, "x")); !errors.Is(err, protocol.ErrTooManySiblings) {
		t.Fatalf("blind write on 120 siblings: %v", err)
	}
	if o := mustUpdate(t, m, m.Clock, "a", "resolved"); len(o.Siblings) != 1 {
		t.Fatalf("resolving write: %s", fmtObj(o))
	}
}
