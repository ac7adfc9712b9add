package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/internal/spawn"
)

func TestPercentileAndMedian(t *testing.T) {
	sorted := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0.5, 5}, {0.99, 10}, {0.999, 10}, {0.1, 1}, {0, 1}, {1, 10}} {
		if got := percentile(sorted, c.q); got != c.want {
			t.Errorf("percentile(%v) = %d, want %d", c.q, got, c.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing")
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median odd = %v", m)
	}
	in := []float64{4, 1, 3, 2}
	if m := median(in); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
	if !slices.Equal(in, []float64{4, 1, 3, 2}) {
		t.Error("median modified its input")
	}
	s := summarize([][]int64{{3e6, 1e6}, {2e6}}, time.Second)
	if s.Ops != 3 || s.OpsPerSec != 3 || s.P50 != 2 || s.P99 != 3 {
		t.Errorf("summarize = %+v", s)
	}
	m := medianSample([]sample{{Ops: 10, OpsPerSec: 100, P50: 1, Errors: 1}, {Ops: 30, OpsPerSec: 300, P50: 3}, {Ops: 20, OpsPerSec: 200, P50: 9}})
	if m.OpsPerSec != 200 || m.P50 != 3 || m.Ops != 60 || m.Errors != 1 {
		t.Errorf("medianSample = %+v", m)
	}
}

func TestOwnedRangesPartitionTheKeys(t *testing.T) {
	for _, n := range []int{1, 7, 64, 1000} {
		for _, c := range []int{1, 3, 16, 64} {
			if c > n {
				continue
			}
			next := 0
			for w := range c {
				lo, hi := ownedRange(n, c, w)
				if lo != next || hi <= lo {
					t.Fatalf("n=%d c=%d worker %d owns [%d,%d), want it to start at %d and be non-empty", n, c, w, lo, hi, next)
				}
				next = hi
			}
			if next != n {
				t.Fatalf("n=%d c=%d: ranges end at %d", n, c, next)
			}
		}
	}
}

func TestParseBenchFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--sizes", "10KiB,100,1k", "--conc", "64,1", "--systems", "fanout,kvmesh", "--quick", "--rounds", "5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Sizes, []int{100, 1024, 10240}) || !slices.Equal(cfg.Conc, []int{1, 64}) {
		t.Errorf("sizes %v conc %v", cfg.Sizes, cfg.Conc)
	}
	if !slices.Equal(cfg.Systems, []string{sysKvmesh, sysFanout}) {
		t.Errorf("systems %v", cfg.Systems)
	}
	if cfg.Rounds != 5 || cfg.Duration != 250*time.Millisecond || cfg.Keys != 1000 {
		t.Errorf("--quick must change only the flags not given: %+v", cfg)
	}
	for _, op := range []string{"put", "get1", "get2", "raw-put", "raw-get1", "raw-get2"} {
		if cfg, err := parseFlags([]string{"--profile-op", op}, io.Discard); err != nil || cfg.ProfileOp != op {
			t.Errorf("--profile-op %s: %v", op, err)
		}
	}
	for _, args := range [][]string{
		{"--systems", "etcd"},
		{"--profile-op", "raw-scan"},
		{"--ops", "scan"},
		{"--conc", "0"},
		{"--sizes", "1GiB"},
		{"--keys", "10", "--conc", "64"},
		{"--rounds", "0"},
		{"--b-exe", "/nonexistent/kvmesh"},
		{"--profile-op", "scan"},
		{"--b-exe", os.Args[0], "--systems", "fanout"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestBenchABSystem(t *testing.T) {
	cfg, err := parseFlags([]string{"--b-exe", os.Args[0], "--systems", "kvmesh,js-sync", "--ops", "put", "--conc", "16", "--sizes", "100"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Systems, []string{sysKvmesh, sysKvmeshB, sysJSSync}) {
		t.Fatalf("systems %v: kvmesh-b must follow kvmesh", cfg.Systems)
	}
	if a, b := planCells(cfg, sysKvmesh), planCells(cfg, sysKvmeshB); len(a) != 1 || len(b) != 1 || a[0].Op != b[0].Op {
		t.Fatalf("kvmesh-b must run the kvmesh cells: %v vs %v", b, a)
	}
	rounds := func(ops ...float64) []sample {
		var s []sample
		for _, v := range ops {
			s = append(s, sample{Ops: 1, OpsPerSec: v})
		}
		return s
	}
	rows := []row{
		{System: sysKvmesh, Op: "put W=2", C: 16, Size: 100, Median: sample{Ops: 1, OpsPerSec: 10000}, Rounds: rounds(10000, 8000, 12000)},
		{System: sysKvmeshB, Op: "put W=2", C: 16, Size: 100, Median: sample{Ops: 1, OpsPerSec: 12000}, Rounds: rounds(12000, 10000, 9000)},
	}
	var found bool
	for _, r := range computeRatios(rows, cfg, 0) {
		if r.Name == "kvmesh-b / kvmesh put W=2" {
			found = true
			if r.Value != 1.2 || r.C != 16 {
				t.Errorf("A/B ratio %+v, want 1.2x at C=16", r)
			}
			// Rounds: 12000/10000, 10000/8000, 9000/12000.
			if r.Note != "per round 0.75x-1.25x" {
				t.Errorf("A/B spread %q, want per round 0.75x-1.25x", r.Note)
			}
		}
	}
	if !found {
		t.Error("no kvmesh-b / kvmesh ratio")
	}
}

func TestPlanAndRatios(t *testing.T) {
	cfg := config{Systems: allSystems, Ops: allOps, Conc: []int{1, 16, 64}, Sizes: []int{100}, ScaleNodes: 5}
	cells := planCells(cfg, sysKvmesh)
	if len(cells) != 5*3 { // put, get R=2, get R=1, mix90, mix50
		t.Fatalf("kvmesh cells: %d", len(cells))
	}
	if n := len(planCells(cfg, sysFanout)); n != 3+1 {
		t.Fatalf("fanout cells: %d", n)
	}
	mk := func(system, op string, c int, tput, p50 float64) row {
		return row{System: system, Op: op, C: c, Size: 100, Median: sample{Ops: 1, OpsPerSec: tput, P50: p50}}
	}
	rows := []row{
		mk(sysKvmesh, "put W=2", 64, 20000, 1), mk(sysJSSync, kindPut, 64, 8000, 1), mk(sysJSLazy, kindPut, 64, 25000, 1),
		mk(sysFanout, "fan-out 2 of 3", 64, 25000, 1),
		mk(sysKvmesh, "put W=2", 1, 1000, 0.9), mk(sysFanout, "fan-out 2 of 3", 1, 8000, 0.5),
		mk(sysKvmeshR, "put W=2", 64, 6000, 2), mk(sysKvmeshR, "get R=2", 64, 30000, 1), mk(sysJSLazy, kindGet, 64, 20000, 1),
	}
	rs := computeRatios(rows, cfg, 0.1)
	byName := map[string]ratio{}
	for _, r := range rs {
		byName[fmt.Sprintf("%s@%d", r.Name, r.C)] = r
	}
	check := func(name string, v float64, met bool) {
		t.Helper()
		r, ok := byName[name]
		if !ok {
			t.Fatalf("no ratio %q in %v", name, rs)
		}
		if d := r.Value - v; d > 1e-9 || d < -1e-9 || r.Met == nil || *r.Met != met {
			t.Errorf("%s = %v met %v, want %v met %v", name, r.Value, r.Met != nil && *r.Met, v, met)
		}
	}
	check("kvmesh put W=2 / JetStream SyncAlways put@64", 2.5, true)
	check("kvmesh put W=2 / JetStream default put@64", 0.8, false)
	check("kvmesh put W=2 / core NATS 2-of-3 fan-out@64", 80, true)
	check("kvmesh put p50 / (fan-out p50 + 1 fsync)@1", 1.5, true)
	check("kvmesh-raw put W=2 / JetStream SyncAlways put@64", 0.75, false)
	check("kvmesh-raw get R=2 / JetStream get@64", 1.5, true)
	if r := byName["kvmesh-raw put W=2 / JetStream default put@64"]; r.Value != 0.24 || r.Met != nil {
		t.Errorf("raw put / lazy: %+v, want 0.24x without a goal", r)
	}
	if len(planCells(cfg, sysKvmeshR)) != len(cells) {
		t.Error("kvmesh-raw must run the kvmesh cells")
	}
	def, err := parseFlags(nil, io.Discard)
	if err != nil || !slices.Contains(def.Systems, sysKvmeshR) {
		t.Errorf("default systems %v (%v) lack %s", def.Systems, err, sysKvmeshR)
	}
	if _, ok := byName["kvmesh put W=2 / JetStream SyncAlways put@16"]; ok {
		t.Error("a ratio without measurements")
	}
}

func TestParseProcStatus(t *testing.T) {
	m := parseProcStatus("Name:\tkvmesh\nVmRSS:\t   51200 kB\nRssAnon:\t   20480 kB\nRssFile:\t 30720 kB\n")
	if m.RSS != 50<<20 || m.RSSAnon != 20<<20 {
		t.Errorf("%+v", m)
	}
	if s := shellJoin([]string{"kvmesh", "bench", "--systems", "a,b", "it's"}); s != `kvmesh bench --systems a,b 'it'\''s'` {
		t.Errorf("shellJoin: %s", s)
	}
}

// buildKvmesh builds the kvmesh binary into a temp dir: the bench runs
// only inside it, as it re-executes itself for its child processes.
func buildKvmesh(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build the binary")
	}
	exe := filepath.Join(t.TempDir(), "kvmesh")
	out, err := exec.Command(gobin, "build", "-o", exe, "github.com/kvmesh/kvmesh/cmd/kvmesh").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// leftovers lists the processes whose command line mentions dir.
func leftovers(dir string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir)) {
			out = append(out, e.Name()+": "+string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return out
}

// checkCleanedUp polls until no child of a run under dir is left and the
// run's temp dir is gone.
func checkCleanedUp(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		procs := leftovers(dir)
		ents, _ := os.ReadDir(dir)
		if len(procs) == 0 && len(ents) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: processes %q, files %v", procs, ents)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBenchQuickEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 9 server processes")
	}
	exe := buildKvmesh(t)
	dir := t.TempDir()
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	plotPath := filepath.Join(t.TempDir(), "bench.svg")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	shmBefore := shmBenchDirs(t)
	cmd := exec.CommandContext(ctx, exe, "bench", "--quick",
		"--systems", "kvmesh,kvmesh-raw,kvmesh-tmpfs,js-lazy,fanout,overload", "--ops", "put,get", "--conc", "1,4", "--sizes", "100",
		"--keys", "200", "--duration", "200ms", "--warmup", "20ms", "--rounds", "1",
		"--overload-conc", "64", "--overload-duration", "300ms", "--dir", dir, "--json", jsonPath, "--plot", plotPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"| kvmesh | put W=2 | 1 | 100 B |",
		"| kvmesh | put W=2 | 4 | 100 B |",
		"| kvmesh | get R=2 | 4 | 100 B |",
		"| kvmesh | get R=1 | 1 | 100 B |",
		"| kvmesh-tmpfs | put W=2 | 4 | 100 B |",
		"| kvmesh-raw | put W=2 | 4 | 100 B |",
		"| kvmesh-raw | get R=2 | 1 | 100 B |",
		"| kvmesh-raw | get R=1 | 4 | 100 B |",
		"| ratio | kvmesh-raw put W=2 / JetStream default put | 4 | 100 B |",
		"| ratio | kvmesh-raw get R=2 / JetStream get | 4 | 100 B |",
		"| ratio | kvmesh put W=2 on tmpfs / JetStream default put | 4 | 100 B |",
		"| js-lazy | put | 4 | 100 B |",
		"| js-lazy | get | 1 | 100 B |",
		"| fanout | fan-out 2 of 3 | 4 | 100 B |",
		"| fanout | req/reply via route | 1 | 100 B |",
		"| kvmesh | overload: put W=2, 300ms | 64 | 100 B |",
		"| ratio | kvmesh put W=2 / JetStream default put | 4 | 100 B |",
		"| ratio | kvmesh get R=1 / JetStream get | 4 | 100 B |",
		"| ratio | kvmesh put W=2 / core NATS 2-of-3 fan-out | 4 | 100 B |",
		"| ratio | kvmesh put p50 / (fan-out p50 + 1 fsync) | 1 | 100 B |",
		"| ratio | kvmesh get R=2 p50 / request-reply via route p50 | 1 | 100 B |",
		"- machine: nproc ", "nats-server 2.15.2", "- command: `kvmesh bench --quick ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	var rep report
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2*3*2+2+2*2+2+1 { // kvmesh and kvmesh-raw put, get R=2, R=1; kvmesh-tmpfs put; js put, get; fan-out; req/reply
		t.Errorf("%d rows in the JSON", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		if r.Median.Ops == 0 || r.Median.Errors != 0 || r.Median.Siblings != 0 {
			t.Errorf("row %s %s C=%d: %+v", r.System, r.Op, r.C, r.Median)
		}
	}
	svg, err := os.ReadFile(plotPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg, new(struct{})); err != nil {
		t.Errorf("--plot wrote no SVG: %v", err)
	}
	for _, s := range []string{sysKvmesh, sysKvmeshR, sysKvmeshM, sysJSLazy} {
		if !bytes.Contains(svg, []byte(`data-system="`+s+`"`)) {
			t.Errorf("the picture has no series of %s", s)
		}
	}
	checkCleanedUp(t, dir)
	if after := shmBenchDirs(t); len(after) > len(shmBefore) {
		t.Errorf("kvmesh-tmpfs data left in %s: %v (before: %v)", tmpfsDir, after, shmBefore)
	}
}

// shmBenchDirs lists the bench data dirs in tmpfsDir.
func shmBenchDirs(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(tmpfsDir, "kvmesh-bench-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// logHas reports whether the file at path holds s.
func logHas(path, s string) bool {
	b, _ := os.ReadFile(path)
	return strings.Contains(string(b), s)
}

func TestBenchInterruptKillsChildren(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	exe := buildKvmesh(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "bench", "--systems", "kvmesh,js-sync", "--ops", "put", "--conc", "1",
		"--sizes", "100", "--keys", "100", "--duration", "1m", "--dir", dir)
	errf, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(45 * time.Second)
	for !logHas(errf.Name(), "fsync of a 4 KiB append") { // the rounds start next
		if time.Now().After(deadline) {
			t.Fatalf("bench never got to measuring:\n%s", spawn.LastLines(errf.Name(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("interrupted bench: %v, want exit 1", err)
	}
	if !logHas(errf.Name(), "interrupted") {
		t.Errorf("no interrupted message:\n%s", spawn.LastLines(errf.Name(), 5))
	}
	checkCleanedUp(t, dir)
}
