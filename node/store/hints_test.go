package store

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestHintsSurviveReopen: hints put are there after Close and Open,
// deleted ones are not, and putting one twice keeps one.
func TestHintsSurviveReopen(t *testing.T) {
	s, path := openTest(t, Options{})
	if hs, err := s.Hints(); err != nil || len(hs) != 0 {
		t.Fatalf("a new store holds hints %v, %v", hs, err)
	}
	if err := s.PutHints(Hint{7, "n2"}, Hint{7, "n3"}, Hint{300, "n2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutHints(Hint{7, "n2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteHints(Hint{7, "n3"}, Hint{9, "n9"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs, err := s.Hints()
	if want := []Hint{{7, "n2"}, {300, "n2"}}; err != nil || !slices.Equal(hs, want) {
		t.Fatalf("after reopen: hints %v, %v; want %v", hs, err, want)
	}
	if err := s.PutHints(Hint{7, "bad id"}); err == nil {
		t.Fatal("a hint naming no node id was stored")
	}
}

// TestDropPartitionAfter: the step runs after the cut and before the
// deletes, sees every record the drop deletes, and a write committed
// during it survives the drop; a step that fails deletes nothing.
func TestDropPartitionAfter(t *testing.T) {
	s, _ := openTest(t, Options{})
	before := keyValues("a", 50, func(k string) string { return "v-" + k })
	writeAll(t, s, dropP, before)
	var seen map[string]string
	n, err := s.DropPartitionAfter(context.Background(), dropP, func(context.Context) error {
		seen = contents(t, s, dropP)
		writeAll(t, s, dropP, map[string]string{"late": "l", "a00003": "rewritten"})
		return nil
	})
	if err != nil || n != len(before)-1 {
		t.Fatalf("dropped %d, %v; want %d", n, err, len(before)-1)
	}
	if len(seen) != len(before) {
		t.Fatalf("the step saw %d records, want %d", len(seen), len(before))
	}
	checkPartition(t, s, dropP, map[string]string{"late": "l", "a00003": "rewritten"}, "after the drop")

	errStop := errors.New("stop")
	_, err = s.DropPartitionAfter(context.Background(), dropP, func(context.Context) error { return errStop })
	if !errors.Is(err, errStop) {
		t.Fatalf("a failed step gives %v", err)
	}
	checkPartition(t, s, dropP, map[string]string{"late": "l", "a00003": "rewritten"}, "after a failed step")
}
