// Package e2e runs real kvmesh node processes built from cmd/kvmesh,
// kills and restarts them, and checks through the client only that no
// acknowledged write was lost.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
)

// kvmeshBin is the binary built once by TestMain.
var kvmeshBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvmesh-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kvmeshBin = filepath.Join(dir, "kvmesh")
	build := exec.Command("go", "build", "-o", kvmeshBin, "github.com/kvmesh/kvmesh/cmd/kvmesh")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kvmesh:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one kvmesh node process.
type proc struct {
	id          string
	dir         string
	clientPort  int
	clusterPort int
	logPath     string
	cmd         *exec.Cmd
	exited      chan struct{}
}

func (p *proc) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", p.clientPort) }

// procCluster is a store of real node processes on free loopback ports.
type procCluster struct {
	t     *testing.T
	procs []*proc
	peers []string
	extra []string // extra flags for every node
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func startProcCluster(t *testing.T, size int, extra ...string) *procCluster {
	t.Helper()
	ports := freePorts(t, 2*size)
	c := &procCluster{t: t, extra: extra}
	base := t.TempDir()
	for i := 0; i < size; i++ {
		p := &proc{id: fmt.Sprintf("n%d", i+1), clientPort: ports[2*i], clusterPort: ports[2*i+1]}
		p.dir = filepath.Join(base, p.id)
		p.logPath = filepath.Join(base, p.id+".log")
		c.procs = append(c.procs, p)
		c.peers = append(c.peers, fmt.Sprintf("nats-route://127.0.0.1:%d", p.clusterPort))
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			c.kill(p)
		}
		if t.Failed() {
			for _, p := range c.procs {
				b, _ := os.ReadFile(p.logPath)
				t.Logf("--- log of %s ---\n%s", p.id, tail(string(b), 4000))
			}
		}
	})
	for _, p := range c.procs {
		c.launch(p)
	}
	for _, p := range c.procs {
		c.waitReady(p)
	}
	return c
}

// launch starts p's process; waitReady waits until it serves.
func (c *procCluster) launch(p *proc) {
	c.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	args := []string{"node", "--id", p.id, "--data", p.dir,
		"--listen", fmt.Sprintf("127.0.0.1:%d", p.clientPort),
		"--cluster", fmt.Sprintf("127.0.0.1:%d", p.clusterPort),
		"--peers", strings.Join(c.peers, ","), "--peer-wait", "10s"}
	cmd := exec.Command(kvmeshBin, append(args, c.extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
}

func (c *procCluster) waitReady(p *proc) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n := countReady(p.logPath); n > 0 && n >= readyWanted(p) {
			return
		}
		select {
		case <-p.exited:
			b, _ := os.ReadFile(p.logPath)
			c.t.Fatalf("%s exited before it was ready:\n%s", p.id, tail(string(b), 3000))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not ready after 30s", p.id)
		}
	}
}

// readyWanted is how many "ready" lines p's log must show: one per start.
func readyWanted(p *proc) int {
	b, _ := os.ReadFile(p.logPath)
	return strings.Count(string(b), "=== start ")
}

func countReady(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		if strings.Contains(s.Text(), " ready: clients ") {
			n++
		}
	}
	return n
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *procCluster) kill(p *proc) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

// restart starts a killed node again on the same data dir and ports.
func (c *procCluster) restart(p *proc) {
	c.t.Helper()
	c.launch(p)
	c.waitReady(p)
}

func (c *procCluster) client(p *proc) *client.Client {
	c.t.Helper()
	cl, err := client.Connect(p.url())
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// waitServing retries a probe read through cl until the store answers
// (the key may be absent), bounded by ctx.
func waitServing(ctx context.Context, t *testing.T, cl *client.Client, r string) {
	t.Helper()
	for {
		_, err := cl.Get(ctx, "e2e-probe", client.R(r))
		if err == nil || isNotFound(err) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("store not serving r=%s: %v", r, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
