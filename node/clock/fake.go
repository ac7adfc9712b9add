package clock

import (
	"slices"
	"sync"
	"time"
)

// Fake is a Clock that moves only when Advance or Set moves it. Timers
// fire, in deadline order, inside the call that moves the clock past
// their deadline; a function a timer runs may arm more timers, and those
// fire in the same call if they are due. A Fake is safe for concurrent
// use.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64 // arming order, to fire timers of one deadline in order
	timers []*fakeTimer
}

var _ Clock = (*Fake)(nil)

// NewFake returns a Fake that reads start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// AfterFunc arms a timer that runs fn once the clock has moved d past now
// (at once, on the next move, for d <= 0).
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	t := &fakeTimer{f: f, at: f.now.Add(d), seq: f.seq, fn: fn}
	f.timers = append(f.timers, t)
	return t
}

// NewTicker returns a ticker that ticks every d of fake time.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive ticker interval")
	}
	t := &fakeTicker{c: make(chan time.Time, 1)}
	var arm func()
	arm = func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.stopped {
			return
		}
		select {
		case t.c <- f.Now():
		default:
		}
		t.timer = f.AfterFunc(d, arm)
	}
	t.mu.Lock()
	t.timer = f.AfterFunc(d, arm)
	t.mu.Unlock()
	return t
}

// Advance moves the clock d forward, firing the timers that fall due on
// the way, each with the clock set to its deadline.
func (f *Fake) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the clock to t (never back), firing the timers due by then.
func (f *Fake) Set(t time.Time) {
	for {
		f.mu.Lock()
		i := f.next(t)
		if i < 0 {
			if t.After(f.now) {
				f.now = t
			}
			f.mu.Unlock()
			return
		}
		tm := f.timers[i]
		f.timers = slices.Delete(f.timers, i, i+1)
		if tm.at.After(f.now) {
			f.now = tm.at
		}
		tm.fired = true
		f.mu.Unlock()
		tm.fn()
	}
}

// next is the index of the earliest timer due by t, or -1.
func (f *Fake) next(t time.Time) int {
	best := -1
	for i, tm := range f.timers {
		if tm.at.After(t) {
			continue
		}
		if best < 0 || tm.at.Before(f.timers[best].at) || tm.at.Equal(f.timers[best].at) && tm.seq < f.timers[best].seq {
			best = i
		}
	}
	return best
}

// Pending returns how many timers are armed and not yet fired.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

type fakeTimer struct {
	f     *Fake
	at    time.Time
	seq   uint64
	fn    func()
	fired bool // under f.mu
}

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	if t.fired {
		return false
	}
	i := slices.Index(t.f.timers, t)
	if i < 0 {
		return false
	}
	t.f.timers = slices.Delete(t.f.timers, i, i+1)
	t.fired = true
	return true
}

type fakeTicker struct {
	c       chan time.Time
	mu      sync.Mutex
	timer   Timer
	stopped bool
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }

func (t *fakeTicker) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	if t.timer != nil {
		t.timer.Stop()
	}
}
