// Package bench is `kvmesh bench`: it starts kvmesh stores and a NATS
// JetStream KV reference as child processes, drives the same closed-loop
// load against each, and prints one markdown table of medians and ratios.
//
// It runs only inside the kvmesh binary: it starts every child by
// re-executing that binary (os.Executable) with its `node` verb, and
// with the hidden `jsref` verb, which JSRef implements, for the reference
// servers. cmd/kvmesh is its only importer.
package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kvmesh/kvmesh/internal/cli"
)

// config is what one `kvmesh bench` run measures.
type config struct {
	Duration         time.Duration `json:"duration_ns"` // measured window of one cell in one round
	Warmup           time.Duration `json:"warmup_ns"`   // run before each window, not measured
	Rounds           int           `json:"rounds"`
	Systems          []string      `json:"systems"`
	Ops              []string      `json:"ops"`
	Conc             []int         `json:"concurrency"`
	Sizes            []int         `json:"sizes"`
	Keys             int           `json:"keys"`
	MemKeys          int           `json:"mem_keys"`
	OverloadConc     int           `json:"overload_concurrency"`
	OverloadDuration time.Duration `json:"overload_duration_ns"`
	ScaleNodes       int           `json:"scale_nodes"`
	OpTimeout        time.Duration `json:"op_timeout_ns"`
	CPUProfile       string        `json:"cpu_profile,omitempty"`
	BExe             string        `json:"b_exe,omitempty"`
	ProfileDuration  time.Duration `json:"profile_duration_ns"`
	ProfileOp        string        `json:"profile_op,omitempty"`
	ProfileNodes     int           `json:"profile_nodes,omitempty"`
	Quick            bool          `json:"quick"`

	jsonPath string
	plotPath string
	keep     bool
	dir      string
}

// The systems, in table order. mem and overload are kvmesh phases.
const (
	sysKvmesh   = "kvmesh"
	sysKvmeshR  = "kvmesh-raw" // kvmesh through plain NATS requests, no client library
	sysKvmesh5  = "kvmesh5"
	sysKvmeshB  = "kvmesh-b"     // kvmesh from --b-exe, for A/B comparisons
	sysKvmeshM  = "kvmesh-tmpfs" // kvmesh with its data in memory: puts without the disk's cost
	sysJSSync   = "js-sync"
	sysJSLazy   = "js-lazy"
	sysFanout   = "fanout"
	sysMem      = "mem"
	sysOverload = "overload"
)

var (
	allSystems = []string{sysKvmesh, sysKvmeshR, sysKvmeshM, sysKvmesh5, sysJSSync, sysJSLazy, sysFanout, sysMem, sysOverload}
	allOps     = []string{kindPut, kindGet, kindMix90, kindMix50}
)

const usage = `Usage: kvmesh bench [flags]

Starts kvmesh stores (3 nodes, and more for the scale rows) and a NATS
JetStream KV reference (3 servers, bucket with 3 replicas, with and
without fsync on every write) as child processes of this binary, drives
the same closed-loop load against each, alternating systems over several
rounds, and prints one markdown table of medians and ratios.

Systems: kvmesh (3 nodes, through the Go client), kvmesh-raw (another
3-node store, through plain nats.go requests on the documented subjects,
as the nats CLI or another language sends them: 16 connections over the
nodes, no client library), kvmesh-tmpfs (3 nodes with their data in
/dev/shm, puts: what the disk costs), kvmesh5 (--scale-nodes nodes,
puts), kvmesh-b (with --b-exe), js-sync
(JetStream KV R3, SyncAlways), js-lazy (JetStream KV R3, default lazy
fsync), fanout (core NATS: 1 request to 3 responders, first 2 replies;
and a request/reply across a route), mem (resident memory while holding
--mem-keys keys), overload (--overload-conc workers against kvmesh).

Flags:
`

// parseFlags parses the flags of `kvmesh bench`; --quick changes the
// defaults of the flags not given.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.DurationVar(&cfg.Duration, "duration", 700*time.Millisecond, "measured time of each cell in each round")
	fs.DurationVar(&cfg.Warmup, "warmup", 100*time.Millisecond, "unmeasured run before each measured window")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "rounds; systems alternate within each round, the table shows medians")
	systems := fs.String("systems", strings.Join(allSystems, ","), "systems and phases to run: "+strings.Join(allSystems, ","))
	ops := fs.String("ops", strings.Join(allOps, ","), "operations: put, get, mix90 (90% gets), mix50")
	conc := fs.String("conc", "1,16,64", "closed-loop concurrencies C")
	sizes := fs.String("sizes", "100,10KiB", "value sizes (bytes, or with k/KiB)")
	fs.IntVar(&cfg.Keys, "keys", 10000, "keys per value size, loaded before the runs")
	fs.IntVar(&cfg.MemKeys, "mem-keys", 100000, "keys of 100 B loaded for the memory row (the issue's goal: 1000000)")
	fs.IntVar(&cfg.OverloadConc, "overload-conc", 1024, "workers of the overload run")
	fs.DurationVar(&cfg.OverloadDuration, "overload-duration", 3*time.Second, "length of the overload run")
	fs.IntVar(&cfg.ScaleNodes, "scale-nodes", 5, "nodes of the kvmesh5 store (scale rows)")
	fs.DurationVar(&cfg.OpTimeout, "op-timeout", 10*time.Second, "timeout of one operation")
	fs.StringVar(&cfg.BExe, "b-exe", "", "also run system kvmesh-b: the kvmesh cells again, on 3 nodes run from `FILE` (another build of kvmesh), alternating with kvmesh in the same rounds; the table gets kvmesh-b / kvmesh ratios")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "also profile a fresh store (--profile-nodes) under --profile-op at C=64, 100 B: node n1 to `FILE` (allocations to FILE.allocs), node nK to FILE.nK, the clients to FILE.client, and report CPU time per operation of each process")
	fs.DurationVar(&cfg.ProfileDuration, "profile-duration", 10*time.Second, "length of the profiled run")
	fs.IntVar(&cfg.ProfileNodes, "profile-nodes", 3, "nodes of the profiled store (3..9)")
	fs.StringVar(&cfg.ProfileOp, "profile-op", "put", "operation of the profiled run: put (W=2), get1 (R=1) or get2 (R=2) through the Go client; raw-put, raw-get1 or raw-get2 the same through plain nats.go requests, as kvmesh-raw drives its store")
	fs.BoolVar(&cfg.Quick, "quick", false, "a smoke run of about a minute: shorter windows, fewer keys")
	fs.StringVar(&cfg.jsonPath, "json", "", "also write the raw results to `FILE` as JSON")
	fs.StringVar(&cfg.plotPath, "plot", "", "also draw the run as SVG into `FILE`: throughput against C, one line per system and operation, puts and gets apart, and their p50/p99 latencies")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temp dir (data dirs and child logs)")
	fs.StringVar(&cfg.dir, "dir", os.TempDir(), "where to create the temp dir; use a real disk, fsync on tmpfs is free")
	err := cli.ParseFlagsOnly(fs, args)
	if err != nil {
		return cfg, err
	}
	if cfg.Quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := map[string]string{
			"duration": "250ms", "warmup": "50ms", "rounds": "2", "keys": "1000",
			"mem-keys": "5000", "overload-conc": "512", "overload-duration": "1s",
			"profile-duration": "3s",
		}
		for name, v := range quick {
			if !set[name] {
				_ = fs.Set(name, v)
			}
		}
	}
	if cfg.Systems, err = parseChoice("systems", *systems, allSystems); err != nil {
		return cfg, err
	}
	if cfg.BExe != "" {
		if cfg.BExe, err = filepath.Abs(cfg.BExe); err != nil {
			return cfg, err
		}
		if st, err := os.Stat(cfg.BExe); err != nil || st.IsDir() {
			return cfg, cli.Usagef("--b-exe %s: not an executable file", cfg.BExe)
		}
		if !slices.Contains(cfg.Systems, sysKvmesh) {
			return cfg, cli.Usagef("--b-exe compares with system kvmesh: add it to --systems")
		}
		i := slices.Index(cfg.Systems, sysKvmesh)
		cfg.Systems = slices.Insert(cfg.Systems, i+1, sysKvmeshB)
	}
	if cfg.Ops, err = parseChoice("ops", *ops, allOps); err != nil {
		return cfg, err
	}
	if cfg.Conc, err = parseInts("conc", *conc); err != nil {
		return cfg, err
	}
	if cfg.Sizes, err = parseSizes(*sizes); err != nil {
		return cfg, err
	}
	if cfg.plotPath != "" && !slices.Contains(cfg.Ops, kindPut) && !slices.Contains(cfg.Ops, kindGet) {
		return cfg, cli.Usagef("--plot draws puts and gets: add put or get to --ops")
	}
	if !slices.Contains([]string{"put", "get1", "get2", "raw-put", "raw-get1", "raw-get2"}, cfg.ProfileOp) {
		return cfg, cli.Usagef("--profile-op: unknown %q (want put, get1, get2, raw-put, raw-get1 or raw-get2)", cfg.ProfileOp)
	}
	switch {
	case cfg.Duration <= 0 || cfg.Warmup < 0 || cfg.OpTimeout <= 0:
		return cfg, cli.Usagef("--duration and --op-timeout must be > 0, --warmup >= 0")
	case cfg.Rounds < 1:
		return cfg, cli.Usagef("--rounds must be >= 1")
	case cfg.Keys < slices.Max(cfg.Conc):
		return cfg, cli.Usagef("--keys %d: every worker owns its keys, want at least max(--conc) = %d", cfg.Keys, slices.Max(cfg.Conc))
	case cfg.MemKeys < 1 && slices.Contains(cfg.Systems, sysMem):
		return cfg, cli.Usagef("--mem-keys must be >= 1")
	case cfg.OverloadConc < 1 || cfg.OverloadDuration <= 0:
		return cfg, cli.Usagef("--overload-conc and --overload-duration must be > 0")
	case cfg.ScaleNodes < 3 || cfg.ScaleNodes > 9:
		return cfg, cli.Usagef("--scale-nodes must be 3..9")
	case cfg.ProfileNodes < 3 || cfg.ProfileNodes > 9:
		return cfg, cli.Usagef("--profile-nodes must be 3..9")
	}
	return cfg, nil
}

// parseChoice parses a comma-separated subset of allowed, kept in the
// order of allowed.
func parseChoice(name, s string, allowed []string) ([]string, error) {
	got := cli.SplitList(s)
	for _, g := range got {
		if !slices.Contains(allowed, g) {
			return nil, cli.Usagef("--%s: unknown %q (want some of %s)", name, g, strings.Join(allowed, ","))
		}
	}
	var out []string
	for _, a := range allowed {
		if slices.Contains(got, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, cli.Usagef("--%s: empty", name)
	}
	return out, nil
}

func parseInts(name, s string) ([]int, error) {
	var out []int
	for _, f := range cli.SplitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, cli.Usagef("--%s: %q is not a positive number", name, f)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, cli.Usagef("--%s: empty", name)
	}
	slices.Sort(out)
	return out, nil
}

// parseSizes parses value sizes: "100", "10k", "10KiB", "1MiB".
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range cli.SplitList(s) {
		num, mult := f, 1
		l := strings.ToLower(f)
		for _, suf := range []struct {
			s string
			m int
		}{{"kib", 1 << 10}, {"k", 1 << 10}, {"mib", 1 << 20}, {"m", 1 << 20}, {"b", 1}} {
			if strings.HasSuffix(l, suf.s) {
				num, mult = f[:len(f)-len(suf.s)], suf.m
				break
			}
		}
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if err != nil || n < 1 || n*mult > 512<<10 {
			return nil, cli.Usagef("--sizes: %q: want a size of 1 B to 512 KiB", f)
		}
		if !slices.Contains(out, n*mult) {
			out = append(out, n*mult)
		}
	}
	if len(out) == 0 {
		return nil, cli.Usagef("--sizes: empty")
	}
	slices.Sort(out)
	return out, nil
}

// Main runs `kvmesh bench` with args, the flags after the verb: the table
// goes to stdout, progress to stderr. It blocks until the run ends;
// SIGINT or SIGTERM stop it early, and every child process is killed on
// every path. A bad flag is a cli.UsageError; -h prints the usage and
// returns flag.ErrHelp.
func Main(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	base, err := os.MkdirTemp(cfg.dir, "kvmesh-bench-")
	if err != nil {
		return err
	}
	ps := &procs{exe: exe, base: base}
	defer func() {
		ps.killAll()
		if cfg.keep {
			fmt.Fprintf(stderr, "kept %s\n", base)
		} else {
			os.RemoveAll(base)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{cfg: cfg, ps: ps, log: stderr, progress: cli.NewProgress(stderr), exe: exe, base: base}
	b.progress.Interval = 0 // off a terminal, the log lines of the cells are the progress
	rep, err := b.run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", err)
		}
		return err
	}
	rep.Header = collectHeader(cfg, exe, base, args)
	rep.Header.FsyncP50 = b.fsyncP50
	rep.Header.Load = b.load
	writeTable(stdout, rep)
	if cfg.jsonPath != "" {
		if err := writeJSON(cfg.jsonPath, rep); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "raw results in %s\n", cfg.jsonPath)
	}
	if cfg.plotPath != "" {
		if err := writePlotFile(cfg.plotPath, rep); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "picture in %s\n", cfg.plotPath)
	}
	return nil
}
