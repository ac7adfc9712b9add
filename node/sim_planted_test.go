//go:build kvmesh_planted

package node_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/node"
)

func plantEarlyAck(cfg *node.Config) { cfg.UnsafeEarlyAck = 300 * time.Millisecond }

// TestSimCatchesEarlyAck proves the checker can fail: with the planted
// durability bug (replicas acknowledge before their commit, which comes
// 300ms later) the same scenario must lose acknowledged writes, and P1
// must say so, for at least one of a handful of seeds. It counts only
// unique-key puts, which nothing but a lost commit can make disappear.
// (Under the planted bug set-adds are lost even without a crash: the
// node's dot issuer takes the early acknowledgement for the commit and
// issues the key's next write from the committed state, reusing a dot.)
// The nemesis's isolate-one-then-crash-two fault crashes two owners of a
// key right after they acknowledged a put that the third owner, cut off,
// never saw.
func TestSimCatchesEarlyAck(t *testing.T) {
	seeds := []int64{1, 2, 3, 4, 5}
	if s := os.Getenv("KVMESH_SIM_SEED"); s != "" {
		seeds = simSeeds(t)
	}
	caught := 0
	for _, seed := range seeds {
		cfg := simConfigFor(seed)
		cfg.earlyAck = true
		cfg.faultTime = 15 * time.Second
		// Every write waits for the 300ms commit delay, so it takes more
		// clients to have unique keys acknowledged inside the window.
		cfg.clients = 12
		res := runSim(t, cfg)
		t.Logf("seed %d with UnsafeEarlyAck: %s", seed, res.summary())
		if res.lostPuts > 0 {
			caught++
			if caught == 1 {
				lines := strings.Split(res.report(cfg, false), "\n")
				t.Logf("what a failing seed reports (first lines):\n%s", strings.Join(lines[:min(len(lines), 7)], "\n"))
			}
		}
	}
	if caught == 0 {
		t.Fatalf("no seed of %v lost an acknowledged write with UnsafeEarlyAck: the checker cannot catch the planted bug", seeds)
	}
}
