package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/kvmesh/kvmesh/internal/cli"
	"github.com/kvmesh/kvmesh/node"
)

// nodeFlags registers the flags of one node on fs.
func nodeFlags(fs *flag.FlagSet, cfg *node.Config, peers *string, logLevel *string, secretFile *string) {
	fs.StringVar(&cfg.ID, "id", "", "node id: letters, digits, '-' and '_' (required)")
	fs.StringVar(&cfg.DataDir, "data", "", "data directory (required)")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "NATS client listener host:port (port 0: any free port)")
	fs.StringVar(&cfg.Cluster, "cluster", cfg.Cluster, "NATS route listener host:port (port 0: any free port)")
	fs.StringVar(&cfg.HTTP, "http", "", "HTTP listener host:port: status page at /, Prometheus metrics at /metrics, NATS monitoring at /varz, /connz, ... (port 0: any free port; default none)")
	fs.StringVar(peers, "peers", "", "comma-separated route URLs of the other nodes (nats-route://host:port)")
	fs.StringVar(&cfg.ClusterName, "cluster-name", cfg.ClusterName, "NATS cluster name, the same on every node")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "subject prefix of the store")
	fs.IntVar(&cfg.Replicas, "replicas", cfg.Replicas, "replication factor N")
	fs.IntVar(&cfg.Partitions, "partitions", cfg.Partitions, "number of partitions Q (never change it for a store)")
	var maxPayload int
	fs.Func("max-payload", "NATS max payload in bytes, the same on every node (default 1048576)", func(s string) error {
		_, err := fmt.Sscan(s, &maxPayload)
		cfg.MaxPayload = int32(maxPayload)
		return err
	})
	fs.DurationVar(&cfg.RequestTimeout, "timeout", cfg.RequestTimeout, "request timeout at the coordinator")
	fs.DurationVar(&cfg.PeerWait, "peer-wait", cfg.PeerWait, "how long to wait for peers at start")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", cfg.Heartbeat, "interval of the membership heartbeats")
	fs.DurationVar(&cfg.SuspectAfter, "suspect-after", 0, "silence after which a peer is suspect (default 3 heartbeats)")
	fs.DurationVar(&cfg.DownAfter, "down-after", 0, "silence after which a peer is down: reads and forwarded writes ask it last (default 10 heartbeats)")
	fs.StringVar(&cfg.DataCenter, "dc", "", "the node's data center (each has its own chores owner)")
	fs.IntVar(&cfg.HintRate, "hint-rate", cfg.HintRate, "records/s the hinted handoff pushes to owners that are back (-1: unthrottled)")
	fs.DurationVar(&cfg.AutoRemoveAfter, "auto-remove-after", 0, "remove a member down this long, as kvmesh admin remove would (0: never, the default)")
	fs.StringVar(&cfg.Conflicts, "conflicts", "siblings", conflictsUsage)
	fs.DurationVar(&cfg.AntiEntropy, "anti-entropy", cfg.AntiEntropy, "pause between anti-entropy rounds, which compare every partition with its other owners (negative: off)")
	fs.IntVar(&cfg.AntiEntropyRate, "anti-entropy-rate", cfg.AntiEntropyRate, "records anti-entropy may sync a second")
	fs.BoolVar(&cfg.StrictQuorum, "strict-quorum", false, "count only the key's own owners toward R and W (no sloppy quorum fallbacks)")
	fs.DurationVar(&cfg.TombstoneGrace, "tombstone-grace", cfg.TombstoneGrace, "age before a tombstone every replica holds is purged (negative: keep tombstones)")
	fs.StringVar(logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(secretFile, "secret-file", "", "file holding the store's secret, the same on every node (default DATA/secret, created if missing; kvmesh secret makes one)")
	fs.StringVar(&cfg.KeyFile, "key-file", "", "file holding the node's key pair, its identity among the members (default DATA/node.nk, created if missing; kvmesh keygen makes one)")
	fs.StringVar(&cfg.RunDir, "run-dir", "", "directory of the node's run record, outside the data dir, ideally tmpfs (default /dev/shm, else the temp dir)")
	plantedFlags(fs, cfg)
}

// conflictsUsage is the help of --conflicts, for node and dev.
const conflictsUsage = "how concurrent writes of a key resolve: siblings (keep them all, the default) or lww (last writer wins: one value per key, concurrent writes lost); the same on every node"

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, cli.Usagef("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func cmdNode(args []string, stderr io.Writer) error {
	cfg := node.DefaultConfig()
	var peers, level, secretFile string
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodeFlags(fs, &cfg, &peers, &level, &secretFile)
	var join joinFlags
	join.register(fs)
	defer cpuProfileFlag(fs)()
	cli.SetUsage(fs, "node --id ID --data DIR [--listen H:P] [--cluster H:P] [--peers URL,...] [--join URL --token TOKEN]",
		`Runs one node of a store: its embedded NATS server (clients on --listen, routes to the other
nodes on --cluster) and its replicas in DIR. Give every node of a new store the same full --peers
list and the same secret; a node added later joins with --join and a token from kvmesh admin invite.`,
		"kvmesh node --id n1 --data /var/lib/kvmesh --listen 0.0.0.0:4222 --cluster 10.0.0.1:6222 --peers nats-route://10.0.0.1:6222,nats-route://10.0.0.2:6222,nats-route://10.0.0.3:6222",
		"kvmesh node --id n4 --data /var/lib/kvmesh --cluster 10.0.0.4:6222 --join nats-route://10.0.0.1:6222 --token \"$TOKEN\"")
	err := cli.ParseFlagsOnly(fs, args)
	if err != nil {
		return err
	}
	cfg.Peers = cli.SplitList(peers)
	if cfg.Logger, err = newLogger(stderr, level); err != nil {
		return err
	}
	cfg.NATSLog = true
	if cfg.DataDir == "" {
		return cli.Usagef("--data is required")
	}
	create := secretFile == ""
	if create {
		secretFile = filepath.Join(cfg.DataDir, "secret")
	}
	if err := join.prepare(&cfg, secretFile, create); err != nil {
		return err
	}
	var created bool
	if cfg.Secret, created, err = cli.LoadSecret(secretFile, create); err != nil {
		return err
	}
	if created {
		cfg.Logger.Warn("created a new store secret: every node of the store needs the same one (copy it and pass --secret-file)", "file", secretFile)
	}
	tuneGC()
	n, err := node.New(cfg)
	if err != nil {
		return cli.Usagef("%s", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, cfg.PeerWait+30*time.Second)
	defer cancel()
	if err := n.Start(startCtx); err != nil {
		return err
	}
	if a := n.HTTPAddr(); a != "" {
		fmt.Fprintf(stderr, "kvmesh node %s ready: clients %s, routes %s, http http://%s/\n", cfg.ID, n.ClientURL(), n.ClusterURL(), a)
	} else {
		fmt.Fprintf(stderr, "kvmesh node %s ready: clients %s, routes %s\n", cfg.ID, n.ClientURL(), n.ClusterURL())
	}
	select {
	case <-ctx.Done():
		fmt.Fprintf(stderr, "kvmesh node %s stopping\n", cfg.ID)
	case <-n.Left():
		fmt.Fprintf(stderr, "kvmesh node %s has left the store; stopping\n", cfg.ID)
	}
	return n.Close()
}

// tuneGC sets the collector's target for a node unless GOGC says
// otherwise. A node's live heap is small (requests in flight: the data is
// in bbolt's memory map, outside the heap), so the default 100% growth
// target spent about 10% of a loaded node's CPU marking; 400 measured +20%
// puts at C=16 and C=64 (kvmesh bench, 3 nodes, 100 B values).
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}
