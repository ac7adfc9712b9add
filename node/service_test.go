package node_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/kvmesh/kvmesh/protocol"
)

// TestServiceStatsAreTrue: the service statistics that `nats micro stats
// kvmesh` shows count every answered request, its errors (a key not
// found is an answer, not an error) and its time from arrival to reply,
// although kvmesh replies after its handlers have returned. Plain
// micro.AddService would count the errors as 0 and the time as the
// handler's few microseconds.
func TestServiceStatsAreTrue(t *testing.T) {
	c := startCluster(t, 3)
	nc, err := nats.Connect(c.nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := func(subject string, h nats.Header, data string) *nats.Msg {
		t.Helper()
		m, err := nc.RequestMsg(&nats.Msg{Subject: subject, Header: h, Data: []byte(data)}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	const puts = 5
	for range puts {
		if m := req("kvmesh.kv.put.svc.k", nil, "v"); m.Header.Get(protocol.HdrServiceErrorCode) != "" {
			t.Fatalf("put: %v", m.Header)
		}
	}
	if m := req("kvmesh.kv.get.svc.absent", nil, ""); m.Header.Get(protocol.HdrServiceErrorCode) != "404" {
		t.Fatalf("get of an absent key: %v", m.Header)
	}
	badW := nats.Header{protocol.HdrW: {"7"}}
	badCtx := nats.Header{protocol.HdrContext: {"AAAA"}}
	for _, h := range []nats.Header{badW, badCtx} {
		if m := req("kvmesh.kv.put.svc.k", h, "v"); m.Header.Get(protocol.HdrServiceErrorCode) == "" {
			t.Fatalf("a bad put was accepted: %v", h)
		}
	}
	// Listings and raw batches count on their endpoints, as the
	// subjects the clients used; a bad listing is an error.
	if m := req("kvmesh.kv.keys.svc", nil, ""); m.Header.Get(protocol.HdrServiceErrorCode) != "" {
		t.Fatalf("keys: %v", m.Header)
	}
	if m := req("kvmesh.kv.keys", nats.Header{protocol.HdrPrefix: {"svc."}}, ""); m.Header.Get(protocol.HdrServiceErrorCode) != "" {
		t.Fatalf("keys by header: %v", m.Header)
	}
	if m := req("kvmesh.kv.keys", nats.Header{protocol.HdrLimit: {"0"}}, ""); m.Header.Get(protocol.HdrServiceErrorCode) != "400" {
		t.Fatalf("keys with limit 0: %v", m.Header)
	}
	if m := req("kvmesh.kv.batch", nil, `{"ops":[{"op":"get","key":"svc.k"}]}`); m.Header.Get(protocol.HdrServiceErrorCode) != "" {
		t.Fatalf("raw batch: %v", m.Header)
	}
	// The Go client's batches count too, on the batch endpoint.
	cl := c.client(1)
	if _, err := cl.Put(testCtx(t), "svc.b", []byte("v")); err != nil {
		t.Fatal(err)
	}

	replies := collect(t, nc, "$SRV.STATS.kvmesh", 3)
	byEndpoint := map[string]micro.EndpointStats{}
	for _, r := range replies {
		var st micro.Stats
		if err := json.Unmarshal(r, &st); err != nil {
			t.Fatal(err)
		}
		if st.Type != micro.StatsResponseType || st.Name != "kvmesh" || st.Metadata["node"] == "" {
			t.Fatalf("stats reply: %s", r)
		}
		for _, e := range st.Endpoints {
			sum := byEndpoint[e.Name]
			sum.NumRequests += e.NumRequests
			sum.NumErrors += e.NumErrors
			sum.ProcessingTime += e.ProcessingTime
			if e.LastError != "" {
				sum.LastError = e.LastError
			}
			byEndpoint[e.Name] = sum
		}
	}
	put, get, batch := byEndpoint["put"], byEndpoint["get"], byEndpoint["batch"]
	if put.NumRequests != puts+2 || put.NumErrors != 2 || !strings.Contains(put.LastError, "invalid") {
		t.Errorf("put endpoint: %d requests, %d errors (last %q); want %d and 2", put.NumRequests, put.NumErrors, put.LastError, puts+2)
	}
	if get.NumRequests != 1 || get.NumErrors != 0 {
		t.Errorf("get endpoint: %d requests, %d errors; want 1 and 0 (not found is an answer)", get.NumRequests, get.NumErrors)
	}
	if batch.NumRequests < 1 {
		t.Errorf("batch endpoint: %d requests", batch.NumRequests)
	}
	for name, want := range map[string][2]int{"keys": {1, 0}, "keys-by-header": {2, 1}, "raw-batch": {1, 0}} {
		if e := byEndpoint[name]; e.NumRequests != want[0] || e.NumErrors != want[1] {
			t.Errorf("%s endpoint: %d requests, %d errors; want %d and %d", name, e.NumRequests, e.NumErrors, want[0], want[1])
		}
	}
	// A quorum write takes at least a replica round trip and an fsync:
	// far more than the microsecond the handler takes to start it.
	if put.ProcessingTime < puts*50*time.Microsecond {
		t.Errorf("put endpoint: processing time %v for %d puts", put.ProcessingTime, puts)
	}

	// Discovery: every node answers PING and INFO, for all services and
	// for this one.
	for _, subject := range []string{"$SRV.PING", "$SRV.PING.kvmesh", "$SRV.INFO.kvmesh"} {
		if got := collect(t, nc, subject, 3); len(got) != 3 {
			t.Errorf("%s: %d answers", subject, len(got))
		}
	}
}

// collect sends a request to subject and gathers the replies until want
// have come or a second has passed without one.
func collect(t *testing.T, nc *nats.Conn, subject string, want int) [][]byte {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for len(out) < want {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			break
		}
		out = append(out, m.Data)
	}
	return out
}
