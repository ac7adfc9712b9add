package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
)

// chromium finds Debian's headless-capable Chromium. Under CI it must be
// there (.ci/run installs it); elsewhere the test skips loudly.
// KVMESH_CHROMIUM names another binary.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("KVMESH_CHROMIUM"), "chromium", "chromium-browser", "/usr/bin/chromium"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "the status page's browser test needs chromium (apt-get install chromium; .ci/run installs it)"
	if os.Getenv("CI") != "" {
		t.Fatal("under CI: " + msg)
	}
	t.Skip("SKIPPED (loudly): " + msg)
	return ""
}

// runChromium runs headless chromium with args plus url, at most 90 s,
// and returns its stdout. Its whole process group is killed if it
// overruns, so no renderer outlives the test.
func runChromium(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, tail(stderr.String(), 2000))
	}
	return string(out)
}

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

var (
	readyHTTP = regexp.MustCompile(`http http://([^/\s]+)/`)
	pathTag   = regexp.MustCompile(`<path [^>]*>`)
	attrNode  = regexp.MustCompile(`data-node="([^"]*)"`)
	attrHlth  = regexp.MustCompile(`data-health="([^"]*)"`)
	ringTag   = regexp.MustCompile(`<svg id="ring"[^>]*>`)
	attrUpd   = regexp.MustCompile(`data-updated="([0-9]+)"`)
)

// ringHealth reads the ring drawing of a dumped status page: the health
// of each node the partitions' arcs are drawn for, and how many arcs.
// ok is false while the page has not drawn a status yet.
func ringHealth(t *testing.T, dom string) (health map[string]string, arcs int, ok bool) {
	t.Helper()
	svg := ringTag.FindString(dom)
	if svg == "" {
		t.Fatalf("no ring <svg> in the page:\n%s", tail(dom, 2000))
	}
	if m := attrUpd.FindStringSubmatch(svg); m == nil || m[1] == "0" {
		return nil, 0, false
	}
	health = map[string]string{}
	for _, tag := range pathTag.FindAllString(dom, -1) {
		n, h := attrNode.FindStringSubmatch(tag), attrHlth.FindStringSubmatch(tag)
		if n == nil || h == nil {
			continue
		}
		arcs++
		if prev, seen := health[n[1]]; seen && prev != h[1] {
			t.Errorf("node %s drawn both %s and %s", n[1], prev, h[1])
		}
		health[n[1]] = h[1]
	}
	return health, arcs, true
}

// TestStatusPageInBrowser loads a node's status page in headless
// Chromium from a running 3-node store, checks that the ring drawing
// shows the three nodes alive, kills one with SIGKILL and waits until the
// page, loaded again, draws it down. With KVMESH_FIGURES=1 it also
// writes docs/status.png: the page under a little load with the node
// down (make figures).
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	// Heartbeats every 200 ms: a killed node is down after 2 s.
	c := startProcCluster(t, 3, "--http", "127.0.0.1:0", "--heartbeat", "200ms")
	log, err := os.ReadFile(c.procs[0].logPath)
	if err != nil {
		t.Fatal(err)
	}
	m := readyHTTP.FindSubmatch(log)
	if m == nil {
		t.Fatalf("n1's ready line names no HTTP address:\n%s", tail(string(log), 2000))
	}
	url := "http://" + string(m[1]) + "/"
	load := func(budget time.Duration, extra ...string) string {
		return runChromium(t, bin, url, append(extra, fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()))...)
	}
	// waitFor reloads the page until want holds of its ring, at most 30 s.
	waitFor := func(what string, want func(map[string]string) bool) map[string]string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			dom := load(2*time.Second, "--dump-dom")
			health, arcs, ok := ringHealth(t, dom)
			if ok && arcs != 256*3 {
				t.Fatalf("ring of %d arcs, want 256 partitions x 3 replicas", arcs)
			}
			if ok && want(health) {
				return health
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page never showed %s; last ring health %v (drawn: %v)", what, health, ok)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("3 nodes alive", func(h map[string]string) bool {
		return len(h) == 3 && h["n1"] == "alive" && h["n2"] == "alive" && h["n3"] == "alive"
	})

	c.kill(c.procs[2])
	h := waitFor("n3 down", func(h map[string]string) bool { return h["n3"] == "down" })
	if h["n1"] != "alive" || h["n2"] != "alive" || len(h) != 3 {
		t.Errorf("with n3 killed the ring shows %v: want n1, n2 alive and n3 down", h)
	}

	if os.Getenv("KVMESH_FIGURES") == "" {
		return
	}
	// The screenshot: the page while a few clients write and read
	// through n1 and n2.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for w := range 4 {
		cl, err := client.Connect(c.procs[w%2].url())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("figure.%d.%d", w, i%500)
				if i%3 == 0 {
					_, _ = cl.Put(ctx, key, []byte("value"))
				} else {
					_, _ = cl.Get(ctx, key)
				}
			}
		}()
	}
	time.Sleep(3 * time.Second) // let the load reach a steady rate
	out, err := filepath.Abs(filepath.Join("..", "docs", "status.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	load(4*time.Second, "--hide-scrollbars", "--window-size=1280,960", "--screenshot="+out)
	t.Logf("wrote %s", out)
}
