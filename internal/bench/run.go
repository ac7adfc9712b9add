package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmesh/kvmesh/internal/cli"
)

// bench is one run of `kvmesh bench`: it owns the clusters, the drivers
// and the results. Not safe for concurrent use.
type bench struct {
	cfg      config
	ps       *procs
	log      io.Writer
	progress *cli.Progress // on log: a redrawn line of the rounds on a terminal
	exe      string
	base     string

	clusters  map[string]*cluster
	drivers   map[string]driver
	closers   []func()
	keyspaces map[string]map[int]*keyspace // system -> value size -> keys
	values    map[int][]byte
	fsyncP50  float64
	load      loadInfo
}

// loadInfo is how busy the machine was: other work skews every number.
type loadInfo struct {
	LoadAvgStart string  `json:"loadavg_at_start"`
	CPUBusy      float64 `json:"cpus_busy"`        // average during the rounds
	CPUOthers    float64 `json:"cpus_busy_others"` // of which outside this benchmark
}

// cell is one row of the table: a system, an operation, a concurrency
// and a value size.
type cell struct {
	System string
	Op     string // label in the table
	kind   string
	r      int // kvmesh read quorum
	C      int
	Size   int
}

// kvmeshOps are the kvmesh rows of each operation: gets run with R=2 and
// R=1, every put with W=2.
func kvmeshOps(kind string) []struct {
	label string
	r     int
} {
	switch kind {
	case kindPut:
		return []struct {
			label string
			r     int
		}{{"put W=2", 2}}
	case kindGet:
		return []struct {
			label string
			r     int
		}{{"get R=2", 2}, {"get R=1", 1}}
	default:
		return []struct {
			label string
			r     int
		}{{kind + " R=2 W=2", 2}}
	}
}

// planCells lists the cells of one system, in run order.
func planCells(cfg config, system string) []cell {
	var out []cell
	for _, size := range cfg.Sizes {
		switch system {
		case sysKvmesh, sysKvmeshB, sysKvmeshR:
			for _, kind := range cfg.Ops {
				for _, o := range kvmeshOps(kind) {
					for _, c := range cfg.Conc {
						out = append(out, cell{system, o.label, kind, o.r, c, size})
					}
				}
			}
		case sysKvmesh5, sysKvmeshM:
			if slices.Contains(cfg.Ops, kindPut) {
				for _, c := range cfg.Conc {
					out = append(out, cell{system, "put W=2", kindPut, 2, c, size})
				}
			}
		case sysJSSync, sysJSLazy:
			for _, kind := range cfg.Ops {
				for _, c := range cfg.Conc {
					out = append(out, cell{system, kind, kind, 0, c, size})
				}
			}
		case sysFanout:
			for _, c := range cfg.Conc {
				out = append(out, cell{system, "fan-out 2 of 3", kindFanout, 0, c, size})
			}
			// The floor of a get at C=1: one request/reply across a route.
			out = append(out, cell{system, "req/reply via route", kindRR, size, 1, size})
		}
	}
	return out
}

// loadSystems are the systems with table cells, in table order.
func loadSystems(cfg config) []string {
	var out []string
	for _, s := range cfg.Systems {
		if s != sysMem && s != sysOverload {
			out = append(out, s)
		}
	}
	return out
}

func (b *bench) logf(format string, args ...any) {
	b.progress.Log(fmt.Sprintf("%s "+format, append([]any{time.Now().Format("15:04:05")}, args...)...))
}

func (b *bench) value(size int) []byte {
	if v, ok := b.values[size]; ok {
		return v
	}
	v := make([]byte, size)
	_, _ = rand.Read(v) // incompressible
	b.values[size] = v
	return v
}

func (b *bench) has(system string) bool { return slices.Contains(b.cfg.Systems, system) }

// run measures everything the config asks for and returns the report.
func (b *bench) run(ctx context.Context) (*report, error) {
	b.clusters = map[string]*cluster{}
	b.drivers = map[string]driver{}
	b.keyspaces = map[string]map[int]*keyspace{}
	b.values = map[int][]byte{}
	defer func() {
		for _, c := range b.closers {
			c()
		}
	}()
	rep := &report{Config: b.cfg}
	started := time.Now()
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.load.LoadAvgStart = strings.Join(strings.Fields(string(la))[:3], " ")
	}

	if err := b.startAll(ctx); err != nil {
		return nil, err
	}
	if err := b.preload(ctx); err != nil {
		return nil, err
	}
	var err error
	if b.fsyncP50, err = measureFsync(b.base, 200); err != nil {
		return nil, err
	}
	b.logf("fsync of a 4 KiB append: p50 %.3f ms", b.fsyncP50)

	meter := b.ps.startCPUMeter()
	rows, err := b.rounds(ctx)
	if err != nil {
		return nil, err
	}
	b.load.CPUBusy, b.load.CPUOthers = meter.read()
	b.logf("during the rounds %.2f of %d CPUs were busy on average, %.2f outside this benchmark", b.load.CPUBusy, runtime.NumCPU(), b.load.CPUOthers)
	rep.Rows = rows
	if b.has(sysOverload) {
		if rep.Overload, err = b.overload(ctx); err != nil {
			return nil, err
		}
	}
	// The phases below start fresh stores: stop everything else first.
	for _, c := range b.closers {
		c()
	}
	b.closers = nil
	for _, cl := range b.clusters {
		b.stopCluster(cl)
	}
	if b.has(sysMem) {
		if rep.Memory, err = b.memory(ctx); err != nil {
			return nil, err
		}
	}
	if b.cfg.CPUProfile != "" {
		if rep.Profile, err = b.profile(ctx); err != nil {
			return nil, err
		}
	}
	rep.Ratios = computeRatios(rep.Rows, b.cfg, b.fsyncP50)
	rep.Elapsed = time.Since(started).Round(time.Second).String()
	return rep, nil
}

// startAll starts every cluster the systems need, at once, and connects
// their drivers.
func (b *bench) startAll(ctx context.Context) error {
	type start struct {
		system string
		f      func() (*cluster, error)
	}
	var starts []start
	if b.has(sysKvmesh) || b.has(sysOverload) {
		starts = append(starts, start{sysKvmesh, func() (*cluster, error) { return b.ps.startKvmesh(ctx, "kv3", 3, nil) }})
	}
	if b.has(sysKvmeshR) {
		starts = append(starts, start{sysKvmeshR, func() (*cluster, error) { return b.ps.startKvmesh(ctx, "kvr", 3, nil) }})
	}
	if b.has(sysKvmeshM) {
		starts = append(starts, start{sysKvmeshM, func() (*cluster, error) {
			dir, err := b.ps.memDir()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sysKvmeshM, err)
			}
			return b.ps.startKvmeshIn(ctx, "", dir, "kvm", 3, nil)
		}})
	}
	if b.has(sysKvmeshB) {
		starts = append(starts, start{sysKvmeshB, func() (*cluster, error) {
			return b.ps.startKvmeshIn(ctx, b.cfg.BExe, "", "kvb", 3, nil)
		}})
	}
	if b.has(sysKvmesh5) {
		starts = append(starts, start{sysKvmesh5, func() (*cluster, error) {
			return b.ps.startKvmesh(ctx, fmt.Sprintf("kv%d", b.cfg.ScaleNodes), b.cfg.ScaleNodes, nil)
		}})
	}
	if b.has(sysJSSync) {
		starts = append(starts, start{sysJSSync, func() (*cluster, error) { return b.ps.startNATS(ctx, "js-sync", 3, "always") }})
	}
	if b.has(sysJSLazy) {
		starts = append(starts, start{sysJSLazy, func() (*cluster, error) { return b.ps.startNATS(ctx, "js-lazy", 3, "default") }})
	}
	if b.has(sysFanout) {
		starts = append(starts, start{sysFanout, func() (*cluster, error) { return b.ps.startNATS(ctx, "fanout", 3, "") }})
	}
	b.logf("starting %d clusters under %s", len(starts), b.base)
	t0 := time.Now()
	errs := make([]error, len(starts))
	cls := make([]*cluster, len(starts))
	var wg sync.WaitGroup
	for i, s := range starts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cls[i], errs[i] = s.f()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, s := range starts {
		b.clusters[s.system] = cls[i]
	}
	// Connect, one system after the other (JetStream elects leaders).
	for _, s := range starts {
		cl := b.clusters[s.system]
		switch s.system {
		case sysKvmesh, sysKvmesh5, sysKvmeshB, sysKvmeshM:
			d, err := connectKvmesh(cl.urls(), "2")
			if err != nil {
				return err
			}
			b.closers = append(b.closers, d.close)
			if err := d.probe(ctx, 60*time.Second); err != nil {
				return err
			}
			b.drivers[s.system] = d
		case sysKvmeshR:
			d, err := connectRaw(cl.urls(), "2")
			if err != nil {
				return err
			}
			b.closers = append(b.closers, d.close)
			if err := d.probe(ctx, 60*time.Second); err != nil {
				return err
			}
			b.drivers[s.system] = d
		case sysJSSync, sysJSLazy:
			d, err := connectJS(ctx, cl.urls(), 60*time.Second)
			if err != nil {
				return err
			}
			b.closers = append(b.closers, d.close)
			b.drivers[s.system] = d
		case sysFanout:
			d, err := connectFanout(ctx, cl.urls(), 30*time.Second)
			if err != nil {
				return err
			}
			b.closers = append(b.closers, d.close)
			b.drivers[s.system] = d
		}
	}
	b.logf("clusters serving after %v", time.Since(t0).Round(time.Millisecond))
	return nil
}

func (b *bench) stopCluster(cl *cluster) {
	for _, n := range cl.nodes {
		b.ps.stop(n, false, 0)
	}
}

// loadKeys writes every key of ks once into system through d, 64 at a
// time, with a progress bar on a terminal.
func (b *bench) loadKeys(ctx context.Context, system string, d driver, ks *keyspace, size int) (sample, error) {
	var done atomic.Int64
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() { // ends with stop
		defer close(ticked)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				n := done.Load()
				b.progress.Update(n, int64(ks.n), fmt.Sprintf("loading %s: %d of %d keys of %s", system, n, ks.n, sizeLabel(size)))
			}
		}
	}()
	s, err := runLoad(ctx, d, ks, loadSpec{kind: kindPut, c: min(64, ks.n), val: b.value(size),
		timeout: b.cfg.OpTimeout, sequential: true, done: &done})
	close(stop)
	<-ticked
	if err == nil {
		b.progress.Update(int64(ks.n), int64(ks.n), fmt.Sprintf("loading %s: %d keys of %s", system, ks.n, sizeLabel(size)))
	}
	b.progress.Done()
	return s, err
}

// preload writes every key of every value size once into each store that
// has cells, with W=all so every replica holds it; the kvmesh contexts
// it returns let the measured puts supersede these writes.
func (b *bench) preload(ctx context.Context) error {
	for _, system := range loadSystems(b.cfg) {
		b.keyspaces[system] = map[int]*keyspace{}
		for _, size := range b.cfg.Sizes {
			ks := newKeyspace(fmt.Sprintf("v%d", size), b.cfg.Keys)
			b.keyspaces[system][size] = ks
			if system == sysFanout {
				continue // no keys: the keyspace only assigns workers
			}
			d := b.drivers[system]
			switch kd := d.(type) {
			case *kvmeshDriver:
				d = &kvmeshDriver{clients: kd.clients, w: "all"}
			case *rawDriver:
				d = kd.withW("all")
			}
			s, err := b.loadKeys(ctx, system, d, ks, size)
			if err != nil {
				return fmt.Errorf("load %s: %w", system, err)
			}
			if s.Errors > 0 || s.Overloaded > 0 {
				return fmt.Errorf("load %s: %d of %d writes failed: %s", system, s.Errors+s.Overloaded, ks.n, s.FirstError)
			}
			b.logf("loaded %d keys of %s into %s at %.0f puts/s", ks.n, sizeLabel(size), system, s.OpsPerSec)
		}
	}
	return nil
}

// rounds runs every cell once per round, the systems in a rotated order
// each round, and returns the rows with their medians.
func (b *bench) rounds(ctx context.Context) ([]row, error) {
	systems := loadSystems(b.cfg)
	rows := map[string]*row{}
	var order []string
	cells, done := 0, 0
	for _, system := range systems {
		cells += b.cfg.Rounds * len(planCells(b.cfg, system))
	}
	defer b.progress.Done()
	for r := range b.cfg.Rounds {
		for i := range systems {
			system := systems[(i+r)%len(systems)]
			for ci, c := range planCells(b.cfg, system) {
				spec := loadSpec{kind: c.kind, r: c.r, c: c.C, val: b.value(c.Size),
					warmup: b.cfg.Warmup, dur: b.cfg.Duration, seed: uint64(r*1000 + ci), timeout: b.cfg.OpTimeout}
				b.progress.Update(int64(done), int64(cells), fmt.Sprintf("round %d/%d: %s %s C=%d %s", r+1, b.cfg.Rounds, system, c.Op, c.C, sizeLabel(c.Size)))
				done++
				s, err := runLoad(ctx, b.drivers[system], b.keyspaces[system][c.Size], spec)
				if err != nil {
					return nil, fmt.Errorf("%s %s C=%d: %w", system, c.Op, c.C, err)
				}
				b.logf("round %d/%d %-8s %-16s C=%-3d %-6s %9.0f ops/s  p50 %7.3f  p99 %7.3f  p99.9 %7.3f ms  errors %d%s",
					r+1, b.cfg.Rounds, system, c.Op, c.C, sizeLabel(c.Size), s.OpsPerSec, s.P50, s.P99, s.P999,
					s.Errors+s.Overloaded, firstErrorNote(s))
				k := fmt.Sprintf("%s|%s|%d|%d", c.System, c.Op, c.C, c.Size)
				rw := rows[k]
				if rw == nil {
					rw = &row{System: c.System, Op: c.Op, Kind: c.kind, R: c.r, C: c.C, Size: c.Size}
					rows[k] = rw
					order = append(order, k)
				}
				rw.Rounds = append(rw.Rounds, s)
			}
		}
	}
	out := make([]row, 0, len(order))
	for _, k := range order {
		rw := rows[k]
		rw.Median = medianSample(rw.Rounds)
		out = append(out, *rw)
	}
	sortRows(out)
	return out, nil
}

func firstErrorNote(s sample) string {
	if s.FirstError == "" {
		return ""
	}
	return " (first: " + s.FirstError + ")"
}

// rssSampler records the resident memory of some processes every 100 ms
// until stopped, keeping the peak of each.
type rssSampler struct {
	pids []int
	peak []procMem
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(pids []int) *rssSampler {
	s := &rssSampler{pids: pids, peak: make([]procMem, len(pids)), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			for i, p := range s.pids {
				if m, err := readProcMem(p); err == nil && m.RSS > s.peak[i].RSS {
					s.peak[i] = m
				}
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) finish() []procMem {
	close(s.stop)
	<-s.done
	return s.peak
}

func memOf(cl *cluster) []procMem {
	out := make([]procMem, len(cl.nodes))
	for i, n := range cl.nodes {
		out[i], _ = readProcMem(n.pid())
	}
	return out
}

func pidsOf(cl *cluster) []int {
	out := make([]int, len(cl.nodes))
	for i, n := range cl.nodes {
		out[i] = n.pid()
	}
	return out
}

// overload runs cfg.OverloadConc put workers against the 3-node store on
// fresh keys and records errors and the nodes' memory.
func (b *bench) overload(ctx context.Context) (*overloadResult, error) {
	cl := b.clusters[sysKvmesh]
	res := &overloadResult{C: b.cfg.OverloadConc, Size: 100, Before: memOf(cl)}
	ks := newKeyspace("ov", max(b.cfg.Keys, b.cfg.OverloadConc))
	sampler := sampleRSS(pidsOf(cl))
	s, err := runLoad(ctx, b.drivers[sysKvmesh], ks, loadSpec{kind: kindPut, c: b.cfg.OverloadConc, val: b.value(100),
		dur: b.cfg.OverloadDuration, seed: 7, timeout: b.cfg.OpTimeout})
	res.Peak = sampler.finish()
	if err != nil {
		return nil, err
	}
	res.After = memOf(cl)
	res.Sample = s
	b.logf("overload C=%d: %.0f ops/s, p99 %.1f ms, %d overloaded, %d other errors%s",
		res.C, s.OpsPerSec, s.P99, s.Overloaded, s.Errors, firstErrorNote(s))
	return res, nil
}

// loadedStore starts a fresh 3-node store (extra gives node i's extra
// flags), connects to it with W=all and writes every key of ks once with
// 100 B values. On error nothing is left running.
func (b *bench) loadedStore(ctx context.Context, name string, nodes int, ks *keyspace, extra func(i int) []string) (*cluster, *kvmeshDriver, sample, error) {
	cl, err := b.ps.startKvmesh(ctx, name, nodes, extra)
	if err != nil {
		return nil, nil, sample{}, err
	}
	d, err := connectKvmesh(cl.urls(), "all")
	if err == nil {
		err = d.probe(ctx, 60*time.Second)
		if err != nil {
			d.close()
		}
	}
	if err != nil {
		b.stopCluster(cl)
		return nil, nil, sample{}, err
	}
	s, err := b.loadKeys(ctx, name, d, ks, 100)
	if err != nil {
		d.close()
		b.stopCluster(cl)
		return nil, nil, sample{}, err
	}
	return cl, d, s, nil
}

// memory loads cfg.MemKeys keys of 100 B into a fresh 3-node store and
// compares each node's resident memory with its bbolt file.
func (b *bench) memory(ctx context.Context) (*memResult, error) {
	ks := newKeyspace("m", b.cfg.MemKeys)
	b.logf("memory: loading %d keys of 100 B with W=all", ks.n)
	cl, d, s, err := b.loadedStore(ctx, "mem", 3, ks, nil)
	if err != nil {
		return nil, err
	}
	defer b.stopCluster(cl)
	defer d.close()
	if s.Errors+s.Overloaded > 0 {
		return nil, fmt.Errorf("memory load: %d writes failed: %s", s.Errors+s.Overloaded, s.FirstError)
	}
	res := &memResult{Keys: ks.n, Size: 100, LoadOpsPerSec: s.OpsPerSec}
	for _, n := range cl.nodes {
		m, err := readProcMem(n.pid())
		if err != nil {
			return nil, err
		}
		du, err := diskUsage(n.dataDir)
		if err != nil {
			return nil, err
		}
		var size int64
		if st, err := os.Stat(filepath.Join(n.dataDir, "kvmesh.db")); err == nil {
			size = st.Size()
		}
		res.Nodes = append(res.Nodes, memNode{Name: n.name, Mem: m, DiskUsage: du, FileSize: size})
	}
	b.logf("memory: %+v", res.Nodes)
	return res, nil
}

// profile runs puts (W=2, C=64, 100 B) against a fresh 3-node store whose
// nodes each write a CPU profile (n1 to the given path, nK to path.nK),
// as this process does for the clients (path.client); it stops the nodes
// so that they write them out. It also reports each process's CPU time
// per operation, which says where a put's cost lies across processes.
func (b *bench) profile(ctx context.Context) (*profileResult, error) {
	path, err := filepath.Abs(b.cfg.CPUProfile)
	if err != nil {
		return nil, err
	}
	ks := newKeyspace("p", b.cfg.Keys)
	nodePath := func(i int) string {
		if i == 0 {
			return path
		}
		return fmt.Sprintf("%s.n%d", path, i+1)
	}
	cl, d, _, err := b.loadedStore(ctx, "prof", b.cfg.ProfileNodes, ks, func(i int) []string {
		return []string{"--cpuprofile", nodePath(i)}
	})
	if err != nil {
		return nil, err
	}
	defer b.stopCluster(cl)
	defer d.close()
	d.w = "2"
	var drv driver = d
	op, raw := strings.CutPrefix(b.cfg.ProfileOp, "raw-")
	if raw {
		rd, err := connectRaw(cl.urls(), "2")
		if err != nil {
			return nil, err
		}
		defer rd.close()
		drv = rd
	}
	c := min(64, ks.n)
	spec := loadSpec{kind: kindPut, c: c, val: b.value(100), dur: b.cfg.ProfileDuration, seed: 11, timeout: b.cfg.OpTimeout}
	label := "put W=2"
	switch op {
	case "get1":
		spec.kind, spec.r, label = kindGet, 1, "get R=1"
	case "get2":
		spec.kind, spec.r, label = kindGet, 2, "get R=2"
	}
	if raw {
		label = "raw " + label
	}
	b.logf("profile: %s C=%d 100 B for %v, every node and the client profiled", label, c, b.cfg.ProfileDuration)
	cf, err := os.Create(path + ".client")
	if err != nil {
		return nil, err
	}
	defer cf.Close()
	before := make([]uint64, len(cl.nodes)+1)
	before[0] = procTicks(os.Getpid())
	for i, n := range cl.nodes {
		before[i+1] = procTicks(n.pid())
	}
	if err := pprof.StartCPUProfile(cf); err != nil {
		return nil, err
	}
	s, err := runLoad(ctx, drv, ks, spec)
	pprof.StopCPUProfile()
	if err != nil {
		return nil, err
	}
	res := &profileResult{Path: path, Allocs: path + ".allocs", Op: label, C: c, Size: 100, Sample: s,
		Command: fmt.Sprintf("go tool pprof -top %s %s", b.exe, path)}
	ops := float64(s.Ops)
	perOp := func(name string, t0, t1 uint64) {
		if ops > 0 && t1 >= t0 {
			res.CPU = append(res.CPU, procCPU{Name: name,
				MicrosPerOp: float64(t1-t0) * 1e6 / clockTicksPerSec / ops})
		}
	}
	perOp("client", before[0], procTicks(os.Getpid()))
	for i, n := range cl.nodes {
		perOp(n.name, before[i+1], procTicks(n.pid()))
	}
	for i, n := range cl.nodes {
		b.ps.stop(n, true, 15*time.Second)
		if _, err := os.Stat(nodePath(i)); err != nil {
			return nil, fmt.Errorf("profile of %s not written: %w", n.name, err)
		}
	}
	return res, nil
}

// measureFsync times n appends of 4 KiB to a file in dir, each followed
// by fsync (what a durable log write costs: new blocks, so metadata too),
// and returns the median in milliseconds.
func measureFsync(dir string, n int) (float64, error) {
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	lat := make([]float64, 0, n)
	for i := range n {
		buf[0] = byte(i)
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*int64(len(buf))); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		lat = append(lat, float64(time.Since(t0))/1e6)
	}
	return median(lat), nil
}
