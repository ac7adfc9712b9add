package version

import (
	"fmt"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

// benchObject builds an object as replica node of n nodes would hold it
// after sibs blind writes spread over the nodes.
func benchObject(b *testing.B, nodes, sibs int) *protocol.Object {
	var o *protocol.Object
	for i := range sibs {
		var err error
		o, err = Update(o, nil, fmt.Sprintf("node-%02d", i%nodes), protocol.Sibling{Value: make([]byte, 64)})
		if err != nil {
			b.Fatal(err)
		}
	}
	return o
}

var sinkObj *protocol.Object

func BenchmarkSync(b *testing.B) {
	// The common case: a replica one write behind.
	base := benchObject(b, 3, 1)
	newer, _ := Update(base, base.Clock, "node-01", protocol.Sibling{Value: make([]byte, 64)})
	// Many siblings: two replicas that took concurrent blind writes.
	left := benchObject(b, 5, 50)
	right, _ := Update(left, nil, "node-03", protocol.Sibling{})
	left, _ = Update(left, nil, "node-01", protocol.Sibling{})
	for _, bc := range []struct {
		name string
		a, b *protocol.Object
	}{
		{"equal/1-sibling", base, base},
		{"behind/1-sibling", base, newer},
		{"absent/1-sibling", nil, newer},
		{"concurrent/51-siblings", left, right},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkObj = Sync(bc.a, bc.b)
			}
		})
	}
}

func BenchmarkUpdate(b *testing.B) {
	one := benchObject(b, 3, 1)
	three := benchObject(b, 3, 3)
	many := benchObject(b, 5, 50)
	for _, bc := range []struct {
		name  string
		local *protocol.Object
		ctx   protocol.Clock
	}{
		{"first", nil, nil},
		{"supersede/1-sibling", one, one.Clock},
		{"supersede/3-siblings", three, three.Clock},
		{"blind/3-siblings", three, nil},
		{"blind/50-siblings", many, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := protocol.Sibling{Value: make([]byte, 64)}
			b.ReportAllocs()
			for b.Loop() {
				o, err := Update(bc.local, bc.ctx, "node-01", s)
				if err != nil {
					b.Fatal(err)
				}
				sinkObj = o
			}
		})
	}
}

var sinkOrder Order

func BenchmarkCompare(b *testing.B) {
	x := benchObject(b, 5, 5).Clock
	y := Join(x, protocol.Clock{{Node: "node-02", Counter: 9}})
	b.ReportAllocs()
	for b.Loop() {
		sinkOrder = Compare(x, y)
	}
}
