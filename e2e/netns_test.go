package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"
)

// netLab is a private network for one test: a hub namespace holding a
// Linux bridge, and one namespace per node joined to the bridge by a veth
// pair. Addresses (10.77.0.0/24) exist only inside these namespaces; the
// host's namespace gets nothing. The test reaches the nodes by dialing
// from inside the hub namespace (see dialer), where the bridge has
// 10.77.0.1. Partitions are nftables drop rules inside the node
// namespaces; the hub's address is never dropped, so the test can always
// read and dump every node. Everything is deleted in t.Cleanup.
type netLab struct {
	t      *testing.T
	prefix string
	hub    string
	hubIP  string
	nodes  []string // namespace of node i
	ips    []string // address of node i
}

// labPrefix names every namespace this package creates; the pid in the
// names lets a later run remove what a killed run left behind.
const labPrefix = "kve2e-"

var labSeq atomic.Int64

// toolPath finds a system tool in PATH or in the sbin directories (which
// a non-login PATH may lack); "" when it is not installed.
func toolPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// ipCmd is an ip(8) command.
func ipCmd(args ...string) *exec.Cmd { return exec.Command(toolPath("ip"), args...) }

// requireNetLab fails (under CI) or skips loudly (elsewhere) when this
// machine cannot build a netLab: not root, or ip or nft missing.
func requireNetLab(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if toolPath(tool) == "" {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("partition tests need %s (network namespaces and nftables); .ci/run installs nftables", strings.Join(missing, ", "))
	if os.Getenv("CI") != "" {
		t.Fatal("under CI: " + msg)
	}
	t.Skip("SKIPPED (loudly): " + msg)
}

func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	removeStaleLabs(t)
	l := &netLab{t: t, prefix: fmt.Sprintf("%s%d-%d-", labPrefix, os.Getpid(), labSeq.Add(1)), hubIP: "10.77.0.1"}
	l.hub = l.prefix + "hub"
	t.Cleanup(l.teardown)
	l.must("netns", "add", l.hub)
	l.must("-n", l.hub, "link", "set", "lo", "up")
	l.must("-n", l.hub, "link", "add", "br0", "type", "bridge")
	l.must("-n", l.hub, "addr", "add", l.hubIP+"/24", "dev", "br0")
	l.must("-n", l.hub, "link", "set", "br0", "up")
	for i := 0; i < n; i++ {
		ns, ip, veth := fmt.Sprintf("%sn%d", l.prefix, i+1), fmt.Sprintf("10.77.0.%d", 11+i), fmt.Sprintf("v%d", i+1)
		l.must("netns", "add", ns)
		l.nodes, l.ips = append(l.nodes, ns), append(l.ips, ip)
		l.must("-n", ns, "link", "set", "lo", "up")
		// Both ends are created inside namespaces: nothing touches the host's.
		l.must("-n", l.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		l.must("-n", l.hub, "link", "set", veth, "master", "br0")
		l.must("-n", l.hub, "link", "set", veth, "up")
		l.must("-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
		l.must("-n", ns, "link", "set", "eth0", "up")
	}
	return l
}

func (l *netLab) must(args ...string) {
	l.t.Helper()
	if out, err := ipCmd(args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// teardown deletes the namespaces (their veths and rules go with them).
// The cluster's processes are killed first: its cleanup was registered
// after this one, so it runs before.
func (l *netLab) teardown() {
	for _, ns := range append(slices.Clone(l.nodes), l.hub) {
		if out, err := ipCmd("netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
	}
}

// removeStaleLabs deletes namespaces left by an earlier run of this
// package whose process is gone (a run killed before its cleanup).
func removeStaleLabs(t *testing.T) {
	out, err := ipCmd("netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(name, labPrefix) {
			continue
		}
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, labPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		t.Logf("removing stale namespace %s of dead process %d", name, pid)
		_ = ipCmd("netns", "del", name).Run()
	}
}

// cut installs the partition: blocked[i] lists the nodes node i can no
// longer exchange packets with (in and out). Nodes absent from blocked
// keep full connectivity. It replaces any earlier partition atomically
// per node.
func (l *netLab) cut(blocked map[int][]int) error {
	for i, ns := range l.nodes {
		var ips []string
		for _, j := range blocked[i] {
			ips = append(ips, l.ips[j])
		}
		script := "table inet kvmesh_e2e\ndelete table inet kvmesh_e2e\n"
		if len(ips) > 0 {
			set := strings.Join(ips, ", ")
			script += fmt.Sprintf(`table inet kvmesh_e2e {
	chain in {
		type filter hook input priority 0; policy accept;
		ip saddr { %s } drop
	}
	chain out {
		type filter hook output priority 0; policy accept;
		ip daddr { %s } drop
	}
}
`, set, set)
		}
		cmd := ipCmd("netns", "exec", ns, toolPath("nft"), "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("nft in %s: %v\n%s", ns, err, out)
		}
	}
	return nil
}

// heal removes every partition rule.
func (l *netLab) heal() error { return l.cut(nil) }

// dialer returns a NATS dialer that opens its sockets inside the hub
// namespace: a socket belongs to the namespace of the thread that created
// it, so the dial runs on a locked thread switched there and back.
func (l *netLab) dialer() nats.CustomDialer { return nsDialer{path: "/var/run/netns/" + l.hub} }

type nsDialer struct{ path string }

func (d nsDialer) Dial(network, address string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		c, restored, err := dialIn(d.path, network, address)
		if restored {
			runtime.UnlockOSThread()
		} // else the thread stays locked and exits with this goroutine
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// dialIn dials from namespace path on the calling (locked) thread and
// switches the thread back; restored is false if that failed.
func dialIn(path, network, address string) (c net.Conn, restored bool, err error) {
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, true, err
	}
	defer self.Close()
	target, err := os.Open(path)
	if err != nil {
		return nil, true, err
	}
	defer target.Close()
	if err := setns(target); err != nil {
		return nil, true, fmt.Errorf("setns %s: %w", path, err)
	}
	c, err = net.DialTimeout(network, address, 2*time.Second)
	return c, setns(self) == nil, err
}

func setns(f *os.File) error { return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET) }
