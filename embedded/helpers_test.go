package embedded

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// testTimeout bounds every test. Generous: -race on 2 cores is slow.
const testTimeout = 30 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// clusterCfg is a node on random client and cluster ports.
func clusterCfg(name string, routes ...string) Config {
	return Config{Name: name, Port: RandomPort, ClusterPort: RandomPort, Routes: routes}
}

// startT starts a server and shuts it down when the test ends.
func startT(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", cfg.Name, err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func connT(t *testing.T, s *Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := s.Conn(opts...)
	if err != nil {
		t.Fatalf("Conn(%s): %v", s.Name(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitPeers waits until every server has n peers.
func waitPeers(ctx context.Context, t *testing.T, n int, servers ...*Server) {
	t.Helper()
	for _, s := range servers {
		if err := s.WaitForPeers(ctx, n); err != nil {
			t.Fatalf("%v (peers %v)", err, s.PeerNames())
		}
	}
}

// waitFor polls cond every 10 ms until it returns nil or ctx is done.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() error) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %v)", what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// respond serves subj on nc, answering "<name>:<request data>".
func respond(t *testing.T, nc *nats.Conn, subj, name string) {
	t.Helper()
	sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
		_ = m.Respond([]byte(name + ":" + string(m.Data)))
	})
	if err != nil {
		t.Fatalf("subscribe %s: %v", subj, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// requestEventually sends a request until it is answered. Interest crosses
// routes asynchronously, so until it has arrived the publisher's server
// answers 503 (nats.ErrNoResponders), or, when another server has a wider
// interest that takes the request (a sniffer subscribed to ">"), nothing:
// those, and only those, are retried. It returns the reply and the number
// of no-responders answers seen.
func requestEventually(ctx context.Context, t *testing.T, nc *nats.Conn, subj, data string) (*nats.Msg, int) {
	t.Helper()
	noResp := 0
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		m, err := nc.RequestWithContext(rctx, subj, []byte(data))
		cancel()
		if err == nil {
			return m, noResp
		}
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			noResp++
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		default:
			t.Fatalf("request %s: %v (after %d no-responders)", subj, err, noResp)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("request %s: %v after %d no-responders", subj, ctx.Err(), noResp)
		case <-tick.C:
		}
	}
}

// recLogger records log lines; safe for the server's goroutines.
type recLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *recLogger) add(level, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+" "+fmt.Sprintf(format, v...))
}

func (l *recLogger) has(prefix, substr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.HasPrefix(s, prefix) && strings.Contains(s, substr) {
			return true
		}
	}
	return false
}

func (l *recLogger) Noticef(f string, v ...any) { l.add("INF", f, v...) }
func (l *recLogger) Warnf(f string, v ...any)   { l.add("WRN", f, v...) }
func (l *recLogger) Fatalf(f string, v ...any)  { l.add("FTL", f, v...) }
func (l *recLogger) Errorf(f string, v ...any)  { l.add("ERR", f, v...) }
func (l *recLogger) Debugf(f string, v ...any)  { l.add("DBG", f, v...) }
func (l *recLogger) Tracef(f string, v ...any)  { l.add("TRC", f, v...) }
