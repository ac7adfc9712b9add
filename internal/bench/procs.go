package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kvmesh/kvmesh/internal/cli"
	"github.com/kvmesh/kvmesh/internal/freeport"
	"github.com/kvmesh/kvmesh/internal/spawn"
)

// procs owns every child process of one `kvmesh bench` run: it starts
// them with internal/spawn (Pdeathsig SIGKILL, so none outlives the
// benchmark even when it is killed itself), and killAll (deferred by the
// caller, and run on every exit path) kills and reaps the rest. Safe for
// concurrent use.
type procs struct {
	exe  string // this binary
	base string // the run's temp dir: data dirs and logs

	mu      sync.Mutex
	list    []*child
	memDirs []string // data dirs in tmpfsDir: killAll removes them
}

// child is one process of the benchmark: a kvmesh node or a jsref server.
type child struct {
	name        string
	exe         string // the binary; empty: this one
	clientPort  int
	clusterPort int
	dataDir     string
	logPath     string
	proc        *spawn.Proc
}

func (c *child) url() string      { return fmt.Sprintf("nats://127.0.0.1:%d", c.clientPort) }
func (c *child) routeURL() string { return fmt.Sprintf("nats-route://127.0.0.1:%d", c.clusterPort) }
func (c *child) pid() int         { return c.proc.Pid() }

// start launches exe with args, its output going to name.log in the base
// dir.
func (ps *procs) start(c *child, args []string) error {
	c.logPath = filepath.Join(ps.base, c.name+".log")
	exe := c.exe
	if exe == "" {
		exe = ps.exe
	}
	p, err := spawn.Start(c.name, exec.Command(exe, args...), c.logPath)
	if err != nil {
		return err
	}
	c.proc = p
	ps.mu.Lock()
	ps.list = append(ps.list, c)
	ps.mu.Unlock()
	return nil
}

// stop ends c: SIGTERM first when graceful (a node then closes its store
// and writes its profile), SIGKILL after grace or at once otherwise.
func (ps *procs) stop(c *child, graceful bool, grace time.Duration) {
	switch {
	case c.proc == nil:
	case graceful:
		c.proc.Stop(grace)
	default:
		c.proc.Kill()
	}
}

// killAll kills and reaps every child still running, then removes the
// data dirs memDir made.
func (ps *procs) killAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for _, c := range list {
		_ = c.proc.Signal(syscall.SIGKILL)
	}
	for _, c := range list {
		<-c.proc.Exited()
	}
	ps.mu.Lock()
	dirs := ps.memDirs
	ps.memDirs = nil
	ps.mu.Unlock()
	for _, d := range dirs {
		os.RemoveAll(d) // memory, not disk: never kept
	}
}

// memDir creates a data dir in tmpfsDir, which killAll removes once no
// process writes to it any more.
func (ps *procs) memDir() (string, error) {
	dir, err := os.MkdirTemp(tmpfsDir, "kvmesh-bench-")
	if err != nil {
		return "", err
	}
	ps.mu.Lock()
	ps.memDirs = append(ps.memDirs, dir)
	ps.mu.Unlock()
	return dir, nil
}

// cluster is a set of servers started together: kvmesh nodes or jsref
// servers.
type cluster struct {
	name  string
	nodes []*child
}

// waitReady waits until the log of every server shows its ready line,
// at most a minute each, failing early when one exits.
func (c *cluster) waitReady(ctx context.Context, marker func(*child) string) error {
	for _, n := range c.nodes {
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := n.proc.WaitReady(ctx, marker(n))
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *cluster) urls() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.url()
	}
	return out
}

// newCluster allocates names, ports and data dirs for size servers.
func (ps *procs) newCluster(name string, size int) (*cluster, []string, error) {
	ports, err := freeport.Take(2 * size)
	if err != nil {
		return nil, nil, err
	}
	cl := &cluster{name: name}
	var routes []string
	for i := range size {
		c := &child{
			name:        fmt.Sprintf("%s-n%d", name, i+1),
			clientPort:  ports[2*i],
			clusterPort: ports[2*i+1],
		}
		c.dataDir = filepath.Join(ps.base, c.name)
		cl.nodes = append(cl.nodes, c)
		routes = append(routes, c.routeURL())
	}
	return cl, routes, nil
}

// startKvmesh starts a kvmesh store of size `kvmesh node` processes and
// waits until every node serves. extra(i) adds flags to node i.
func (ps *procs) startKvmesh(ctx context.Context, name string, size int, extra func(i int) []string) (*cluster, error) {
	return ps.startKvmeshIn(ctx, "", "", name, size, extra)
}

// tmpfsDir holds the data of system kvmesh-tmpfs: a file system in
// memory, where an fsync costs nothing.
const tmpfsDir = "/dev/shm"

// startKvmeshIn is startKvmesh with the nodes run from exe (empty: this
// binary) and their data dirs under dataRoot (empty: the run's dir).
func (ps *procs) startKvmeshIn(ctx context.Context, exe, dataRoot, name string, size int, extra func(i int) []string) (*cluster, error) {
	cl, routes, err := ps.newCluster(name, size)
	if err != nil {
		return nil, err
	}
	secretFile := filepath.Join(filepath.Dir(cl.nodes[0].dataDir), name+".secret")
	if _, _, err := cli.LoadSecret(secretFile, true); err != nil {
		return nil, err
	}
	for i, c := range cl.nodes {
		c.exe = exe
		if dataRoot != "" {
			c.dataDir = filepath.Join(dataRoot, c.name)
		}
		args := []string{"node", "--id", fmt.Sprintf("n%d", i+1), "--data", c.dataDir,
			"--listen", fmt.Sprintf("127.0.0.1:%d", c.clientPort),
			"--cluster", fmt.Sprintf("127.0.0.1:%d", c.clusterPort),
			"--cluster-name", name,
			"--peers", strings.Join(routes, ","),
			"--peer-wait", "20s", "--log-level", "warn",
			"--secret-file", secretFile, "--run-dir", c.dataDir + ".run"}
		if extra != nil {
			args = append(args, extra(i)...)
		}
		if err := ps.start(c, args); err != nil {
			return nil, err
		}
	}
	if err := cl.waitReady(ctx, func(*child) string { return " ready: clients " }); err != nil {
		return nil, err
	}
	return cl, nil
}

// startNATS starts a cluster of size `kvmesh jsref` servers: JetStream
// with the given sync mode ("always" or "default"), or core NATS only
// when sync is empty.
func (ps *procs) startNATS(ctx context.Context, name string, size int, sync string) (*cluster, error) {
	cl, routes, err := ps.newCluster(name, size)
	if err != nil {
		return nil, err
	}
	for _, c := range cl.nodes {
		args := []string{"jsref", "--name", c.name,
			"--port", strconv.Itoa(c.clientPort), "--cluster", strconv.Itoa(c.clusterPort),
			"--cluster-name", name, "--routes", strings.Join(routes, ",")}
		if sync != "" {
			args = append(args, "--store", c.dataDir, "--sync", sync)
		}
		if err := ps.start(c, args); err != nil {
			return nil, err
		}
	}
	if err := cl.waitReady(ctx, func(c *child) string { return "jsref " + c.name + " ready" }); err != nil {
		return nil, err
	}
	return cl, nil
}

// procMem is a process's resident memory from /proc/<pid>/status.
type procMem struct {
	RSS     int64 `json:"rss_bytes"`      // VmRSS
	RSSAnon int64 `json:"rss_anon_bytes"` // RssAnon: heap and stacks, not the mapped bbolt file
}

func readProcMem(pid int) (procMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	return parseProcStatus(string(b)), nil
}

// parseProcStatus extracts VmRSS and RssAnon (in kB in the file).
func parseProcStatus(s string) procMem {
	var m procMem
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS = n << 10
		case "RssAnon":
			m.RSSAnon = n << 10
		}
	}
	return m
}

// diskUsage is what du reports for dir: allocated blocks, in bytes.
func diskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += info.Size()
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return total, err
}

// cpuTicks reads the machine's busy and total CPU time from /proc/stat
// (all CPUs, in clock ticks).
func cpuTicks() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected %q", line)
	}
	for i, s := range f[1:] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

// clockTicksPerSec is USER_HZ, the unit of /proc's CPU times: 100 on
// every Linux architecture Go supports.
const clockTicksPerSec = 100

// procTicks is the CPU time (user+system, clock ticks) pid has used.
func procTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}

// ourTicks is the CPU time of this process and its running children.
func (ps *procs) ourTicks() uint64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	t := procTicks(os.Getpid())
	for _, c := range ps.list {
		if !c.proc.HasExited() {
			t += procTicks(c.pid())
		}
	}
	return t
}

// cpuMeter measures how busy the machine was, and how much of that was
// not this benchmark: other work on the machine skews every number.
type cpuMeter struct {
	ps               *procs
	busy, total, our uint64
}

func (ps *procs) startCPUMeter() *cpuMeter {
	m := &cpuMeter{ps: ps}
	m.busy, m.total, _ = cpuTicks()
	m.our = ps.ourTicks()
	return m
}

// read returns the average number of CPUs busy since the start, in all
// and outside this benchmark's processes.
func (m *cpuMeter) read() (busy, others float64) {
	b, t, err := cpuTicks()
	our := m.ps.ourTicks()
	if err != nil || t <= m.total {
		return 0, 0
	}
	cpus := float64(runtime.NumCPU())
	span := float64(t-m.total) / cpus // ticks of one CPU
	busy = float64(b-m.busy) / span
	others = max(0, float64(b-m.busy)-float64(our-m.our)) / span
	return busy, others
}
