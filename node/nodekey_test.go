package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmesh/kvmesh/node/disk"
)

// TestNodeKey: the node's key pair is made once, owner-only, and the
// same on every later start; a key file others may read, or one that
// holds no node seed, or a given one that is missing, is refused.
func TestNodeKey(t *testing.T) {
	fsys := disk.OS{}
	dir := t.TempDir()
	path := filepath.Join(dir, keyFileName)
	kp, created, err := loadKey(fsys, path, true)
	if err != nil || !created {
		t.Fatalf("first load: created %v, %v", created, err)
	}
	pub, _ := kp.PublicKey()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	kp2, created, err := loadKey(fsys, path, true)
	if err != nil || created {
		t.Fatalf("second load: created %v, %v", created, err)
	}
	if pub2, _ := kp2.PublicKey(); pub2 != pub || !strings.HasPrefix(pub, "N") {
		t.Fatalf("the key changed between starts: %s then %s", pub, pub2)
	}
	sig, _ := kp2.Sign([]byte("hello"))
	if err := kp.Verify([]byte("hello"), sig); err != nil {
		t.Fatalf("the reloaded key signs differently: %v", err)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadKey(fsys, path, true); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("a world-readable key: %v", err)
	}
	other := filepath.Join(dir, "other.nk")
	if err := os.WriteFile(other, []byte("SUAnotaseed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadKey(fsys, other, false); err == nil || !strings.Contains(err.Error(), "no node seed") {
		t.Fatalf("a file without a node seed: %v", err)
	}
	if _, _, err := loadKey(fsys, filepath.Join(dir, "missing.nk"), false); err == nil {
		t.Fatal("a missing key file given by the operator was created")
	}
}
