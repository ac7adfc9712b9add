package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/kvmesh/kvmesh/protocol"
)

// TestForgedHeartbeatChangesNothing publishes, with a plain NATS client
// on the client port, heartbeats that decode (valid msgpack, every field
// in bounds) but do not verify: one in n2's name signed by another key,
// carrying a member record that would flip n3 to left and one that would
// add n9, neither signed by the cluster key; and one from a node that is
// no member. Every node must count them (refused_heartbeats and
// refused_records grow) and change nothing: the same members, records
// and liveness in kvmesh status --json.
func TestForgedHeartbeatChangesNothing(t *testing.T) {
	c := startProcCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitServing(ctx, t, c.client(c.procs[0]), "all")
	if err := c.awaitSettled(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	before, _, err := status(ctx, c.procs[0])
	if err != nil {
		t.Fatal(err)
	}

	forger, err := nkeys.CreateServer()
	if err != nil {
		t.Fatal(err)
	}
	forgerKey, _ := forger.PublicKey()
	sig := func(b []byte) []byte {
		s, err := forger.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	junkSig := make([]byte, 64)
	rand.Read(junkSig)
	var n3 protocol.MemberRecord
	for _, r := range before[0].Records {
		if r.ID == "n3" {
			n3 = protocol.MemberRecord{V: protocol.Version, ID: r.ID, Key: r.Key, Client: r.Client, Route: r.Route,
				Status: protocol.MemberLeft, Incarnation: r.Incarnation, Version: r.Version + 10, Sig: junkSig}
		}
	}
	if n3.ID == "" {
		t.Fatalf("n3 has no record in %+v", before[0].Records)
	}
	n9 := protocol.MemberRecord{V: protocol.Version, ID: "n9", Key: forgerKey, Client: "nats://127.0.0.1:1",
		Route: "nats-route://127.0.0.1:2", Status: protocol.MemberUp, Incarnation: 1, Version: 1, Sig: junkSig}
	forged := []*protocol.Heartbeat{
		{V: protocol.Version, From: "n2", Time: time.Now().Add(time.Hour).UnixNano(), Records: []protocol.MemberRecord{n3, n9}},
		{V: protocol.Version, From: "n9", Time: time.Now().UnixNano(), Records: []protocol.MemberRecord{n9}},
	}
	nc, err := nats.Connect(c.procs[0].url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subjects, _ := protocol.NewSubjects("")
	for _, h := range forged {
		h.Sig = sig(h.SigningBytes())
		b, err := protocol.EncodeHeartbeat(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := protocol.DecodeHeartbeat(b); err != nil {
			t.Fatalf("the forged heartbeat must decode, so that only its signature is wrong: %v", err)
		}
		if err := nc.Publish(subjects.Gossip("heartbeat"), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// Every node counts the heartbeats and the records that reach it: a
	// node ignores, uncounted, a heartbeat in its own name (its own echo),
	// records and all, so n2 counts only the one from n9.
	wantHB, wantRec := map[string]int64{}, map[string]int64{}
	for _, st := range before {
		recs := map[string]bool{}
		for _, h := range forged {
			if h.From != st.Node {
				wantHB[st.Node]++
				for _, r := range h.Records {
					recs[r.ID] = true
				}
			}
		}
		wantRec[st.Node] = int64(len(recs))
	}
	was := map[string]protocol.NodeStatus{}
	for _, st := range before {
		was[st.Node] = st
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		after, r, err := status(ctx, c.procs[1])
		why := ""
		switch {
		case err != nil || r.code != 0:
			why = fmt.Sprintf("status: %v %v", err, r)
		case len(after) != len(before):
			why = fmt.Sprintf("%d nodes answered, %d before", len(after), len(before))
		}
		for _, st := range after {
			if why != "" {
				break
			}
			b := was[st.Node]
			switch {
			case st.RefusedHeartbeats < b.RefusedHeartbeats+wantHB[st.Node] || st.RefusedRecords < b.RefusedRecords+wantRec[st.Node]:
				why = fmt.Sprintf("%s refused %d heartbeats and %d records, %d and %d before; want %d and %d more", st.Node,
					st.RefusedHeartbeats, st.RefusedRecords, b.RefusedHeartbeats, b.RefusedRecords, wantHB[st.Node], wantRec[st.Node])
			case !slices.Equal(st.Members, b.Members) || !slices.Equal(st.Alive, b.Alive):
				t.Fatalf("%s: members %v alive %v after forged heartbeats, %v %v before", st.Node, st.Members, st.Alive, b.Members, b.Alive)
			case !maps.Equal(recordMap(st.Records), recordMap(b.Records)):
				t.Fatalf("%s: records %v after forged heartbeats, %v before", st.Node, recordMap(st.Records), recordMap(b.Records))
			}
		}
		if why == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("forged heartbeats not counted within 20s: %s", why)
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	for _, p := range c.procs {
		if p.crashed() {
			t.Fatalf("%s exited after forged heartbeats", p.id)
		}
	}
}

// recordMap is the part of member records a forgery could change.
func recordMap(rs []protocol.MemberInfo) map[string]string {
	m := map[string]string{}
	for _, r := range rs {
		m[r.ID] = fmt.Sprintf("%s %s inc %d ver %d", r.Status, r.Key, r.Incarnation, r.Version)
	}
	return m
}
