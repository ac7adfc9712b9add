package disk

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func newSim(t *testing.T, seed uint64, volatile ...string) (*Sim, string) {
	t.Helper()
	root := t.TempDir()
	for i := range volatile {
		volatile[i] = filepath.Join(root, volatile[i])
	}
	s, err := NewSim(root, seed, volatile...)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func mustWrite(t *testing.T, f File, b []byte) {
	t.Helper()
	if n, err := f.Write(b); err != nil || n != len(b) {
		t.Fatalf("write = %d, %v", n, err)
	}
}

func restart(t *testing.T, s *Sim) FS {
	t.Helper()
	fs, err := s.Restart()
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// create makes name with content synced (and its directory entry) and
// returns the open file.
func create(t *testing.T, fsys FS, name string, synced []byte) File {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, synced)
	if err := f.Datasync(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir(filepath.Dir(name)); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSimProcessCrashKeepsPageCache: a kill -9 loses nothing written,
// synced or not, and the dead process can do nothing more.
func TestSimProcessCrashKeepsPageCache(t *testing.T) {
	s, root := newSim(t, 1, "run")
	fsys := s.FS()
	name := filepath.Join(root, "log")
	f := create(t, fsys, name, []byte("synced "))
	mustWrite(t, f, []byte("unsynced"))
	if err := fsys.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(fsys, filepath.Join(root, "run", "r"), []byte("x"), 0o600, false); err != nil {
		t.Fatal(err)
	}
	boot := fsys.BootID()
	s.Crash(false)
	if _, err := f.Write([]byte("late")); !errors.Is(err, ErrCrashed) {
		t.Fatalf("write after the crash = %v", err)
	}
	if err := fsys.Atomic(func() error { t.Fatal("Atomic ran after the crash"); return nil }); !errors.Is(err, ErrCrashed) {
		t.Fatalf("Atomic after the crash = %v", err)
	}
	f.Close()
	fsys = restart(t, s)
	if b, err := fsys.ReadFile(name); err != nil || string(b) != "synced unsynced" {
		t.Fatalf("after a process crash: %q, %v", b, err)
	}
	if b, err := fsys.ReadFile(filepath.Join(root, "run", "r")); err != nil || string(b) != "x" {
		t.Fatalf("tmpfs after a process crash: %q, %v", b, err)
	}
	if fsys.BootID() != boot {
		t.Fatal("a process crash changed the boot id")
	}
}

// TestSimPowerLoss: over many seeds a power loss keeps every synced byte
// and entry, and shows each thing an unsynced write may become: lost,
// kept, cut, torn with a hole of zeros; an unsynced creation may vanish;
// tmpfs is emptied and the boot id changes.
func TestSimPowerLoss(t *testing.T) {
	synced := bytes.Repeat([]byte("S"), 700)
	unsynced := bytes.Repeat([]byte("u"), 3000)
	seen := map[string]bool{}
	for seed := range uint64(200) {
		s, root := newSim(t, seed, "run")
		fsys := s.FS()
		name := filepath.Join(root, "log")
		f := create(t, fsys, name, synced)
		mustWrite(t, f, unsynced)
		fresh := filepath.Join(root, "fresh")
		g, err := fsys.OpenFile(fresh, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, g, []byte("data synced, entry not"))
		if err := g.Sync(); err != nil {
			t.Fatal(err)
		}
		_ = fsys.MkdirAll(filepath.Join(root, "run"), 0o755)
		_ = WriteFile(fsys, filepath.Join(root, "run", "r"), []byte("x"), 0o600, true)
		boot := fsys.BootID()
		s.Crash(true)
		f.Close()
		g.Close()
		fsys = restart(t, s)
		if fsys.BootID() == boot {
			t.Fatal("a power loss kept the boot id")
		}
		if _, err := fsys.Stat(filepath.Join(root, "run", "r")); err == nil {
			t.Fatal("tmpfs survived a power loss")
		}
		b, err := fsys.ReadFile(name)
		if err != nil || !bytes.HasPrefix(b, synced) || len(b) > len(synced)+len(unsynced) {
			t.Fatalf("seed %d: synced data damaged: %d bytes, %v", seed, len(b), err)
		}
		tail := b[len(synced):]
		switch {
		case len(tail) == 0:
			seen["lost"] = true
		case bytes.Equal(tail, unsynced):
			seen["kept"] = true
		case bytes.Equal(tail, unsynced[:len(tail)]):
			seen["cut"] = true
		case bytes.Contains(tail, make([]byte, sector)):
			seen["hole"] = true
		}
		if _, err := fsys.Stat(fresh); err != nil {
			seen["vanished"] = true
		}
	}
	for _, k := range []string{"lost", "kept", "cut", "hole", "vanished"} {
		if !seen[k] {
			t.Errorf("no seed showed an unsynced write %s (saw %v)", k, seen)
		}
	}
}

// TestSimSyncedRenameAndRemove: a synced rename and removal survive a
// power loss; an unsynced removal may be undone.
func TestSimSyncedRenameAndRemove(t *testing.T) {
	undone := false
	for seed := range uint64(50) {
		s, root := newSim(t, seed)
		fsys := s.FS()
		a, b, c := filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c")
		create(t, fsys, a, []byte("A")).Close()
		create(t, fsys, c, []byte("C")).Close()
		if err := fsys.Rename(a, b); err != nil {
			t.Fatal(err)
		}
		if err := fsys.SyncDir(root); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Remove(c); err != nil {
			t.Fatal(err)
		}
		s.Crash(true)
		fsys = restart(t, s)
		if _, err := fsys.Stat(a); err == nil {
			t.Fatal("a synced rename was undone")
		}
		if got, err := fsys.ReadFile(b); err != nil || string(got) != "A" {
			t.Fatalf("b = %q, %v", got, err)
		}
		if _, err := fsys.Stat(c); err == nil {
			undone = true
		}
	}
	if !undone {
		t.Error("an unsynced removal was never undone")
	}
}

// TestSimFaults: failed writes and syncs, a full disk's short write, and
// a lying sync that loses data at the next power loss.
func TestSimFaults(t *testing.T) {
	s, root := newSim(t, 7)
	fsys := s.FS()
	name := filepath.Join(root, "log")
	f := create(t, fsys, name, []byte("0123"))
	eio := syscall.EIO
	s.SetFault(Fault{WriteErr: eio})
	if n, err := f.Write([]byte("x")); n != 0 || !errors.Is(err, eio) {
		t.Fatalf("write = %d, %v", n, err)
	}
	s.SetFault(Fault{SyncErr: eio})
	if err := f.Datasync(); !errors.Is(err, eio) {
		t.Fatalf("sync = %v", err)
	}
	s.SetFault(Fault{})
	s.SetSpace(3)
	if n, err := f.Write([]byte("abcde")); n != 3 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write on a full disk = %d, %v", n, err)
	}
	s.SetSpace(-1)
	if err := f.Datasync(); err != nil {
		t.Fatal(err)
	}
	lost := false
	for seed := range uint64(20) {
		s, root := newSim(t, seed)
		s.SetFault(Fault{Lie: func(k SyncKind, p string) bool { return k == SyncFile }})
		fsys := s.FS()
		name := filepath.Join(root, "log")
		create(t, fsys, name, []byte("acknowledged")).Close()
		s.Crash(true)
		fsys = restart(t, s)
		if b, _ := fsys.ReadFile(name); string(b) != "acknowledged" {
			lost = true
		}
	}
	if !lost {
		t.Error("a lying sync never lost data at a power loss")
	}
}

// TestSimOutsideRoot refuses paths outside the simulated disk.
func TestSimOutsideRoot(t *testing.T) {
	s, _ := newSim(t, 1)
	if _, err := s.FS().OpenFile(filepath.Join(t.TempDir(), "x"), os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		t.Fatal("opened a file outside the simulated disk")
	}
}

// TestSimSecondPowerLoss: after a restart the files count as synced, and
// what is written after it is unsynced again (not taken for synced when
// the restarted process first writes).
func TestSimSecondPowerLoss(t *testing.T) {
	lost := false
	for seed := range uint64(20) {
		s, root := newSim(t, seed)
		fsys := s.FS()
		name := filepath.Join(root, "log")
		create(t, fsys, name, []byte("first")).Close()
		s.Crash(true)
		fsys = restart(t, s)
		f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, []byte(" second"))
		s.Crash(true)
		f.Close()
		fsys = restart(t, s)
		b, _ := fsys.ReadFile(name)
		if !bytes.HasPrefix(b, []byte("first")) {
			t.Fatalf("seed %d: synced data lost: %q", seed, b)
		}
		if string(b) == "first" {
			lost = true
		}
	}
	if !lost {
		t.Fatal("an unsynced write after a restart always survived a power loss")
	}
}
