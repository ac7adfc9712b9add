package node_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kvmesh/kvmesh/internal/history"
	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/protocol"
)

// The simulation is judged by the fault suite's checker
// (internal/history, notes/reliability.md section 2):
//
//	history.Check: P1 no acknowledged write lost, P2 no phantom or corrupt
//	   value, P3 no resurrection, P5 siblings bounded by the writers of a
//	   hot key, P6 read-your-writes for reads with R+W>N, P7 no superseded
//	   value back. Replicas lost to a wipe are named (Config.Losses).
//	history.Diverged: P4 every key held by none or all N of its owners,
//	   identical on each, and P5 on clocks: actors of its owners only, and
//	   no more of a node than it had incarnations (power losses, wipes and
//	   disk failures each give a node a new actor; a kill -9 does not).
//
// The simulation adds what only it can see: every final R=all read
// succeeds with every node up, the replicas converge within a bound of
// fake time (awaitConvergence) to exactly the object the final read
// returned, no node panics, and the run acknowledged enough writes under
// enough faults to prove something.

// simResult is the outcome of one seed (or, merged, of many).
type simResult struct {
	seed       int64
	seeds      int
	ops        []simOp
	trace      *simTrace
	violations []history.Finding

	nOps, acked, ackedPuts, ackedAdds, ackedDels int
	failed, unknown                              int
	keys                                         int
	divergedBefore                               int // keys whose replicas differed before the final reads
	lost                                         int // P1 violations
	lostPuts                                     int // of which unique-key puts
	maxSiblings                                  int // live siblings of any read
	maxWriters                                   int // writers of a hot key
	crashes                                      int
	newActors                                    int // power losses, wipes and disk failures
	net                                          transport.MemStats
	convergence                                  time.Duration // -1: did not converge
	maxConvergence                               time.Duration
}

func (res *simResult) violate(prop, key, format string, args ...any) {
	res.violations = append(res.violations, history.Finding{Prop: prop, Key: key, Detail: fmt.Sprintf(format, args...)})
}

// judge runs the shared checker over a seed's history and final reads.
func (res *simResult) judge(ops []simOp, finals map[string]history.Final, cfg history.Config) {
	hist := make([]history.Op, len(ops))
	kinds := make(map[int]history.Kind, len(ops))
	for i, op := range ops {
		hist[i] = op.Op
		kinds[op.ID] = op.Kind
	}
	rep := history.Check(hist, finals, cfg)
	res.nOps, res.failed, res.unknown = rep.Ops, rep.Failed, rep.Unknown
	res.acked, res.ackedPuts, res.ackedAdds, res.ackedDels = rep.AckedWrites, rep.AckedPuts, rep.AckedAdds, rep.AckedDel
	res.maxSiblings = rep.MaxSiblings
	res.lost = len(rep.Lost)
	for _, f := range rep.Lost {
		if kinds[f.Op] == history.KindPut {
			res.lostPuts++
		}
	}
	for _, w := range cfg.Writers {
		res.maxWriters = max(res.maxWriters, w)
	}
	res.violations = append(res.violations, rep.Failures()...)
}

// simWriters counts the clients that added to each hot key: the P5 bound
// of its siblings (history.Config.Writers).
func simWriters(ops []simOp) map[string]int {
	writers := make(map[string]map[int]bool)
	for _, op := range ops {
		if op.Kind == history.KindAdd {
			if writers[op.Key] == nil {
				writers[op.Key] = make(map[int]bool)
			}
			writers[op.Key][op.Worker] = true
		}
	}
	out := make(map[string]int, len(writers))
	for key, ws := range writers {
		out[key] = len(ws)
	}
	return out
}

// simFinal is a final read as the checker takes it.
func simFinal(key string, obj *protocol.Object) history.Final {
	live := simLive(obj)
	return history.Final{Key: key, Found: len(live) > 0, Values: live, Siblings: len(live)}
}

func (res *simResult) merge(o *simResult) {
	res.seeds++
	res.nOps += o.nOps
	res.acked += o.acked
	res.ackedPuts += o.ackedPuts
	res.ackedAdds += o.ackedAdds
	res.ackedDels += o.ackedDels
	res.failed += o.failed
	res.unknown += o.unknown
	res.keys += o.keys
	res.divergedBefore += o.divergedBefore
	res.lost += o.lost
	res.lostPuts += o.lostPuts
	res.violations = append(res.violations, o.violations...)
	res.maxSiblings = max(res.maxSiblings, o.maxSiblings)
	res.maxWriters = max(res.maxWriters, o.maxWriters)
	res.crashes += o.crashes
	res.newActors += o.newActors
	res.maxConvergence = max(res.maxConvergence, o.convergence, o.maxConvergence)
	res.net.Requests += o.net.Requests
	res.net.Dropped += o.net.Dropped
	res.net.Cut += o.net.Cut
	res.net.Duplicated += o.net.Duplicated
}

func (res *simResult) summary() string {
	conv := res.convergence
	if res.seeds > 0 {
		conv = res.maxConvergence
	}
	return fmt.Sprintf("%d ops (%d acked writes: %d puts, %d set-adds, %d deletes; %d failed, %d unknown) on %d keys; "+
		"%d crashes (%d power losses, wipes or disk failures); %d msgs, %d dropped, %d cut, %d duplicated; lost %d (%d unique puts); violations %d; "+
		"max siblings %d (max writers %d); %d keys diverged before the final reads, converged %v after",
		res.nOps, res.acked, res.ackedPuts, res.ackedAdds, res.ackedDels, res.failed, res.unknown, res.keys,
		res.crashes, res.newActors, res.net.Requests, res.net.Dropped, res.net.Cut, res.net.Duplicated, res.lost, res.lostPuts, len(res.violations),
		res.maxSiblings, res.maxWriters, res.divergedBefore, conv)
}

// report describes the violations: the seed, the replay command, the
// violations, the nemesis schedule and the history of the keys involved.
// With persist, the whole trace and history also go to a file that
// outlives the test, whose path it names.
func (res *simResult) report(cfg simConfig, persist bool) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "seed %d: %d violations\nreplay: %s\n", res.seed, len(res.violations), simReplay(cfg))
	for _, v := range res.violations[:min(len(res.violations), 20)] {
		fmt.Fprintf(&sb, "  %s\n", v)
	}
	var trace []string
	if res.trace != nil {
		trace = res.trace.snapshot()
	}
	sb.WriteString("nemesis schedule and node warnings:\n")
	for _, l := range trace {
		sb.WriteString("  " + l + "\n")
	}
	seen := make(map[string]bool)
	for _, v := range res.violations {
		if v.Key == "" || seen[v.Key] || len(seen) == 3 {
			continue
		}
		seen[v.Key] = true
		fmt.Fprintf(&sb, "history of %q:\n", v.Key)
		n := 0
		for _, op := range res.ops {
			if op.Key == v.Key {
				if n++; n > 60 {
					sb.WriteString("  ...\n")
					break
				}
				sb.WriteString("  " + op.String() + "\n")
			}
		}
	}
	if !persist {
		return sb.String()
	}
	if dir, err := os.MkdirTemp("", fmt.Sprintf("kvmesh-sim-%d-", res.seed)); err == nil {
		path := filepath.Join(dir, "trace.txt")
		var full strings.Builder
		full.WriteString(sb.String())
		full.WriteString("\nfull history:\n")
		for _, op := range res.ops {
			full.WriteString(op.String() + "\n")
		}
		if os.WriteFile(path, []byte(full.String()), 0o644) == nil {
			fmt.Fprintf(&sb, "full trace and history: %s\n", path)
		}
	}
	return sb.String()
}
