package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/kvmesh/kvmesh/embedded"
	"github.com/kvmesh/kvmesh/internal/pipeline"
	"github.com/kvmesh/kvmesh/node/clock"
	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/node/store"
	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Version is the kvmesh release, reported by the micro service.
const Version = "0.1.0"

// Node is one kvmesh storage node: an embedded NATS server, a bbolt
// replica store, the replica RPC handler and the client API coordinator.
// New starts nothing; Start starts; Close stops. A Node is safe for
// concurrent use.
type Node struct {
	cfg      Config
	log      *slog.Logger
	subjects protocol.Subjects
	ctxKey   *protocol.ContextKey
	maxValue int

	srv       *embedded.Server
	nc        *nats.Conn
	fs        disk.FS
	clock     clock.Clock
	st        *store.Store
	issuer    *issuer
	conflicts version.Conflicts // Config.Conflicts
	hlc       hlc               // stamps writes in last-writer-wins mode
	actor     string            // this run's id in causal clocks (identity.go)
	runFile   string            // the run record, marked when the store fails
	runRec    runRecord
	key       nkeys.KeyPair // the node's identity (nodekey.go)
	publicKey string
	// clusterKey signs member records (membership.ClusterKey): every
	// member derives it from the store secret.
	clusterKey nkeys.KeyPair
	tr         transport.Transport
	mem        *memberSet
	svc        *service

	pending     pendingOps
	outbox      *pipeline.Pipeline[string, outItem] // per-peer batches of replica RPC items (outbox.go)
	forwarded   forwarded
	heard       sync.Map // member id -> true: heard from at least once
	gossip      gossipState
	rebal       rebalance     // rebalance.go
	left        chan struct{} // closed once this node's record is left (Left)
	leftOnce    sync.Once
	live        liveness // the failure detector (membership.go)
	otherSecret sync.Map // member id -> true: its heartbeats show another secret (logged once)
	// otherConflicts: member id -> the mode its heartbeats show, for the
	// members whose mode differs from this node's (logged once).
	otherConflicts sync.Map
	inflight       atomic.Int64
	readRepairs    atomic.Int64 // replicas a read sent the merged object to
	digestMatches  atomic.Int64 // digest reads' digests equal to this node's replica
	digestMisses   atomic.Int64 // and those that differed (the object was read again)
	ae             antiEntropy  // antientropy.go
	compacted      compaction   // compact.go
	hints          *hintBook    // hints this node holds as a fallback (hints.go)
	sloppy         atomic.Int64 // writes this node coordinated that fallbacks acknowledged
	events         atomic.Int64 // change events published (events.go)
	exp            expiries     // the TTL writes it coordinated, for expire events (events.go)
	condLocks      keyLocks     // the conditional writes it serialises, per key (conditional.go)
	hintPace       pacer        // the handoff's records (HintRate; handoff.go)
	aePace         pacer        // anti-entropy's records (AntiEntropyRate)
	reads          chan readJob // for the reader goroutines (reads.go)
	lists          chan func()  // for the lister goroutines (keys.go)
	pageBudget     int          // bytes of records a pulled page may hold (transfer.go)
	metrics        *metrics     // Prometheus metrics (metrics.go)
	web            *webServer   // the HTTP port: metrics, status page, NATS monitoring (web.go); nil without Config.HTTP

	stop      chan struct{} // closed by Close: stops the loops
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	started   atomic.Bool
	startTime time.Time // when Start began
}

// New validates cfg and returns a node that has not started.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	subjects, _ := protocol.NewSubjects(cfg.Prefix)
	ctxKey, _ := protocol.NewContextKey(cfg.Secret, cfg.Prefix)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n := &Node{
		cfg:      cfg,
		log:      log.With("node", cfg.ID),
		subjects: subjects,
		ctxKey:   ctxKey,
		maxValue: protocol.MaxValueLen(int64(cfg.MaxPayload)),
		// As much as a reply carries: fewer, bigger pages, each one
		// round trip and one group commit.
		pageBudget: protocol.ScanBudget(int64(cfg.MaxPayload)),
		clock:      cfg.Clock,
		stop:       make(chan struct{}),
		left:       make(chan struct{}),
	}
	if n.clock == nil {
		n.clock = clock.Real{}
	}
	n.conflicts, _ = version.ParseConflicts(cfg.Conflicts)
	suspect, down := cfg.SuspectAfter, cfg.DownAfter
	if suspect == 0 {
		suspect = 3 * cfg.Heartbeat
	}
	if down == 0 {
		down = max(10*cfg.Heartbeat, suspect+cfg.Heartbeat)
	}
	n.live.d = membership.NewDetector(suspect, down)
	n.pending.ops = make(map[uint64]rpcOp)
	// Tags start at a random point so that a restarted node's tags do not
	// repeat its previous run's (peers deduplicate forwards by tag).
	n.pending.next = rand.Uint64() >> 2
	n.outbox = newOutbox(n)
	n.metrics = newMetrics(n)
	return n, nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Actor returns the actor id this run of the node issues dots under
// (identity.go). Valid after Start.
func (n *Node) Actor() string { return n.actor }

// ClientURL is the URL clients connect to (the embedded server's client
// listener). Valid after Start; empty without NATS.
func (n *Node) ClientURL() string {
	if n.srv == nil {
		return ""
	}
	return n.srv.ClientURL()
}

// ClusterURL is the route URL peers use (nats-route://host:port). Valid
// after Start; empty without NATS.
func (n *Node) ClusterURL() string {
	if n.srv == nil {
		return ""
	}
	return n.srv.ClusterURL()
}

// Members returns the ids of the store's members as this node knows them.
func (n *Node) Members() []string { return n.mem.ring().Members() }

// Left returns a channel closed once this node's member record is left:
// it left the store (Leave) or was removed. It serves no partition then;
// its process should stop.
func (n *Node) Left() <-chan struct{} { return n.left }

// MemberRecords returns the member records this node holds, sorted by
// id. Valid after Start.
func (n *Node) MemberRecords() []protocol.MemberRecord { return n.mem.records().Records() }

// Start opens the store, starts the transport (the embedded NATS server
// and the node's connection to it, unless Config.Transport gives one),
// serves the replica RPC, starts gossip and, over NATS, waits at most
// Config.PeerWait for the peers and serves the client API. It returns
// once the node serves; ctx bounds the start. On error everything
// started is stopped again.
func (n *Node) Start(ctx context.Context) error {
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("node already started")
	}
	n.startTime = n.clock.Now()
	if err := n.start(ctx); err != nil {
		_ = n.Close()
		return err
	}
	return nil
}

func (n *Node) start(ctx context.Context) error {
	n.fs = n.cfg.FS
	if n.fs == nil {
		n.fs = disk.OS{}
	}
	if err := n.fs.MkdirAll(n.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	sopts := store.DefaultOptions()
	sopts.FS = n.fs
	sopts.OnFail = n.storeFailed
	sopts.OnSync = n.metrics.observeSync
	sopts.OnOverload = n.metrics.refusedStore.Inc
	n.plantStoreOptions(&sopts)
	st, err := store.Open(n.cfg.dbPath(), sopts)
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) {
			return fmt.Errorf("%w\nThe node refuses to start on a damaged store: acknowledged writes may be missing from it. "+
				"Run `kvmesh admin quarantine --data %s` to move its files aside (nothing is deleted), then start the node again: "+
				"it starts empty under a new actor, and its peers refill it as keys are read (R=all reads repair at once)", err, n.cfg.DataDir)
		}
		return fmt.Errorf("open store: %w", err)
	}
	n.st = st
	if err := checkSettings(st, n.cfg.DataDir, settings{Node: n.cfg.ID, Replicas: n.cfg.Replicas, Partitions: n.cfg.Partitions, Prefix: n.cfg.Prefix}); err != nil {
		return err
	}
	keyFile := n.cfg.KeyFile
	if keyFile == "" {
		keyFile = filepath.Join(n.cfg.DataDir, keyFileName)
	}
	var created bool
	if n.key, created, err = loadKey(n.fs, keyFile, n.cfg.KeyFile == ""); err != nil {
		return err
	}
	if n.publicKey, err = n.key.PublicKey(); err != nil {
		return fmt.Errorf("node key: %w", err)
	}
	if created {
		n.log.Info("created the node's key pair", "file", keyFile, "public", n.publicKey)
	}
	runDir := n.cfg.RunDir
	if runDir == "" {
		runDir = defaultRunDir()
	}
	var kept bool
	n.actor, kept, n.runFile, n.runRec, err = startIdentity(n.fs, st, n.cfg.ID, runDir, n.clock.Now())
	if err != nil {
		return fmt.Errorf("start identity: %w", err)
	}
	if !kept && !st.Created() {
		n.log.Info("issuing dots as a new actor: this store's page cache or data may not hold every dot the last run sent", "actor", n.actor)
	}
	if n.hints, err = loadHints(st); err != nil {
		return fmt.Errorf("load hints: %w", err)
	}
	n.startReaders()
	n.startListers()
	n.issuer = newIssuer(st, n.actor, n.clock.Now, n.readStore, n.conflicts, &n.hlc)
	if err := n.loadPurgeFloor(); err != nil {
		return fmt.Errorf("purge floor: %w", err)
	}
	if n.clusterKey, err = membership.ClusterKey(n.cfg.Secret); err != nil {
		return err
	}
	cluster, _ := n.clusterKey.PublicKey()
	if n.mem, err = loadMembership(st, cluster, n.cfg.ID, n.cfg.Members, n.cfg.Partitions, n.cfg.Replicas); err != nil {
		return err
	}
	n.mem.onChange = n.dropLeftRoutes // whatever applied the change: gossip, a flip, a removal
	if n.cfg.Transport != nil {
		n.tr = n.cfg.Transport
	} else if err := n.startNATS(); err != nil {
		return err
	}
	if err := n.registerSelf(); err != nil {
		return err
	}
	if err := n.tr.Start(n); err != nil {
		return err
	}
	n.startGossip()
	n.startRebalance()
	n.startAntiEntropy()
	n.startHandoff()
	if n.cfg.HTTP != "" {
		if err := n.startWeb(); err != nil {
			return err
		}
	}
	if n.srv == nil {
		return nil
	}
	n.waitForPeers(ctx)
	if err := n.serveClients(); err != nil {
		return err
	}
	n.spawn(n.runExpiries)
	n.log.Info("node serving", "client", n.srv.ClientURL(), "cluster", n.srv.ClusterURL(), "members", n.Members())
	return nil
}

// startNATS starts the embedded NATS server and the node's connection to
// it, and makes the NATS transport.
func (n *Node) startNATS() error {
	ecfg, err := n.embeddedConfig()
	if err != nil {
		return err
	}
	if n.srv, err = embedded.Start(ecfg); err != nil {
		return fmt.Errorf("start nats: %w", err)
	}
	if n.nc, err = n.srv.Conn(nats.Name("kvmesh-node-" + n.cfg.ID)); err != nil {
		return fmt.Errorf("connect nats: %w", err)
	}
	n.tr = transport.NewNATS(n.nc, n.subjects, n.cfg.ID)
	return nil
}

func (n *Node) embeddedConfig() (embedded.Config, error) {
	chost, cport, err := splitHostPort(n.cfg.Cluster)
	if err != nil {
		return embedded.Config{}, fmt.Errorf("cluster address: %w", err)
	}
	host, port, err := splitHostPort(n.cfg.Listen)
	if err != nil {
		return embedded.Config{}, fmt.Errorf("listen address: %w", err)
	}
	ec := embedded.Config{
		Name:        n.cfg.ID,
		Host:        host,
		Port:        port,
		ClusterName: n.cfg.ClusterName,
		ClusterHost: chost,
		ClusterPort: cport,
		Routes:      n.cfg.Peers,
		MaxPayload:  n.cfg.MaxPayload,
	}
	if n.cfg.NATSLog {
		ec.Logger = natsLogger{n.log.With("component", "nats")}
	}
	ca, err := embedded.ClusterCA(n.clusterKey)
	if err != nil {
		return embedded.Config{}, fmt.Errorf("route certificates: %w", err)
	}
	cert, err := embedded.NodeCert(n.clusterKey, n.key, n.cfg.ID)
	if err != nil {
		return embedded.Config{}, fmt.Errorf("route certificates: %w", err)
	}
	ec.RouteAuth = &embedded.RouteAuth{Cert: cert, CA: ca, Admit: n.admitRoute}
	return ec, nil
}

// admitRoute is the embedded server's RouteAuth.Admit: a peer whose
// certificate the cluster key issued (a holder of the store secret) may
// open routes, unless its key is a member's that has left or was
// removed.
func (n *Node) admitRoute(key string) bool {
	for _, r := range n.mem.records().Records() {
		if r.Key == key && r.Status == protocol.MemberLeft {
			return false
		}
	}
	return true
}

// dropLeftRoutes closes the routes of the members that left in the
// change from before to after (memberSet.onChange), a few heartbeats later (so that a leaving
// node hears that it has left, and that the others let go, first:
// checkLeft); admitRoute keeps them out from then on.
func (n *Node) dropLeftRoutes(before, after membership.Set) {
	if n.srv == nil {
		return
	}
	var keys []string
	for _, r := range after.Records() {
		if b, ok := before.Get(r.ID); r.Status == protocol.MemberLeft && r.ID != n.cfg.ID && (!ok || b.Status != protocol.MemberLeft) {
			keys = append(keys, r.Key)
		}
	}
	if len(keys) == 0 {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		wait := make(chan struct{})
		t := n.clock.AfterFunc((leftGrace+2)*n.cfg.Heartbeat, func() { close(wait) })
		defer t.Stop()
		select {
		case <-n.stop:
			return
		case <-wait:
		}
		for _, k := range keys {
			if err := n.srv.DropRoutes(k); err != nil {
				n.log.Debug("drop the routes of a member that left", "key", k, "err", err)
			} else {
				n.log.Info("dropped the routes of a member that left", "key", k)
			}
		}
	}()
}

// spawn runs f on a goroutine the node owns: f's ctx ends when the node
// closes, and Close waits for f to return.
func (n *Node) spawn(f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		<-n.stop
		cancel()
	}()
	go func() {
		defer n.wg.Done()
		f(ctx)
	}()
}

// splitHostPort parses "host:port"; port 0 becomes -1 (a random port).
func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	if port == 0 {
		port = -1
	}
	return h, port, nil
}

// waitForPeers waits, at most PeerWait, until the routes to the
// configured peers are up and their member records are known. A node
// whose peers are down still starts: it serves what the quorum it can
// reach allows.
func (n *Node) waitForPeers(ctx context.Context) {
	want := 0
	for _, p := range n.cfg.Peers {
		if p != n.srv.ClusterURL() {
			want++
		}
	}
	if want == 0 || n.cfg.PeerWait == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, n.cfg.PeerWait)
	defer cancel()
	err := n.srv.WaitForPeers(wctx, want)
	if err == nil {
		err = n.mem.waitFor(wctx, n.srv.PeerNames())
	}
	if err != nil {
		n.log.Warn("not all peers reachable; serving with the members known", "want", want, "have", n.srv.NumPeers(), "members", n.Members())
	}
}

// Run starts the node and serves until ctx is done, then closes it.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return n.Close()
}

// Close stops the node: it stops taking client requests, drains the
// subscriptions, fails the operations still in flight, stops the loops,
// closes the store and shuts the embedded server down. It is idempotent
// and returns when everything has stopped.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		n.stopWeb()
		if n.svc != nil {
			n.stopServingLocalClients()
			if err := n.svc.stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop service: %w", err))
			}
		}
		close(n.stop)
		n.outbox.Close() // fails what is queued; sends nothing more
		if n.tr != nil {
			errs = append(errs, n.tr.Close())
		}
		n.wg.Wait()
		n.pending.failAll(n.shuttingDown())
		if n.st != nil {
			errs = append(errs, n.st.Close())
		}
		if n.nc != nil {
			n.nc.Close()
		}
		if n.srv != nil {
			n.srv.Shutdown()
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// natsLogger sends the embedded server's notices, warnings and errors to
// slog; debug and trace stay off. The server's errors are mostly
// transient (a peer's route refused while it starts or stops), so they
// are warnings here.
type natsLogger struct{ l *slog.Logger }

func (g natsLogger) Noticef(f string, v ...any) { g.l.Info(fmt.Sprintf(f, v...)) }
func (g natsLogger) Warnf(f string, v ...any)   { g.l.Warn(fmt.Sprintf(f, v...)) }
func (g natsLogger) Fatalf(f string, v ...any)  { g.l.Error(fmt.Sprintf(f, v...)) }
func (g natsLogger) Errorf(f string, v ...any)  { g.l.Warn(fmt.Sprintf(f, v...)) }
func (g natsLogger) Debugf(string, ...any)      {}
func (g natsLogger) Tracef(string, ...any)      {}

// storeFailed is the store's OnFail: from now on the node acknowledges no
// write of its own replica (it forwards the writes it coordinates to the
// other owners), and its page cache may have lost dots it sent out, so
// the next start must take a new actor.
func (n *Node) storeFailed(err error) {
	n.log.Error("STORE FAILED: this node no longer stores writes; it serves reads and forwards writes to the other owners. Free space or replace the disk, then restart the node", "err", err)
	rec := n.runRec
	rec.Tainted = err.Error()
	if werr := writeRunRecord(n.fs, n.runFile, rec); werr != nil {
		n.log.Error("could not mark the run record after the store failed", "file", n.runFile, "err", werr)
	}
}

// StoreError returns the error that stopped the node's store taking
// writes, or nil while it is healthy.
func (n *Node) StoreError() error {
	if n.st == nil {
		return nil
	}
	return n.st.Broken()
}

// ConnectedPeers returns the ids of the nodes this node's embedded server
// has routes to right now.
func (n *Node) ConnectedPeers() []string {
	if n.srv == nil {
		return nil
	}
	return n.srv.PeerNames()
}
