package history

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Dumps are what each node's replica store holds: node id -> key ->
// object (nil or missing: the node holds nothing for the key).
type Dumps map[string]map[string]*protocol.Object

// Divergence is one key whose replicas differ (P4), or whose clock grew
// past its bound (P5).
type Divergence struct {
	Key    string `json:"key"`
	Detail string `json:"detail"`
}

func (d Divergence) String() string { return d.Key + ": " + d.Detail }

// Diverged checks P4 on the dumps of every node: each key is held by no
// node or by exactly n nodes (its owners; kvmesh has no sloppy quorum
// and no hints yet, so no other node ever holds a key), and they hold
// identical objects: the same clock and the same siblings (dot, value,
// tombstone flag, time; version.Equal). It also checks the sibling-explosion guard of
// P5 on every clock: its entries are actors of the key's holders only,
// and a node has at most incarnations[node] of them (default 1). A node
// issues dots under an actor "<id>.<suffix>" (see ActorNode), and takes a
// new one when it starts on a store it cannot trust to hold every dot it
// sent out (a power loss, a wiped data dir, a failed sync); a plain
// kill -9 keeps it. So a node stopped uncleanly twice has at most three.
// An empty result means converged.
func Diverged(keys []string, dumps Dumps, n int, incarnations map[string]int) []Divergence {
	nodes := make([]string, 0, len(dumps))
	for id := range dumps {
		nodes = append(nodes, id)
	}
	slices.Sort(nodes)
	var out []Divergence
	for _, k := range keys {
		var holders []string
		var first *protocol.Object
		same := true
		for _, id := range nodes {
			o := dumps[id][k]
			if o == nil {
				continue
			}
			holders = append(holders, id)
			if first == nil {
				first = o
			} else if !version.Equal(first, o) {
				same = false
			}
		}
		for _, id := range holders {
			if bad := clockExcess(dumps[id][k].Clock, holders, incarnations); bad != "" {
				out = append(out, Divergence{k, fmt.Sprintf("P5: clock on %s: %s: %s", id, bad, ObjectString(dumps[id][k]))})
			}
		}
		switch {
		case len(holders) != 0 && len(holders) != n:
			out = append(out, Divergence{k, fmt.Sprintf("held by %d nodes %v, want 0 or %d", len(holders), holders, n)})
		case !same:
			var b strings.Builder
			for _, id := range holders {
				fmt.Fprintf(&b, " %s=%s", id, ObjectString(dumps[id][k]))
			}
			out = append(out, Divergence{k, "replicas differ:" + b.String()})
		}
	}
	return out
}

// ActorNode is the node id of a clock actor: "n1" for "n1" and for
// "n1.<suffix>" (node ids cannot contain '.'; protocol.ActorNode).
func ActorNode(actor string) string {
	node, _, _ := strings.Cut(actor, ".")
	return node
}

// clockExcess describes what is wrong with clock, or returns "".
func clockExcess(clock protocol.Clock, holders []string, incarnations map[string]int) string {
	per := map[string]int{}
	for _, d := range clock {
		node := ActorNode(d.Node)
		if !slices.Contains(holders, node) {
			return fmt.Sprintf("entry %s is not an actor of an owner %v", d.Node, holders)
		}
		per[node]++
	}
	for node, c := range per {
		allowed := max(incarnations[node], 1)
		if c > allowed {
			return fmt.Sprintf("%d entries of %s, which had at most %d incarnations", c, node, allowed)
		}
	}
	return ""
}

// Holders returns the nodes whose dump holds key, sorted.
func Holders(dumps Dumps, key string) []string {
	var out []string
	for id, m := range dumps {
		if m[key] != nil {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// ObjectString is a short account of an object for reports: its clock,
// then its siblings, "{n1:2 n2:1} [n1:2=a n2:1=<tombstone>]".
func ObjectString(o *protocol.Object) string {
	if o == nil {
		return "nil"
	}
	var b strings.Builder
	b.WriteString(ClockString(o.Clock))
	b.WriteString(" [")
	for i, s := range o.Siblings {
		v := clip(string(s.Value))
		if s.Deleted {
			v = "<tombstone>"
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d=%s", s.Dot.Node, s.Dot.Counter, v)
	}
	b.WriteString("]")
	return b.String()
}

// ClockString is a short account of a clock for reports, "{n1:2 n2:1}".
func ClockString(c protocol.Clock) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, d := range c {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", d.Node, d.Counter)
	}
	b.WriteByte('}')
	return b.String()
}
