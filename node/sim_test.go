package node_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmesh/kvmesh/internal/history"
	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// The simulation tier (notes/reliability.md section 6, T1): five nodes,
// N=3, over the in-memory transport inside a testing/synctest bubble, so
// half a minute of fake time takes a few seconds. Per seed,
// clients drive a bounded workload through Node.Get/Put/Delete while a
// nemesis drawn from the same seed drops, delays, duplicates and reorders
// messages, partitions the network and crashes and restarts nodes. Then
// everything heals, every key is read with R=all, the replicas must
// converge, and the fault suite's checkers (internal/history, see
// sim_check_test.go) judge the history.
//
// Replay is best-effort: the seed fixes every random choice, but Go
// schedules goroutines as it likes, so the interleaving may differ.
//
//	KVMESH_SIM_SEEDS=200 go test -race -run 'TestSim$' ./node/   # more seeds (soak)
//	KVMESH_SIM_SEED=1234 go test -race -run 'TestSim$' -v ./node/ # one seed
//	KVMESH_SIM_KNOWN_BUGS=1 go test -run 'TestSim' ./node/        # also the scripted known bugs
//
// By default each run takes 20 consecutive seeds from a random base, so
// successive runs explore new schedules; a failure names its seed.

// simContextKey seals and opens causal contexts as the nodes do.
var simContextKey, _ = protocol.NewContextKey(testSecret, protocol.DefaultPrefix)

const (
	simNodes        = 5
	simReplicas     = 3
	simWriteQuorum  = simReplicas/2 + 1 // what w=0 asks for: a majority
	simDefaultSeeds = 20
	simOpTimeout    = 3 * time.Second // client-side bound on every call
	simRequestTO    = time.Second     // node.Config.RequestTimeout
)

// simAPI is what a client calls: a node's client API (simCall), with the
// clocks of the causal contexts opened so that the checks can read them.
type simAPI interface {
	Get(ctx context.Context, key string, r int) (*protocol.Object, error)
	Put(ctx context.Context, key string, value []byte, cctx protocol.Clock, w int) (protocol.Clock, error)
	Delete(ctx context.Context, key string, cctx protocol.Clock, w int) (protocol.Clock, error)
}

// simCall is simAPI over node.Call, the client API every real client goes
// through (quorums as text, contexts sealed by the store and opened
// again), as a client in another process would see it: a read's object
// holds its live values and its clock, no dots.
type simCall struct {
	n   *node.Node
	key *protocol.ContextKey // the store secret's, to seal and open contexts
}

func (c simCall) call(ctx context.Context, it protocol.ClientItem) (protocol.ClientResult, protocol.Clock, error) {
	if it.Quorum == "0" {
		it.Quorum = "" // the default: a majority
	}
	r, err := c.n.Call(ctx, it)
	if err != nil {
		return r, nil, err
	}
	clock, cerr := c.key.Open(it.Key, r.Context)
	if cerr != nil {
		return r, nil, fmt.Errorf("the node gave a context it cannot open: %w", cerr)
	}
	return r, clock, r.Error()
}

func (c simCall) Get(ctx context.Context, key string, r int) (*protocol.Object, error) {
	res, clock, err := c.call(ctx, protocol.ClientItem{Op: protocol.BatchGet, Key: key, Quorum: strconv.Itoa(r)})
	if errors.Is(err, protocol.ErrKeyNotFound) {
		err = nil // absent, or deleted: the clock says which
	}
	if err != nil || clock == nil {
		return nil, err
	}
	obj := &protocol.Object{Clock: clock}
	for _, v := range res.Values {
		obj.Siblings = append(obj.Siblings, protocol.Sibling{Value: v})
	}
	return obj, nil
}

func (c simCall) Put(ctx context.Context, key string, value []byte, cctx protocol.Clock, w int) (protocol.Clock, error) {
	_, clock, err := c.call(ctx, protocol.ClientItem{Op: protocol.BatchPut, Key: key, Value: value, Quorum: strconv.Itoa(w), Context: c.key.Seal(key, cctx)})
	return clock, err
}

func (c simCall) Delete(ctx context.Context, key string, cctx protocol.Clock, w int) (protocol.Clock, error) {
	_, clock, err := c.call(ctx, protocol.ClientItem{Op: protocol.BatchDel, Key: key, Quorum: strconv.Itoa(w), Context: c.key.Seal(key, cctx)})
	return clock, err
}

type simConfig struct {
	seed      int64
	faultTime time.Duration // load and faults; then heal and check
	clients   int
	hotKeys   int
	earlyAck  bool // node.Config.UnsafeEarlyAck on every node: the planted bug
}

func simConfigFor(seed int64) simConfig {
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	return simConfig{
		seed:      seed,
		faultTime: 30 * time.Second,
		clients:   6,
		hotKeys:   3 + rng.IntN(3),
	}
}

// simSeeds returns the seeds to run: KVMESH_SIM_SEED alone, or
// KVMESH_SIM_SEEDS (default 20) consecutive seeds from a random base.
func simSeeds(t *testing.T) []int64 {
	if s := os.Getenv("KVMESH_SIM_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("KVMESH_SIM_SEED=%q: %v", s, err)
		}
		return []int64{seed}
	}
	n := simDefaultSeeds
	if s := os.Getenv("KVMESH_SIM_SEEDS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("KVMESH_SIM_SEEDS=%q: want a positive number", s)
		}
	}
	base := rand.Int64N(1 << 40)
	seeds := make([]int64, n)
	for i := range seeds {
		seeds[i] = base + int64(i)
	}
	return seeds
}

// TestSim runs the simulation for many seeds and fails on any checker
// violation, printing the seed, the replay command and the trace.
func TestSim(t *testing.T) {
	seeds := simSeeds(t)
	var mu sync.Mutex
	var total simResult
	t.Run("seeds", func(t *testing.T) {
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Parallel()
				res := runSim(t, simConfigFor(seed))
				t.Log(res.summary())
				mu.Lock()
				total.merge(res)
				mu.Unlock()
				if len(res.violations) > 0 {
					t.Error(res.report(simConfigFor(seed), true))
				}
			})
		}
	})
	t.Logf("%d seeds (%d..%d): %s", len(seeds), seeds[0], seeds[len(seeds)-1], total.summary())
}

// simNode is one node slot: the running instance of an id, if any, and
// the simulated machine its files live on.
type simNode struct {
	n     *node.Node
	ep    transport.Transport
	up    bool
	epoch int // incremented by each crash
	disk  *disk.Sim
}

// simRun is the state of one seed's run inside its bubble.
type simRun struct {
	t     testing.TB
	cfg   simConfig
	start time.Time
	net   *transport.MemNetwork
	ids   []string
	base  string
	hist  *simHistory
	trace *simTrace

	stop     chan struct{} // closed to stop the clients
	stopOnce sync.Once
	clients  sync.WaitGroup

	mu        sync.Mutex
	nodes     map[string]*simNode
	crashes   int
	powerLoss int            // crashes that lost power too, wipes and disk failures: each may add an actor
	newActors map[string]int // the same, per node
	wipes     []int64        // when data dirs were wiped (history.Config.Losses)
}

// runSim runs one seed in a fresh bubble and returns the checkers'
// verdict. Data dirs live on tmpfs when the machine has one: the
// simulation's crashes are modelled by snapshots (see crash), so fsync
// buys nothing here and costs most of the run time.
func runSim(t *testing.T, cfg simConfig) *simResult {
	base := simTempDir(t)
	var res *simResult
	synctest.Test(t, func(t *testing.T) {
		r := newSimRun(t, cfg, base)
		defer r.closeAll()
		res = r.run()
	})
	return res
}

// newSimRun returns the state of a run of five nodes, none started yet.
// It must be called inside the run's bubble.
func newSimRun(t testing.TB, cfg simConfig, base string) *simRun {
	r := &simRun{
		t: t, cfg: cfg, start: time.Now(), base: base,
		net:       transport.NewMemNetwork(cfg.seed),
		hist:      &simHistory{},
		nodes:     make(map[string]*simNode),
		newActors: make(map[string]int),
		stop:      make(chan struct{}),
	}
	r.trace = &simTrace{start: r.start}
	for i := range simNodes {
		r.ids = append(r.ids, fmt.Sprintf("n%d", i+1))
	}
	return r
}

func simTempDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "kvmesh-sim-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

func (r *simRun) now() time.Duration { return time.Since(r.start) }

func (r *simRun) run() *simResult {
	for _, id := range r.ids {
		if err := r.startNode(id); err != nil {
			r.t.Fatalf("seed %d: start %s: %v", r.cfg.seed, id, err)
		}
	}
	for c := range r.cfg.clients {
		cl := &simClient{r: r, id: c + 1, rng: rand.New(rand.NewPCG(uint64(r.cfg.seed), uint64(c)+100))}
		r.clients.Go(func() { cl.run(r.stop) })
	}
	r.nemesis(rand.New(rand.NewPCG(uint64(r.cfg.seed), 2)))
	r.stopClients()

	// Heal everything, restart every node, let in-flight work settle.
	r.net.Heal()
	r.net.SetFaults(transport.MemFaults{})
	r.trace.add("nemesis: heal all, faults off, load stopped")
	for _, id := range r.ids {
		if !r.isUp(id) {
			r.restart(id)
		}
	}
	time.Sleep(3 * time.Second)

	res := &simResult{seed: r.cfg.seed, crashes: r.crashes, newActors: r.powerLoss, net: r.net.Stats()}
	// Every key written (reads of absent keys need no final read).
	ops := r.hist.snapshot()
	written := make(map[string]bool)
	for i := range r.cfg.hotKeys {
		written[fmt.Sprintf("hot%d", i)] = true
	}
	for _, op := range ops {
		if op.Kind != history.KindRead {
			written[op.Key] = true
		}
	}
	keys := slices.Sorted(maps.Keys(written))
	res.keys = len(keys)
	res.divergedBefore = simKeysOf(history.Diverged(keys, r.dumpAll(keys), simReplicas, r.incarnations()))
	objs := r.finalReads(keys, res)
	held := r.awaitConvergence(keys, res)
	finals := make(map[string]history.Final, len(keys))
	for _, key := range keys {
		obj, ok := objs[key]
		if !ok {
			finals[key] = history.Final{Key: key, Err: "no final read succeeded"}
			continue
		}
		finals[key] = simFinal(key, obj)
		// P4: the replicas converged to what the final read returned.
		if o := held[key]; !version.Equal(obj, o) {
			res.violate("P4", key, "replicas converged to %s, the final read returned %s", history.ObjectString(o), history.ObjectString(obj))
		}
	}
	r.mu.Lock()
	losses := slices.Clone(r.wipes)
	r.mu.Unlock()
	res.judge(ops, finals, history.Config{Writers: simWriters(ops), Strict: true, Losses: losses})
	for _, l := range r.trace.snapshot() {
		if strings.Contains(l, "panic") {
			res.violate("panic", "", "%s", l)
		}
	}
	// A run that acknowledged little or injected no fault proves nothing.
	if !r.cfg.earlyAck && res.acked < 100 {
		res.violate("validity", "", "only %d acknowledged writes", res.acked)
	}
	if res.crashes == 0 || res.net.Dropped+res.net.Cut == 0 {
		res.violate("validity", "", "no fault injected: %d crashes, %d messages lost", res.crashes, res.net.Dropped+res.net.Cut)
	}
	res.trace = r.trace
	res.ops = ops
	return res
}

// finalReads reads every key with R=all, retrying a bounded number of
// times; the reads repair the replicas that answered stale. A key whose
// reads all failed is missing from the result.
func (r *simRun) finalReads(keys []string, res *simResult) map[string]*protocol.Object {
	final := make(map[string]*protocol.Object, len(keys))
	rng := rand.New(rand.NewPCG(uint64(r.cfg.seed), 3))
	for _, key := range keys {
		var err error
		for attempt := 0; attempt < 20; attempt++ {
			_, n, _ := r.pick(rng)
			ctx, cancel := context.WithTimeout(context.Background(), simOpTimeout)
			var obj *protocol.Object
			// The node's Go API, not the client's: the read's object,
			// dots and all, is compared with the replicas'.
			obj, err = n.(simCall).n.Get(ctx, key, simReplicas)
			cancel()
			if err == nil {
				final[key] = obj
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			res.violate("P4", key, "final R=all read failed 20 times with every node up and no faults: %v", err)
		}
	}
	return final
}

// awaitConvergence polls, for at most 30s of fake time, until the
// replicas of every key have converged (history.Diverged), and returns
// what each key's replicas hold then (nil: none holds it).
func (r *simRun) awaitConvergence(keys []string, res *simResult) map[string]*protocol.Object {
	const deadline = 30 * time.Second
	begin := r.now()
	for {
		dumps := r.dumpAll(keys)
		divs := history.Diverged(keys, dumps, simReplicas, r.incarnations())
		if len(divs) == 0 || r.now()-begin > deadline {
			if len(divs) == 0 {
				res.convergence = r.now() - begin
			} else {
				res.convergence = -1
				for _, d := range divs[:min(len(divs), 20)] {
					res.violate("P4", d.Key, "not converged within %v: %s", deadline, d.Detail)
				}
				if len(divs) > 20 {
					res.violate("P4", "", "%d more divergences", len(divs)-20)
				}
			}
			held := make(map[string]*protocol.Object, len(keys))
			for _, key := range keys {
				if h := history.Holders(dumps, key); len(h) > 0 {
					held[key] = dumps[h[0]][key]
				}
			}
			return held
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dumpAll returns what every node's own replica holds of keys.
func (r *simRun) dumpAll(keys []string) history.Dumps {
	r.mu.Lock()
	defer r.mu.Unlock()
	dumps := make(history.Dumps, len(r.ids))
	for _, id := range r.ids {
		m := make(map[string]*protocol.Object, len(keys))
		for _, key := range keys {
			o, err := r.nodes[id].n.Replica(key)
			if err != nil {
				r.t.Errorf("seed %d: replica %q on %s: %v", r.cfg.seed, key, id, err)
			}
			m[key] = o
		}
		dumps[id] = m
	}
	return dumps
}

// incarnations is how many actors each node may have issued dots under:
// one, plus one per power loss, wipe and disk failure (node/identity.go).
func (r *simRun) incarnations() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]int, len(r.ids))
	for _, id := range r.ids {
		m[id] = 1 + r.newActors[id]
	}
	return m
}

// simKeysOf counts the keys that divergences name.
func simKeysOf(divs []history.Divergence) int {
	keys := make(map[string]bool)
	for _, d := range divs {
		keys[d.Key] = true
	}
	return len(keys)
}

// pick returns a random live node, its id and its epoch, for a call.
func (r *simRun) pick(rng *rand.Rand) (string, simAPI, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var up []string
	for _, id := range r.ids {
		if r.nodes[id].up {
			up = append(up, id)
		}
	}
	id := up[rng.IntN(len(up))]
	return id, simCall{n: r.nodes[id].n, key: simContextKey}, r.nodes[id].epoch
}

// crashedSince reports whether node id crashed after epoch.
func (r *simRun) crashedSince(id string, epoch int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes[id].epoch != epoch
}

func (r *simRun) isUp(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes[id] != nil && r.nodes[id].up
}

func (r *simRun) down() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, id := range r.ids {
		if !r.nodes[id].up {
			out = append(out, id)
		}
	}
	return out
}

func (r *simRun) randomKey(rng *rand.Rand) string {
	if rng.IntN(3) == 0 {
		return fmt.Sprintf("hot%d", rng.IntN(r.cfg.hotKeys))
	}
	// A unique key some client may have written: reads of absent keys
	// are fine too.
	return fmt.Sprintf("u%d.%d", 1+rng.IntN(r.cfg.clients), 1+rng.IntN(int(r.now()/(20*time.Millisecond))+1))
}

func (r *simRun) dataDir(id string) string { return filepath.Join(r.base, id, "data") }
func (r *simRun) runDir(id string) string  { return filepath.Join(r.base, id, "run") }

func (r *simRun) nodeConfig(id string, ep transport.Transport, fsys disk.FS) node.Config {
	cfg := node.DefaultConfig()
	cfg.ID = id
	cfg.DataDir = r.dataDir(id)
	cfg.RunDir = r.runDir(id)
	cfg.FS = fsys
	cfg.Secret = testSecret
	cfg.Transport = ep
	cfg.Members = r.ids
	// The checker holds every R + W > N read to read its writes (P6),
	// which a sloppy quorum does not promise: the dedicated tests cover it.
	cfg.StrictQuorum = true
	cfg.Replicas = simReplicas
	cfg.RequestTimeout = simRequestTO
	if r.cfg.earlyAck {
		plantEarlyAck(&cfg)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(r.trace, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cfg
}

// startNode starts id with a fresh endpoint on its data dir, on the
// machine the slot has (a new one for a new slot).
func (r *simRun) startNode(id string) error {
	r.mu.Lock()
	sn := r.nodes[id]
	if sn == nil {
		d, err := disk.NewSim(filepath.Join(r.base, id), uint64(r.cfg.seed)*1000+uint64(len(r.nodes)), r.runDir(id))
		if err != nil {
			r.mu.Unlock()
			return err
		}
		sn = &simNode{disk: d}
		r.nodes[id] = sn
	}
	r.mu.Unlock()
	ep := r.net.Endpoint(id)
	n, err := node.New(r.nodeConfig(id, ep, sn.disk.FS()))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	sn.n, sn.ep, sn.up = n, ep, true
	r.mu.Unlock()
	return nil
}

func (r *simRun) restart(id string) {
	if err := r.startNode(id); err != nil {
		r.t.Fatalf("seed %d: restart %s: %v\nreplay: %s", r.cfg.seed, id, err, simReplay(r.cfg))
	}
	r.trace.add("nemesis: restart %s", id)
}

// crash kills the given nodes at one instant: as kill -9 would (the
// page cache keeps what they wrote), or with power, as a power loss would
// (their disks keep only what was synced, the rest torn at random; tmpfs
// is emptied and the boot changes). A graceful Close alone would commit
// every write the store had accepted, which is not what a crash does:
// the simulated disk refuses everything the dead process does.
func (r *simRun) crash(power bool, ids ...string) {
	var victims []*simNode
	r.mu.Lock()
	for _, id := range ids {
		sn := r.nodes[id]
		sn.up = false
		sn.epoch++
		victims = append(victims, sn)
	}
	r.crashes += len(ids)
	if power {
		r.powerLoss += len(ids)
		for _, id := range ids {
			r.newActors[id]++
		}
	}
	r.mu.Unlock()
	// The disks first: that is the instant of the crash (closing an
	// endpoint waits for its handlers, and the dying node must not write
	// anything meanwhile).
	for _, sn := range victims {
		sn.disk.Crash(power)
	}
	for _, sn := range victims {
		_ = sn.ep.Close() // no message in or out from now on
	}
	for i, sn := range victims {
		_ = sn.n.Close()
		if _, err := sn.disk.Restart(); err != nil {
			r.t.Fatalf("seed %d: crash %s: %v", r.cfg.seed, ids[i], err)
		}
	}
	kind := "crash"
	if power {
		kind = "power loss"
	}
	r.trace.add("nemesis: %s %s", kind, strings.Join(ids, "+"))
}

// breakDisk makes id's disk fail every sync (EIO) or, if full, refuse
// to grow: its store stops taking writes, and the node goes on serving
// reads and forwarding writes.
func (r *simRun) breakDisk(id string, full bool) {
	r.mu.Lock()
	sn := r.nodes[id]
	r.powerLoss++ // its next run takes a new actor
	r.newActors[id]++
	r.mu.Unlock()
	if full {
		sn.disk.SetSpace(0)
		r.trace.add("nemesis: disk of %s full", id)
		return
	}
	sn.disk.SetFault(disk.Fault{SyncErr: syscall.EIO})
	r.trace.add("nemesis: disk of %s fails every sync", id)
}

// mend clears id's disk fault (the node is down).
func (r *simRun) mend(id string) {
	r.mu.Lock()
	sn := r.nodes[id]
	r.mu.Unlock()
	sn.disk.SetFault(disk.Fault{})
	sn.disk.SetSpace(-1)
	r.trace.add("nemesis: disk of %s mended", id)
}

// wipe crashes id and empties its data dir, as a replaced disk or an
// operator's rm -rf would, for a restart under the same id.
func (r *simRun) wipe(id string) {
	r.crash(false, id)
	r.mu.Lock()
	sn := r.nodes[id]
	r.powerLoss++
	r.newActors[id]++
	r.wipes = append(r.wipes, int64(r.now()))
	r.mu.Unlock()
	fsys := sn.disk.FS()
	entries, err := fsys.ReadDir(r.dataDir(id))
	if err != nil {
		r.t.Fatalf("seed %d: wipe %s: %v", r.cfg.seed, id, err)
	}
	for _, e := range entries {
		if err := fsys.Remove(filepath.Join(r.dataDir(id), e.Name())); err != nil {
			r.t.Fatalf("seed %d: wipe %s: %v", r.cfg.seed, id, err)
		}
	}
	if err := fsys.SyncDir(r.dataDir(id)); err != nil {
		r.t.Fatalf("seed %d: wipe %s: %v", r.cfg.seed, id, err)
	}
	r.trace.add("nemesis: wipe %s", id)
}

// stopClients stops the load and waits for every client to return.
func (r *simRun) stopClients() {
	r.stopOnce.Do(func() { close(r.stop) })
	r.clients.Wait()
}

// closeAll stops the clients and closes every node that is up: the
// bubble may end only once every goroutine has.
func (r *simRun) closeAll() {
	r.stopClients()
	r.mu.Lock()
	var ns []*node.Node
	for _, sn := range r.nodes {
		if sn.up {
			ns = append(ns, sn.n)
			sn.up = false
		}
	}
	r.mu.Unlock()
	for _, n := range ns {
		_ = n.Close()
	}
}

// nemesis injects faults for cfg.faultTime, one every 0.5-3s after a
// quiet second: network faults (loss up to 20%, delay up to 50ms,
// duplicates), isolating one node, splitting 2|3, healing, crashing one
// node, and isolating one node x then crashing two others together: the
// two other owners of a key owned by x right after they acknowledged a
// put of it issued after x was cut off (see awaitAck), with a power loss,
// so that only what they synced survives. A crash is a power loss one
// time in three, else a kill -9. Now and then a node's disk fails (every
// sync fails, or it is full) until it is restarted with the disk mended
// 1-4s later, and in some runs one node's data dir is wiped and it comes
// back empty under the same id. Crashed nodes restart after 1-4s; never
// more than two are down. At least one isolate-and-crash-two happens per
// run.
func (r *simRun) nemesis(rng *rand.Rand) {
	restartAt := make(map[string]time.Duration)
	mendAt := make(map[string]time.Duration) // nodes whose disk fails
	wipeOK := rng.IntN(3) == 0
	forced := time.Second + time.Duration(rng.Int64N(int64(r.cfg.faultTime/2)))
	time.Sleep(time.Second)
	for r.now() < r.cfg.faultTime {
		time.Sleep(500*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond))))
		for _, id := range slices.Sorted(func(yield func(string) bool) {
			for id := range restartAt {
				if !yield(id) {
					return
				}
			}
		}) {
			if r.now() >= restartAt[id] {
				delete(restartAt, id)
				r.restart(id)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(mendAt)) {
			if r.now() >= mendAt[id] {
				delete(mendAt, id)
				r.crash(false, id) // the operator restarts it with a mended disk
				r.mend(id)
				restartAt[id] = r.now() + time.Second
			}
		}
		down := r.down()
		x := rng.IntN(100)
		if forced > 0 && r.now() >= forced && len(down) == 0 {
			x, forced = 70, 0
		}
		switch {
		case x < 20:
			f := transport.MemFaults{}
			if rng.IntN(3) > 0 {
				f.Drop = rng.Float64() * 0.2
			}
			if rng.IntN(2) == 0 {
				f.Duplicate = rng.Float64() * 0.1
			}
			f.MaxDelay = time.Duration(rng.Int64N(int64(50 * time.Millisecond)))
			f.MinDelay = time.Duration(rng.Int64N(int64(f.MaxDelay) + 1))
			r.net.SetFaults(f)
			r.trace.add("nemesis: faults drop=%.2f dup=%.2f delay=%v..%v", f.Drop, f.Duplicate, f.MinDelay, f.MaxDelay)
		case x < 30:
			r.net.Heal()
			r.trace.add("nemesis: heal partitions")
		case x < 40:
			id := r.ids[rng.IntN(len(r.ids))]
			r.net.Isolate(id)
			r.trace.add("nemesis: isolate %s", id)
		case x < 50:
			p := slices.Clone(r.ids)
			rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
			r.net.Heal()
			r.net.Partition(p[:2], p[2:])
			r.trace.add("nemesis: partition %v | %v", p[:2], p[2:])
		case x < 65:
			if len(down) >= 2 {
				continue
			}
			id := r.upRandom(rng)
			if _, failing := mendAt[id]; failing {
				continue
			}
			r.crash(rng.IntN(3) == 0, id)
			restartAt[id] = r.now() + time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))
		case x < 80:
			if len(down) > 0 {
				continue
			}
			x := r.ids[rng.IntN(len(r.ids))]
			r.net.Isolate(x)
			r.trace.add("nemesis: isolate %s before a double crash", x)
			y, z, key := r.awaitAck(x, 2*time.Second)
			if y == "" {
				others := slices.DeleteFunc(slices.Clone(r.ids), func(id string) bool { return id == x })
				rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
				y, z = others[0], others[1]
			} else {
				r.trace.add("nemesis: %s was just acknowledged by its owners %s and %s", key, y, z)
			}
			_, fy := mendAt[y]
			_, fz := mendAt[z]
			if fy || fz {
				r.net.Heal()
				continue
			}
			r.crash(true, y, z)
			at := r.now() + time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
			restartAt[y], restartAt[z] = at, at
		case x < 83:
			if !wipeOK || len(r.wipes) > 0 || len(down) > 0 || len(mendAt) > 0 {
				continue
			}
			id := r.upRandom(rng)
			r.wipe(id)
			restartAt[id] = r.now() + time.Second
		case x < 88:
			if len(down) > 0 || len(mendAt) > 0 {
				continue
			}
			id := r.upRandom(rng)
			r.breakDisk(id, rng.IntN(2) == 0)
			mendAt[id] = r.now() + time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))
		default:
			// a quiet step
		}
	}
	for _, id := range slices.Sorted(maps.Keys(mendAt)) {
		r.crash(false, id)
		r.mend(id)
	}
}

// awaitAck waits, at most max, until a unique put of a key owned by the
// isolated node x, issued after x was cut off, has just been acknowledged
// (so by the other two owners),
// and returns those two owners and the key: crashing them at once is the
// sharpest test of "acknowledged means on disk".
func (r *simRun) awaitAck(x string, max time.Duration) (string, string, string) {
	seen := len(r.hist.snapshot())
	isolated := int64(r.now())
	for end := r.now() + max; r.now() < end; {
		time.Sleep(5 * time.Millisecond)
		ops := r.hist.snapshot()
		for _, op := range ops[seen:] {
			// Invoked after the isolation: x cannot have it.
			if op.Kind != history.KindPut || op.Outcome != history.OK || op.Start <= isolated {
				continue
			}
			owners := r.owners(op.Key)
			if !slices.Contains(owners, x) {
				continue
			}
			owners = slices.DeleteFunc(owners, func(id string) bool { return id == x })
			return owners[0], owners[1], op.Key
		}
		seen = len(ops)
	}
	return "", "", ""
}

// owners returns the owners of key: placement is the same on every node.
func (r *simRun) owners(key string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes[r.ids[0]].n.Owners(key)
}

func (r *simRun) upRandom(rng *rand.Rand) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var up []string
	for _, id := range r.ids {
		if r.nodes[id].up {
			up = append(up, id)
		}
	}
	return up[rng.IntN(len(up))]
}

func simReplay(cfg simConfig) string {
	name := "TestSim$"
	if cfg.earlyAck {
		name = "TestSimCatchesEarlyAck$"
	}
	return fmt.Sprintf("KVMESH_SIM_SEED=%d go test -race -count=1 -run '%s' -v ./node/", cfg.seed, name)
}

// simTrace is the run's event log: nemesis actions and node warnings,
// stamped with fake time. It is an io.Writer for the nodes' loggers.
type simTrace struct {
	start time.Time
	mu    sync.Mutex
	lines []string
}

func (tr *simTrace) add(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.lines = append(tr.lines, fmt.Sprintf("%8.3fs ", time.Since(tr.start).Seconds())+fmt.Sprintf(format, args...))
}

func (tr *simTrace) Write(p []byte) (int, error) {
	tr.add("log: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

func (tr *simTrace) snapshot() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.lines)
}
