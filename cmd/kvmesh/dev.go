package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/kvmesh/kvmesh/internal/cli"
	"github.com/kvmesh/kvmesh/node"
)

// cmdDev runs a 3-node cluster in this process on loopback: node n<i>
// serves clients on port+i-1 and routes on cluster-port+i-1, with data
// under DIR/n<i>. Ctrl-C stops it cleanly.
func cmdDev(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./data", "data directory (one subdirectory per node)")
	port := fs.Int("port", 4222, "client port of the first node (the others use the next ports)")
	cport := fs.Int("cluster-port", 6222, "route port of the first node (the others use the next ports)")
	nodes := fs.Int("nodes", 3, "number of nodes")
	level := fs.String("log-level", "error", "debug, info, warn or error")
	conflicts := fs.String("conflicts", "siblings", conflictsUsage)
	httpAddr := fs.String("http", "127.0.0.1:8222", "the first node's HTTP port host:port (status page, /metrics, NATS monitoring); the others listen on free ports of the same host; empty: none")
	cli.SetUsage(fs, "dev [--data ./data] [--port 4222] [--cluster-port 6222] [--nodes 3] [--http 127.0.0.1:8222]",
		`Runs a local cluster in this process: node n<i> serves clients on port+i-1 and routes on
cluster-port+i-1, with its data under DATA/n<i>. Ctrl-C stops it cleanly; started again on the
same data dir, it comes back with what was written. The first node serves its status page,
/metrics and NATS monitoring on --http; the others on free ports of the same host, all printed.`,
		"kvmesh dev", "kvmesh dev --nodes 5 --data /tmp/kv --port 14222 --cluster-port 16222")
	if err := cli.ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *nodes < 1 || *nodes > 9 {
		return cli.Usagef("nodes must be 1..9")
	}
	httpHost := ""
	if *httpAddr != "" {
		h, _, err := net.SplitHostPort(*httpAddr)
		if err != nil {
			return cli.Usagef("--http %q: want host:port, or empty for none", *httpAddr)
		}
		httpHost = h
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	tuneGC()
	// One secret for the dev cluster, kept with its data so that contexts
	// stay good across restarts.
	secret, _, err := cli.LoadSecret(filepath.Join(*data, "secret"), true)
	if err != nil {
		return err
	}
	var peers []string
	for i := 0; i < *nodes; i++ {
		peers = append(peers, fmt.Sprintf("nats-route://127.0.0.1:%d", *cport+i))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Start all nodes at once: each waits for the others' routes.
	ns := make([]*node.Node, *nodes)
	errs := make([]error, *nodes)
	var wg sync.WaitGroup
	for i := range ns {
		cfg := node.DefaultConfig()
		cfg.ID = fmt.Sprintf("n%d", i+1)
		cfg.DataDir = filepath.Join(*data, cfg.ID)
		cfg.Secret = secret
		cfg.Listen = fmt.Sprintf("127.0.0.1:%d", *port+i)
		cfg.Cluster = fmt.Sprintf("127.0.0.1:%d", *cport+i)
		cfg.Peers = peers
		cfg.Conflicts = *conflicts
		if *httpAddr != "" {
			cfg.HTTP = *httpAddr
			if i > 0 {
				cfg.HTTP = net.JoinHostPort(httpHost, "0")
			}
		}
		cfg.Logger = log
		cfg.NATSLog = true
		if ns[i], err = node.New(cfg); err != nil {
			return cli.Usagef("%s", err)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = ns[i].Start(ctx)
		}(i)
	}
	wg.Wait()
	defer func() {
		for _, n := range ns {
			_ = n.Close()
		}
	}()
	if errors.Is(errs[0], syscall.EADDRINUSE) && *httpAddr != "" && strings.Contains(errs[0].Error(), "http listener") {
		return fmt.Errorf("the first node's HTTP port %s is taken (another kvmesh dev, or a nats-server's monitoring port?): "+
			"choose another with --http HOST:PORT, or turn it off with --http ''", *httpAddr)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kvmesh dev cluster: %d nodes, data under %s\n", *nodes, *data)
	for _, n := range ns {
		fmt.Fprintf(stdout, "  %s  clients %s  routes %s", n.ID(), n.ClientURL(), n.ClusterURL())
		if a := n.HTTPAddr(); a != "" {
			fmt.Fprintf(stdout, "  http http://%s/", a)
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, `
Try:
  kvmesh put greeting hello --server %[1]s
  kvmesh get greeting --server %[1]s
  nats req kvmesh.kv.get.greeting '' --server %[1]s
Ctrl-C stops the cluster.
`, ns[0].ClientURL())
	if a := ns[0].HTTPAddr(); a != "" {
		fmt.Fprintf(stdout, "Status page: http://%[1]s/  (metrics: http://%[1]s/metrics, NATS: http://%[1]s/varz)\n", a)
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	return nil
}
