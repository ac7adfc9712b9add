package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/node/clock"
)

// startNode runs a single-node store (N=1) on free ports.
func startNode(t *testing.T) string {
	t.Helper()
	return startNodeIn(t, t.TempDir()).ClientURL()
}

// startNodeIn runs a single-node store (N=1) on free ports with its data
// in dir; the test's cleanup closes it.
func startNodeIn(t *testing.T, dir string, mutate ...func(*node.Config)) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.RunDir = "solo", dir, t.TempDir()
	for _, m := range mutate {
		m(&cfg)
	}
	cfg.Secret = []byte("kvmesh cmd test secret")
	cfg.Listen, cfg.Cluster = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Replicas = 1
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func kvmesh(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestClientCommands(t *testing.T) {
	url := startNode(t)
	t.Setenv("KVMESH_URL", url)
	if code, _, errs := kvmesh(t, "", "put", "user.42", `{"name":"ada"}`); code != 0 {
		t.Fatalf("put: %d %s", code, errs)
	}
	// put replaces by default: no siblings pile up.
	if code, _, errs := kvmesh(t, "", "put", "user.42", `{"name":"ada l."}`, "-w", "one"); code != 0 {
		t.Fatalf("second put: %d %s", code, errs)
	}
	code, out, _ := kvmesh(t, "", "get", "user.42")
	if code != 0 || out != "{\"name\":\"ada l.\"}\n" {
		t.Fatalf("get: %d %q", code, out)
	}
	// --blind makes a sibling; get prints both and the count on stderr.
	if code, _, errs := kvmesh(t, "", "put", "--blind", "user.42", "other"); code != 0 {
		t.Fatalf("blind put: %d %s", code, errs)
	}
	code, out, errs := kvmesh(t, "", "get", "user.42", "--server", url)
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(errs, "siblings: 2") {
		t.Fatalf("get siblings: %d %q %q", code, out, errs)
	}
	if code, _, errs := kvmesh(t, "from stdin", "put", "in", "-"); code != 0 {
		t.Fatalf("put from stdin: %d %s", code, errs)
	}
	if _, out, _ := kvmesh(t, "", "get", "in"); out != "from stdin\n" {
		t.Fatalf("get in: %q", out)
	}
	if code, _, errs := kvmesh(t, "", "del", "user.42"); code != 0 {
		t.Fatalf("del: %d %s", code, errs)
	}
	code, _, errs = kvmesh(t, "", "get", "user.42")
	if code != 3 || errs != "kvmesh get: key not found\n" {
		t.Fatalf("get after del: %d %q", code, errs)
	}
	code, _, errs = kvmesh(t, "", "get", "k", "-r", "most")
	if code != 1 || !strings.Contains(errs, "quorum") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("bad r: %d %q", code, errs)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"get"},
		{"put", "only-key"},
		{"get", "k", "--no-such-flag"},
		{"node", "--id", "n1"},
	} {
		if code, _, errs := kvmesh(t, "", args...); code != 2 || errs == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 with a message", args, code, errs)
		}
	}
	if code, out, _ := kvmesh(t, "", "help"); code != 0 || !strings.Contains(out, "kvmesh dev") || !strings.Contains(out, "Exit status") {
		t.Errorf("help: %d %q", code, out)
	}
}

// TestVerbHelp: every verb's help (kvmesh help VERB, VERB -h) says how
// to call it, shows examples and the exit status, and exits 0.
func TestVerbHelp(t *testing.T) {
	for _, verb := range [][]string{{"put"}, {"get"}, {"del"}, {"status"}, {"dev"}, {"node"},
		{"admin", "quarantine"}, {"admin", "compact"}, {"admin", "invite"}, {"admin", "leave"}, {"admin", "remove"}} {
		for _, args := range [][]string{append([]string{"help"}, verb...), append(append([]string{}, verb...), "-h")} {
			code, out, errs := kvmesh(t, "", args...)
			help := out + errs
			if code != 0 || !strings.Contains(help, "usage: kvmesh "+strings.Join(verb, " ")) ||
				!strings.Contains(help, "Examples:\n  kvmesh ") || !strings.Contains(help, "Exit status: 0 success") {
				t.Errorf("%q: exit %d, help %q", args, code, help)
			}
		}
	}
}

// TestJSONOutput: put, get and del --json print one JSON object each;
// values that are not UTF-8 come as base64.
func TestJSONOutput(t *testing.T) {
	t.Setenv("KVMESH_URL", startNode(t))
	code, out, errs := kvmesh(t, "", "put", "--json", "j", "hello")
	var put struct{ Key, Context string }
	if code != 0 || json.Unmarshal([]byte(out), &put) != nil || put.Key != "j" || put.Context == "" {
		t.Fatalf("put --json: %d %q %q", code, out, errs)
	}
	code, out, errs = kvmesh(t, "", "get", "--json", "j")
	var get struct {
		Key, Context, Node string
		Siblings           int
		Values             []string
	}
	if code != 0 || json.Unmarshal([]byte(out), &get) != nil || get.Key != "j" || get.Context != put.Context ||
		get.Siblings != 1 || len(get.Values) != 1 || get.Values[0] != "hello" || get.Node == "" {
		t.Fatalf("get --json: %d %q %q", code, out, errs)
	}
	if code, _, errs := kvmesh(t, "\xff\x00", "put", "bin", "-"); code != 0 {
		t.Fatalf("put binary: %d %s", code, errs)
	}
	code, out, _ = kvmesh(t, "", "get", "--json", "bin")
	var bin struct {
		Values       []string
		ValuesBase64 [][]byte `json:"values_base64"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &bin) != nil || bin.Values != nil || len(bin.ValuesBase64) != 1 || string(bin.ValuesBase64[0]) != "\xff\x00" {
		t.Fatalf("get --json of a binary value: %d %q", code, out)
	}
	code, out, _ = kvmesh(t, "", "del", "--json", "j")
	if code != 0 || strings.TrimSpace(out) != `{"deleted":true,"key":"j"}` {
		t.Fatalf("del --json: %d %q", code, out)
	}
	if code, out, _ := kvmesh(t, "", "get", "--json", "j"); code != 3 || out != "" {
		t.Fatalf("get --json after del: %d %q", code, out)
	}
}

func TestServerUnreachable(t *testing.T) {
	code, _, errs := kvmesh(t, "", "get", "k", "--server", "nats://127.0.0.1:1", "--timeout", "1s")
	if code != 1 || !strings.Contains(errs, "connect") {
		t.Fatalf("unreachable: %d %q", code, errs)
	}
}

// TestAdminQuarantine: quarantine refuses a running node's store, moves a
// stopped one's aside (printing where), and the node then starts on an
// empty store.
func TestAdminQuarantine(t *testing.T) {
	dir := t.TempDir()
	n := startNodeIn(t, dir)
	t.Setenv("KVMESH_URL", n.ClientURL())
	if code, _, errs := kvmesh(t, "", "put", "k", "v"); code != 0 {
		t.Fatalf("put: %d %s", code, errs)
	}
	code, _, errs := kvmesh(t, "", "admin", "quarantine", "--data", dir)
	if code != 1 || !strings.Contains(errs, "stop its node first") {
		t.Fatalf("quarantine of a running node's store: %d %q", code, errs)
	}
	n.Close()
	code, out, errs := kvmesh(t, "", "admin", "quarantine", "--data", dir)
	if code != 0 || !strings.HasPrefix(out, filepath.Join(dir, "quarantine-")) {
		t.Fatalf("quarantine: %d %q %q", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(out), "kvmesh.db")); err != nil {
		t.Fatalf("the store is not in %s: %v", out, err)
	}
	t.Setenv("KVMESH_URL", startNodeIn(t, dir).ClientURL())
	if code, _, errs := kvmesh(t, "", "get", "k"); code != 3 || !strings.Contains(errs, "not found") {
		t.Fatalf("get after the quarantine: %d %q", code, errs)
	}
	if code, _, _ := kvmesh(t, "", "admin", "quarantine"); code != 2 {
		t.Fatalf("quarantine without --data: exit %d, want 2", code)
	}
}

// TestStatus: kvmesh status prints a line per node and a table of the
// members, or JSON, and exits 0 while every member answers and every
// store is healthy.
func TestStatus(t *testing.T) {
	n := startNodeIn(t, t.TempDir())
	t.Setenv("KVMESH_URL", n.ClientURL())
	code, out, errs := kvmesh(t, "", "status")
	if code != 0 || !strings.HasPrefix(out, "NODE") || !strings.Contains(out, "solo") || !strings.Contains(out, n.Actor()) || !strings.Contains(out, " ok ") {
		t.Fatalf("status: %d %q %q", code, out, errs)
	}
	if !regexp.MustCompile(`(?m)^solo +up +alive +- +256 +- +nats://`).MatchString(out) || !strings.Contains(out, "balance 1.00") {
		t.Fatalf("status shows no member table: %q", out)
	}
	code, out, errs = kvmesh(t, "", "status", "--json")
	var sts []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &sts) != nil || len(sts) != 1 || sts[0]["node"] != "solo" {
		t.Fatalf("status --json: %d %q %q", code, out, errs)
	}
	if code, _, _ := kvmesh(t, "", "status", "extra"); code != 2 {
		t.Fatalf("status with an argument: exit %d, want 2", code)
	}
}

// TestKeygen: keygen writes an owner-only node seed that a node then
// starts with (its status shows the printed public key), and never
// overwrites a key.
func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.nk")
	code, out, errs := kvmesh(t, "", "keygen", path)
	public := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(public, "N") || len(public) != 56 {
		t.Fatalf("keygen: %d %q %q", code, out, errs)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if code, _, errs := kvmesh(t, "", "keygen", path); code != 1 || !strings.Contains(errs, "never overwrites") {
		t.Fatalf("keygen over an existing key: %d %q", code, errs)
	}
	n := startNodeIn(t, t.TempDir(), func(cfg *node.Config) { cfg.KeyFile = path })
	if n.PublicKey() != public {
		t.Fatalf("the node started with key %s, keygen printed %s", n.PublicKey(), public)
	}
}

// TestAdminCompact: compact refuses a running node's store, shrinks a
// stopped one's file, and the node then starts with its data.
func TestAdminCompact(t *testing.T) {
	dir := t.TempDir()
	n := startNodeIn(t, dir)
	t.Setenv("KVMESH_URL", n.ClientURL())
	if code, _, errs := kvmesh(t, "", "put", "k", "v"); code != 0 {
		t.Fatalf("put: %d %s", code, errs)
	}
	if code, _, errs := kvmesh(t, "", "admin", "compact", "--data", dir); code != 1 {
		t.Fatalf("compact of a running node's store: %d %q", code, errs)
	}
	n.Close()
	code, out, errs := kvmesh(t, "", "admin", "compact", "--data", dir)
	if code != 0 || !strings.Contains(out, " bytes -> ") {
		t.Fatalf("compact: %d %q %q", code, out, errs)
	}
	t.Setenv("KVMESH_URL", startNodeIn(t, dir).ClientURL())
	if code, out, errs := kvmesh(t, "", "get", "k"); code != 0 || strings.TrimSpace(out) != "v" {
		t.Fatalf("get after the compaction: %d %q %q", code, out, errs)
	}
	if code, _, _ := kvmesh(t, "", "admin", "compact"); code != 2 {
		t.Fatalf("compact without --data: exit %d, want 2", code)
	}
}

// TestPutTTL: put --ttl gives the value a time to live by the node's
// clock (a fake one here, moved by hand); get -v prints the expiry; a
// bad --ttl is a usage error that writes nothing.
func TestPutTTL(t *testing.T) {
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	n := startNodeIn(t, t.TempDir(), func(cfg *node.Config) { cfg.Clock = clk })
	t.Setenv("KVMESH_URL", n.ClientURL())
	if code, _, errs := kvmesh(t, "", "put", "--ttl", "30s", "session.1", "token"); code != 0 {
		t.Fatalf("put --ttl: %d %s", code, errs)
	}
	code, out, errs := kvmesh(t, "", "get", "-v", "session.1")
	if code != 0 || out != "token\n" || !strings.Contains(errs, "expires: 2030-01-01T00:00:30Z\n") {
		t.Fatalf("get -v: %d %q %q", code, out, errs)
	}
	clk.Advance(30 * time.Second)
	if code, _, errs := kvmesh(t, "", "get", "session.1"); code != 3 || errs != "kvmesh get: key not found\n" {
		t.Fatalf("get after the TTL: %d %q", code, errs)
	}
	// Whole seconds work too; put replaces, so a put without --ttl
	// clears it.
	if code, _, errs := kvmesh(t, "", "put", "session.2", "a", "--ttl", "60"); code != 0 {
		t.Fatalf("put --ttl 60: %d %s", code, errs)
	}
	if code, _, errs := kvmesh(t, "", "put", "session.2", "b"); code != 0 {
		t.Fatalf("put: %d %s", code, errs)
	}
	clk.Advance(time.Hour)
	if code, out, errs := kvmesh(t, "", "get", "-v", "session.2"); code != 0 || out != "b\n" || strings.Contains(errs, "expires") {
		t.Fatalf("get after the old TTL: %d %q %q", code, out, errs)
	}
	for _, bad := range []string{"0", "-1s", "1d", "87601h", ""} {
		if code, _, errs := kvmesh(t, "", "put", "--ttl", bad, "session.3", "x"); code != 2 || !strings.Contains(errs, "ttl") {
			t.Errorf("put --ttl %q: %d %q, want a usage error", bad, code, errs)
		}
	}
	if code, _, _ := kvmesh(t, "", "get", "session.3"); code != 3 {
		t.Fatalf("a refused put wrote: %d", code)
	}
	if code, _, errs := kvmesh(t, "", "get", "--ttl", "30s", "session.1"); code != 2 {
		t.Fatalf("get --ttl: %d %q, want a usage error", code, errs)
	}
}

// TestStatusConflicts: status says when the store runs last-writer-wins,
// and fails (exit 1) when its nodes, or the peers they hear, are in
// different modes; node refuses a mode it does not know.
func TestStatusConflicts(t *testing.T) {
	n := startNodeIn(t, t.TempDir(), func(cfg *node.Config) { cfg.Conflicts = "lww" })
	t.Setenv("KVMESH_URL", n.ClientURL())
	code, out, errs := kvmesh(t, "", "status")
	if code != 0 || !strings.Contains(out, "conflicts: lww") {
		t.Fatalf("status of an lww node: %d %q %q", code, out, errs)
	}
	code, out, _ = kvmesh(t, "", "status", "--json")
	var sts []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &sts) != nil || sts[0]["conflicts"] != "lww" {
		t.Fatalf("status --json: %d %q", code, out)
	}

	for _, tc := range []struct {
		name string
		sts  []client.NodeStatus
		bad  bool
	}{
		{"one mode", []client.NodeStatus{{Node: "n1", Conflicts: "siblings"}, {Node: "n2", Conflicts: "siblings"}}, false},
		{"an older node says nothing", []client.NodeStatus{{Node: "n1", Conflicts: "siblings"}, {Node: "n2"}}, false},
		{"two modes", []client.NodeStatus{{Node: "n1", Conflicts: "lww"}, {Node: "n2", Conflicts: "siblings"}}, true},
		{"a peer heard in another", []client.NodeStatus{{Node: "n1", Conflicts: "lww", OtherConflicts: []string{"n3=siblings"}}}, true},
	} {
		err := checkConflicts(io.Discard, tc.sts, true)
		if (err != nil) != tc.bad {
			t.Errorf("%s: %v", tc.name, err)
		}
		if tc.bad && !strings.Contains(err.Error(), "--conflicts") {
			t.Errorf("%s: %v does not say what to do", tc.name, err)
		}
	}

	if code, _, errs := kvmesh(t, "", "node", "--id", "x", "--data", t.TempDir(), "--conflicts", "newest"); code != 2 || !strings.Contains(errs, "conflicts") {
		t.Fatalf("node --conflicts newest: %d %q", code, errs)
	}
}

// TestLs: ls prints every key with the prefix, in order, one a line and
// nothing else, paging through them; --json gives a JSON object a line;
// a bad flag or a second argument is a usage error (exit 2).
func TestLs(t *testing.T) {
	url := startNode(t)
	t.Setenv("KVMESH_URL", url)
	c, err := client.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var want []string
	for i := range 25 {
		k := fmt.Sprintf("user.%02d", i)
		if _, err := c.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if err := c.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want = append(want, k)
	}
	for _, k := range []string{"user", "a b", "zzz"} {
		if _, err := c.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := kvmesh(t, "", "ls", "user.", "--page", "7")
	if code != 0 || out != strings.Join(want, "\n")+"\n" || errs != "" {
		t.Fatalf("ls user.: %d %q %q", code, out, errs)
	}
	code, out, _ = kvmesh(t, "", "ls")
	if code != 0 || !strings.HasPrefix(out, "a b\nuser\nuser.01\n") || !strings.HasSuffix(out, "user.24\nzzz\n") {
		t.Fatalf("ls: %d %q", code, out)
	}
	code, out, _ = kvmesh(t, "", "ls", "--json", "a")
	var e struct {
		Key      string
		Siblings int
		Context  string
	}
	if code != 0 || strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &e) != nil || e.Key != "a b" || e.Siblings != 1 || e.Context == "" {
		t.Fatalf("ls --json a: %d %q", code, out)
	}
	if code, out, _ := kvmesh(t, "", "ls", "nothing"); code != 0 || out != "" {
		t.Fatalf("ls of no key: %d %q", code, out)
	}
	for _, args := range [][]string{{"ls", "a", "b"}, {"ls", "--page", "0"}, {"ls", "--nope"}} {
		if code, _, _ := kvmesh(t, "", args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
