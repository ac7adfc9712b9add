package spawn

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func sh(script string) *exec.Cmd { return exec.Command("sh", "-c", script) }

func start(t *testing.T, log, script string) *Proc {
	t.Helper()
	p, err := Start("child", sh(script), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestRestartNeedsItsOwnReadyLine: a run started on the log of an earlier
// run is not ready on the earlier run's ready line.
func TestRestartNeedsItsOwnReadyLine(t *testing.T) {
	log := filepath.Join(t.TempDir(), "n1.log")
	first := start(t, log, "echo up and ready; exec sleep 60")
	if err := first.WaitReady(within(t, 10*time.Second), "ready"); err != nil {
		t.Fatal(err)
	}
	first.Kill()
	if !first.HasExited() {
		t.Fatal("Kill returned before the process was reaped")
	}
	second := start(t, log, "exec sleep 60")
	err := second.WaitReady(within(t, 300*time.Millisecond), "ready")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a restart that printed nothing: WaitReady = %v, want the deadline", err)
	}
	second.Kill()
	third := start(t, log, "echo ready again; exec sleep 60")
	if err := third.WaitReady(within(t, 10*time.Second), "ready"); err != nil {
		t.Fatal(err)
	}
}

func TestExitBeforeReady(t *testing.T) {
	log := filepath.Join(t.TempDir(), "n1.log")
	p := start(t, log, "echo cannot open the store; exit 3")
	err := p.WaitReady(within(t, 10*time.Second), "ready")
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "cannot open the store") {
		t.Fatalf("WaitReady = %v", err)
	}
	<-p.Exited()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal after exit: %v", err)
	}
}

// TestStop: a child that exits on SIGTERM is not killed; one that ignores
// it is, after the grace period.
func TestStop(t *testing.T) {
	dir := t.TempDir()
	polite := start(t, filepath.Join(dir, "polite.log"), `trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done`)
	if err := polite.WaitReady(within(t, 10*time.Second), "ready"); err != nil {
		t.Fatal(err)
	}
	polite.Stop(10 * time.Second)
	if got := LastLines(filepath.Join(dir, "polite.log"), 1); got != "bye" {
		t.Fatalf("a child stopped gracefully: its log ends %q", got)
	}
	stubborn := start(t, filepath.Join(dir, "stubborn.log"), `trap '' TERM; echo ready; while :; do sleep 0.05; done`)
	if err := stubborn.WaitReady(within(t, 10*time.Second), "ready"); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	stubborn.Stop(200 * time.Millisecond)
	if !stubborn.HasExited() || time.Since(begin) > 10*time.Second {
		t.Fatalf("a child ignoring SIGTERM: exited %v after %v", stubborn.HasExited(), time.Since(begin))
	}
}
