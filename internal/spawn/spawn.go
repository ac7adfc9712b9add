// Package spawn runs the child processes that a test or a benchmark
// owns: kvmesh nodes and reference servers. A child is started with its
// output appended to a log file and with Pdeathsig SIGKILL, so that none
// outlives its owner even when the owner is killed itself; it is ready
// once its log says so; and it is killed and reaped by its owner. The e2e
// tests (which restart a node on the same log, pause it and kill it -9)
// and `kvmesh bench` (which stops nodes gracefully to collect their
// profiles) both start node processes this way.
package spawn

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// startLine opens each run's part of a log: a node restarted on the same
// log is ready only once its log shows a ready line after the last start.
const startLine = "=== start "

// Proc is one run of a child process. Its methods are safe for
// concurrent use.
type Proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has been reaped
}

// Start starts cmd, which its errors call name, with its stdout and
// stderr appended to the file at logPath (created if need be) after a
// line that marks the start, and with Pdeathsig SIGKILL. A goroutine
// reaps the process when it exits; Exited is closed then.
func Start(name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "%s%s\n", startLine, time.Now().Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL // never outlive the owner
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited and been reaped.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// HasExited reports whether the process has exited.
func (p *Proc) HasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process (a no-op once it has been reaped).
func (p *Proc) Signal(sig os.Signal) error {
	if p.HasExited() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL (which also ends a stopped process) and returns once
// the process has been reaped.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns once the process has been reaped.
func (p *Proc) Stop(grace time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.Kill()
	}
}

// WaitReady waits until this run's part of the log (after its start
// line) has a line containing marker. It fails early, with the end of
// the log, when the process exits first, and when ctx is done.
func (p *Proc) WaitReady(ctx context.Context, marker string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if readySinceStart(p.logPath, marker) {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready; its log ends:\n%s", p.name, LastLines(p.logPath, 20))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w; its log ends:\n%s", p.name, ctx.Err(), LastLines(p.logPath, 5))
		case <-tick.C:
		}
	}
}

// readySinceStart reports whether a line after the last start line of
// the file at path contains marker.
func readySinceStart(path, marker string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	ready := false
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		switch line := s.Text(); {
		case strings.HasPrefix(line, startLine):
			ready = false
		case strings.Contains(line, marker):
			ready = true
		}
	}
	return ready
}

// LastLines returns the last n lines of the file at path.
func LastLines(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
