package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestAdminInvite: invite prints a token as the last line of stdout,
// with flags before or after, and refuses a validity out of bounds or an
// argument as usage errors.
func TestAdminInvite(t *testing.T) {
	n := startNodeIn(t, t.TempDir())
	t.Setenv("KVMESH_URL", n.ClientURL())
	for _, args := range [][]string{
		{"admin", "invite"},
		{"admin", "invite", "--ttl", "10m", "--server", n.ClientURL()},
	} {
		code, out, errs := kvmesh(t, "", args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || !strings.Contains(errs, "valid until") {
			t.Fatalf("%q: %d %q %q", args, code, out, errs)
		}
		st, err := protocol.ParseToken(lines[len(lines)-1])
		if err != nil || st.Token.URLs[0] != n.ClientURL() {
			t.Fatalf("%q: last line %q: %v", args, lines[len(lines)-1], err)
		}
	}
	for _, args := range [][]string{
		{"admin", "invite", "--ttl", "1s"},
		{"admin", "invite", "--ttl", "200h"},
		{"admin", "invite", "--ttl", "soon"},
		{"admin", "invite", "extra"},
		{"admin", "invite", "--prefix", "a b"},
		{"admin", "frobnicate"},
	} {
		if code, out, errs := kvmesh(t, "", args...); code != 2 || errs == "" || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 with a message", args, code, out, errs)
		}
	}
}

// TestNodeJoinUsage: --join without --token on a new data dir, and a
// token that is not one, are usage errors, before anything is written.
func TestNodeJoinUsage(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "--id", "n2", "--data", dir, "--join", "nats-route://127.0.0.1:1"}, "--token"},
		{[]string{"node", "--join", "nats-route://127.0.0.1:1", "--token", "KVMJ1.x.y", "--id", "n2", "--data", dir}, "--token"},
		{[]string{"node", "--id", "n.2", "--data", dir, "--token", validTokenText(t)}, "--id"},
	} {
		code, _, errs := kvmesh(t, "", c.args...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 naming %s", c.args, code, errs, c.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("usage errors left files in the data dir: %v", entries)
	}
}

func validTokenText(t *testing.T) string {
	t.Helper()
	body, _ := protocol.EncodeJoinToken(&protocol.JoinToken{V: protocol.Version, Cluster: "C" + strings.Repeat("A", 55),
		Prefix: "kvmesh", URLs: []string{"nats://127.0.0.1:1"}, Expires: 1, Nonce: make([]byte, protocol.TokenNonceLen)})
	return (&protocol.SignedToken{Body: body, Sig: make([]byte, 64)}).String()
}

// TestJoinFetchesTheSecretFile: a new node's --join and --token fetch
// the store's secret into DATA/secret, owner-only, and add the join URL
// to its peers; on a restart the secret is there and the token is not
// used again.
func TestJoinFetchesTheSecretFile(t *testing.T) {
	n := startNodeIn(t, t.TempDir())
	t.Setenv("KVMESH_URL", n.ClientURL())
	code, out, errs := kvmesh(t, "", "admin", "invite")
	if code != 0 {
		t.Fatalf("invite: %d %q", code, errs)
	}
	token := strings.TrimSpace(out)

	cfg := node.DefaultConfig()
	cfg.ID, cfg.DataDir = "n2", t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(cfg.DataDir, "secret")
	j := joinFlags{url: n.ClusterURL(), token: token + "\n"}
	if err := j.prepare(&cfg, path, true); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(bytes.TrimSpace(b), []byte("kvmesh cmd test secret")) {
		t.Fatalf("secret file: %q %v", b, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v", fi.Mode().Perm())
	}
	if len(cfg.Peers) != 1 || cfg.Peers[0] != n.ClusterURL() {
		t.Errorf("peers %v", cfg.Peers)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "node.nk")); err != nil {
		t.Errorf("no node key made for the request: %v", err)
	}

	// A restart: the token (now unusable) is ignored.
	n.Close()
	cfg.Peers = nil
	j = joinFlags{url: n.ClusterURL(), token: "KVMJ1.not.a-token"}
	if err := j.prepare(&cfg, path, true); err != nil {
		t.Fatalf("restart with a token: %v", err)
	}
	// A given --secret-file wins over a token, even a missing one
	// (LoadSecret then says it is missing).
	if err := j.prepare(&cfg, filepath.Join(t.TempDir(), "s"), false); err != nil {
		t.Fatalf("--secret-file with a token: %v", err)
	}
}
