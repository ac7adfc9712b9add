package node

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/kvmesh/kvmesh/protocol"
)

// webServer is the node's HTTP port (Config.HTTP): the status page at
// "/", its data at "/status.json", Prometheus metrics at "/metrics" and
// the embedded NATS server's monitoring endpoints (/varz, /connz,
// /routez, /subsz, /healthz, ...). Started by Start, stopped by Close.
type webServer struct {
	srv    *http.Server
	addr   string             // the listener's resolved host:port
	cancel context.CancelFunc // ends every request's context (stopWeb)
}

//go:embed web/status.html
var statusPage []byte

// Handler returns the handler of the node's HTTP port (see Config.HTTP),
// for callers that serve it themselves: the status page, /status.json,
// /metrics and the NATS monitoring endpoints. Valid after Start.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(statusPage)
	})
	mux.HandleFunc("GET /status.json", n.serveStatusJSON)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.withRuntime(), promhttp.HandlerOpts{ErrorLog: slogPrinter{n}}))
	if n.srv != nil {
		n.srv.MountMonitor(mux)
	}
	return mux
}

// startWeb listens on Config.HTTP and serves Handler on a goroutine the
// node owns until Close.
func (n *Node) startWeb() error {
	ln, err := net.Listen("tcp", n.cfg.HTTP)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &webServer{addr: ln.Addr().String(), cancel: cancel,
		srv: &http.Server{Handler: n.Handler(), ReadHeaderTimeout: 5 * time.Second,
			BaseContext: func(net.Listener) context.Context { return ctx }}}
	n.web = w
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := w.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server stopped", "err", err)
		}
	}()
	n.log.Info("http serving", "addr", w.addr)
	return nil
}

// stopWeb closes the HTTP listener, ends the requests being served (a
// status.json waiting for the peers' statuses returns at once) and waits
// for their handlers, at most 2 s, before closing every connection: so
// no handler runs on once Close has closed the store.
func (n *Node) stopWeb() {
	if n.web == nil {
		return
	}
	n.web.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := n.web.srv.Shutdown(ctx); err != nil {
		n.log.Warn("http server: requests still running at close", "err", err)
	}
	_ = n.web.srv.Close()
}

// HTTPAddr returns the host:port the node's HTTP port listens on, or ""
// without one (Config.HTTP empty). Valid after Start.
func (n *Node) HTTPAddr() string {
	if n.web == nil {
		return ""
	}
	return n.web.addr
}

// slogPrinter logs promhttp's errors.
type slogPrinter struct{ n *Node }

func (p slogPrinter) Println(v ...any) { p.n.log.Warn("metrics: " + fmt.Sprint(v...)) }

// PageStatus is what /status.json serves to the status page: the
// answering node's ring and its view of the members' health, every
// node's status (as kvmesh status gathers them) and the request
// counters of the metrics, which the page turns into rates between two
// polls.
type PageStatus struct {
	Node string `json:"node"` // the answering node
	Time int64  `json:"time"` // unix milliseconds
	Ring struct {
		Partitions int      `json:"partitions"`
		Replicas   int      `json:"replicas"`
		Members    []string `json:"members"`
		// Owners[p] are partition p's owners in preference order, as
		// indexes into Members.
		Owners [][]int `json:"owners"`
	} `json:"ring"`
	// Health is each member's health as the answering node's failure
	// detector sees it: alive, suspect or down.
	Health map[string]string `json:"health"`
	// Statuses are the nodes' statuses that answered, sorted by id;
	// Missing the members that did not (down, cut off, slow).
	Statuses []protocol.NodeStatus `json:"statuses"`
	Missing  []string              `json:"missing,omitempty"`
	// Requests are the answering node's client operations so far, by
	// operation (get, put, del).
	Requests []PageOp `json:"requests"`
	// Fsyncs and FsyncSeconds count its log syncs and their total time.
	Fsyncs       uint64  `json:"fsyncs"`
	FsyncSeconds float64 `json:"fsync_seconds"`
}

// PageOp is one operation's counters: Count operations, Errors of them
// answered with an error other than not found, Seconds their total
// latency, and Buckets the latency histogram (cumulative counts per
// upper bound Le, in seconds).
type PageOp struct {
	Op      string       `json:"op"`
	Count   uint64       `json:"count"`
	Errors  uint64       `json:"errors"`
	Seconds float64      `json:"seconds"`
	Buckets []PageBucket `json:"buckets"`
}

// PageBucket is one histogram bucket.
type PageBucket struct {
	Le    float64 `json:"le"`
	Count uint64  `json:"count"`
}

func (n *Node) serveStatusJSON(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), min(n.cfg.RequestTimeout, time.Second))
	defer cancel()
	st := n.pageStatus(ctx)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_ = json.NewEncoder(w).Encode(st)
}

// pageStatus gathers PageStatus; it waits, at most until ctx is done,
// for the statuses of the members this node holds alive.
func (n *Node) pageStatus(ctx context.Context) *PageStatus {
	ps := &PageStatus{Node: n.cfg.ID, Time: n.clock.Now().UnixMilli(), Health: n.health()}
	rg := n.mem.ring()
	ps.Ring.Partitions, ps.Ring.Replicas, ps.Ring.Members = rg.Partitions(), rg.N(), rg.Members()
	idx := make(map[string]int, len(ps.Ring.Members))
	for i, m := range ps.Ring.Members {
		idx[m] = i
	}
	ps.Ring.Owners = make([][]int, rg.Partitions())
	for p := range ps.Ring.Owners {
		for _, o := range rg.Owners(p) {
			ps.Ring.Owners[p] = append(ps.Ring.Owners[p], idx[o])
		}
	}
	ps.Statuses, ps.Missing = n.gatherStatuses(ctx, ps.Health)
	ps.Requests, ps.Fsyncs, ps.FsyncSeconds = n.metrics.snapshot()
	return ps
}

// gatherStatuses returns this node's status and those of the other
// nodes that answer the status broadcast before ctx is done; it stops
// waiting once every member health holds alive answered. Missing are
// the members that did not answer.
func (n *Node) gatherStatuses(ctx context.Context, health map[string]string) (sts []protocol.NodeStatus, missing []string) {
	got := map[string]protocol.NodeStatus{n.cfg.ID: n.Status()}
	if n.nc != nil {
		want := 0
		for id, h := range health {
			if h == "alive" && id != n.cfg.ID {
				want++
			}
		}
		inbox := n.nc.NewRespInbox()
		ch := make(chan *nats.Msg, 64)
		if sub, err := n.nc.ChanSubscribe(inbox, ch); err == nil {
			defer func() { _ = sub.Unsubscribe() }()
			if err := n.nc.PublishRequest(n.subjects.AdminStatus(), inbox, nil); err == nil {
				alive := 0
			wait:
				for alive < want {
					select {
					case m := <-ch:
						var st protocol.NodeStatus
						if json.Unmarshal(m.Data, &st) != nil || protocol.ValidateNodeID(st.Node) != nil || st.Node == n.cfg.ID {
							continue
						}
						if _, dup := got[st.Node]; !dup && health[st.Node] == "alive" {
							alive++
						}
						got[st.Node] = st
					case <-ctx.Done():
						break wait
					}
				}
			}
		}
	}
	for _, st := range got {
		sts = append(sts, st)
	}
	slices.SortFunc(sts, func(a, b protocol.NodeStatus) int { return cmp.Compare(a.Node, b.Node) })
	for id := range health {
		if _, ok := got[id]; !ok {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	return sts, missing
}

// snapshot sums the request histogram over outcomes, per operation, and
// reads the fsync histogram, for the status page.
func (m *metrics) snapshot() (ops []PageOp, fsyncs uint64, fsyncSeconds float64) {
	for o := range numOps {
		op := PageOp{Op: opNames[o]}
		for c := range numOutcomes {
			h := histogramOf(m.requests[o][c])
			if h == nil {
				continue
			}
			op.Count += h.GetSampleCount()
			op.Seconds += h.GetSampleSum()
			if outcome(c) != outOK && outcome(c) != outNotFound {
				op.Errors += h.GetSampleCount()
			}
			for i, b := range h.GetBucket() {
				if i == len(op.Buckets) {
					op.Buckets = append(op.Buckets, PageBucket{Le: b.GetUpperBound()})
				}
				op.Buckets[i].Count += b.GetCumulativeCount()
			}
		}
		ops = append(ops, op)
	}
	if h := histogramOf(m.fsync); h != nil {
		fsyncs, fsyncSeconds = h.GetSampleCount(), h.GetSampleSum()
	}
	return ops, fsyncs, fsyncSeconds
}

// histogramOf reads a histogram's current state.
func histogramOf(o any) *dto.Histogram {
	w, ok := o.(interface{ Write(*dto.Metric) error })
	if !ok {
		return nil
	}
	var d dto.Metric
	if w.Write(&d) != nil {
		return nil
	}
	return d.GetHistogram()
}
