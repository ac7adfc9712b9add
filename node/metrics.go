package node

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/protocol"
)

// metrics is a node's Prometheus metrics, in a registry of its own: a
// process may run several nodes (kvmesh dev, the tests), so nothing is
// registered globally. The client operations observe a histogram each,
// picked from an array filled at New (no label lookup, no lock on the
// request path); everything the node's status already counts (hints,
// anti-entropy, transfers, membership) is read from the same counters
// when a scrape asks (collector funcs), so it costs nothing between
// scrapes. Safe for concurrent use.
type metrics struct {
	reg         *prometheus.Registry
	runtimeOnce sync.Once // registers the Go and process collectors (withRuntime)

	requests       [numOps][numOutcomes]prometheus.Observer
	quorumFailures [numOps]prometheus.Counter
	refusedAdmit   prometheus.Counter // client operations refused at admission (MaxInflight)
	refusedReads   prometheus.Counter // replica reads refused: the readers' queue was full
	refusedStore   prometheus.Counter // writes the store refused: its queue was full
	batches        [numOutcomes]prometheus.Counter
	batchItems     prometheus.Counter
	fsync          prometheus.Histogram
}

// The client operations the metrics count, and their label values.
const (
	opIdxGet = iota
	opIdxPut
	opIdxDel
	numOps
)

var opNames = [numOps]string{protocol.OpGet, protocol.OpPut, protocol.OpDel}

func opIndex(op string) int {
	switch op {
	case protocol.OpGet:
		return opIdxGet
	case protocol.OpPut:
		return opIdxPut
	}
	return opIdxDel
}

// outcome classifies a client operation's answer for the metrics: a
// small fixed set, coarser than the error names, so that dashboards and
// alerts need not know every name.
type outcome int

const (
	outOK            outcome = iota
	outNotFound              // 404
	outBadRequest            // 400: invalid key, option, context or message
	outConflict              // 409: too many siblings, a conditional write that lost
	outTooLarge              // 413
	outQuorumFailure         // 503 quorum_not_reached
	outOverloaded            // 503 overloaded: refused, here or by a replica
	outUnavailable           // 503 unavailable, and any other 503
	outInternal              // 500, and anything else
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "not_found", "bad_request", "conflict", "too_large",
	"quorum_failure", "overloaded", "unavailable", "internal"}

// outcomeOf classifies an answer by its error code and name (as
// protocol.Classify and ClientResult give them); code 0 is success.
func outcomeOf(code int, name string) outcome {
	switch {
	case code == 0:
		return outOK
	case code == protocol.ErrKeyNotFound.Code:
		return outNotFound
	case code == 400:
		return outBadRequest
	case code == 409:
		return outConflict
	case code == 413:
		return outTooLarge
	case name == protocol.ErrQuorumNotReached.Name:
		return outQuorumFailure
	case name == protocol.ErrOverloaded.Name:
		return outOverloaded
	case code == 503:
		return outUnavailable
	}
	return outInternal
}

func outcomeOfErr(err error) outcome {
	if err == nil {
		return outOK
	}
	return outcomeOf(protocol.Classify(err))
}

// Histogram buckets, in seconds: a client operation takes from tens of
// microseconds (an R=1 get served locally) to the request timeout (2 s
// by default); a log sync from tens of microseconds (tmpfs, a fast SSD)
// to a second (a disk in trouble).
var (
	requestBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	fsyncBuckets   = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
)

// newMetrics builds the node's registry with its own metrics (the Go
// runtime's and the process's join it when it is first served:
// withRuntime). The collector funcs read n's state at
// scrape time; they must only be scraped once the node started.
func newMetrics(n *Node) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	reg := func(c prometheus.Collector) { m.reg.MustRegister(c) }

	req := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kvmesh_request_duration_seconds",
		Help:    "Client operations this node coordinated, from arrival to answer, by operation (get, put, del; alone or in a batch) and outcome. Its _count is the number of operations.",
		Buckets: requestBuckets,
	}, []string{"op", "outcome"})
	reg(req)
	qf := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kvmesh_quorum_failures_total",
		Help: "Client operations that failed because fewer than R or W replicas (or PR, PW owners) answered in time.",
	}, []string{"op"})
	reg(qf)
	for o := range numOps {
		for c := range numOutcomes {
			m.requests[o][c] = req.WithLabelValues(opNames[o], outcomeNames[c])
		}
		m.quorumFailures[o] = qf.WithLabelValues(opNames[o])
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kvmesh_overload_refusals_total",
		Help: "Work refused as overloaded, by stage: admission (client operations beyond MaxInflight), replica_read (replica reads beyond the readers' queue), store_queue (writes beyond the store's queue).",
	}, []string{"stage"})
	reg(refused)
	m.refusedAdmit = refused.WithLabelValues("admission")
	m.refusedReads = refused.WithLabelValues("replica_read")
	m.refusedStore = refused.WithLabelValues("store_queue")
	batches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kvmesh_batches_total",
		Help: "Batch messages received (the Go client's pipelining), by outcome: ok, or bad_request when the message did not decode. Their items count in kvmesh_request_duration_seconds.",
	}, []string{"outcome"})
	reg(batches)
	for c := range numOutcomes {
		m.batches[c] = batches.WithLabelValues(outcomeNames[c])
	}
	m.batchItems = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kvmesh_batch_items_total",
		Help: "Operations received in batch messages.",
	})
	reg(m.batchItems)
	m.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kvmesh_wal_fsync_duration_seconds",
		Help:    "Syncs (fdatasync) of the write-ahead log, one per batch of writes.",
		Buckets: fsyncBuckets,
	})
	reg(m.fsync)

	gauge := func(name, help string, f func() float64) {
		reg(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	i64 := func(f func() int64) func() float64 { return func() float64 { return float64(f()) } }

	reg(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "kvmesh_node_info",
		Help:        "Always 1; the labels name the node, its kvmesh version and conflict mode.",
		ConstLabels: prometheus.Labels{"node": n.cfg.ID, "version": Version, "conflicts": n.conflicts.String()},
	}, func() float64 { return 1 }))
	gauge("kvmesh_inflight_requests", "Client operations this node coordinates now.", i64(n.inflight.Load))
	counter("kvmesh_read_repairs_total", "Stale replicas this node's reads sent the merged value to.", i64(n.readRepairs.Load))
	counter("kvmesh_read_digest_matches_total", "Other replicas' digests this node's reads found equal to its own replica: their value was not sent.", i64(n.digestMatches.Load))
	counter("kvmesh_read_digest_misses_total", "Other replicas' digests this node's reads found different from its own replica: their value was read in a second request.", i64(n.digestMisses.Load))
	reg(storeCollector{n})
	reg(memberCollector{n})

	// Hints (hints.go, handoff.go); n.hints is loaded by Start.
	gauge("kvmesh_hints_pending", "Hints this node holds as a fallback, (partition, owner) pairs not delivered yet.", func() float64 {
		h, _, _ := n.hints.pending()
		return float64(h)
	})
	gauge("kvmesh_hints_pending_partitions", "Partitions the pending hints are in.", func() float64 {
		_, p, _ := n.hints.pending()
		return float64(p)
	})
	counter("kvmesh_hints_delivered_total", "Hints delivered to their owner (and deleted).", func() float64 { return float64(n.hints.delivered.Load()) })
	counter("kvmesh_hint_records_delivered_total", "Records the hinted handoff pushed to owners.", func() float64 { return float64(n.hints.records.Load()) })
	counter("kvmesh_hint_records_stale_total", "Hinted records not delivered because older than the tombstone grace.", func() float64 { return float64(n.hints.stale.Load()) })
	counter("kvmesh_fallback_writes_total", "Hinted writes this node stored as a fallback for an owner that was down.", func() float64 { return float64(n.hints.stored.Load()) })
	counter("kvmesh_sloppy_writes_total", "Writes this node coordinated that fallbacks acknowledged.", i64(n.sloppy.Load))

	// Anti-entropy (antientropy.go) and compaction (compact.go).
	ae := &n.ae
	counter("kvmesh_anti_entropy_rounds_total", "Anti-entropy rounds done.", i64(ae.rounds.Load))
	counter("kvmesh_anti_entropy_exchanges_total", "Partition exchanges with a peer.", i64(ae.exchanges.Load))
	counter("kvmesh_anti_entropy_exchanges_differed_total", "Partition exchanges whose trees differed.", i64(ae.differed.Load))
	counter("kvmesh_anti_entropy_records_pulled_total", "Records anti-entropy merged here from peers.", i64(ae.pulled.Load))
	counter("kvmesh_anti_entropy_records_pushed_total", "Records anti-entropy wrote to peers.", i64(ae.pushed.Load))
	gauge("kvmesh_anti_entropy_last_round_timestamp_seconds", "When the last anti-entropy round ended (unix seconds; 0: none yet).", func() float64 {
		return float64(ae.lastRound.Load()) / 1e9
	})
	counter("kvmesh_tombstones_purged_total", "Tombstones (and expired values) compaction purged.", i64(n.compacted.purged.Load))

	// Transfers of a membership change (rebalance.go): the progress of
	// the last change that gave this node partitions.
	rb := &n.rebal
	gauge("kvmesh_transfer_partitions", "Partitions this node gains in the last membership change that gave it any.", i64(rb.partitions.Load))
	gauge("kvmesh_transfer_partitions_done", "Of those, the partitions copied from a majority of their owners.", i64(rb.partitionsDone.Load))
	gauge("kvmesh_transfer_records", "Records copied so far in that change.", i64(rb.keys.Load))
	gauge("kvmesh_transfer_bytes", "Bytes copied so far in that change.", i64(rb.bytes.Load))
	gauge("kvmesh_transfer_in_progress", "1 while this node copies the partitions it gains, else 0.", func() float64 {
		if rb.started.Load() != 0 && rb.finished.Load() == 0 && rb.partitions.Load() > 0 {
			return 1
		}
		return 0
	})
	return m
}

// withRuntime adds the Go runtime's and the process's standard
// collectors to the registry, once, and returns it. They are added when
// the metrics are first served rather than at New: building the Go
// collector is most of what a registry costs, and the simulation tests
// make many nodes that are never scraped.
func (m *metrics) withRuntime() *prometheus.Registry {
	m.runtimeOnce.Do(func() {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	})
	return m.reg
}

// done counts one client operation of op (opIdx*) that arrived at start
// and was answered now with out.
func (m *metrics) done(op int, out outcome, start, now time.Time) {
	m.requests[op][out].Observe(now.Sub(start).Seconds())
	if out == outQuorumFailure {
		m.quorumFailures[op].Inc()
	}
}

// observeSync is the store's OnSync.
func (m *metrics) observeSync(d time.Duration) { m.fsync.Observe(d.Seconds()) }

// storeCollector reports the store's files and health at scrape time:
// one directory listing and a few stats.
type storeCollector struct{ n *Node }

var (
	descBbolt = prometheus.NewDesc("kvmesh_bbolt_size_bytes", "Size of the node's bbolt file.", nil, nil)
	descWAL   = prometheus.NewDesc("kvmesh_wal_size_bytes", "Size of the node's write-ahead log segments together.", nil, nil)
	descFail  = prometheus.NewDesc("kvmesh_store_failed", "1 once the node's store stopped taking writes after an I/O error (see the status's store_error), else 0.", nil, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBbolt
	ch <- descWAL
	ch <- descFail
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.n.st == nil {
		return
	}
	db, wal := c.n.st.FileSizes()
	ch <- prometheus.MustNewConstMetric(descBbolt, prometheus.GaugeValue, float64(db))
	ch <- prometheus.MustNewConstMetric(descWAL, prometheus.GaugeValue, float64(wal))
	failed := 0.0
	if c.n.StoreError() != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(descFail, prometheus.GaugeValue, failed)
}

// memberCollector reports the members by status and by health as this
// node sees them.
type memberCollector struct{ n *Node }

var (
	descMembers = prometheus.NewDesc("kvmesh_members", "Member records this node holds, by status (joining, up, leaving, left).", []string{"status"}, nil)
	descHealth  = prometheus.NewDesc("kvmesh_member_health", "Members of the ring by health as this node's failure detector sees them (alive, suspect, down; this node is alive).", []string{"health"}, nil)
)

func (c memberCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descMembers; ch <- descHealth }

func (c memberCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	if n.mem == nil {
		return
	}
	status := map[string]int{protocol.MemberJoining.String(): 0, protocol.MemberUp.String(): 0, protocol.MemberLeaving.String(): 0, protocol.MemberLeft.String(): 0}
	for _, r := range n.mem.records().Records() {
		status[r.Status.String()]++
	}
	for s, k := range status {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(k), s)
	}
	health := map[string]int{"alive": 0, "suspect": 0, "down": 0}
	for _, h := range n.health() {
		health[h]++
	}
	for h, k := range health {
		ch <- prometheus.MustNewConstMetric(descHealth, prometheus.GaugeValue, float64(k), h)
	}
}

// health returns, for every member of the ring, "alive", "suspect" or
// "down" as this node's failure detector sees it; this node is alive.
func (n *Node) health() map[string]string {
	h := make(map[string]string)
	for _, id := range n.Members() {
		switch n.live.state(id) {
		case membership.Suspect:
			h[id] = "suspect"
		case membership.Down:
			h[id] = "down"
		default:
			h[id] = "alive"
		}
	}
	h[n.cfg.ID] = "alive"
	return h
}
