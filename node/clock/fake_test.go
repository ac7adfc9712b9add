package clock

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFakeFiresInDeadlineOrder(t *testing.T) {
	f := NewFake(t0)
	var got []string
	var at []time.Duration
	arm := func(name string, d time.Duration) Timer {
		return f.AfterFunc(d, func() { got = append(got, name); at = append(at, f.Now().Sub(t0)) })
	}
	arm("c", 3*time.Second)
	arm("a", time.Second)
	arm("b1", 2*time.Second)
	arm("b2", 2*time.Second)
	stopped := arm("x", 2500*time.Millisecond)
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop of an armed timer must report true once")
	}
	f.Advance(1500 * time.Millisecond)
	if !slices.Equal(got, []string{"a"}) || f.Now() != t0.Add(1500*time.Millisecond) {
		t.Fatalf("after 1.5s fired %v, now %v", got, f.Now())
	}
	f.Advance(10 * time.Second)
	if !slices.Equal(got, []string{"a", "b1", "b2", "c"}) {
		t.Fatalf("fired %v", got)
	}
	if !slices.Equal(at, []time.Duration{time.Second, 2 * time.Second, 2 * time.Second, 3 * time.Second}) {
		t.Fatalf("each timer must see the clock at its deadline: %v", at)
	}
	if f.Pending() != 0 || f.Now() != t0.Add(11500*time.Millisecond) {
		t.Fatalf("pending %d, now %v", f.Pending(), f.Now())
	}
}

func TestFakeTimerArmedByATimerFiresInTheSameAdvance(t *testing.T) {
	f := NewFake(t0)
	fired := 0
	f.AfterFunc(time.Second, func() {
		f.AfterFunc(time.Second, func() { fired++ })
	})
	f.Advance(2 * time.Second)
	if fired != 1 {
		t.Fatalf("the chained timer fired %d times", fired)
	}
	f.Set(t0) // never back
	if f.Now() != t0.Add(2*time.Second) {
		t.Fatalf("Set moved the clock back to %v", f.Now())
	}
}

func TestFakeTicker(t *testing.T) {
	f := NewFake(t0)
	tk := f.NewTicker(time.Second)
	f.Advance(time.Second)
	select {
	case at := <-tk.C():
		if at != t0.Add(time.Second) {
			t.Fatalf("tick at %v", at)
		}
	default:
		t.Fatal("no tick after one interval")
	}
	f.Advance(5 * time.Second) // a slow reader keeps one tick
	<-tk.C()
	select {
	case <-tk.C():
		t.Fatal("missed ticks must be dropped")
	default:
	}
	tk.Stop()
	f.Advance(5 * time.Second)
	select {
	case <-tk.C():
		t.Fatal("tick after Stop")
	default:
	}
	if f.Pending() != 0 {
		t.Fatalf("%d timers left after the ticker stopped", f.Pending())
	}
}
