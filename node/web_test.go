package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/protocol"
)

// httpGet fetches url and returns the status code and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// scrape reads a node's /metrics.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return mfs
}

// metricValue returns the value of the sample of family name whose labels
// include labels (a histogram's count), or -1 if there is none.
func metricValue(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Untyped != nil:
			return m.GetUntyped().GetValue()
		}
	}
	return -1
}

// TestHTTPPort: a node's HTTP port serves Prometheus metrics that count
// its client operations by operation and outcome, its log syncs and
// files, the Go runtime; NATS's monitoring endpoints; the status page;
// and /status.json, whose health follows a member that stops.
func TestHTTPPort(t *testing.T) {
	c := startCluster(t, 3, func(cfg *node.Config) { cfg.HTTP = "127.0.0.1:0" })
	n1 := c.nodes[0]
	addr := n1.HTTPAddr()
	if addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("HTTPAddr %q: want the resolved listener", addr)
	}

	// Raw requests from a client of n1 are coordinated by n1.
	nc, err := nats.Connect(n1.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := func(subject string, hdr nats.Header, data string) *nats.Msg {
		t.Helper()
		m, err := nc.RequestMsg(&nats.Msg{Subject: subject, Header: hdr, Data: []byte(data)}, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		return m
	}
	for range 3 {
		if m := req("kvmesh.kv.put.metrics.k", nil, "v"); m.Header.Get(protocol.HdrServiceErrorCode) != "" {
			t.Fatalf("put: %v", m.Header)
		}
	}
	req("kvmesh.kv.get.metrics.k", nil, "")
	if m := req("kvmesh.kv.get.metrics.absent", nil, ""); m.Header.Get(protocol.HdrServiceErrorCode) != "404" {
		t.Fatalf("get absent: %v", m.Header)
	}
	if m := req("kvmesh.kv.put.metrics.k", nats.Header{protocol.HdrW: {"seven"}}, "v"); m.Header.Get(protocol.HdrServiceErrorCode) != "400" {
		t.Fatalf("put w=seven: %v", m.Header)
	}
	if m := req("kvmesh.kv.del.metrics.k", nats.Header{protocol.HdrW: {"1"}, protocol.HdrPW: {"3"}, protocol.HdrKey: {"x"}}, ""); m.Header.Get(protocol.HdrServiceErrorCode) != "400" {
		t.Fatalf("del with the key twice: %v", m.Header)
	}
	// The Go client without routing batches to the node it is connected to.
	cl := c.client(0, client.WithRouting(false))
	if _, err := cl.Put(testCtx(t), "metrics.b", []byte("v")); err != nil {
		t.Fatal(err)
	}

	// A request counts once answered, just after its reply is sent: poll.
	mfs := scrapeUntil(t, addr, func(mfs map[string]*dto.MetricFamily) (problems []string) {
		for _, w := range []struct {
			name   string
			labels []string
			min    float64
		}{
			{"kvmesh_request_duration_seconds", []string{"op", "put", "outcome", "ok"}, 4},
			{"kvmesh_request_duration_seconds", []string{"op", "get", "outcome", "ok"}, 1},
			{"kvmesh_request_duration_seconds", []string{"op", "get", "outcome", "not_found"}, 1},
			{"kvmesh_request_duration_seconds", []string{"op", "put", "outcome", "bad_request"}, 1},
			{"kvmesh_request_duration_seconds", []string{"op", "del", "outcome", "bad_request"}, 1},
			{"kvmesh_batches_total", []string{"outcome", "ok"}, 1},
			{"kvmesh_batch_items_total", nil, 1},
			{"kvmesh_wal_fsync_duration_seconds", nil, 1},
			{"kvmesh_bbolt_size_bytes", nil, 1},
			{"kvmesh_wal_size_bytes", nil, 1},
			{"kvmesh_member_health", []string{"health", "alive"}, 3},
			{"kvmesh_members", []string{"status", "up"}, 3},
			{"kvmesh_node_info", []string{"node", "n1"}, 1},
			{"go_goroutines", nil, 1},
		} {
			if got := metricValue(mfs, w.name, w.labels...); got < w.min {
				problems = append(problems, fmt.Sprintf("%s%v = %v, want >= %v", w.name, w.labels, got, w.min))
			}
		}
		for _, name := range []string{"kvmesh_quorum_failures_total", "kvmesh_overload_refusals_total", "kvmesh_hints_pending",
			"kvmesh_anti_entropy_rounds_total", "kvmesh_transfer_partitions", "process_resident_memory_bytes"} {
			if mfs[name] == nil {
				problems = append(problems, name+" missing from /metrics")
			}
		}
		return problems
	})
	if got := metricValue(mfs, "kvmesh_request_duration_seconds", "op", "get", "outcome", "quorum_failure"); got != 0 {
		t.Errorf("get quorum failures = %v, want 0 (and the series present)", got)
	}

	// NATS's monitoring, on the same port.
	code, body := httpGet(t, "http://"+addr+"/varz")
	if code != http.StatusOK || !strings.Contains(body, `"server_name": "n1"`) {
		t.Errorf("/varz: %d %.300s", code, body)
	}
	if code, body := httpGet(t, "http://"+addr+"/routez"); code != http.StatusOK || !strings.Contains(body, `"num_routes"`) {
		t.Errorf("/routez: %d %.300s", code, body)
	}
	if code, _ := httpGet(t, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, body := httpGet(t, "http://"+addr+"/"); code != http.StatusOK || !strings.Contains(body, "<svg") {
		t.Errorf("/: %d %.200s", code, body)
	}
	if code, _ := httpGet(t, "http://"+addr+"/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d, want 404", code)
	}

	// /status.json: every node's status, the ring, the health.
	page := func() node.PageStatus {
		t.Helper()
		code, body := httpGet(t, "http://"+addr+"/status.json")
		var ps node.PageStatus
		if code != http.StatusOK || json.Unmarshal([]byte(body), &ps) != nil {
			t.Fatalf("/status.json: %d %.300s", code, body)
		}
		return ps
	}
	ps := page()
	for deadline := time.Now().Add(10 * time.Second); len(ps.Statuses) < 3 && time.Now().Before(deadline); ps = page() {
		// a loaded machine: a status may take longer than the page waits
	}
	if len(ps.Statuses) != 3 || len(ps.Missing) != 0 || len(ps.Ring.Owners) != 256 || len(ps.Ring.Owners[0]) != 3 || len(ps.Ring.Members) != 3 {
		t.Fatalf("status.json: %d statuses, missing %v, %d partitions, ring members %v", len(ps.Statuses), ps.Missing, len(ps.Ring.Owners), ps.Ring.Members)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		if ps.Health[id] != "alive" {
			t.Errorf("health %v: want all alive", ps.Health)
		}
	}
	if ps.Requests[1].Op != "put" || ps.Requests[1].Count < 5 || ps.Requests[1].Errors != 1 || ps.Fsyncs == 0 {
		t.Errorf("status.json requests %+v, fsyncs %d", ps.Requests, ps.Fsyncs)
	}

	c.stop(2)
	deadline := time.Now().Add(15 * time.Second)
	for ps = page(); ps.Health["n3"] != "down" || len(ps.Statuses) != 2; ps = page() {
		if time.Now().After(deadline) {
			t.Fatalf("n3 stopped; health still %v", ps.Health)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(ps.Statuses) != 2 || len(ps.Missing) != 1 || ps.Missing[0] != "n3" {
		t.Errorf("with n3 down: %d statuses, missing %v", len(ps.Statuses), ps.Missing)
	}

	// A write that needs all three owners fails for want of a quorum.
	if m := req("kvmesh.kv.put.metrics.k", nats.Header{protocol.HdrW: {"all"}, protocol.HdrPW: {"all"}}, "v"); m.Header.Get(protocol.HdrError) != protocol.ErrQuorumNotReached.Name {
		t.Fatalf("put w=all with n3 down: %v", m.Header)
	}
	scrapeUntil(t, addr, func(mfs map[string]*dto.MetricFamily) (problems []string) {
		if got := metricValue(mfs, "kvmesh_quorum_failures_total", "op", "put"); got != 1 {
			problems = append(problems, fmt.Sprintf("put quorum failures = %v, want 1", got))
		}
		if got := metricValue(mfs, "kvmesh_request_duration_seconds", "op", "put", "outcome", "quorum_failure"); got != 1 {
			problems = append(problems, fmt.Sprintf("put requests with outcome quorum_failure = %v, want 1", got))
		}
		if got := metricValue(mfs, "kvmesh_member_health", "health", "down"); got != 1 {
			problems = append(problems, fmt.Sprintf("members down = %v, want 1", got))
		}
		return problems
	})
}

// scrapeUntil scrapes addr's /metrics until check finds no problem, at
// most 10 s; then it reports the last problems as errors.
func scrapeUntil(t *testing.T, addr string, check func(map[string]*dto.MetricFamily) []string) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mfs := scrape(t, addr)
		problems := check(mfs)
		if len(problems) == 0 {
			return mfs
		}
		if time.Now().After(deadline) {
			for _, p := range problems {
				t.Error(p)
			}
			return mfs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHTTPPortTaken: a node whose HTTP port is taken does not start, and
// says why.
func TestHTTPPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := node.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.RunDir, cfg.Secret = "n1", t.TempDir(), t.TempDir(), testSecret
	cfg.Listen, cfg.Cluster, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", ln.Addr().String()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(testCtx(t))
	if err == nil {
		n.Close()
		t.Fatal("started on a taken HTTP port")
	}
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "http") {
		t.Errorf("error %v: want EADDRINUSE naming the http listener", err)
	}
	cfg.HTTP = "8222"
	if _, err := node.New(cfg); err == nil {
		t.Error("HTTP without a host:port accepted")
	}
}
