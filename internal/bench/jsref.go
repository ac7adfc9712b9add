package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/kvmesh/kvmesh/internal/cli"
)

// JSRef runs the hidden verb `kvmesh jsref` with args, the flags after
// the verb: one nats-server, optionally with JetStream, as a member of a
// reference cluster for Main. It exists so the benchmark can run the
// system kvmesh is compared with as separate processes of the same
// binary, built with the very nats-server version kvmesh embeds. It logs
// to stderr and blocks until SIGINT or SIGTERM stop it.
//
//	kvmesh jsref --name js1 --port 4300 --cluster 6300 --routes nats-route://127.0.0.1:6300,... --store DIR --sync always
//
// Without --store the server runs core NATS only (the fan-out ceiling).
func JSRef(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("jsref", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "server name, unique in the cluster (required)")
	host := fs.String("host", "127.0.0.1", "listen host of the client and route listeners")
	port := fs.Int("port", -1, "client port (-1: any free port)")
	cport := fs.Int("cluster", 0, "route port (0: no cluster)")
	cname := fs.String("cluster-name", "jsref", "NATS cluster name")
	routes := fs.String("routes", "", "comma-separated route URLs of every server (nats-route://host:port)")
	store := fs.String("store", "", "JetStream store directory; empty: core NATS only, no JetStream")
	sync := fs.String("sync", "default", "JetStream fsync: always (fsync every write: SyncAlways) or default (lazy, every 2 min)")
	if err := cli.ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *name == "" {
		return cli.Usagef("--name is required")
	}
	opts := &server.Options{
		ServerName: *name,
		Host:       *host,
		Port:       *port,
		NoSigs:     true,
		Logtime:    true,
	}
	if *cport != 0 {
		opts.Cluster = server.ClusterOpts{Name: *cname, Host: *host, Port: *cport}
		if rs := cli.SplitList(*routes); len(rs) > 0 {
			opts.Routes = server.RoutesFromStr(strings.Join(rs, ","))
		}
	}
	if *store != "" {
		opts.JetStream = true
		opts.StoreDir = *store
		switch *sync {
		case "always":
			opts.SyncAlways = true
		case "default", "":
		default:
			return cli.Usagef("--sync %q: want always or default", *sync)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	s.ConfigureLogger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s.Start()
	defer func() {
		s.Shutdown()
		s.WaitForShutdown()
	}()
	if !s.ReadyForConnections(30 * time.Second) {
		return fmt.Errorf("nats-server %s not ready after 30s", *name)
	}
	js := "core NATS"
	if opts.JetStream {
		js = "JetStream sync=" + *sync
	}
	// `kvmesh bench` waits for this line.
	fmt.Fprintf(stderr, "jsref %s ready: clients %s, %s, nats-server %s\n", *name, s.ClientURL(), js, server.VERSION)
	<-ctx.Done()
	return nil
}
