package freeport

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

func TestTake(t *testing.T) {
	ports := MustTake(t, 20)
	more, err := Take(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range append(ports, more...) {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < 10000 || p >= ephemeralLow() {
			t.Fatalf("port %d outside 10000..%d", p, ephemeralLow()-1)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d not free: %v", p, err)
		}
		l.Close()
	}
}

// TestPortsOfAnotherProcess: while another process holds ports it took,
// this one never gets them (go test runs test binaries in parallel, and a
// killed node's port must stay free for its restart); once it exits,
// they can be claimed again.
func TestPortsOfAnotherProcess(t *testing.T) {
	if os.Getenv("FREEPORT_CHILD") != "" {
		ports := MustTake(t, 300)
		for _, p := range ports {
			fmt.Println(p)
		}
		fmt.Println("ready")
		_, _ = io.ReadAll(os.Stdin) // hold them until the parent closes stdin
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPortsOfAnotherProcess$")
	cmd.Env = append(os.Environ(), "FREEPORT_CHILD=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	theirs := map[int]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
		if p, err := strconv.Atoi(sc.Text()); err == nil {
			theirs[p] = true
		}
	}
	if len(theirs) != 300 {
		t.Fatalf("the child took %d ports", len(theirs))
	}
	mine, err := Take(3000)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range mine {
		if theirs[p] {
			t.Fatalf("port %d handed to two processes", p)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	for p := range theirs {
		if !claim(p) {
			t.Fatalf("port %d still claimed after its process exited", p)
		}
		break
	}
}
