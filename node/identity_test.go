package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/node/store"
	"github.com/kvmesh/kvmesh/protocol"
)

// identityMachine runs startIdentity on a simulated machine whose run
// dir is not tmpfs (so that only the boot id tells a power loss).
type identityMachine struct {
	t      *testing.T
	sim    *disk.Sim
	fs     disk.FS
	db     string
	runDir string
}

func newIdentityMachine(t *testing.T) *identityMachine {
	root := t.TempDir()
	sim, err := disk.NewSim(root, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &identityMachine{t: t, sim: sim, fs: sim.FS(), db: filepath.Join(root, "data", "kvmesh.db"), runDir: filepath.Join(root, "run")}
}

// run opens the store, starts an identity for node id and closes the
// store (cleanly, or not: as a crash leaves it), returning the actor.
func (m *identityMachine) run(id string, clean bool) string {
	m.t.Helper()
	_ = m.fs.MkdirAll(filepath.Dir(m.db), 0o755)
	st, err := store.Open(m.db, store.Options{FS: m.fs})
	if err != nil {
		m.t.Fatal(err)
	}
	actor, _, _, _, err := startIdentity(m.fs, st, id, m.runDir, time.Unix(1765000000, 0))
	if err != nil {
		m.t.Fatal(err)
	}
	if err := protocol.ValidateActorID(actor); err != nil || protocol.ActorNode(actor) != id {
		m.t.Fatalf("actor %q of node %s: %v", actor, id, err)
	}
	if clean {
		_ = st.Close()
	} else {
		m.sim.Crash(false)
		_ = st.Close()
		m.restart()
	}
	return actor
}

func (m *identityMachine) restart() {
	fs, err := m.sim.Restart()
	if err != nil {
		m.t.Fatal(err)
	}
	m.fs = fs
}

// TestIdentity: a node keeps its actor across clean restarts and process
// crashes on the same boot, and takes a new one after a power loss, a
// restore of an older copy of its data dir, a wipe, a failed disk, a
// lost run record, or a store of another node id.
func TestIdentity(t *testing.T) {
	m := newIdentityMachine(t)
	a := m.run("n1", true)
	if b := m.run("n1", true); b != a {
		t.Fatalf("clean restart: actor %s, was %s", b, a)
	}
	if b := m.run("n1", false); b != a {
		t.Fatalf("restart after a kill -9: actor %s, was %s", b, a)
	}
	if b := m.run("n1", true); b != a {
		t.Fatalf("restart after a kill -9: actor %s, was %s", b, a)
	}

	// A power loss: the boot changes, the page cache is gone. Even if the
	// run record happened to reach the disk (here it is synced by hand),
	// the boot id tells.
	for _, name := range mustGlob(t, filepath.Join(m.runDir, "*.run")) {
		f, err := m.fs.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_ = f.Sync()
		f.Close()
	}
	_ = m.fs.SyncDir(m.runDir)
	m.sim.Crash(true)
	m.restart()
	b := m.run("n1", true)
	if b == a {
		t.Fatal("kept the actor after a power loss")
	}
	if c := m.run("n1", true); c != b {
		t.Fatalf("clean restart after the power loss: %s, was %s", c, b)
	}

	// A backup of the data dir, restored after the node ran on.
	backup := t.TempDir()
	copyDir(t, filepath.Dir(m.db), backup)
	c := m.run("n1", true)
	if c != b {
		t.Fatalf("clean restart: %s, was %s", c, b)
	}
	_ = os.RemoveAll(filepath.Dir(m.db))
	copyDir(t, backup, filepath.Dir(m.db))
	m.sim.Crash(false) // the Sim takes the copied files as what the disk holds
	m.restart()
	if d := m.run("n1", true); d == c {
		t.Fatal("a restored copy of the data dir kept the actor")
	}

	// A lost run record.
	e := m.run("n1", true)
	for _, f := range mustGlob(t, filepath.Join(m.runDir, "*.run")) {
		_ = m.fs.Remove(f)
	}
	if f := m.run("n1", true); f == e {
		t.Fatal("kept the actor without a run record")
	}

	// A tainted run record (a disk error in the last run).
	g := m.run("n1", true)
	for _, f := range mustGlob(t, filepath.Join(m.runDir, "*.run")) {
		b, _ := os.ReadFile(f)
		_ = os.WriteFile(f, []byte(strings.Replace(string(b), `"token"`, `"tainted":"EIO","token"`, 1)), 0o600)
	}
	if h := m.run("n1", true); h == g {
		t.Fatal("kept the actor after a disk error")
	}

	// A wiped data dir.
	i := m.run("n1", true)
	_ = os.RemoveAll(filepath.Dir(m.db))
	m.sim.Crash(false)
	m.restart()
	if j := m.run("n1", true); j == i {
		t.Fatal("a wiped data dir kept the actor")
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(to, 0o755)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		t.Fatalf("glob %s: %v %v", pattern, m, err)
	}
	return m
}

// TestSettingsChecked: a store refuses a start with other settings, and
// names the setting.
func TestSettingsChecked(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "kvmesh.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want := settings{Node: "n1", Replicas: 3, Partitions: 256, Prefix: "kvmesh"}
	if err := checkSettings(st, "d", want); err != nil {
		t.Fatal(err)
	}
	if err := checkSettings(st, "d", want); err != nil {
		t.Fatalf("same settings: %v", err)
	}
	for _, c := range []struct {
		s    settings
		name string
	}{
		{settings{"n2", 3, 256, "kvmesh"}, "node id"},
		{settings{"n1", 5, 256, "kvmesh"}, "replicas 3"},
		{settings{"n1", 3, 128, "kvmesh"}, "partitions 256"},
		{settings{"n1", 3, 256, "other"}, "prefix"},
	} {
		err := checkSettings(st, "d", c.s)
		if err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("settings %+v: %v, want an error naming %s", c.s, err, c.name)
		}
	}
}
