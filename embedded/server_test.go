package embedded

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestSingleNodeNoResponders(t *testing.T) {
	s := startT(t, Config{Name: "solo", Port: RandomPort})
	if s.ClusterURL() != "" || s.NumPeers() != 0 || len(s.PeerNames()) != 0 {
		t.Fatalf("single node: cluster %q, peers %d %v", s.ClusterURL(), s.NumPeers(), s.PeerNames())
	}
	nc := connT(t, s)
	start := time.Now()
	_, err := nc.Request("nobody.home", nil, 5*time.Second)
	took := time.Since(start)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request to unserved subject: %v, want ErrNoResponders", err)
	}
	// The 503 comes back at once; 1 s leaves room for -race on a slow box.
	if took > time.Second {
		t.Fatalf("ErrNoResponders took %v", took)
	}
	t.Logf("no responders after %v", took)

	respond(t, nc, "solo.echo", "solo")
	m, err := nc.Request("solo.echo", []byte("hi"), 5*time.Second)
	if err != nil || string(m.Data) != "solo:hi" {
		t.Fatalf("local request: %v %v", m, err)
	}
}

func TestTCPClient(t *testing.T) {
	s := startT(t, Config{Name: "tcp", Port: RandomPort})
	if !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") || strings.HasSuffix(s.ClientURL(), ":-1") {
		t.Fatalf("ClientURL = %q", s.ClientURL())
	}
	tc, err := nats.Connect(s.ClientURL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("TCP connect to %s: %v", s.ClientURL(), err)
	}
	defer tc.Close()
	respond(t, connT(t, s), "tcp.echo", "in-process")
	m, err := tc.Request("tcp.echo", []byte("x"), 5*time.Second)
	if err != nil || string(m.Data) != "in-process:x" {
		t.Fatalf("TCP → in-process request: %v %v", m, err)
	}
}

func TestShutdownIdempotent(t *testing.T) {
	ctx := testCtx(t)
	s := startT(t, clusterCfg("n1"))
	nc := connT(t, s)
	ns := s.NATS()

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(s.Shutdown)
	}
	wg.Wait()
	s.Shutdown()

	if ns.Running() {
		t.Fatal("server still running after Shutdown")
	}
	if !nc.IsClosed() {
		t.Fatalf("conn from Conn not closed by Shutdown: %v", nc.Status())
	}
	if _, err := s.Conn(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Conn after Shutdown: %v", err)
	}
	if err := s.Restart(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Restart after Shutdown: %v", err)
	}
	if err := s.WaitForPeers(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitForPeers after Shutdown: %v", err)
	}
	if s.NumPeers() != 0 || s.PeerNames() != nil {
		t.Fatalf("after Shutdown: %d peers %v", s.NumPeers(), s.PeerNames())
	}
}

func TestConnTracking(t *testing.T) {
	s := startT(t, Config{Name: "n1", Port: RandomPort})
	a, b := connT(t, s), connT(t, s)
	a.Close() // the caller may close its own; Shutdown closes the rest
	s.Shutdown()
	if !b.IsClosed() {
		t.Fatalf("open conn survived Shutdown: %v", b.Status())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns != nil {
		t.Fatalf("conns not released: %d", len(s.conns))
	}
}

func TestMaxPayload(t *testing.T) {
	def := startT(t, Config{Name: "def", Port: RandomPort})
	if got := connT(t, def).MaxPayload(); got != 1<<20 {
		t.Fatalf("default MaxPayload = %d", got)
	}
	big := startT(t, Config{Name: "big", Port: RandomPort, MaxPayload: 2 << 20})
	nc := connT(t, big)
	if got := nc.MaxPayload(); got != 2<<20 {
		t.Fatalf("MaxPayload = %d, want %d", got, 2<<20)
	}
	if err := nc.Publish("x", make([]byte, 2<<20+1)); !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("oversized publish: %v", err)
	}
}

// A port in use makes the server call Fatalf and go on without the
// listener; server.ReadyForConnections would spin until its timeout. Start
// must fail at once, with ErrNotReady, and not exit the process.
func TestStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port

	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"client", Config{Name: "c", Port: busy, ReadyTimeout: 20 * time.Second}},
		{"cluster", Config{Name: "r", Port: RandomPort, ClusterPort: busy, ReadyTimeout: 20 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, lg := range []*recLogger{nil, {}} {
				cfg := tc.cfg
				if lg != nil {
					cfg.Logger = lg
				}
				start := time.Now()
				s, err := Start(cfg)
				took := time.Since(start)
				if s != nil {
					s.Shutdown()
				}
				if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "listening") {
					t.Fatalf("Start on busy port: %v", err)
				}
				if took > 5*time.Second {
					t.Fatalf("failure took %v; should not wait for ReadyTimeout", took)
				}
				t.Logf("logger=%v: failed in %v: %v", lg != nil, took, err)
				if lg != nil && (!lg.has("ERR", "fatal: Error listening") || lg.has("FTL", "")) {
					t.Fatalf("Fatalf not turned into Errorf: %q", lg.lines)
				}
			}
		})
	}
}

func TestLogger(t *testing.T) {
	lg := &recLogger{}
	startT(t, Config{Name: "logged", Port: RandomPort, Logger: lg})
	if !lg.has("INF", "Server is ready") {
		t.Fatalf("logger got no notice: %q", lg.lines)
	}
	if lg.has("DBG", "") {
		t.Fatal("debug lines without Debug")
	}
	dbg := &recLogger{}
	startT(t, Config{Name: "debug", Port: RandomPort, ClusterPort: RandomPort, Logger: dbg, Debug: true})
	if !dbg.has("DBG", "") {
		t.Fatal("no debug lines with Debug")
	}
}
