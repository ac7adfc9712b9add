package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestAdminEndpoints: the status subjects answer once per node with its
// status, and a node's replicas subject answers with what its own store
// holds, and refuses anything but reads.
func TestAdminEndpoints(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	if _, err := c.client(0).Put(ctx, "adm.k", []byte("v"), client.W("all")); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(c.nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subjects, _ := protocol.NewSubjects("")

	sts, err := c.client(1).Status(ctx)
	if err != nil || len(sts) != 3 {
		t.Fatalf("status: %d answers, %v", len(sts), err)
	}
	for i, st := range sts {
		if st.Node != c.nodes[i].ID() || st.Actor != c.nodes[i].Actor() || len(st.Members) != 3 || st.StoreError != "" || st.Partitions != 256 || st.Replicas != 3 {
			t.Errorf("status of %s: %+v", c.nodes[i].ID(), st)
		}
	}
	m, err := nc.Request(subjects.AdminNodeStatus("n2"), nil, 5*time.Second)
	var st protocol.NodeStatus
	if err != nil || json.Unmarshal(m.Data, &st) != nil || st.Node != "n2" {
		t.Fatalf("status of n2: %v %q", err, m.Data)
	}

	dump := func(items ...protocol.Item) *protocol.Reply {
		t.Helper()
		b, err := protocol.EncodeRequest(&protocol.Request{V: protocol.Version, From: "operator", Items: items})
		if err != nil {
			t.Fatal(err)
		}
		m, err := nc.Request(subjects.AdminNodeReplicas("n3"), b, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := protocol.DecodeReply(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := dump(protocol.Item{Tag: 1, Op: protocol.RPCRead, Key: "adm.k"}, protocol.Item{Tag: 2, Op: protocol.RPCRead, Key: "adm.absent"})
	if rep.From != "n3" || len(rep.Results) != 2 {
		t.Fatalf("replicas: %+v", rep)
	}
	for _, r := range rep.Results {
		switch r.Tag {
		case 1:
			if r.Obj == nil || len(r.Obj.Live()) != 1 || string(r.Obj.Live()[0].Value) != "v" {
				t.Fatalf("n3's replica of adm.k: %+v", r.Obj)
			}
		case 2:
			if r.Obj != nil || r.Error() != nil {
				t.Fatalf("n3's replica of an absent key: %+v", r)
			}
		}
	}
	rep = dump(protocol.Item{Tag: 1, Op: protocol.RPCWrite, Key: "adm.k", Obj: &protocol.Object{}})
	if len(rep.Results) != 1 || !errors.Is(rep.Results[0].Error(), protocol.ErrInvalidOption) {
		t.Fatalf("a write on the replicas subject: %+v", rep.Results)
	}

	// A stopped node is named as missing; the others still answer.
	c.stopAndWait(2)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sts, err = c.client(0).Status(sctx)
	if !errors.Is(err, protocol.ErrNodeUnavailable) || len(sts) != 2 || slices.ContainsFunc(sts, func(s protocol.NodeStatus) bool { return s.Node == "n3" }) {
		t.Fatalf("status with n3 stopped: %d answers, %v", len(sts), err)
	}
}
