package main

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/kvmesh/kvmesh/internal/freeport"
)

// TestDevHTTPPortTaken: kvmesh dev whose HTTP port is taken exits 1 and
// says which port and how to choose another.
func TestDevHTTPPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ports := freeport.MustTake(t, 2)
	code, _, stderr := kvmesh(t, "", "dev", "--nodes", "1", "--data", t.TempDir(), "--http", ln.Addr().String(),
		"--port", strconv.Itoa(ports[0]), "--cluster-port", strconv.Itoa(ports[1]))
	if code != 1 || !strings.Contains(stderr, ln.Addr().String()+" is taken") || !strings.Contains(stderr, "--http") {
		t.Fatalf("exit %d, stderr %q: want 1 and the taken port named with --http", code, stderr)
	}
}
