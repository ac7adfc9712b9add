package embedded

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// Shutdown leaves nothing running: no server goroutines, no conn
// reconnecting forever against a dead provider.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	ctx := testCtx(t)
	before := runtime.NumGoroutine()

	n1, err := Start(clusterCfg("n1"))
	if err != nil {
		t.Fatal(err)
	}
	n2, err := Start(clusterCfg("n2", n1.ClusterURL()))
	if err != nil {
		n1.Shutdown()
		t.Fatal(err)
	}
	nc1, err1 := n1.Conn()
	nc2, err2 := n2.Conn()
	if err1 != nil || err2 != nil {
		n1.Shutdown()
		n2.Shutdown()
		t.Fatal(err1, err2)
	}
	_, _ = nc1, nc2
	if err := n2.Restart(); err != nil {
		t.Error(err)
	}
	if err := n1.WaitForPeers(ctx, 1); err != nil {
		t.Error(err)
	}
	n2.Shutdown()
	n1.Shutdown() // conns are left to Shutdown on purpose

	waitFor(ctx, t, "goroutines to exit", func() error {
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("%d goroutines, %d before:\n%s", n, before, firstLines(string(buf), 40))
		}
		return nil
	})
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
