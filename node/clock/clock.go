// Package clock is a node's time seam: the wall clock, one-shot timers and
// tickers, real (Real) or advanced by hand in tests (Fake). Node code
// reads time and arms timers only through a Clock, so a test can make a
// timeout, a hedge or a heartbeat happen without sleeping.
package clock

import "time"

// Clock tells the time and arms timers. Implementations are safe for
// concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine (Real) or in the goroutine
	// that advances the clock past the deadline (Fake), once d has
	// passed, unless the timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
	// NewTicker returns a ticker that sends the time on its channel every
	// d, dropping ticks a slow reader misses. d must be positive.
	NewTicker(d time.Duration) Ticker
}

// Timer is a timer armed by AfterFunc.
type Timer interface {
	// Stop prevents the timer from firing; it reports whether it did
	// (false when the timer already fired or was stopped).
	Stop() bool
}

// Ticker delivers ticks until it is stopped.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Real is the operating system's clock.
type Real struct{}

var _ Clock = Real{}

func (Real) Now() time.Time { return time.Now() }

func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }
