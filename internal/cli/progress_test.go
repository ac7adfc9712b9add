package cli

import (
	"strings"
	"testing"
	"time"
)

// TestProgressOffTerminal: off a terminal there is no bar and no
// redrawing, and a plain line at most every Interval.
func TestProgressOffTerminal(t *testing.T) {
	var out strings.Builder
	p := NewProgress(&out)
	now := time.Unix(1000, 0)
	p.now = func() time.Time { return now }
	p.Update(1, 10, "one")
	p.Update(2, 10, "two") // within the interval: not written
	now = now.Add(p.Interval)
	p.Update(3, 10, "three")
	p.Log("a log line")
	p.Done()
	if got, want := out.String(), "one\nthree\na log line\n"; got != want {
		t.Fatalf("wrote %q, want %q", got, want)
	}
	out.Reset()
	p.Interval = 0
	now = now.Add(time.Hour)
	p.Update(4, 10, "four")
	if out.Len() != 0 {
		t.Fatalf("Interval 0 wrote %q", out.String())
	}
}

// TestProgressOnTerminal: on a terminal the line is redrawn in place with
// a bar, a log line goes above it, and Done ends it.
func TestProgressOnTerminal(t *testing.T) {
	var out strings.Builder
	p := NewProgress(&out)
	p.tty = true
	p.Update(5, 10, "half")
	p.Log("logged")
	p.Done()
	p.Done() // once only
	bar := "[" + strings.Repeat("#", 15) + strings.Repeat(".", 15) + "]"
	want := "\r" + bar + " half\033[K" + "\rlogged\033[K\n" + bar + " half" + "\n"
	if got := out.String(); got != want {
		t.Fatalf("wrote %q, want %q", got, want)
	}
	if Bar(20, 10) != "["+strings.Repeat("#", 30)+"]" || Bar(-1, 10) != "["+strings.Repeat(".", 30)+"]" {
		t.Fatalf("bars out of range: %q %q", Bar(20, 10), Bar(-1, 10))
	}
}
