package client

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// NodeStatus is one node's status: its actor, the members it knows and
// hears, its store's health (see protocol.NodeStatus).
type NodeStatus = protocol.NodeStatus

// Status asks every node of the store for its status and returns the
// answers, sorted by node id. It waits until every member the answers
// name has answered, or until ctx is done; then it returns what came, and
// ErrNodeUnavailable naming the members that did not answer (a node that
// is down, or cut off). It fails only if no node answers at all.
func (c *Client) Status(ctx context.Context) ([]NodeStatus, error) {
	inbox := c.nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := c.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest(c.subjects.AdminStatus(), inbox, nil); err != nil {
		return nil, err
	}
	got := map[string]NodeStatus{}
	want := map[string]bool{}
	missing := func() []string {
		var out []string
		for m := range want {
			if _, ok := got[m]; !ok {
				out = append(out, m)
			}
		}
		slices.Sort(out)
		return out
	}
	for len(got) == 0 || len(missing()) > 0 {
		select {
		case m := <-ch:
			var st NodeStatus
			if json.Unmarshal(m.Data, &st) != nil || protocol.ValidateNodeID(st.Node) != nil {
				continue // not a node's answer
			}
			got[st.Node] = st
			for _, id := range st.Members {
				want[id] = true
			}
		case <-ctx.Done():
			if len(got) == 0 {
				return nil, protocol.Errorf(protocol.ErrNodeUnavailable, "status: no node answered: %v", ctx.Err())
			}
			return sorted(got), protocol.Errorf(protocol.ErrNodeUnavailable, "status: no answer from %v", missing())
		}
	}
	return sorted(got), nil
}

func sorted(m map[string]NodeStatus) []NodeStatus {
	out := make([]NodeStatus, 0, len(m))
	for _, st := range m {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b NodeStatus) int { return cmp.Compare(a.Node, b.Node) })
	return out
}
