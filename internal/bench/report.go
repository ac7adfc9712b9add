package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/node"
)

// report is everything one run measured; --json writes it.
type report struct {
	Header   header          `json:"header"`
	Config   config          `json:"config"`
	Rows     []row           `json:"rows"`
	Ratios   []ratio         `json:"ratios"`
	Memory   *memResult      `json:"memory,omitempty"`
	Overload *overloadResult `json:"overload,omitempty"`
	Profile  *profileResult  `json:"profile,omitempty"`
	Elapsed  string          `json:"elapsed"`
}

// row is one (system, operation, C, size) cell over all rounds.
type row struct {
	System string   `json:"system"`
	Op     string   `json:"op"`
	Kind   string   `json:"kind"`
	R      int      `json:"r,omitempty"`
	C      int      `json:"c"`
	Size   int      `json:"size"`
	Rounds []sample `json:"rounds"`
	Median sample   `json:"median"`
}

// ratio compares two measurements of the same run against a goal.
type ratio struct {
	Name  string  `json:"name"`
	C     int     `json:"c"`
	Size  int     `json:"size"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"` // "x" or "%"
	Goal  string  `json:"goal,omitempty"`
	Met   *bool   `json:"met,omitempty"`
	Note  string  `json:"note,omitempty"`
}

type memNode struct {
	Name      string  `json:"name"`
	Mem       procMem `json:"mem"`
	DiskUsage int64   `json:"disk_usage_bytes"` // du of the data dir
	FileSize  int64   `json:"db_file_bytes"`    // apparent size of kvmesh.db
}

type memResult struct {
	Keys          int       `json:"keys"`
	Size          int       `json:"size"`
	LoadOpsPerSec float64   `json:"load_ops_per_sec"`
	Nodes         []memNode `json:"nodes"`
}

type overloadResult struct {
	C      int       `json:"c"`
	Size   int       `json:"size"`
	Sample sample    `json:"sample"`
	Before []procMem `json:"before"`
	Peak   []procMem `json:"peak"`
	After  []procMem `json:"after"`
}

type profileResult struct {
	Path    string    `json:"path"`
	Allocs  string    `json:"allocs"`
	Op      string    `json:"op"`
	C       int       `json:"c"`
	Size    int       `json:"size"`
	Sample  sample    `json:"sample"`
	Command string    `json:"command"`
	CPU     []procCPU `json:"cpu"`
}

// procCPU is one process's CPU time per operation of the profiled run.
type procCPU struct {
	Name        string  `json:"name"`
	MicrosPerOp float64 `json:"us_per_op"`
}

// header records where and how the numbers were taken.
type header struct {
	Date       string   `json:"date"`
	NumCPU     int      `json:"nproc"`
	CPUModel   string   `json:"cpu_model"`
	GOMAXPROCS int      `json:"gomaxprocs"`
	GoVersion  string   `json:"go_version"`
	Kernel     string   `json:"kernel"`
	MemTotal   string   `json:"mem_total"`
	DataFS     string   `json:"data_fs"`
	Kvmesh     string   `json:"kvmesh_version"`
	Commit     string   `json:"commit"`
	NATSServer string   `json:"nats_server_version"`
	NATSGo     string   `json:"nats_go_version"`
	Command    string   `json:"command"`
	FsyncP50   float64  `json:"fsync_p50_ms"`
	Load       loadInfo `json:"load"`
}

// collectHeader records the machine, the versions and the command line
// (args: the flags after `kvmesh bench`) of a run with its data under base.
func collectHeader(cfg config, exe, base string, args []string) header {
	h := header{
		Date:       time.Now().Format(time.RFC3339),
		NumCPU:     runtime.NumCPU(),
		CPUModel:   procField("/proc/cpuinfo", "model name"),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		MemTotal:   memTotal(),
		DataFS:     fsType(base) + " (" + cfg.dir + ")",
		Kvmesh:     node.Version,
		Commit:     gitCommit(exe),
		NATSServer: server.VERSION,
		NATSGo:     nats.Version,
		Command:    shellJoin(append([]string{"kvmesh", "bench"}, args...)),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return h
}

// procField returns the value of the first "name: value" line of a /proc
// file.
func procField(path, name string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "unknown"
}

// memTotal is the machine's memory from /proc/meminfo, in GiB.
func memTotal() string {
	var kb int64
	if _, err := fmt.Sscanf(procField("/proc/meminfo", "MemTotal"), "%d kB", &kb); err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}

func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch st.Type {
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x01021994:
		return "tmpfs (fsync is free: not comparable)"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("fs 0x%x", st.Type)
}

// gitCommit is the short commit of the working tree, or of the build.
// It asks git in the current directory, then next to the binary (which
// `make bench` builds into the tree's bin/).
func gitCommit(exe string) string {
	commit := ""
	for _, dir := range []string{".", filepath.Dir(exe)} {
		if out, err := exec.Command("git", "-C", dir, "rev-parse", "--short", "HEAD").Output(); err == nil {
			commit = strings.TrimSpace(string(out))
			break
		}
	}
	dirty := false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if commit == "" && len(s.Value) >= 7 {
					commit = s.Value[:7]
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if commit == "" {
		return "unknown"
	}
	if dirty {
		commit += " (binary built from a modified tree)"
	}
	return commit
}

func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

var (
	systemOrder = []string{sysKvmesh, sysKvmeshR, sysKvmeshB, sysKvmeshM, sysKvmesh5, sysJSSync, sysJSLazy, sysFanout}
	kindOrder   = []string{kindPut, kindGet, kindMix90, kindMix50, kindFanout, kindRR}
)

// sortRows orders rows for reading: by value size, then operation, then
// system (so the systems doing the same thing are adjacent), then C.
func sortRows(rows []row) {
	slices.SortStableFunc(rows, func(a, b row) int {
		if a.Size != b.Size {
			return a.Size - b.Size
		}
		if ka, kb := slices.Index(kindOrder, a.Kind), slices.Index(kindOrder, b.Kind); ka != kb {
			return ka - kb
		}
		if sa, sb := slices.Index(systemOrder, a.System), slices.Index(systemOrder, b.System); sa != sb {
			return sa - sb
		}
		if a.R != b.R {
			return b.R - a.R
		}
		return a.C - b.C
	})
}

// find returns the median of the row, if measured.
func find(rows []row, system, op string, c, size int) (sample, bool) {
	for _, r := range rows {
		if r.System == system && r.Op == op && r.C == c && r.Size == size {
			return r.Median, r.Median.Ops > 0
		}
	}
	return sample{}, false
}

// computeRatios derives the goals from the rows of one run.
// Throughput ratios are given at C=16 and C=64 (where the goals apply),
// or at every C when neither was run.
func computeRatios(rows []row, cfg config, fsyncP50 float64) []ratio {
	var out []ratio
	goalC := []int{}
	for _, c := range cfg.Conc {
		if c == 16 || c == 64 {
			goalC = append(goalC, c)
		}
	}
	if len(goalC) == 0 {
		goalC = cfg.Conc
	}
	jsGet := sysJSLazy
	if !slices.Contains(cfg.Systems, sysJSLazy) {
		jsGet = sysJSSync
	}
	atLeast := func(name string, c, size int, num, den sample, goal float64) {
		if den.OpsPerSec == 0 || num.Ops == 0 {
			return
		}
		v := num.OpsPerSec / den.OpsPerSec
		met := v >= goal
		out = append(out, ratio{Name: name, C: c, Size: size, Value: v, Unit: "x", Goal: fmt.Sprintf(">= %gx", goal), Met: &met})
	}
	plain := func(name string, c, size int, num, den sample) {
		if den.OpsPerSec == 0 || num.Ops == 0 {
			return
		}
		out = append(out, ratio{Name: name, C: c, Size: size, Value: num.OpsPerSec / den.OpsPerSec, Unit: "x"})
	}
	// A/B: every kvmesh-b cell against the same kvmesh cell, with the
	// spread of the rounds' own ratios.
	for _, r := range rows {
		if r.System != sysKvmeshB {
			continue
		}
		if a, ok := find(rows, sysKvmesh, r.Op, r.C, r.Size); ok && r.Median.Ops > 0 {
			out = append(out, ratio{Name: "kvmesh-b / kvmesh " + r.Op, C: r.C, Size: r.Size,
				Value: r.Median.OpsPerSec / a.OpsPerSec, Unit: "x", Note: roundSpread(r, rows)})
		}
	}
	for _, size := range cfg.Sizes {
		for _, c := range goalC {
			put, _ := find(rows, sysKvmesh, "put W=2", c, size)
			if s, ok := find(rows, sysJSSync, kindPut, c, size); ok {
				atLeast("kvmesh put W=2 / JetStream SyncAlways put", c, size, put, s, 2)
			}
			if s, ok := find(rows, sysJSLazy, kindPut, c, size); ok {
				atLeast("kvmesh put W=2 / JetStream default put", c, size, put, s, 1)
			}
			if g, ok := find(rows, jsGet, kindGet, c, size); ok {
				r2, _ := find(rows, sysKvmesh, "get R=2", c, size)
				r1, _ := find(rows, sysKvmesh, "get R=1", c, size)
				atLeast("kvmesh get R=2 / JetStream get", c, size, r2, g, 1)
				atLeast("kvmesh get R=1 / JetStream get", c, size, r1, g, 1.5)
			}
			// Raw clients (plain NATS requests): the goals are
			// puts and R=2 gets at least as fast as JetStream's.
			if raw, ok := find(rows, sysKvmeshR, "put W=2", c, size); ok {
				if s, ok := find(rows, sysJSSync, kindPut, c, size); ok {
					atLeast("kvmesh-raw put W=2 / JetStream SyncAlways put", c, size, raw, s, 1)
				}
				if s, ok := find(rows, sysJSLazy, kindPut, c, size); ok {
					plain("kvmesh-raw put W=2 / JetStream default put", c, size, raw, s)
				}
			}
			if g, ok := find(rows, jsGet, kindGet, c, size); ok {
				if r2, ok := find(rows, sysKvmeshR, "get R=2", c, size); ok {
					atLeast("kvmesh-raw get R=2 / JetStream get", c, size, r2, g, 1)
				}
				if r1, ok := find(rows, sysKvmeshR, "get R=1", c, size); ok {
					plain("kvmesh-raw get R=1 / JetStream get", c, size, r1, g)
				}
			}
			if m, ok := find(rows, sysKvmeshM, "put W=2", c, size); ok && m.OpsPerSec > 0 {
				if s, ok := find(rows, sysJSLazy, kindPut, c, size); ok && s.OpsPerSec > 0 && put.Ops > 0 {
					out = append(out, ratio{Name: "kvmesh put W=2 on tmpfs / JetStream default put", C: c, Size: size,
						Value: m.OpsPerSec / s.OpsPerSec, Unit: "x",
						Note: fmt.Sprintf("no disk cost; on disk kvmesh keeps %.0f%% of it", 100*put.OpsPerSec/m.OpsPerSec)})
				}
			}
			if p5, ok := find(rows, sysKvmesh5, "put W=2", c, size); ok {
				atLeast(fmt.Sprintf("kvmesh %d nodes / 3 nodes put", cfg.ScaleNodes), c, size, p5, put, 1)
			}
		}
		// Put at the highest C against the raw fan-out ceiling.
		cmax := slices.Max(cfg.Conc)
		if slices.Contains(cfg.Conc, 64) {
			cmax = 64
		}
		put, okp := find(rows, sysKvmesh, "put W=2", cmax, size)
		fan, okf := find(rows, sysFanout, "fan-out 2 of 3", cmax, size)
		if okp && okf && fan.OpsPerSec > 0 {
			v := 100 * put.OpsPerSec / fan.OpsPerSec
			met := v >= 75
			out = append(out, ratio{Name: "kvmesh put W=2 / core NATS 2-of-3 fan-out", C: cmax, Size: size, Value: v, Unit: "%", Goal: ">= 75%", Met: &met})
		}
		// Latency at C=1 against the raw floors.
		if slices.Contains(cfg.Conc, 1) {
			put, okp := find(rows, sysKvmesh, "put W=2", 1, size)
			fan, okf := find(rows, sysFanout, "fan-out 2 of 3", 1, size)
			if okp && okf {
				floor := fan.P50 + fsyncP50
				v := put.P50 / floor
				met := v <= 1.5
				out = append(out, ratio{Name: "kvmesh put p50 / (fan-out p50 + 1 fsync)", C: 1, Size: size, Value: v, Unit: "x", Goal: "<= 1.5x", Met: &met,
					Note: fmt.Sprintf("%.3f / (%.3f + %.3f) ms", put.P50, fan.P50, fsyncP50)})
			}
			rr, okr := find(rows, sysFanout, "req/reply via route", 1, size)
			for _, op := range []string{"get R=2", "get R=1"} {
				g, okg := find(rows, sysKvmesh, op, 1, size)
				if okg && okr && rr.P50 > 0 {
					v := g.P50 / rr.P50
					r := ratio{Name: "kvmesh " + op + " p50 / request-reply via route p50", C: 1, Size: size, Value: v, Unit: "x",
						Note: fmt.Sprintf("%.3f / %.3f ms", g.P50, rr.P50)}
					if op == "get R=2" { // the default read is what the goal is about
						met := v <= 1.5
						r.Goal, r.Met = "<= 1.5x", &met
					}
					out = append(out, r)
				}
			}
		}
	}
	return out
}

func fmtMs(v float64) string {
	switch {
	case v == 0:
		return ""
	case v < 10:
		return fmt.Sprintf("%.3f", v)
	case v < 100:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func fmtRate(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.1fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func errNote(s sample) string {
	var parts []string
	if s.Errors > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", s.Errors))
	}
	if s.Overloaded > 0 {
		parts = append(parts, fmt.Sprintf("%d overloaded", s.Overloaded))
	}
	if s.Siblings > 0 {
		parts = append(parts, fmt.Sprintf("%d gets saw siblings", s.Siblings))
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

func verdict(r ratio) string {
	switch {
	case r.Met == nil:
		return r.Note
	case *r.Met:
		return strings.TrimSpace("goal " + r.Goal + ": met. " + r.Note)
	}
	return strings.TrimSpace("goal " + r.Goal + ": **NOT met**. " + r.Note)
}

// writeTable prints the header and the one markdown table.
func writeTable(w io.Writer, rep *report) {
	h, cfg := rep.Header, rep.Config
	fmt.Fprintf(w, "## kvmesh bench\n\n")
	fmt.Fprintf(w, "- date: %s (run took %s)\n", h.Date, rep.Elapsed)
	fmt.Fprintf(w, "- machine: nproc %d, %s, GOMAXPROCS %d, %s, RAM %s, data on %s\n", h.NumCPU, h.CPUModel, h.GOMAXPROCS, h.Kernel, h.MemTotal, h.DataFS)
	fmt.Fprintf(w, "- versions: kvmesh %s, commit %s; nats-server %s, nats.go %s; %s\n", h.Kvmesh, h.Commit, h.NATSServer, h.NATSGo, h.GoVersion)
	fmt.Fprintf(w, "- command: `%s`\n", h.Command)
	fmt.Fprintf(w, "- load: loadavg %s at start; during the measured rounds %.2f of %d CPUs were busy on average, %.2f of them outside this benchmark's processes", h.Load.LoadAvgStart, h.Load.CPUBusy, h.NumCPU, h.Load.CPUOthers)
	if h.Load.CPUOthers > 0.2 {
		fmt.Fprintf(w, " (**other work competed for the CPUs: absolute numbers are low, compare ratios**)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- method: every system runs as separate processes on this machine; closed loop of C workers; %d rounds of %v (after %v warmup) per cell, systems alternating each round; medians over the rounds; %d keys per value size loaded first (W=all); kvmesh puts pass each key's last context (no siblings); one fsync of a 4 KiB append here takes %.3f ms (p50)\n",
		cfg.Rounds, cfg.Duration, cfg.Warmup, cfg.Keys, h.FsyncP50)
	fmt.Fprintf(w, "- systems: kvmesh = 3 `kvmesh node` processes (N=3), driven through the Go client; kvmesh-raw = another 3 such processes driven with plain nats.go requests on `kvmesh.kv.put.<key>` / `kvmesh.kv.get.<key>` (%d connections spread over the nodes, no client library); kvmesh-tmpfs = the same with data in %s (fsync free: no durability, a reference for what the disk costs); kvmesh5 = %d nodes; js-sync / js-lazy = 3 nats-server %s processes with JetStream, KV bucket with 3 replicas, `SyncAlways` / default lazy fsync; fanout = 3 plain nats-server processes, responders that only reply, in the bench process\n\n", rawMaxConns, tmpfsDir, cfg.ScaleNodes, h.NATSServer)

	fmt.Fprintln(w, "| system | op | C | size | ops/s | p50 ms | p99 ms | p99.9 ms | errors | ratio / note |")
	fmt.Fprintln(w, "|---|---|---:|---|---:|---:|---:|---:|---|---|")
	for _, r := range rep.Rows {
		m := r.Median
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | |\n",
			r.System, r.Op, r.C, sizeLabel(r.Size), fmtRate(m.OpsPerSec), fmtMs(m.P50), fmtMs(m.P99), fmtMs(m.P999), errNote(m))
	}
	if o := rep.Overload; o != nil {
		m := o.Sample
		var mem []string
		for i := range o.Before {
			mem = append(mem, fmt.Sprintf("n%d %s → peak %s → %s", i+1, mib(o.Before[i].RSS), mib(o.Peak[i].RSS), mib(o.After[i].RSS)))
		}
		fmt.Fprintf(w, "| kvmesh | overload: put W=2, %v | %d | %s | %s | %s | %s | %s | %d overloaded, %d other | RSS %s |\n",
			rep.Config.OverloadDuration, o.C, sizeLabel(o.Size), fmtRate(m.OpsPerSec), fmtMs(m.P50), fmtMs(m.P99), fmtMs(m.P999),
			m.Overloaded, m.Errors, strings.Join(mem, "; "))
	}
	if mr := rep.Memory; mr != nil {
		for _, n := range mr.Nodes {
			v := float64(n.Mem.RSS) / float64(max(n.DiskUsage, 1))
			met := "met"
			if v >= 2 {
				met = "**NOT met**"
			}
			fmt.Fprintf(w, "| kvmesh | memory after loading %d keys (load: %s puts/s, W=all) | | %s | | | | | | %s: RSS %s (anon %s) / bbolt %s (file %s) = **%.2fx**; goal < 2x: %s |\n",
				mr.Keys, fmtRate(mr.LoadOpsPerSec), sizeLabel(mr.Size), n.Name, mib(n.Mem.RSS), mib(n.Mem.RSSAnon), mib(n.DiskUsage), mib(n.FileSize), v, met)
		}
	}
	for _, r := range rep.Ratios {
		val := fmt.Sprintf("**%.2fx**", r.Value)
		if r.Unit == "%" {
			val = fmt.Sprintf("**%.0f%%**", r.Value)
		}
		fmt.Fprintf(w, "| ratio | %s | %d | %s | %s | | | | | %s |\n", r.Name, r.C, sizeLabel(r.Size), val, verdict(r))
	}
	if p := rep.Profile; p != nil {
		fmt.Fprintf(w, "\nCPU profiles under %s, C=%d, %s (%s ops/s): node n1 %s (allocations: %s), nodes nK %s.nK, the clients %s.client; read them with `%s`\n",
			p.Op, p.C, sizeLabel(p.Size), fmtRate(p.Sample.OpsPerSec), p.Path, p.Allocs, p.Path, p.Path, p.Command)
		var parts []string
		total := 0.0
		for _, c := range p.CPU {
			parts = append(parts, fmt.Sprintf("%s %.1f", c.Name, c.MicrosPerOp))
			total += c.MicrosPerOp
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "\nCPU time per operation (us): %s; total %.1f\n", strings.Join(parts, ", "), total)
		}
	}
	fmt.Fprintln(w)
}

func writeJSON(path string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// roundSpread describes how the per-round ratios of an A/B row b (a
// kvmesh-b cell) to the same kvmesh cell spread: "per round 0.91x-1.12x".
// Within a round the two ran back to back, so this spread is the noise a
// difference between the builds must stand out of. Empty with fewer than
// two rounds.
func roundSpread(b row, rows []row) string {
	var lo, hi float64
	n := 0
	for _, a := range rows {
		if a.System != sysKvmesh || a.Op != b.Op || a.C != b.C || a.Size != b.Size {
			continue
		}
		for i := range min(len(a.Rounds), len(b.Rounds)) {
			if a.Rounds[i].OpsPerSec <= 0 || b.Rounds[i].Ops == 0 {
				continue
			}
			v := b.Rounds[i].OpsPerSec / a.Rounds[i].OpsPerSec
			if n == 0 || v < lo {
				lo = v
			}
			if n == 0 || v > hi {
				hi = v
			}
			n++
		}
	}
	if n < 2 {
		return ""
	}
	return fmt.Sprintf("per round %.2fx-%.2fx", lo, hi)
}
