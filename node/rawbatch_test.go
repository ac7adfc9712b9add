package node_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// TestRawBatch: a batch of 1,000 mixed operations as a raw request with
// plain nats.go (no kvmesh client): puts of text and binary values, with
// a TTL and a write quorum, gets of present and missing keys, deletes.
// Each gets its own result in the request's order, and the store holds
// what the results say.
func TestRawBatch(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	cl := c.client(1)
	for i := range 200 {
		if _, err := cl.Put(ctx, fmt.Sprintf("k%03d", i), []byte("old-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	type expect struct {
		status int
		value  string // a get's
	}
	var ops []protocol.RawOp
	var want []expect
	str := func(s string) *string { return &s }
	binary := func(i int) []byte { return []byte{0xff, 0x00, byte(i), 0xfe} }
	for i := range 400 { // puts of new keys, a tenth of them binary
		op := protocol.RawOp{Op: "put", Key: fmt.Sprintf("b%03d", i), Value: str("val-" + strconv.Itoa(i))}
		if i%10 == 0 {
			op.Value = nil
			op.Value64 = str(base64.StdEncoding.EncodeToString(binary(i)))
		}
		ops, want = append(ops, op), append(want, expect{status: 200})
	}
	for i := range 300 { // puts with a TTL, every replica acknowledging
		ops = append(ops, protocol.RawOp{Op: "put", Key: fmt.Sprintf("c %03d", i), Value: str("ttl"), TTL: "1h", W: "all"})
		want = append(want, expect{status: 200})
	}
	for i := 100; i < 200; i++ {
		ops, want = append(ops, protocol.RawOp{Op: "del", Key: fmt.Sprintf("k%03d", i)}), append(want, expect{status: 200})
	}
	for i := range 100 {
		ops = append(ops, protocol.RawOp{Op: "get", Key: fmt.Sprintf("k%03d", i), R: "all"})
		want = append(want, expect{status: 200, value: "old-" + strconv.Itoa(i)})
		ops, want = append(ops, protocol.RawOp{Op: "get", Key: fmt.Sprintf("missing.%03d", i)}), append(want, expect{status: 404})
	}
	rng := rand.New(rand.NewSource(1))
	rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i]; want[i], want[j] = want[j], want[i] })
	if len(ops) != 1000 {
		t.Fatalf("%d ops", len(ops))
	}
	body, _ := json.Marshal(protocol.RawBatch{Ops: ops})

	nc, err := nats.Connect(c.nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m, err := nc.RequestWithContext(ctx, "kvmesh.kv.batch", body)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(protocol.HdrServiceErrorCode) != "" || m.Header.Get(protocol.HdrNode) != "n1" {
		t.Fatalf("reply headers %v: want no error, served by n1 (the node the client is connected to)", m.Header)
	}
	var reply protocol.RawBatchReply
	if err := json.Unmarshal(m.Data, &reply); err != nil || len(reply.Results) != len(ops) {
		t.Fatalf("reply: %d results, %v", len(reply.Results), err)
	}
	for i, r := range reply.Results {
		w := want[i]
		if r.Status != w.status || w.value != "" && (len(r.Values) != 1 || r.Values[0] != w.value) {
			t.Fatalf("op %d %+v: got %+v, want %+v", i, ops[i], r, w)
		}
		if r.Status == 200 && r.Context == "" && ops[i].Op != "del" {
			t.Fatalf("op %d %+v: no context in %+v", i, ops[i], r)
		}
	}

	// The store holds what the results said: every owner has the puts
	// (read with r=all), the deletes are gone, the TTLs are set.
	for i := range 400 {
		k := fmt.Sprintf("b%03d", i)
		v := []byte("val-" + strconv.Itoa(i))
		if i%10 == 0 {
			v = binary(i)
		}
		o, err := c.nodes[2].Get(ctx, k, 3)
		if err != nil || o == nil || len(o.Live()) != 1 || !bytes.Equal(o.Live()[0].Value, v) {
			t.Fatalf("%s: %+v, %v; want %q", k, o, err, v)
		}
	}
	for i := range 300 {
		k := fmt.Sprintf("c %03d", i)
		o, err := c.nodes[1].Get(ctx, k, 3)
		if err != nil || o == nil || len(o.Live()) != 1 || o.Live()[0].Expires <= time.Now().Add(59*time.Minute).UnixNano() {
			t.Fatalf("%s: %+v, %v; want a value expiring in an hour", k, o, err)
		}
	}
	for i := 100; i < 200; i++ {
		k := fmt.Sprintf("k%03d", i)
		if o, err := c.nodes[2].Get(ctx, k, 3); err != nil || o == nil || len(o.Live()) != 0 {
			t.Fatalf("%s after the batch's delete: %+v, %v", k, o, err)
		}
	}

	// The binary values come back base64 in "values_base64".
	body = []byte(`{"ops":[{"op":"get","key":"b000"},{"op":"get","key":"b001"}]}`)
	m, err = nc.RequestWithContext(ctx, "kvmesh.kv.batch", body)
	if err != nil {
		t.Fatal(err)
	}
	reply = protocol.RawBatchReply{}
	if err := json.Unmarshal(m.Data, &reply); err != nil || len(reply.Results) != 2 ||
		len(reply.Results[0].Values64) != 1 || reply.Results[0].Values64[0] != base64.StdEncoding.EncodeToString(binary(0)) ||
		len(reply.Results[1].Values) != 1 || reply.Results[1].Values[0] != "val-1" {
		t.Fatalf("binary and text gets: %v %s", err, m.Data)
	}

	// msgpack: a ClientBatch of more items than the Go client sends to
	// a node at once, answered in one ClientBatchReply.
	var cb protocol.ClientBatch
	cb.V = protocol.Version
	for i := range 300 {
		cb.Items = append(cb.Items, protocol.ClientItem{Tag: uint64(1000 + i), Op: protocol.BatchGet, Key: fmt.Sprintf("b%03d", i)})
	}
	mp, _ := protocol.EncodeClientBatch(&cb)
	m, err = nc.RequestWithContext(ctx, "kvmesh.kv.batch", mp)
	if err != nil {
		t.Fatal(err)
	}
	d := &protocol.ClientBatchReply{}
	if d, err = decodeBig(m.Data); err != nil || len(d.Results) != 300 || d.Results[5].Tag != 1005 || string(d.Results[5].Values[0]) != "val-5" {
		t.Fatalf("msgpack batch: %v", err)
	}

	// Bad bodies are refused whole, and change nothing.
	for name, body := range map[string]string{
		"not json":       `{"ops":`,
		"unknown field":  `{"ops":[{"op":"get","key":"a","x":1}]}`,
		"unknown op":     `{"ops":[{"op":"cas","key":"a"}]}`,
		"no ops":         `{"ops":[]}`,
		"put no value":   `{"ops":[{"op":"put","key":"k000"}]}`,
		"get with value": `{"ops":[{"op":"get","key":"k000","value":"x"}]}`,
		"r on a put":     `{"ops":[{"op":"put","key":"k000","value":"x","r":"one"}]}`,
		"bad base64":     `{"ops":[{"op":"put","key":"k000","value_base64":"!!"}]}`,
		"too many":       `{"ops":[` + strings.Repeat(`{"op":"get","key":"a"},`, protocol.MaxRawBatch) + `{"op":"get","key":"a"}]}`,
		"msgpack":        "\x81\xa1v\x02",
	} {
		m, err := nc.RequestWithContext(ctx, "kvmesh.kv.batch", []byte(body))
		if err != nil || m.Header.Get(protocol.HdrServiceErrorCode) != "400" {
			t.Errorf("%s: %v, headers %v", name, err, m.Header)
		}
	}
	if o, err := c.nodes[0].Get(ctx, "k000", 3); err != nil || string(o.Live()[0].Value) != "old-0" {
		t.Fatalf("k000 after refused batches: %+v, %v", o, err)
	}
	// A bad key fails its own operation only.
	body = []byte(`{"ops":[{"op":"put","key":"","value":"x"},{"op":"put","key":"fine","value":"x"}]}`)
	m, err = nc.RequestWithContext(ctx, "kvmesh.kv.batch", body)
	reply = protocol.RawBatchReply{}
	if err != nil || json.Unmarshal(m.Data, &reply) != nil || len(reply.Results) != 2 || reply.Results[0].Status != 400 || reply.Results[1].Status != 200 {
		t.Fatalf("a bad key among good ones: %v %s", err, m.Data)
	}
}

// decodeBig decodes a ClientBatchReply of any number of results, as a
// raw client in another language would.
func decodeBig(b []byte) (*protocol.ClientBatchReply, error) {
	return protocol.DecodeRawBatchReply(b)
}

// TestRawBatchConditional: conditional puts and deletes in a JSON raw
// batch behave as alone. Of two put-if-absent of one key in one batch
// exactly one wins; the loser, and a put or delete if-version with a
// stale context, are 409 results carrying the key's context, while the
// other operations of the batch succeed.
func TestRawBatchConditional(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	nc, err := nats.Connect(c.nodes[1].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	batch := func(ops ...protocol.RawOp) []protocol.RawResult {
		t.Helper()
		body, _ := json.Marshal(protocol.RawBatch{Ops: ops})
		m, err := nc.RequestWithContext(ctx, "kvmesh.kv.batch", body)
		if err != nil {
			t.Fatal(err)
		}
		var reply protocol.RawBatchReply
		if err := json.Unmarshal(m.Data, &reply); err != nil || len(reply.Results) != len(ops) {
			t.Fatalf("reply %s: %v", m.Data, err)
		}
		return reply.Results
	}
	str := func(s string) *string { return &s }
	res := batch(
		protocol.RawOp{Op: "put", Key: "lock", Value: str("a"), If: "absent"},
		protocol.RawOp{Op: "put", Key: "lock", Value: str("b"), If: "absent"},
		protocol.RawOp{Op: "put", Key: "plain", Value: str("p")},
	)
	won, lost := -1, -1
	for i, r := range res[:2] {
		switch r.Status {
		case 200:
			won = i
		case 409:
			lost = i
		}
	}
	if won < 0 || lost < 0 || res[2].Status != 200 {
		t.Fatalf("two put-if-absent of one key and a put: %+v; want one 200, one 409, and 200", res)
	}
	if res[lost].Name != "conflict" || res[lost].Context == "" {
		t.Fatalf("the lost condition: %+v; want conflict with the key's context", res[lost])
	}
	winner := []string{"a", "b"}[won]
	if o, err := c.nodes[2].Get(ctx, "lock", 3); err != nil || o == nil || len(o.Live()) != 1 || string(o.Live()[0].Value) != winner {
		t.Fatalf("lock holds %+v, %v; want the winner's %q alone", o, err, winner)
	}

	// If-version: the winner's context wins once; then it is stale.
	cur := res[won].Context
	res = batch(protocol.RawOp{Op: "put", Key: "lock", Value: str("c"), Context: cur, If: "version"})
	if res[0].Status != 200 {
		t.Fatalf("put if-version with the current context: %+v", res[0])
	}
	res = batch(
		protocol.RawOp{Op: "put", Key: "lock", Value: str("d"), Context: cur, If: "version"},
		protocol.RawOp{Op: "del", Key: "lock", Context: cur, If: "version"},
	)
	for i, r := range res {
		if r.Status != 409 || r.Context == "" {
			t.Fatalf("op %d with a stale context: %+v; want 409 with the key's context", i, r)
		}
	}
	if o, err := c.nodes[0].Get(ctx, "lock", 3); err != nil || o == nil || len(o.Live()) != 1 || string(o.Live()[0].Value) != "c" {
		t.Fatalf("lock holds %+v, %v; want c", o, err)
	}
	// A bad condition fails its operation alone.
	res = batch(protocol.RawOp{Op: "put", Key: "x", Value: str("v"), If: "maybe"}, protocol.RawOp{Op: "get", Key: "lock"})
	if res[0].Status != 400 || res[1].Status != 200 {
		t.Fatalf("a bad condition beside a get: %+v", res)
	}
}
