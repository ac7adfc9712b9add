// Package freeport hands out loopback TCP ports that are free, for the
// tests and the benchmark that must know a server's ports before starting
// it: every node's route URL goes into the others' configuration, and a
// node restarted after a kill -9 must find its ports still free.
//
// Ports are picked at random below the kernel's ephemeral range, which
// outgoing connections (routes, clients, a node's own connection) take
// their local ports from, so no connection of this machine can take one
// before its server listens. No port is handed out twice in one process,
// nor to two processes picking the same way at once (go test runs the
// packages' test binaries in parallel): each port handed out is claimed
// with a lock on a file named after it (claim), held until the process
// exits, so a port that a killed node frees for its restart is not taken
// by another test binary meanwhile. Safe for concurrent use.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Take returns n distinct loopback TCP ports that were free a moment ago
// and were never handed out before in this process.
func Take(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	lo, hi := 10000, ephemeralLow()-1
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 10000 {
			return nil, fmt.Errorf("freeport: no free loopback port in %d..%d", lo, hi)
		}
		p := lo + rand.IntN(hi-lo+1)
		if portsUsed[p] {
			continue
		}
		if !claim(p) {
			portsUsed[p] = true // another process's: never ours
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		portsUsed[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}

// T is the part of testing.TB that MustTake uses (this package is linked
// into the binary through the benchmark, which must not import testing).
type T interface {
	Helper()
	Fatal(args ...any)
}

// MustTake is Take for a test: it fails t when no port is free.
func MustTake(t T, n int) []int {
	t.Helper()
	ports, err := Take(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// The ports handed out so far: one process-wide registry, as the ports
// themselves are machine-wide.
var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range (Linux
// default 32768), or 32768 where it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil && lo > 11000 {
				return lo
			}
		}
	}
	return 32768
}
