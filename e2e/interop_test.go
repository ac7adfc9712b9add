package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/internal/natscli"
	"github.com/kvmesh/kvmesh/protocol"
)

// natsCLI finds the stock nats CLI (natscli.Find).
func natsCLI(t *testing.T) string { return natscli.Find(t) }

func TestStockNatsCLI(t *testing.T) {
	bin := natsCLI(t)
	c := startProcCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitServing(ctx, t, c.client(c.procs[0]), "all")
	cfgHome := t.TempDir()
	natsReq := func(server string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"req", "--server", server, "--timeout", "5s"}, args...)...)
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfgHome, "HOME="+cfgHome)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// Put through node 1, get through node 3, a key with dots.
	out, err := natsReq(c.procs[0].url(), "kvmesh.kv.put.user.42", `{"name":"ada"}`)
	if err != nil || strings.Contains(out, "Nats-Service-Error") {
		t.Fatalf("nats req put: %v\n%s", err, out)
	}
	out, err = natsReq(c.procs[2].url(), "kvmesh.kv.get.user.42", "", "--raw")
	if err != nil || strings.TrimSpace(out) != `{"name":"ada"}` {
		t.Fatalf("nats req get --raw: %v\n%q", err, out)
	}
	out, err = natsReq(c.procs[1].url(), "kvmesh.kv.get.user.42", "")
	if err != nil || !strings.Contains(out, "Kvmesh-Context:") || !strings.Contains(out, "Kvmesh-Siblings: 1") {
		t.Fatalf("nats req get should show the context and sibling headers: %v\n%s", err, out)
	}
	// A write quorum given as a header.
	out, err = natsReq(c.procs[1].url(), "kvmesh.kv.del.user.42", "", "-H", "Kvmesh-W:all")
	if err != nil || strings.Contains(out, "Nats-Service-Error") {
		t.Fatalf("nats req del: %v\n%s", err, out)
	}
	out, _ = natsReq(c.procs[0].url(), "kvmesh.kv.get.user.42", "")
	if !strings.Contains(out, "Nats-Service-Error-Code: 404") {
		t.Fatalf("get after delete should say 404:\n%s", out)
	}
	// Listing: the prefix in the subject, or in a header when it is not
	// subject-safe; a page size and the cursor of the page before.
	for _, k := range []string{"user.1", "user.2", "user.3", "user 4", "users"} {
		if out, err := natsReq(c.procs[0].url(), "kvmesh.kv.put", "v", "-H", "Kvmesh-Key:"+k); err != nil || strings.Contains(out, "Nats-Service-Error") {
			t.Fatalf("nats req put %q: %v\n%s", k, err, out)
		}
	}
	var page protocol.KeysPage
	decode := func(out string) error { page = protocol.KeysPage{}; return json.Unmarshal([]byte(out), &page) }
	out, err = natsReq(c.procs[1].url(), "kvmesh.kv.keys.user", "", "--raw")
	if err != nil || decode(out) != nil || strings.Join(page.Keys, ",") != "user 4,user.1,user.2,user.3,users" || page.Next != "" {
		t.Fatalf("nats req kvmesh.kv.keys.user: %v\n%s", err, out)
	}
	out, err = natsReq(c.procs[2].url(), "kvmesh.kv.keys", "", "--raw", "-H", "Kvmesh-Prefix:user.", "-H", "Kvmesh-Limit:2")
	if err != nil || decode(out) != nil || strings.Join(page.Keys, ",") != "user.1,user.2" || page.Next == "" {
		t.Fatalf("nats req kvmesh.kv.keys with a prefix header and a limit: %v\n%s", err, out)
	}
	out, err = natsReq(c.procs[2].url(), "kvmesh.kv.keys", "", "--raw", "-H", "Kvmesh-Prefix:user.", "-H", "Kvmesh-Cursor:"+page.Next)
	if err != nil || decode(out) != nil || strings.Join(page.Keys, ",") != "user.3" || page.Next != "" {
		t.Fatalf("nats req kvmesh.kv.keys, second page: %v\n%s", err, out)
	}
	if out, _ := natsReq(c.procs[0].url(), "kvmesh.kv.keys", "", "-H", "Kvmesh-Limit:0"); !strings.Contains(out, "Nats-Service-Error-Code: 400") {
		t.Fatalf("a listing with limit 0 should say 400:\n%s", out)
	}
	// A raw batch in JSON, as a shell script writes it.
	out, err = natsReq(c.procs[1].url(), "kvmesh.kv.batch", `{"ops":[{"op":"put","key":"b 1","value":"one"},{"op":"get","key":"user.1"},{"op":"get","key":"nope"}]}`, "--raw")
	var br protocol.RawBatchReply
	if err != nil || json.Unmarshal([]byte(out), &br) != nil || len(br.Results) != 3 || br.Results[0].Status != 200 ||
		len(br.Results[1].Values) != 1 || br.Results[1].Values[0] != "v" || br.Results[2].Status != 404 {
		t.Fatalf("nats req kvmesh.kv.batch: %v\n%s", err, out)
	}
	// nats micro discovers the service and its endpoints.
	cmd := exec.CommandContext(ctx, bin, "micro", "info", "kvmesh", "--json", "--server", c.procs[0].url())
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfgHome, "HOME="+cfgHome)
	if out, err := cmdOutput(cmd); err != nil || !strings.Contains(out, `"kvmesh.kv.keys.\u003e"`) && !strings.Contains(out, `"kvmesh.kv.keys.>"`) ||
		!strings.Contains(out, `"kvmesh.kv.batch"`) {
		t.Fatalf("nats micro info should list the keys and batch endpoints: %v\n%s", err, out)
	}
	cmd = exec.CommandContext(ctx, bin, "micro", "ls", "--server", c.procs[0].url())
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfgHome, "HOME="+cfgHome)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "kvmesh") {
		t.Fatalf("nats micro ls: %v\n%s", err, out)
	}
	// nats micro stats counts the requests, their errors and their time
	// from arrival to reply.
	if out, _ := natsReq(c.procs[0].url(), "kvmesh.kv.put.user.43", "x", "-H", "Kvmesh-W:9"); !strings.Contains(out, "Nats-Service-Error-Code: 400") {
		t.Fatalf("a put with W=9 of 3 should say 400:\n%s", out)
	}
	cmd = exec.CommandContext(ctx, bin, "micro", "stats", "kvmesh", "--json", "--server", c.procs[0].url())
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfgHome, "HOME="+cfgHome)
	out, err = cmdOutput(cmd)
	if err != nil {
		t.Fatalf("nats micro stats: %v\n%s", err, out)
	}
	var stats []struct {
		Endpoints []struct {
			Name           string `json:"name"`
			NumRequests    int    `json:"num_requests"`
			NumErrors      int    `json:"num_errors"`
			ProcessingTime int64  `json:"processing_time"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(out), &stats); err != nil || len(stats) != 3 {
		t.Fatalf("nats micro stats --json: %d instances, %v\n%s", len(stats), err, out)
	}
	var puts, putErrs int
	var putTime int64
	for _, st := range stats {
		for _, e := range st.Endpoints {
			if e.Name == "put" {
				puts, putErrs, putTime = puts+e.NumRequests, putErrs+e.NumErrors, putTime+e.ProcessingTime
			}
		}
	}
	if puts < 2 || putErrs != 1 || putTime <= 0 {
		t.Fatalf("nats micro stats: put endpoint %d requests, %d errors, %dns; want >= 2, 1, > 0\n%s", puts, putErrs, putTime, out)
	}

	// Conditional writes: the second put-if-absent loses with 409 and
	// the key's context.
	if out, err := natsReq(c.procs[0].url(), "kvmesh.kv.put.lock.report", "me", "-H", "Kvmesh-If:absent", "-H", "Kvmesh-TTL:1h"); err != nil || strings.Contains(out, "Nats-Service-Error") {
		t.Fatalf("nats req put if absent: %v\n%s", err, out)
	}
	out, _ = natsReq(c.procs[2].url(), "kvmesh.kv.put.lock.report", "you", "-H", "Kvmesh-If:absent")
	if !strings.Contains(out, "Nats-Service-Error-Code: 409") || !strings.Contains(out, "Kvmesh-Error: conflict") || !strings.Contains(out, "Kvmesh-Context:") {
		t.Fatalf("a lost put if absent should say 409 conflict with the context:\n%s", out)
	}

	// Change events: nats sub on a wildcard sees a put. The sub is on
	// node 1's server and node 1 serves the puts sent there, so its
	// interest is known at once; put until the one event arrives.
	sub := exec.CommandContext(ctx, bin, "sub", "--server", c.procs[0].url(), "--count", "1", "kvmesh.events.user.>")
	sub.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfgHome, "HOME="+cfgHome)
	var subOut bytes.Buffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	subDone := make(chan error, 1)
	go func() { subDone <- sub.Wait() }()
	for i := 0; ; i++ {
		if out, err := natsReq(c.procs[0].url(), fmt.Sprintf("kvmesh.kv.put.user.ev%d", i), "watched"); err != nil {
			t.Fatalf("nats req put: %v\n%s", err, out)
		}
		select {
		case err := <-subDone:
			if err != nil {
				t.Fatalf("nats sub: %v\n%s", err, subOut.String())
			}
		case <-time.After(200 * time.Millisecond):
			if ctx.Err() != nil {
				t.Fatal("nats sub saw no event")
			}
			continue
		}
		break
	}
	if o := subOut.String(); !strings.Contains(o, "Kvmesh-Op: put") || !strings.Contains(o, "watched") || !strings.Contains(o, "Kvmesh-Node: n1") {
		t.Fatalf("nats sub should show the put's event:\n%s", o)
	}
}

// cmdOutput runs cmd and returns its standard output (standard error on
// failure).
func cmdOutput(cmd *exec.Cmd) (string, error) {
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr), err
	}
	return string(out), err
}

// rawRequest sends a request with plain nats.go, as any language would.
func rawRequest(t *testing.T, nc *nats.Conn, subject string, hdr nats.Header, data []byte) *nats.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Header: hdr, Data: data})
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	return m
}

func TestRawNATSClientAndBadInput(t *testing.T) {
	c := startProcCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitServing(ctx, t, c.client(c.procs[0]), "all")
	nc, err := nats.Connect(c.procs[0].url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	// Raw put and get of a key with dots.
	m := rawRequest(t, nc, "kvmesh.kv.put.orders.2024.07", nil, []byte("shipped"))
	if m.Header.Get(protocol.HdrServiceErrorCode) != "" {
		t.Fatalf("raw put failed: %v", m.Header)
	}
	m = rawRequest(t, nc, "kvmesh.kv.get.orders.2024.07", nats.Header{"Kvmesh-R": {"all"}}, nil)
	if string(m.Data) != "shipped" || m.Header.Get(protocol.HdrSiblings) != "1" {
		t.Fatalf("raw get: %q %v", m.Data, m.Header)
	}

	maxValue := protocol.MaxValueLen(nc.MaxPayload())
	hostileCtx := base64.RawURLEncoding.EncodeToString([]byte{0xdd, 0x7f, 0xff, 0xff, 0xff})
	cases := []struct {
		name    string
		subject string
		hdr     nats.Header
		data    []byte
		code    string
		key     string // a key that must stay absent
	}{
		{"key too long", "kvmesh.kv.put." + strings.Repeat("k", 1025), nil, []byte("v"), "400", ""},
		{"empty header key", "kvmesh.kv.put", nats.Header{"Kvmesh-Key": {""}}, []byte("v"), "400", ""},
		{"no key at all", "kvmesh.kv.get", nil, nil, "400", ""},
		{"wildcard token", "kvmesh.kv.put.a.*", nil, []byte("v"), "400", ""},
		{"wildcard tail", "kvmesh.kv.put.a.>", nil, []byte("v"), "400", ""},
		{"value over limit", "kvmesh.kv.put.big", nil, make([]byte, maxValue+1), "413", "big"},
		{"unknown w", "kvmesh.kv.put.w1", nats.Header{"Kvmesh-W": {"most"}}, []byte("v"), "400", "w1"},
		{"w zero", "kvmesh.kv.put.w2", nats.Header{"Kvmesh-W": {"0"}}, []byte("v"), "400", "w2"},
		{"w above n", "kvmesh.kv.put.w3", nats.Header{"Kvmesh-W": {"4"}}, []byte("v"), "400", "w3"},
		{"malformed r", "kvmesh.kv.get.r1", nats.Header{"Kvmesh-R": {"2.5"}}, nil, "400", ""},
		{"context not base64", "kvmesh.kv.put.c1", nats.Header{"Kvmesh-Context": {"!!!"}}, []byte("v"), "400", "c1"},
		{"hostile context", "kvmesh.kv.put.c2", nats.Header{"Kvmesh-Context": {hostileCtx}}, []byte("v"), "400", "c2"},
		{"unknown option", "kvmesh.kv.put.o1", nats.Header{"Kvmesh-Frobnicate": {"1"}}, []byte("v"), "400", "o1"},
	}
	for _, tc := range cases {
		m := rawRequest(t, nc, tc.subject, tc.hdr, tc.data)
		if got := m.Header.Get(protocol.HdrServiceErrorCode); got != tc.code {
			t.Errorf("%s: code %q (%q), want %s", tc.name, got, m.Header.Get(protocol.HdrServiceError), tc.code)
		}
		if msg := m.Header.Get(protocol.HdrServiceError); msg == "" || strings.ContainsAny(msg, "\r\n") {
			t.Errorf("%s: error message %q should be one non-empty line", tc.name, msg)
		}
		if tc.key != "" {
			g := rawRequest(t, nc, "kvmesh.kv.get."+tc.key, nats.Header{"Kvmesh-R": {"all"}}, nil)
			if g.Header.Get(protocol.HdrServiceErrorCode) != "404" {
				t.Errorf("%s: key %s was written: %q %v", tc.name, tc.key, g.Data, g.Header)
			}
		}
	}

	// Malformed msgpack straight on a replica subject: an error reply,
	// and the node stays up.
	for _, p := range c.procs {
		for _, junk := range [][]byte{{0xdd, 0x7f, 0xff, 0xff, 0xff}, {0xc6, 0x7f, 0xff, 0xff, 0xff}, []byte("not msgpack"), {}} {
			m := rawRequest(t, nc, "kvmesh.node."+p.id+".rpc", nil, junk)
			rep, err := protocol.DecodeReply(m.Data)
			if err != nil || len(rep.Results) != 1 || rep.Results[0].Code != 400 {
				t.Fatalf("junk %x to %s: reply %+v, %v", junk, p.id, rep, err)
			}
		}
	}
	for _, p := range c.procs {
		if p.crashed() {
			t.Fatalf("%s exited after bad input", p.id)
		}
	}
	m = rawRequest(t, nc, "kvmesh.kv.get.orders.2024.07", nats.Header{"Kvmesh-R": {"all"}}, nil)
	if !bytes.Equal(m.Data, []byte("shipped")) {
		t.Fatalf("store does not serve after bad input: %q %v", m.Data, m.Header)
	}
}
