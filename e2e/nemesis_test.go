package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// nemesis injects one kind of fault into a running cluster until ctx is
// done, then heals everything it did (restarts killed nodes, continues
// paused ones, removes partitions) before it returns. It runs on its own
// goroutine, which the fault run starts and waits for; it never calls
// t.Fatal, it returns an error.
type nemesis func(ctx context.Context, env *faultEnv) error

// faultEnv is what a nemesis acts on.
type faultEnv struct {
	c         *procCluster
	lab       *netLab // partition only
	rnd       *rand.Rand
	hotOwners map[string][]string // hot key -> ids of its owners
	sched     *schedule
	soak      bool
}

// schedule is the nemesis log of a run: what was done when (seconds
// since the run began, the history's time base) and how many faults.
type schedule struct {
	t0     time.Time
	mu     sync.Mutex
	lines  []string
	faults int
}

func (s *schedule) logf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, fmt.Sprintf("%8.3fs  %s", time.Since(s.t0).Seconds(), fmt.Sprintf(format, args...)))
}

// fault logs an injected fault and counts it.
func (s *schedule) fault(format string, args ...any) {
	s.mu.Lock()
	s.faults++
	s.mu.Unlock()
	s.logf("FAULT "+format, args...)
}

func (s *schedule) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n") + "\n"
}

func (s *schedule) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// sleepCtx sleeps d, or less when ctx ends first; it reports whether it
// slept the whole d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// around returns d ± spread, uniformly.
func (e *faultEnv) around(d, spread time.Duration) time.Duration {
	return d - spread + time.Duration(e.rnd.Int64N(int64(2*spread)+1))
}

// between returns a duration in [lo, hi], uniformly.
func (e *faultEnv) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(e.rnd.Int64N(int64(hi-lo)+1))
}

// startAll launches the given killed nodes together and waits until all
// serve.
func (e *faultEnv) startAll(ps ...*proc) error {
	for _, p := range ps {
		if err := e.c.launch(p); err != nil {
			return err
		}
	}
	var errs []error
	for _, p := range ps {
		if err := e.c.waitReady(p, 40*time.Second); err != nil {
			errs = append(errs, err)
			continue
		}
		e.sched.logf("restarted %s (pid %d) on its data dir, serving", p.id, p.pid())
	}
	return errors.Join(errs...)
}

// nemesisKill9: every 5 s ± 2 s, kill -9 a random node and restart it on
// the same data dir 1-3 s later. At most one node is down at a time.
func nemesisKill9(ctx context.Context, e *faultEnv) error {
	for {
		if !sleepCtx(ctx, e.around(5*time.Second, 2*time.Second)) {
			return nil
		}
		p := e.c.procs[e.rnd.IntN(len(e.c.procs))]
		pid := p.pid()
		e.c.kill(p)
		e.sched.fault("kill -9 %s (pid %d)", p.id, pid)
		sleepCtx(ctx, e.between(time.Second, 3*time.Second)) // restart at once when the run ends
		if err := e.startAll(p); err != nil {
			return err
		}
	}
}

// ownerPair returns the two nodes that own the most hot keys together,
// and those keys.
func (e *faultEnv) ownerPair() ([]*proc, []string) {
	count := map[[2]string][]string{}
	for key, owners := range e.hotOwners {
		for i := range owners {
			for j := i + 1; j < len(owners); j++ {
				pair := [2]string{owners[i], owners[j]}
				count[pair] = append(count[pair], key)
			}
		}
	}
	var best [2]string
	for pair, keys := range count {
		if len(keys) > len(count[best]) || len(keys) == len(count[best]) && pair[0]+pair[1] < best[0]+best[1] {
			best = pair
		}
	}
	keys := count[best]
	slices.Sort(keys)
	return []*proc{e.c.byID(best[0]), e.c.byID(best[1])}, keys
}

// nemesisKill9Double: two owners of hot keys kill -9'd at the same moment
// and kept down together for 5 s ± 1 s, then restarted together. Without
// sloppy quorum and hints, writes to keys both own cannot reach W=2:
// availability drops, and no acknowledged write may be lost.
func nemesisKill9Double(ctx context.Context, e *faultEnv) error {
	pair, keys := e.ownerPair()
	e.sched.logf("kill9-double pair %s,%s owns hot keys %v", pair[0].id, pair[1].id, keys)
	for {
		if !sleepCtx(ctx, e.between(time.Second, 3*time.Second)) {
			return nil
		}
		pids := []int{pair[0].pid(), pair[1].pid()}
		for _, p := range pair {
			e.c.kill(p)
		}
		e.sched.fault("kill -9 %s and %s together (pids %v)", pair[0].id, pair[1].id, pids)
		sleepCtx(ctx, e.around(5*time.Second, time.Second))
		if err := e.startAll(pair...); err != nil {
			return err
		}
	}
}

// nemesisPause: SIGSTOP a random node for 2-8 s, then SIGCONT; a pause
// every 1-2 s after the last one ended.
func nemesisPause(ctx context.Context, e *faultEnv) error {
	for {
		if !sleepCtx(ctx, e.between(time.Second, 2*time.Second)) {
			return nil
		}
		p := e.c.procs[e.rnd.IntN(len(e.c.procs))]
		d := e.between(2*time.Second, 8*time.Second)
		if err := e.c.pause(p); err != nil {
			return err
		}
		e.sched.fault("SIGSTOP %s (pid %d) for %.1fs", p.id, p.pid(), d.Seconds())
		sleepCtx(ctx, d) // continue at once when the run ends
		if err := e.c.resume(p); err != nil {
			return err
		}
		e.sched.logf("SIGCONT %s", p.id)
	}
}

// A partition pattern over a random permutation of the nodes: which node
// can no longer exchange packets with which.
type pattern func(perm []int) (string, map[int][]int)

// cutGroups makes every node of a unable to talk with every node of b.
func cutGroups(a, b []int) map[int][]int {
	m := map[int][]int{}
	for _, x := range a {
		for _, y := range b {
			m[x] = append(m[x], y)
			m[y] = append(m[y], x)
		}
	}
	return m
}

func names(c *procCluster, idx []int) string {
	var s []string
	for _, i := range idx {
		s = append(s, c.procs[i].id)
	}
	return strings.Join(s, ",")
}

// nemesisPartition rotates three partitions, each held 5-10 s (5 s in a
// short run) and healed for 3-5 s: isolate one node; split 2|3; and a
// non-transitive bridge, where two groups cannot talk but one node talks
// with both (1↔2↔3 with 1↮3). NATS routes are a one-hop full mesh, so in
// the bridge some coordinator→replica paths break while others work.
func nemesisPartition(ctx context.Context, e *faultEnv) (err error) {
	c := e.c
	patterns := []pattern{
		func(p []int) (string, map[int][]int) {
			return "isolate " + names(c, p[:1]) + " | " + names(c, p[1:]), cutGroups(p[:1], p[1:])
		},
		func(p []int) (string, map[int][]int) {
			return "split " + names(c, p[:2]) + " | " + names(c, p[2:]), cutGroups(p[:2], p[2:])
		},
		func(p []int) (string, map[int][]int) {
			return "bridge " + names(c, p[:2]) + " <-> " + names(c, p[2:3]) + " <-> " + names(c, p[3:]) + " (" + names(c, p[:2]) + " cut from " + names(c, p[3:]) + ")",
				cutGroups(p[:2], p[3:])
		},
	}
	defer func() {
		if herr := e.lab.heal(); herr != nil {
			err = errors.Join(err, herr)
		} else {
			e.sched.logf("healed: nft rules removed")
		}
	}()
	hold, gap := func() time.Duration { return 5 * time.Second }, func() time.Duration { return 3 * time.Second }
	if e.soak {
		hold = func() time.Duration { return e.between(5*time.Second, 10*time.Second) }
		gap = func() time.Duration { return e.between(3*time.Second, 5*time.Second) }
	}
	for i := 0; ; i++ {
		if !sleepCtx(ctx, time.Second) {
			return nil
		}
		name, blocked := patterns[i%len(patterns)](e.rnd.Perm(len(c.procs)))
		if err := e.lab.cut(blocked); err != nil {
			return err
		}
		e.sched.fault("partition: %s", name)
		sleepCtx(ctx, hold())
		if err := e.lab.heal(); err != nil {
			return err
		}
		e.sched.logf("healed")
		if !sleepCtx(ctx, gap()) {
			return nil
		}
	}
}

// byID returns the node with id.
func (c *procCluster) byID(id string) *proc {
	for _, p := range c.procs {
		if p.id == id {
			return p
		}
	}
	return nil
}

// nemesisWipe: every 6 s ± 2 s, kill -9 one node, chosen once per run,
// remove its whole data dir, and restart it under the same id on the
// empty dir 1-2 s later: a replaced disk. The node must take a new actor
// (else its writes would reuse dots its peers hold, finding 1 of issue
// 15), and it refills from its peers by read repair. Only that node is
// ever wiped, so every acknowledged write keeps a replica on a node that
// was not; the run does not claim read-your-writes (a read may meet the
// wiped replica and one that missed the write).
func nemesisWipe(ctx context.Context, e *faultEnv) error {
	p := e.c.procs[e.rnd.IntN(len(e.c.procs))]
	e.sched.logf("wipe victim %s", p.id)
	for {
		if !sleepCtx(ctx, e.around(6*time.Second, 2*time.Second)) {
			return nil
		}
		pid := p.pid()
		e.c.kill(p)
		if err := os.RemoveAll(p.dir); err != nil {
			return err
		}
		e.sched.fault("kill -9 %s (pid %d) and remove its data dir", p.id, pid)
		sleepCtx(ctx, e.between(time.Second, 2*time.Second))
		if err := e.startAll(p); err != nil {
			return err
		}
	}
}

// nemesisDiskFull: fill one node's data file system (a small tmpfs, see
// clusterOpts.dataFS) until writes fail with ENOSPC, wait until the node
// logs that its store failed (it then forwards the writes it coordinates
// and serves reads), hold it so for 3-5 s, then free the space, kill -9
// it and restart it: it must start (a short write is a torn tail, not
// corruption) and have lost nothing it acknowledged. Every 4 s ± 1 s
// after the last restart, a random node.
func nemesisDiskFull(ctx context.Context, e *faultEnv) error {
	for {
		if !sleepCtx(ctx, e.around(4*time.Second, time.Second)) {
			return nil
		}
		p := e.c.procs[e.rnd.IntN(len(e.c.procs))]
		logBefore := logSize(p)
		fill := filepath.Join(p.dir, "fill")
		n, err := fillDisk(fill)
		if err != nil {
			return err
		}
		e.sched.fault("filled %s's data file system (%d MiB of filler)", p.id, n>>20)
		failed := awaitLog(ctx, p, logBefore, "STORE FAILED", 20*time.Second)
		if failed {
			e.sched.logf("%s logged STORE FAILED", p.id)
			sleepCtx(ctx, e.between(3*time.Second, 5*time.Second))
		} else if ctx.Err() == nil {
			_ = os.Remove(fill)
			return fmt.Errorf("%s did not log STORE FAILED within 20s of its disk filling up", p.id)
		}
		if err := os.Remove(fill); err != nil {
			return err
		}
		pid := p.pid()
		e.c.kill(p)
		e.sched.logf("freed the space; kill -9 %s (pid %d)", p.id, pid)
		if err := e.startAll(p); err != nil {
			return err
		}
	}
}

// fillDisk writes zeros to name until the file system is full and
// returns how many bytes it wrote.
func fillDisk(name string) (int64, error) {
	f, err := os.Create(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		m, err := f.Write(buf)
		n += int64(m)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func logSize(p *proc) int64 {
	fi, err := os.Stat(p.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// awaitLog waits until p's log, past offset from, holds s; false after
// timeout or when ctx ends.
func awaitLog(ctx context.Context, p *proc, from int64, s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(p.logPath); err == nil && int64(len(b)) > from && strings.Contains(string(b[from:]), s) {
			return true
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return false
		}
	}
	return false
}

// membershipSettle bounds each step of a membership change of the
// nemesis: a join until every node holds the new members up, a removal
// or a leave until the command says it is done and every node agrees. A
// removal waits for the failure detector to hold the dead node down
// (10 heartbeats) before its partitions are copied.
const membershipSettle = 90 * time.Second

// nemesisMembership changes the members while the load runs, as an
// operator does, through the kvmesh binary. Each round, 1-3 s after the
// last change settled, it joins new nodes (kvmesh admin invite on a
// random member, then kvmesh node --join that member's route URL --token,
// each on a fresh data dir and its own ports) and waits until every node
// holds them up; 1-3 s later it takes as many random members out and
// waits until that has settled too. A member is taken out by kill -9 and
// kvmesh admin remove, or by kvmesh admin leave. Rounds alternate between
// two nodes at once (two join with one token; then one is removed while
// another leaves, concurrently) and one (removed or left, in turn, the
// first chosen by the seed). Two at once matter: with one change a
// partition gains at most one new owner, so a quorum read always meets
// an old owner, and a new owner that copied nothing would go unnoticed;
// with two, some partitions have two new owners of three. The store
// keeps 5 to 7 members. A change once begun is carried to its end (each
// step within membershipSettle) even when the run ends meanwhile: that
// is the nemesis's heal.
func nemesisMembership(ctx context.Context, e *faultEnv) error {
	remove := e.rnd.IntN(2) == 0
	for round := 0; ; round++ {
		if !sleepCtx(ctx, e.between(time.Second, 3*time.Second)) {
			return nil
		}
		k := 2 - round%2
		if err := e.joinSome(k); err != nil {
			return err
		}
		if !sleepCtx(ctx, e.between(time.Second, 3*time.Second)) {
			return nil
		}
		how := []bool{true, false} // one removed, one leaves
		if k == 1 {
			how, remove = []bool{remove}, !remove
		}
		if err := e.takeOut(how); err != nil {
			return err
		}
	}
}

// joinSome joins k new nodes, with one token, through a random member
// and waits until the store has settled with them up.
func (e *faultEnv) joinSome(k int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*membershipSettle)
	defer cancel()
	live := e.c.live()
	via := live[e.rnd.IntN(len(live))]
	token, err := e.c.invite(ctx, via)
	if err != nil {
		return err
	}
	e.sched.fault("kvmesh admin invite on %s; %d new node(s) join through it", via.id, k)
	var ids []string
	for range k {
		p, err := e.c.join(via, token)
		if err != nil {
			return err
		}
		ids = append(ids, p.id)
		e.sched.logf("%s (pid %d) started with --join %s --token, serving", p.id, p.pid(), via.routeURL())
	}
	if err := e.c.awaitSettled(ctx, membershipSettle); err != nil {
		return err
	}
	e.sched.logf("every node holds %s up, no transfer", strings.Join(ids, ","))
	return nil
}

// takeOut takes len(how) random members out at once, each by kill -9 and
// kvmesh admin remove (true) or kvmesh admin leave (false), the commands
// sent to another member and run concurrently, then waits until the
// store has settled without them.
func (e *faultEnv) takeOut(how []bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*membershipSettle)
	defer cancel()
	live := e.c.live()
	perm := e.rnd.Perm(len(live))
	out, via := make([]*proc, len(how)), live[perm[len(how)]]
	for i := range how {
		out[i] = live[perm[i]]
	}
	for i, p := range out {
		if how[i] {
			pid := p.pid()
			e.c.kill(p)
			e.sched.fault("kill -9 %s (pid %d), then kvmesh admin remove %s on %s", p.id, pid, p.id, via.id)
		} else {
			e.sched.fault("kvmesh admin leave %s on %s", p.id, via.id)
		}
	}
	errs := make([]error, len(out))
	var wg sync.WaitGroup
	for i, p := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if how[i] {
				if errs[i] = e.c.remove(ctx, p, via, membershipSettle); errs[i] == nil {
					e.sched.logf("kvmesh admin remove %s printed %s", p.id, p.id)
				}
			} else if errs[i] = e.c.leave(ctx, p, via, membershipSettle); errs[i] == nil {
				e.sched.logf("kvmesh admin leave %s printed %s; its process exited", p.id, p.id)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := e.c.awaitSettled(ctx, membershipSettle); err != nil {
		return err
	}
	var ids []string
	for _, p := range out {
		ids = append(ids, p.id)
	}
	e.sched.logf("every node holds %s left, no transfer", strings.Join(ids, ","))
	return nil
}
