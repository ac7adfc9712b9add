package e2e

// The fault suite (issue 3; notes/reliability.md section 6, tiers T2 and
// T3). Each run: a 5-node cluster (N=3, R=W=2), 8 clients at a bounded
// rate recording a history, a quiet start, one nemesis for a bounded
// time, heal, stop the load, read every key with R=all, poll replica
// dumps until the owners of every key hold identical objects, then check
// P1-P6 over the history. Any finding fails the run and keeps the
// evidence (history JSONL, final reads, node logs and data, seed, nemesis
// schedule, report) in a directory whose path is printed.
//
// `go test ./e2e/` runs a short version of each nemesis; KVMESH_SOAK=1
// (make soak) runs long ones, several runs each, and prints a summary
// table. Other knobs: KVMESH_SEED (seed of the first run),
// KVMESH_SOAK_RUNS, KVMESH_SOAK_FAULT (fault time per run),
// KVMESH_NODE_FLAGS (extra node flags, e.g. --unsafe-early-ack=300ms to see a
// nemesis catch the planted bug), KVMESH_PLANTED=1 (nodes built with the
// kvmesh_planted tag, which that flag needs), KVMESH_KEEP=1 (keep evidence
// of passing runs too).

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/history"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

const (
	clusterSize = 5
	replicas    = 3 // N, the nodes' default
	// convergeWithin is the liveness deadline for final reads and replica
	// convergence after the heal: a timeout, not a performance figure.
	convergeWithin = 60 * time.Second
)

func soakMode() bool { return os.Getenv("KVMESH_SOAK") != "" }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// faultSpec describes the runs of one nemesis.
type faultSpec struct {
	name      string
	nemesis   nemesis
	short     time.Duration // fault time of the short (make test) run
	netns     bool          // nodes in network namespaces
	raceNodes bool          // nodes built with -race (one run of make test)
	dataFS    string        // size of a tmpfs on each data dir (clusterOpts.dataFS)
	// lossy: the nemesis destroys a replica's data, so reads may miss an
	// acknowledged write until repair: read-your-writes is not claimed.
	lossy bool
}

// faultParams are the timings of every run of a mode.
type faultParams struct {
	runs     int
	quiet    time.Duration
	faults   time.Duration
	rate     int // ops/s, all workers together
	minAcked int // validity guard
}

func paramsFor(s faultSpec) faultParams {
	if soakMode() {
		return faultParams{runs: envInt("KVMESH_SOAK_RUNS", 3), quiet: 5 * time.Second,
			faults: envDuration("KVMESH_SOAK_FAULT", 60*time.Second), rate: 150, minAcked: 300}
	}
	return faultParams{runs: 1, quiet: 3 * time.Second, faults: s.short, rate: 150, minAcked: 300}
}

func TestFaultKill9(t *testing.T) {
	runFaultSpec(t, faultSpec{name: "kill9", nemesis: nemesisKill9, short: 15 * time.Second})
}

func TestFaultKill9Double(t *testing.T) {
	runFaultSpec(t, faultSpec{name: "kill9-double", nemesis: nemesisKill9Double, short: 15 * time.Second})
}

func TestFaultPause(t *testing.T) {
	// This run's nodes are built with the race detector (hygiene: no DATA
	// RACE in their logs).
	runFaultSpec(t, faultSpec{name: "pause", nemesis: nemesisPause, short: 15 * time.Second, raceNodes: true})
}

func TestFaultPartition(t *testing.T) {
	requireNetLab(t)
	runFaultSpec(t, faultSpec{name: "partition", nemesis: nemesisPartition, short: 27 * time.Second, netns: true})
}

func TestFaultWipe(t *testing.T) {
	runFaultSpec(t, faultSpec{name: "wipe", nemesis: nemesisWipe, short: 15 * time.Second, lossy: true})
}

func TestFaultDiskFull(t *testing.T) {
	requireMount(t)
	runFaultSpec(t, faultSpec{name: "disk-full", nemesis: nemesisDiskFull, short: 15 * time.Second, dataFS: "64m"})
}

func TestFaultMembership(t *testing.T) {
	// A change outlasts the fault time when it needs to (a removal
	// waits about 10 s for the failure detector): a short run makes one
	// join and one removal or leave.
	runFaultSpec(t, faultSpec{name: "membership", nemesis: nemesisMembership, short: 20 * time.Second})
}

func runFaultSpec(t *testing.T, s faultSpec) {
	if testing.Short() {
		t.Skip("the nemeses run in make test and make soak, not in make unit (-short)")
	}
	p := paramsFor(s)
	seed := int64(envInt("KVMESH_SEED", 0))
	if seed == 0 {
		seed = time.Now().UnixNano() & (1<<53 - 1)
	}
	for i := 0; i < p.runs; i++ {
		t.Run(fmt.Sprintf("run%d", i+1), func(t *testing.T) {
			// Only the first soak run of a nemesis uses race-built nodes.
			faultRun(t, s, p, seed+int64(i), s.raceNodes && i == 0)
		})
	}
}

// runOutcome is one run's line in the summary table.
type runOutcome struct {
	nemesis      string
	ops, ok      int
	acked, lost  int
	violations   int // every other finding: unverified, phantoms, resurrections, siblings, stale reads, divergence, hygiene
	converged    bool
	convergence  time.Duration
	maxSiblings  int
	faults       int
	invalid, bad bool
}

var summary struct {
	mu   sync.Mutex
	rows []runOutcome
}

func addSummary(r runOutcome) {
	summary.mu.Lock()
	summary.rows = append(summary.rows, r)
	summary.mu.Unlock()
}

// printSummary prints the table of every fault run of this process,
// one line per nemesis.
func printSummary(w io.Writer) {
	summary.mu.Lock()
	defer summary.mu.Unlock()
	if len(summary.rows) == 0 {
		return
	}
	var order []string
	by := map[string][]runOutcome{}
	for _, r := range summary.rows {
		if by[r.nemesis] == nil {
			order = append(order, r.nemesis)
		}
		by[r.nemesis] = append(by[r.nemesis], r)
	}
	fmt.Fprintf(w, "\nfault suite summary (lost must be 0; convergence is from heal to identical replicas)\n")
	fmt.Fprintf(w, "%-18s %4s %7s %7s %6s %6s %7s %6s %10s %10s %6s  %s\n",
		"nemesis", "runs", "ops", "acked", "lost", "other", "avail%", "faults", "conv max", "conv mean", "maxsib", "result")
	for _, name := range order {
		rows := by[name]
		var ops, ok, acked, lost, other, faults, maxSib, failed, invalid int
		var convMax, convSum time.Duration
		convN := 0
		for _, r := range rows {
			ops, ok, acked, lost, other, faults = ops+r.ops, ok+r.ok, acked+r.acked, lost+r.lost, other+r.violations, faults+r.faults
			maxSib = max(maxSib, r.maxSiblings)
			if r.converged {
				convN++
				convSum += r.convergence
				convMax = max(convMax, r.convergence)
			}
			if r.bad {
				failed++
			}
			if r.invalid {
				invalid++
			}
		}
		avail := 0.0
		if ops > 0 {
			avail = 100 * float64(ok) / float64(ops)
		}
		mean := time.Duration(0)
		if convN > 0 {
			mean = convSum / time.Duration(convN)
		}
		result := "ok"
		switch {
		case strings.HasPrefix(name, "planted"):
			result = "planted bug caught"
			if lost == 0 {
				result = "PLANTED BUG MISSED"
			}
		case failed > 0:
			result = fmt.Sprintf("FAILED %d of %d", failed, len(rows))
		case invalid > 0:
			result = fmt.Sprintf("INVALID %d of %d", invalid, len(rows))
		}
		fmt.Fprintf(w, "%-18s %4d %7d %7d %6d %6d %7.1f %6d %10s %10s %6d  %s\n",
			name, len(rows), ops, acked, lost, other, avail, faults,
			convMax.Round(10*time.Millisecond), mean.Round(10*time.Millisecond), maxSib, result)
	}
}

// faultRun is one run of a nemesis.
func faultRun(t *testing.T, s faultSpec, p faultParams, seed int64, raceNodes bool) {
	dir, err := os.MkdirTemp("", "kvmesh-fault-"+s.name+"-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after the nodes are killed.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("KVMESH_KEEP") != "" {
			t.Logf("EVIDENCE kept in %s (seed %d)", dir, seed)
			return
		}
		os.RemoveAll(dir)
	})
	t.Logf("nemesis %s, seed %d (KVMESH_SEED=%d reproduces the schedule's choices), quiet %v, faults %v, %d ops/s, evidence dir %s",
		s.name, seed, seed, p.quiet, p.faults, p.rate, dir)

	var lab *netLab
	if s.netns {
		lab = newNetLab(t, clusterSize)
	}
	bin := ""
	if raceNodes {
		if bin, err = raceNodeBin(); err != nil {
			t.Fatalf("build race node binary: %v", err)
		}
		t.Logf("nodes built with -race: %s", bin)
	}
	if os.Getenv("KVMESH_PLANTED") != "" {
		if bin, err = plantedNodeBin(); err != nil {
			t.Fatalf("build planted node binary: %v", err)
		}
	}
	c := startCluster(t, clusterOpts{size: clusterSize, base: dir, bin: bin, lab: lab, dataFS: s.dataFS,
		extra: strings.Fields(os.Getenv("KVMESH_NODE_FLAGS"))})

	ctx, cancel := context.WithTimeout(context.Background(), p.quiet+p.faults+5*time.Minute)
	defer cancel()
	admin := c.client(c.procs[0])
	waitServing(ctx, t, admin, "all")

	clients := make([]*client.Client, numWorkers)
	for i := range clients {
		clients[i] = c.client(c.procs[i%clusterSize])
	}
	w := newWorkload(clients, seed, p.rate)
	sched := &schedule{t0: w.t0}
	sched.logf("seed %d, nemesis %s, nodes %s", seed, s.name, strings.Join(c.ids(), ","))
	if err := w.initHot(ctx, admin); err != nil {
		t.Fatal(err)
	}
	owners, err := c.awaitOwners(w.hot, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range w.hot {
		sched.logf("hot key %s owned by %v, written by %d workers", key, owners[key], w.writers[key])
	}
	env := &faultEnv{c: c, lab: lab, rnd: rand.New(rand.NewPCG(uint64(seed), 0x6e656d)), hotOwners: owners, sched: sched, soak: soakMode()}

	// Load, quiet start, faults, heal, stop the load.
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		w.run(loadCtx)
	}()
	sched.logf("load started")
	sleepCtx(ctx, p.quiet)
	nemCtx, stopNemesis := context.WithTimeout(ctx, p.faults)
	nemDone := make(chan error, 1)
	sched.logf("nemesis %s started", s.name)
	go func() { nemDone <- s.nemesis(nemCtx, env) }()
	nemErr := <-nemDone // returns once it has healed
	stopNemesis()
	healed := time.Now()
	sched.logf("nemesis stopped; everything healed")
	stopLoad()
	<-loadDone
	sched.logf("load stopped")
	if nemErr != nil {
		t.Errorf("nemesis %s: %v", s.name, nemErr)
	}
	var problems []string
	for _, q := range c.procs {
		if q.gone {
			continue // it left the store, or was removed
		}
		if q.crashed() {
			problems = append(problems, fmt.Sprintf("node %s exited on its own (crash)", q.id))
			c.kill(q) // reap, then serve again so the checks can run
		}
		if q.run == nil {
			if err := c.start(q); err != nil {
				t.Errorf("restart %s after the run: %v", q.id, err)
			}
		}
	}

	if err := awaitHintsDrained(ctx, c, hintsDrainWithin); err != nil {
		problems = append(problems, err.Error())
	} else {
		sched.logf("hints drained")
	}

	// Final reads (they repair stale replicas), then convergence.
	keys := w.keys()
	reader := c.client(c.procs[0])
	finals := finalReads(ctx, reader, keys, healed.Add(convergeWithin))
	sched.logf("final reads of %d keys done", len(keys))
	conv, divs, repairs := c.converge(ctx, reader, keys, healed, convergeWithin)
	if divs == nil {
		sched.logf("converged %.2fs after heal (%d extra repair rounds)", conv.Seconds(), repairs)
	} else {
		sched.logf("NOT converged %v after heal: %d keys differ", convergeWithin, len(divs))
	}

	ops := w.history()
	report := history.Check(ops, finals, history.Config{Writers: w.writers, Strict: !s.lossy})
	problems = append(problems, scanLogs(c)...)
	faults := sched.count()
	invalid := report.AckedWrites < p.minAcked || faults < 1
	findings := report.Failures()
	bad := len(findings) > 0 || divs != nil || len(problems) > 0 || nemErr != nil
	addSummary(runOutcome{nemesis: s.name, ops: report.Ops, ok: report.OK, acked: report.AckedWrites,
		lost: len(report.Lost), violations: len(findings) - len(report.Lost) + len(divs) + len(problems),
		converged: divs == nil, convergence: conv, maxSiblings: report.MaxSiblings, faults: faults, invalid: invalid, bad: bad})

	t.Logf("%s: %s; %d faults; convergence %v (repair rounds %d)", s.name, report.Summary(), faults, conv.Round(time.Millisecond), repairs)
	keep := os.Getenv("KVMESH_KEEP") != ""
	if !bad && !invalid && !keep {
		return
	}
	if err := writeEvidence(dir, seed, sched, ops, finals, report, divs, problems); err != nil {
		t.Errorf("writing evidence: %v", err)
	}
	t.Logf("nemesis schedule:\n%s", sched)
	if !bad && !invalid {
		return
	}
	if invalid {
		t.Errorf("INVALID run: %d acknowledged writes (need %d) and %d faults (need 1)", report.AckedWrites, p.minAcked, faults)
	}
	for i, f := range findings {
		if i == 30 {
			t.Errorf("... %d more findings in %s/report.txt", len(findings)-i, dir)
			break
		}
		t.Errorf("%v", f)
	}
	for i, d := range divs {
		if i == 10 {
			t.Errorf("... %d more divergent keys in %s/report.txt", len(divs)-i, dir)
			break
		}
		t.Errorf("P4 not converged: %v", d)
	}
	for _, pr := range problems {
		t.Errorf("hygiene: %s", pr)
	}
	t.Errorf("run failed: seed %d, evidence in %s", seed, dir)
}

// hintsDrainWithin bounds the wait for every node's hints to drain once
// the faults healed: the handoff delivers a round every heartbeat, at
// 5000 records/s by default.
const hintsDrainWithin = 90 * time.Second

// awaitHintsDrained waits until every node of the store that runs
// reports no pending hint in its status (kvmesh status): the writes that
// fallbacks took for owners that were down or cut off during the faults
// have been delivered to them. It polls the status every 200ms; an error
// says which nodes still hold hints when within passed, or which did not
// answer.
func awaitHintsDrained(ctx context.Context, c *procCluster, within time.Duration) error {
	var up *proc
	want := map[string]bool{}
	for _, q := range c.procs {
		if !q.gone && q.run != nil {
			want[q.id] = true
			if up == nil {
				up = q
			}
		}
	}
	if up == nil {
		return nil
	}
	cl := c.client(up)
	deadline := time.Now().Add(within)
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		sts, err := cl.Status(sctx)
		cancel()
		var held []string
		seen := map[string]bool{}
		for _, st := range sts {
			seen[st.Node] = true
			if st.Hints.Pending > 0 {
				held = append(held, fmt.Sprintf("%s holds %d hints in %d partitions", st.Node, st.Hints.Pending, st.Hints.Partitions))
			}
		}
		for id := range want {
			if !seen[id] {
				held = append(held, id+" did not answer its status")
			}
		}
		if len(held) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			slices.Sort(held)
			return fmt.Errorf("hints not drained %v after the faults healed: %s (last status error: %v)", within, strings.Join(held, "; "), err)
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

func (c *procCluster) ids() []string {
	var ids []string
	for _, p := range c.procs {
		ids = append(ids, p.id)
	}
	return ids
}

// finalReads reads every key with R=all, retrying each until it succeeds
// or deadline passes.
func finalReads(ctx context.Context, cl *client.Client, keys []string, deadline time.Time) map[string]history.Final {
	out := make(map[string]history.Final, len(keys))
	var mu sync.Mutex
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range numWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range jobs {
				f := finalRead(ctx, cl, key, deadline)
				mu.Lock()
				out[key] = f
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		jobs <- k
	}
	close(jobs)
	wg.Wait()
	return out
}

func finalRead(ctx context.Context, cl *client.Client, key string, deadline time.Time) history.Final {
	f := history.Final{Key: key}
	for {
		f.Tries++
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		e, err := cl.Get(rctx, key, client.R("all"))
		cancel()
		switch {
		case err == nil:
			f.Found, f.Siblings = true, e.Siblings
			for _, v := range e.Values {
				f.Values = append(f.Values, string(v))
			}
			return f
		case isNotFound(err):
			return f
		case time.Now().After(deadline) || ctx.Err() != nil:
			f.Err = err.Error()
			return f
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// dumpAll asks every member for its own replica of each key (on its
// admin replicas subject, over a connection to that node's own server):
// what each replica holds, without any quorum or repair.
func (c *procCluster) dumpAll(keys []string) (history.Dumps, error) {
	dumps := history.Dumps{}
	for _, p := range c.procs {
		if p.gone {
			continue
		}
		d, err := c.dump(p, keys)
		if err != nil {
			return nil, err
		}
		dumps[p.id] = d
	}
	return dumps, nil
}

func (c *procCluster) dump(p *proc, keys []string) (map[string]*protocol.Object, error) {
	nc, err := c.connect(p.url())
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", p.id, err)
	}
	defer nc.Close()
	subjects, _ := protocol.NewSubjects("")
	out := make(map[string]*protocol.Object, len(keys))
	const batch = 256
	for lo := 0; lo < len(keys); lo += batch {
		part := keys[lo:min(lo+batch, len(keys))]
		req := &protocol.Request{V: protocol.Version, From: "e2e"}
		for i, k := range part {
			req.Items = append(req.Items, protocol.Item{Tag: uint64(i + 1), Op: protocol.RPCRead, Key: k})
		}
		b, err := protocol.EncodeRequest(req)
		if err != nil {
			return nil, err
		}
		m, err := nc.Request(subjects.AdminNodeReplicas(p.id), b, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("dump %s: %w", p.id, err)
		}
		rep, err := protocol.DecodeReply(m.Data)
		if err != nil {
			return nil, fmt.Errorf("dump %s: %w", p.id, err)
		}
		if len(rep.Results) != len(part) {
			return nil, fmt.Errorf("dump %s: %d results for %d keys", p.id, len(rep.Results), len(part))
		}
		for _, r := range rep.Results {
			if err := r.Error(); err != nil {
				return nil, fmt.Errorf("dump %s: %w", p.id, err)
			}
			if r.Tag < 1 || int(r.Tag) > len(part) {
				return nil, fmt.Errorf("dump %s: result tag %d out of range", p.id, r.Tag)
			}
			out[part[r.Tag-1]] = r.Obj
		}
	}
	return out, nil
}

// awaitOwners polls the replica dumps until each key, written with
// W=all, is held by exactly N nodes (its owners), and returns them.
func (c *procCluster) awaitOwners(keys []string, within time.Duration) (map[string][]string, error) {
	deadline := time.Now().Add(within)
	for {
		dumps, err := c.dumpAll(keys)
		owners := map[string][]string{}
		if err == nil {
			for _, key := range keys {
				owners[key] = history.Holders(dumps, key)
				if len(owners[key]) != replicas {
					err = fmt.Errorf("key %s written with W=all is held by %v, want %d nodes", key, owners[key], replicas)
					break
				}
			}
		}
		if err == nil {
			return owners, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitQuiescent polls the replica dumps of keys until two in a row,
// 500 ms apart, are the same: no write to them is still being committed.
func (c *procCluster) awaitQuiescent(keys []string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var prev history.Dumps
	for {
		d, err := c.dumpAll(keys)
		if err == nil && prev != nil && sameDumps(prev, d) {
			return nil
		}
		prev = d
		if time.Now().After(deadline) {
			return fmt.Errorf("replicas still changing after %v (last error: %v)", within, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func sameDumps(a, b history.Dumps) bool {
	if len(a) != len(b) {
		return false
	}
	for id, m := range a {
		n := b[id]
		if len(m) != len(n) {
			return false
		}
		for k, o := range m {
			if !version.Equal(o, n[k]) {
				return false
			}
		}
	}
	return true
}

// converge polls the replica dumps until the owners of every key hold
// identical objects (P4) and the owners of every partition report equal
// Merkle roots (every record, not only the workload's keys), or within
// passes since healed. It only waits: the final reads before it repaired
// what they read, anti-entropy must repair the rest. repairs is 0, kept
// for the reports. It returns the time from healed to convergence, or
// the divergences still there at the deadline.
func (c *procCluster) converge(ctx context.Context, cl *client.Client, keys []string, healed time.Time, within time.Duration) (time.Duration, []history.Divergence, int) {
	deadline := healed.Add(within)
	var divs []history.Divergence
	for {
		dumps, err := c.dumpAll(keys)
		if err == nil {
			divs, err = c.diverged(keys, dumps)
		}
		if err != nil {
			divs = []history.Divergence{{Key: "*", Detail: err.Error()}}
		} else if len(divs) == 0 {
			if d := rootsDiffer(ctx, cl, ""); d == "" {
				return time.Since(healed), nil, 0
			} else {
				divs = []history.Divergence{{Key: "*merkle*", Detail: d}}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(healed), divs, 0
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// scanLogs is the hygiene check: no panic, fatal error or data race in
// any node's log.
func scanLogs(c *procCluster) []string {
	var out []string
	for _, p := range c.procs {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			out = append(out, fmt.Sprintf("read log of %s: %v", p.id, err))
			continue
		}
		for _, bad := range []string{"panic:", "DATA RACE", "fatal error:"} {
			if n := strings.Count(string(b), bad); n > 0 {
				i := strings.Index(string(b), bad)
				out = append(out, fmt.Sprintf("%s's log has %d %q, first: %s", p.id, n, bad, tail(string(b[:min(len(b), i+1500)]), 2000)))
			}
		}
	}
	return out
}

// writeEvidence keeps what a failed run needs to be understood: the
// seed, the nemesis schedule, the history and final reads as JSONL, and
// the report (node logs and data dirs are in dir already).
func writeEvidence(dir string, seed int64, sched *schedule, ops []history.Op, finals map[string]history.Final,
	r *history.Report, divs []history.Divergence, problems []string) error {
	if err := os.WriteFile(filepath.Join(dir, "seed.txt"), []byte(fmt.Sprintf("%d\n", seed)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "schedule.txt"), []byte(sched.String()), 0o644); err != nil {
		return err
	}
	if err := writeJSONL(filepath.Join(dir, "history.jsonl"), ops); err != nil {
		return err
	}
	fs := make([]history.Final, 0, len(finals))
	for _, f := range finals {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b history.Final) int { return strings.Compare(a.Key, b.Key) })
	if err := writeJSONL(filepath.Join(dir, "final.jsonl"), fs); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d\n%s\n\n", seed, r.Summary())
	for _, f := range r.Failures() {
		fmt.Fprintln(&b, f)
	}
	for _, d := range divs {
		fmt.Fprintln(&b, "P4 not converged:", d)
	}
	for _, p := range problems {
		fmt.Fprintln(&b, "hygiene:", p)
	}
	return os.WriteFile(filepath.Join(dir, "report.txt"), []byte(b.String()), 0o644)
}

func writeJSONL[T any](path string, items []T) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := history.WriteJSONL(f, items); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
