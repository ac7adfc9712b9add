package node

import (
	"path/filepath"
	"testing"

	"github.com/kvmesh/kvmesh/node/store"
)

// TestIncarnationChangesOnlyAfterAnUncleanStop: a clean close keeps the
// actor, a crash (no clean mark) takes a new one, every time.
func TestIncarnationChangesOnlyAfterAnUncleanStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	run := func(clean bool) uint64 {
		t.Helper()
		st, err := store.Open(path, store.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		inc, err := startIncarnation(st)
		if err != nil {
			t.Fatal(err)
		}
		if clean {
			err = st.CloseWithMeta(metaClean, []byte{1})
		} else {
			err = st.Close() // as after kill -9: the running mark stays
		}
		if err != nil {
			t.Fatal(err)
		}
		return inc
	}
	for i, step := range []struct {
		clean bool
		want  uint64
	}{{true, 0}, {true, 0}, {false, 0}, {true, 1}, {false, 1}, {false, 2}, {true, 3}, {true, 3}} {
		if got := run(step.clean); got != step.want {
			t.Fatalf("run %d: incarnation %d, want %d", i, got, step.want)
		}
	}
}
