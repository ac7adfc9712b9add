package store

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestOnSyncAndFileSizes: every write's batch reports its log sync to
// OnSync, and FileSizes sees the log grow with the writes.
func TestOnSyncAndFileSizes(t *testing.T) {
	var syncs, total atomic.Int64
	opts := DefaultOptions()
	opts.OnSync = func(d time.Duration) {
		syncs.Add(1)
		total.Add(int64(d))
	}
	s, _ := openTest(t, opts)
	db0, wal0 := s.FileSizes()
	if db0 == 0 || wal0 == 0 {
		t.Fatalf("FileSizes of a new store = %d, %d: want both > 0 (the bbolt file and the first segment's header)", db0, wal0)
	}
	for i := range 5 {
		if _, err := s.Update(context.Background(), 1, "k", put(string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if got := syncs.Load(); got < 5 {
		t.Errorf("OnSync called %d times for 5 sequential writes: want >= 5", got)
	}
	if total.Load() <= 0 {
		t.Errorf("OnSync durations sum to %v: want > 0", time.Duration(total.Load()))
	}
	if _, wal := s.FileSizes(); wal <= wal0 {
		t.Errorf("log size %d after 5 writes, %d before: want it to grow", wal, wal0)
	}
}
