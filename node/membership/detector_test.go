package membership

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

// TestDetector drives one detector through heartbeats and ticks: a peer
// that goes silent is suspected, then declared down, and is alive again
// at its next heartbeat; a peer that keeps beating is never touched; one
// never heard from counts from when watching began.
func TestDetector(t *testing.T) {
	const s = time.Second
	type step struct {
		at   time.Duration
		beat []string // heartbeats at this time
		want string   // the changes of the beats and the tick, "id:from>to" in order
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"a silent peer: suspect, then down, then alive again", []step{
			{at: 1 * s, beat: []string{"a", "b"}},
			{at: 3 * s, beat: []string{"a"}},                          // b silent 2s: not yet
			{at: 4 * s, beat: []string{"a"}, want: "b:alive>suspect"}, // 3s
			{at: 8 * s, beat: []string{"a"}},
			{at: 9 * s, beat: []string{"a"}, want: "b:suspect>down"}, // 8s
			{at: 20 * s, beat: []string{"a"}},
			{at: 21 * s, beat: []string{"a", "b"}, want: "b:down>alive"},
			{at: 23 * s, beat: []string{"a", "b"}},
		}},
		{"one tick can skip suspect", []step{
			{at: 30 * s, want: "a:alive>down b:alive>down"},
		}},
		{"a suspect peer heard again is alive, and suspected afresh", []step{
			{at: 3 * s, want: "a:alive>suspect b:alive>suspect"},
			{at: 4 * s, beat: []string{"b"}, want: "b:suspect>alive"},
			{at: 6 * s, want: ""},
			{at: 7 * s, want: "b:alive>suspect"},
			{at: 8 * s, want: "a:suspect>down"},
		}},
		{"a peer never heard from counts from the watch", []step{
			{at: 2 * s, beat: []string{"a"}},
			{at: 3 * s, beat: []string{"a"}, want: "b:alive>suspect"},
		}},
		{"a late heartbeat does not move the clock back", []step{
			{at: 5 * s, beat: []string{"a", "b"}},
			{at: 2 * s, beat: []string{"a"}}, // reordered
			{at: 7 * s, beat: []string{"b"}, want: ""},
			{at: 8 * s, beat: []string{"b"}, want: "a:alive>suspect"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDetector(3*s, 8*s)
			d.Watch(at(0), "a", "b")
			for i, st := range tc.steps {
				var got []string
				for _, id := range st.beat {
					if c := d.Observe(id, at(st.at)); c != nil {
						got = append(got, fmt.Sprintf("%s:%s>%s", c.ID, c.From, c.To))
					}
				}
				for _, c := range d.Tick(at(st.at)) {
					got = append(got, fmt.Sprintf("%s:%s>%s", c.ID, c.From, c.To))
				}
				if fmt.Sprint(got) != fmt.Sprint(strings.Fields(st.want)) {
					t.Fatalf("step %d (at %v): changes %v, want %v", i, st.at, got, strings.Fields(st.want))
				}
			}
		})
	}
}

func TestDetectorStates(t *testing.T) {
	d := NewDetector(time.Second, 2*time.Second)
	d.Watch(at(0), "a", "b", "c")
	d.Observe("a", at(1500*time.Millisecond))
	d.Observe("b", at(500*time.Millisecond))
	d.Tick(at(2 * time.Second))
	if got := [][]string{d.In(Alive), d.In(Suspect), d.In(Down)}; !slices.Equal(got[0], []string{"a"}) || !slices.Equal(got[1], []string{"b"}) || !slices.Equal(got[2], []string{"c"}) {
		t.Fatalf("alive, suspect, down: %v", got)
	}
	if d.State("n-self") != Alive {
		t.Fatal("a peer not watched must read alive")
	}
	d.Forget("c")
	if d.State("c") != Alive || len(d.In(Down)) != 0 {
		t.Fatal("a forgotten peer is still watched")
	}
	if d.Observe("new", at(3*time.Second)) != nil || d.State("new") != Alive {
		t.Fatal("a peer heard first is watched, alive, with no change")
	}
}

func TestDetectorSilent(t *testing.T) {
	d := NewDetector(3*time.Second, 10*time.Second)
	d.Watch(at(0), "a")
	d.Observe("a", at(2*time.Second))
	if got := d.Silent("a", at(14*time.Second)); got != 12*time.Second {
		t.Fatalf("silent %v, want 12s since the last heartbeat", got)
	}
	if got := d.Silent("self", at(14*time.Second)); got != 0 {
		t.Fatalf("a peer not watched is silent %v", got)
	}
}
