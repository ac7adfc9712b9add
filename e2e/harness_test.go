// Package e2e runs real kvmesh node processes built from cmd/kvmesh,
// kills, pauses, partitions and restarts them, and checks through the
// client (and direct replica dumps) that no acknowledged write was lost
// and that replicas converge. The fault suite is fault_test.go; the pure
// history and checkers are in internal/history.
package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/freeport"
	"github.com/kvmesh/kvmesh/internal/spawn"
)

// kvmeshBin is the binary built once by TestMain; binDir holds it.
var kvmeshBin, binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvmesh-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	kvmeshBin = filepath.Join(dir, "kvmesh")
	if err := buildNode(kvmeshBin, false); err != nil {
		fmt.Fprintln(os.Stderr, "build kvmesh:", err)
		os.Exit(1)
	}
	code := m.Run()
	printSummary(os.Stdout)
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildNode(out string, race bool, tags ...string) error {
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	build := exec.Command("go", append(args, "github.com/kvmesh/kvmesh/cmd/kvmesh")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return build.Run()
}

var raceBin struct {
	once sync.Once
	path string
	err  error
}

// raceNodeBin builds, once, a node binary with the race detector.
func raceNodeBin() (string, error) {
	raceBin.once.Do(func() {
		raceBin.path = filepath.Join(binDir, "kvmesh-race")
		raceBin.err = buildNode(raceBin.path, true)
	})
	return raceBin.path, raceBin.err
}

var plantedBin struct {
	once sync.Once
	path string
	err  error
}

// plantedNodeBin builds, once, a node binary with the planted
// durability bug (the kvmesh_planted tag: --unsafe-early-ack).
func plantedNodeBin() (string, error) {
	plantedBin.once.Do(func() {
		plantedBin.path = filepath.Join(binDir, "kvmesh-planted")
		plantedBin.err = buildNode(plantedBin.path, false, "kvmesh_planted")
	})
	return plantedBin.path, plantedBin.err
}

// proc is one kvmesh node process. Its fields are used by one goroutine
// at a time: the test, or the nemesis it started and waits for.
type proc struct {
	id          string
	dir         string
	host        string // the IP it listens on
	ns          string // its network namespace, or "" for the host's
	clientPort  int
	clusterPort int
	logPath     string
	run         *spawn.Proc // nil while killed
	paused      bool
	kills       int // unclean stops so far: each makes the node a new incarnation
	// join and token, for a node added to a running store: the route URL
	// of the member it joins through and the token of kvmesh admin
	// invite. Such a node is started as an operator would start it, with
	// --join and --token instead of --peers and --secret-file.
	join, token string
	// gone: the node left the store (admin leave) or was removed (admin
	// remove). It is never started again, dumped or counted as a replica.
	gone bool
}

func (p *proc) url() string { return fmt.Sprintf("nats://%s:%d", p.host, p.clientPort) }

// routeURL is the URL of p's route listener, as the others' --peers and
// a joining node's --join name it.
func (p *proc) routeURL() string { return fmt.Sprintf("nats-route://%s:%d", p.host, p.clusterPort) }

func (p *proc) pid() int {
	if p.run == nil {
		return 0
	}
	return p.run.Pid()
}

// crashed reports whether p exited although the test did not kill it.
func (p *proc) crashed() bool { return p.run != nil && p.run.HasExited() }

// procCluster is a store of real node processes on free loopback ports,
// or in network namespaces of a netLab.
type procCluster struct {
	t      *testing.T
	procs  []*proc
	peers  []string
	extra  []string // extra flags for every node
	bin    string
	secret string // the --secret-file every node shares
	base   string // data dirs and logs
	lab    *netLab
	dialer nats.CustomDialer // nil outside namespaces
}

// clusterOpts configures startCluster.
type clusterOpts struct {
	size  int
	extra []string // extra flags for every node
	base  string   // data dirs and logs; "" for t.TempDir()
	bin   string   // node binary; "" for kvmeshBin
	lab   *netLab  // when set, node i runs in lab.nodes[i] on lab.ips[i]
	// dataFS, when set, is the size of a tmpfs mounted on each node's
	// data dir (mount's size= option, e.g. "256m"), so that a nemesis
	// can fill it. Needs root.
	dataFS string
}

func startProcCluster(t *testing.T, size int, extra ...string) *procCluster {
	t.Helper()
	return startCluster(t, clusterOpts{size: size, extra: extra})
}

func startCluster(t *testing.T, o clusterOpts) *procCluster {
	t.Helper()
	c := &procCluster{t: t, extra: o.extra, bin: o.bin, lab: o.lab}
	if c.bin == "" {
		c.bin = kvmeshBin
	}
	base := o.base
	if base == "" {
		base = t.TempDir()
	}
	c.base = base
	c.secret = filepath.Join(base, "secret")
	if err := os.WriteFile(c.secret, []byte(rand.Text()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ports []int
	if o.lab == nil {
		ports = freeport.MustTake(t, 2*o.size) // below the ephemeral range: still free at a restart
	} else {
		c.dialer = o.lab.dialer()
	}
	for i := 0; i < o.size; i++ {
		p := &proc{id: fmt.Sprintf("n%d", i+1)}
		if o.lab == nil {
			p.host, p.clientPort, p.clusterPort = "127.0.0.1", ports[2*i], ports[2*i+1]
		} else {
			// Each namespace has its own port space.
			p.host, p.ns, p.clientPort, p.clusterPort = o.lab.ips[i], o.lab.nodes[i], 4222, 6222
		}
		p.dir = filepath.Join(base, p.id)
		p.logPath = filepath.Join(base, p.id+".log")
		c.procs = append(c.procs, p)
		c.peers = append(c.peers, p.routeURL())
	}
	// Registered before the kills, so that it runs after them.
	if o.dataFS != "" {
		t.Cleanup(func() {
			for _, p := range c.procs {
				if out, err := exec.Command("umount", p.dir).CombinedOutput(); err != nil {
					t.Errorf("umount %s: %v: %s", p.dir, err, out)
				}
			}
		})
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
	if o.dataFS != "" {
		for _, p := range c.procs {
			mountTmpfs(t, p.dir, o.dataFS)
		}
	}
	for _, p := range c.procs {
		if err := c.launch(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range c.procs {
		if err := c.waitReady(p, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// launch starts p's process; waitReady waits until it serves. Both are
// safe to call from a nemesis goroutine: they return errors, never call
// t.Fatal.
func (c *procCluster) launch(p *proc) error {
	args := []string{"node", "--id", p.id, "--data", p.dir,
		"--listen", fmt.Sprintf("%s:%d", p.host, p.clientPort),
		"--cluster", fmt.Sprintf("%s:%d", p.host, p.clusterPort),
		"--peer-wait", "10s", "--run-dir", p.dir + ".run"}
	if p.join != "" {
		// On a restart the data dir holds the secret: the token is ignored.
		args = append(args, "--join", p.join, "--token", p.token)
	} else {
		args = append(args, "--peers", strings.Join(c.peers, ","), "--secret-file", c.secret)
	}
	args = append(args, c.extra...)
	var cmd *exec.Cmd
	if p.ns != "" {
		// ip netns exec execs the node in place: the PID is the node's.
		cmd = ipCmd(append([]string{"netns", "exec", p.ns, c.bin}, args...)...)
	} else {
		cmd = exec.Command(c.bin, args...)
	}
	run, err := spawn.Start(p.id, cmd, p.logPath)
	if err != nil {
		return err
	}
	p.run, p.paused = run, false
	return nil
}

// waitReady waits until p's current run serves (its log shows a ready
// line for each start), at most timeout.
func (c *procCluster) waitReady(p *proc, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.run.WaitReady(ctx, " ready: clients ")
}

// kill sends SIGKILL (also to a paused process) and waits for the
// process to be gone. Only processes this cluster started are signalled.
func (c *procCluster) kill(p *proc) {
	if p.run == nil {
		return
	}
	p.run.Kill()
	p.run, p.paused = nil, false
	p.kills++
}

// incarnations is how many clock actors each node may have issued dots
// under: one, plus one per unclean stop (kvmesh's incarnations, Riak's
// KV679 fix).
func (c *procCluster) incarnations() map[string]int {
	m := map[string]int{}
	for _, p := range c.procs {
		m[p.id] = 1 + p.kills
	}
	return m
}

// pause stops p with SIGSTOP; resume continues it with SIGCONT.
func (c *procCluster) pause(p *proc) error {
	if p.run == nil {
		return fmt.Errorf("pause %s: not running", p.id)
	}
	if err := p.run.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pause %s: %w", p.id, err)
	}
	p.paused = true
	return nil
}

func (c *procCluster) resume(p *proc) error {
	if p.run == nil || !p.paused {
		return nil
	}
	p.paused = false
	if err := p.run.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("resume %s: %w", p.id, err)
	}
	return nil
}

// restart starts a killed node again on the same data dir and ports.
func (c *procCluster) restart(p *proc) {
	c.t.Helper()
	if err := c.start(p); err != nil {
		c.t.Fatal(err)
	}
}

// start launches a killed node and waits until it serves.
func (c *procCluster) start(p *proc) error {
	if err := c.launch(p); err != nil {
		return err
	}
	return c.waitReady(p, 30*time.Second)
}

// urls lists every node's client URL, p's first.
func (c *procCluster) urls(first *proc) string {
	out := []string{first.url()}
	for _, q := range c.procs {
		if q != first {
			out = append(out, q.url())
		}
	}
	return strings.Join(out, ",")
}

// connect dials url (comma-separated: the first is preferred) with fast
// reconnects, through the lab's namespace when there is one.
func (c *procCluster) connect(url string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("kvmesh-e2e"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond), nats.DontRandomize(), nats.Timeout(2 * time.Second)}
	if c.dialer != nil {
		opts = append(opts, nats.SetCustomDialer(c.dialer))
	}
	return nats.Connect(url, opts...)
}

// client returns a client of p (falling back to the other nodes when p
// is down), with opts, closed when the test ends.
func (c *procCluster) client(p *proc, opts ...client.Option) *client.Client {
	c.t.Helper()
	nc, err := c.connect(c.urls(p))
	if err != nil {
		c.t.Fatal(err)
	}
	cl, err := client.New(nc, opts...)
	if err != nil {
		nc.Close()
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return cl
}

// waitServing retries a probe read through cl until the store answers
// (the key may be absent), bounded by ctx.
func waitServing(ctx context.Context, t *testing.T, cl *client.Client, r string) {
	t.Helper()
	if err := awaitServing(ctx, cl, r); err != nil {
		t.Fatal(err)
	}
}

func awaitServing(ctx context.Context, cl *client.Client, r string) error {
	for {
		_, err := cl.Get(ctx, "e2e-probe", client.R(r))
		if err == nil || isNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store not serving r=%s: %w", r, errors.Join(err, ctx.Err()))
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

// mountTmpfs mounts a tmpfs of the given size on dir (created). The
// caller unmounts it.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v: %s", dir, err, out)
	}
}

// requireMount skips (loudly; fails under CI) a test that mounts file
// systems when this process cannot.
func requireMount(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput()
	if err == nil {
		_ = exec.Command("umount", dir).Run()
		return
	}
	msg := fmt.Sprintf("disk-full tests mount a small tmpfs and need root: %v: %s", err, out)
	if os.Getenv("CI") != "" {
		t.Fatal("under CI: " + msg)
	}
	t.Skip("SKIPPED (loudly): " + msg)
}
