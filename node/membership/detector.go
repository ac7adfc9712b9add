// Package membership decides who is in the ring and who answers now: the
// member records, signed with the cluster's key, and their merge into a
// Set that every node agrees on without a leader (records.go), and the
// failure detector (detector.go). The node does not run on records yet:
// its member set is still the grow-only list of ids that gossip carries
// (issue 17 moves it onto them).
//
// It is pure: no goroutines, no I/O, no clock. Time comes in as an
// argument; the node feeds it heartbeats and ticks and acts on what it
// returns.
package membership

import (
	"cmp"
	"slices"
	"time"
)

// State is what a node's detector believes of a peer now.
type State uint8

const (
	// Alive: heard from within SuspectAfter.
	Alive State = iota + 1
	// Suspect: silent for SuspectAfter; may be slow, paused or cut off.
	// It is still asked (it may answer), but after the alive ones.
	Suspect
	// Down: silent for DownAfter. It keeps its place in the ring (repair,
	// and hints once they exist, cover it); reads and forwarded writes
	// ask it last.
	Down
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Down:
		return "down"
	}
	return "unknown"
}

// Change is one peer's move from one state to another.
type Change struct {
	ID       string
	From, To State
	// Silent is how long the peer had not been heard from, for a move
	// to Suspect or Down.
	Silent time.Duration
}

// Detector is a timeout failure detector with a suspicion step, in the
// manner of SWIM's: a peer heard from (any heartbeat) is
// Alive; one silent for SuspectAfter becomes Suspect, and for DownAfter
// Down; a heartbeat brings it back to Alive at once. A peer never heard
// from counts from when the detector started watching it, so a node that
// starts while a peer is down marks it Down after DownAfter, not at
// once.
//
// A Detector is owned by one goroutine (or a lock); its methods cost
// O(peers) at most and never block.
type Detector struct {
	suspectAfter, downAfter time.Duration
	peers                   map[string]*peer
}

type peer struct {
	last  time.Time // last heard, or when watching began
	state State
}

// NewDetector returns a detector that suspects a peer silent for
// suspectAfter and declares it down after downAfter (> suspectAfter).
func NewDetector(suspectAfter, downAfter time.Duration) *Detector {
	if downAfter <= suspectAfter {
		downAfter = suspectAfter + 1
	}
	return &Detector{suspectAfter: suspectAfter, downAfter: downAfter, peers: map[string]*peer{}}
}

// Watch starts watching ids (the members) as of now, Alive until they
// stay silent; ids already watched keep their state. It returns no
// changes: a new peer starts Alive.
func (d *Detector) Watch(now time.Time, ids ...string) {
	for _, id := range ids {
		if d.peers[id] == nil {
			d.peers[id] = &peer{last: now, state: Alive}
		}
	}
}

// Forget stops watching id (it left the ring).
func (d *Detector) Forget(id string) { delete(d.peers, id) }

// Observe records that id was heard from at now. It returns the change
// when id was Suspect or Down (now Alive again), else nothing. A peer not
// watched yet is watched from now on.
func (d *Detector) Observe(id string, now time.Time) *Change {
	p := d.peers[id]
	if p == nil {
		d.peers[id] = &peer{last: now, state: Alive}
		return nil
	}
	if now.After(p.last) {
		p.last = now
	}
	if p.state == Alive {
		return nil
	}
	c := &Change{ID: id, From: p.state, To: Alive}
	p.state = Alive
	return c
}

// Tick moves the peers that have been silent too long, as of now, and
// returns the moves in id order.
func (d *Detector) Tick(now time.Time) []Change {
	var out []Change
	for id, p := range d.peers {
		silent := now.Sub(p.last)
		want := Alive
		switch {
		case silent >= d.downAfter:
			want = Down
		case silent >= d.suspectAfter:
			want = Suspect
		}
		if want > p.state { // only Observe moves a peer back up
			out = append(out, Change{ID: id, From: p.state, To: want, Silent: silent})
			p.state = want
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// State returns what the detector believes of id; a peer it does not
// watch is Alive (the node itself, say).
func (d *Detector) State(id string) State {
	if p := d.peers[id]; p != nil {
		return p.state
	}
	return Alive
}

// Silent returns how long id has been silent as of now: zero for a peer
// not watched (the node itself, say).
func (d *Detector) Silent(id string, now time.Time) time.Duration {
	if p := d.peers[id]; p != nil && now.After(p.last) {
		return now.Sub(p.last)
	}
	return 0
}

// In returns the watched peers in state s, sorted.
func (d *Detector) In(s State) []string {
	var out []string
	for id, p := range d.peers {
		if p.state == s {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
