package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// IsTerminal reports whether w is a terminal (a character device).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Progress reports how far a long operation (a compaction, a member's
// transfers, a benchmark) has got. On a terminal it is one line redrawn
// in place, with a bar when the total is known; anywhere else (a log
// file, a pipe, a test) it draws no bar and writes a plain line at most
// every Interval, so a log shows the operation alive without filling up.
// It is a dozen lines: a progress-bar library (schollz/progressbar) would
// bring its own terminal handling for no more than this needs. Safe for
// concurrent use.
type Progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	Interval time.Duration // between plain lines (0: none); NewProgress sets 10s
	last     time.Time
	drawn    bool   // a redrawn line is on the terminal
	line     string // the line drawn
	now      func() time.Time
}

// NewProgress returns a Progress writing to w (usually stderr).
func NewProgress(w io.Writer) *Progress {
	return &Progress{w: w, tty: IsTerminal(w), Interval: 10 * time.Second, now: time.Now}
}

// barWidth is the width of a bar, in characters.
const barWidth = 30

// Bar returns a bar of done out of total (total > 0).
func Bar(done, total int64) string {
	filled := 0
	if total > 0 {
		filled = int(barWidth * min(max(done, 0), total) / total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled) + "]"
}

// Update shows the operation at done of total (total <= 0: unknown, no
// bar) with the line msg.
func (p *Progress) Update(done, total int64, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		if total > 0 {
			msg = Bar(done, total) + " " + msg
		}
		fmt.Fprintf(p.w, "\r%s\033[K", msg)
		p.drawn, p.line = true, msg
		return
	}
	now := p.now()
	if p.Interval <= 0 || !p.last.IsZero() && now.Sub(p.last) < p.Interval {
		return
	}
	p.last = now
	fmt.Fprintln(p.w, msg)
}

// Done ends the redrawn line, if one was drawn, so what follows starts on
// a line of its own.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// Log writes line (without its newline) as a line of its own, above the
// redrawn line on a terminal, which it then draws again.
func (p *Progress) Log(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.drawn {
		fmt.Fprintln(p.w, line)
		return
	}
	fmt.Fprintf(p.w, "\r%s\033[K\n%s", line, p.line)
}
