// Package natscli finds the stock nats CLI for the tests that drive the
// store with it (e2e, examples). Under CI (CI set) it must be there:
// .ci/run installs it; elsewhere a test without it skips loudly.
package natscli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Install is how .ci/run installs the pinned CLI.
const Install = "go install github.com/nats-io/natscli/nats@v0.5.0"

// Find returns the path of the nats CLI, on PATH or in GOPATH/bin; without
// one it fails t under CI and skips it elsewhere.
func Find(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nats"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "nats")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("the nats CLI is missing under CI: .ci/run must install it (" + Install + ")")
	}
	t.Skip("SKIPPED: nats CLI not installed (" + Install + ")")
	return ""
}
