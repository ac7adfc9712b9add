package node

import (
	"path/filepath"
	"testing"

	"github.com/kvmesh/kvmesh/node/store"
)

// TestHintBookKeepsAHintWrittenDuringItsDelivery: a hint whose count
// moved since the handoff read it (a hinted write noted meanwhile) is not
// forgotten; a write is acknowledged only once its hint is durable; a
// partition with a hinted write under way, or a hint, is busy.
func TestHintBookKeepsAHintWrittenDuringItsDelivery(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "kvmesh.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := loadHints(st)
	if err != nil {
		t.Fatal(err)
	}
	k := hintKey{p: 7, owner: "n2"}
	b.begin(7)
	if !b.busy(7) || b.busy(8) {
		t.Fatal("a hinted write under way does not make its partition busy")
	}
	acked := make(chan error, 2)
	b.note(k, func(err error) { acked <- err })
	select {
	case err := <-acked:
		t.Fatalf("acknowledged (%v) before the hint was durable", err)
	default:
	}
	b.write(st)
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if hs, _ := st.Hints(); len(hs) != 1 || hs[0] != (store.Hint{Partition: 7, Owner: "n2"}) {
		t.Fatalf("store holds %v", hs)
	}
	seq, ok := b.seq(k)
	if !ok {
		t.Fatal("a durable hint is not held")
	}
	b.begin(7)
	b.note(k, func(err error) { acked <- err }) // during the delivery
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if b.forget(k, seq) {
		t.Fatal("a hint that took a write during its delivery was forgotten")
	}
	seq, _ = b.seq(k)
	if !b.forget(k, seq) {
		t.Fatal("a delivered hint was not forgotten")
	}
	b.write(st)
	if hs, _ := st.Hints(); len(hs) != 0 || b.busy(7) {
		t.Fatalf("after delivery the store holds %v, busy %v", hs, b.busy(7))
	}
}
