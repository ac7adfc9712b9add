package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestStrangersGetNoRoute routes two strangers at a running 3-node store
// of real processes: a plain nats-server (no credentials) with a client
// subscribed to everything, and a kvmesh node process of another store
// (its own secret, so its own cluster key and certificates), given the
// members' route URLs as peers. Neither gets a route: while the store
// takes writes and its nodes heartbeat, the sniffer receives nothing;
// the store's status lists neither, and the other node serves alone.
func TestStrangersGetNoRoute(t *testing.T) {
	c := startProcCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := c.client(c.procs[0])
	waitServing(ctx, t, cl, "all")

	o := &server.Options{ServerName: "sniffer", Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		Cluster: server.ClusterOpts{Name: "kvmesh", Host: "127.0.0.1", Port: -1},
		Routes:  server.RoutesFromStr(c.procs[0].routeURL() + "," + c.procs[1].routeURL())}
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("sniffer not ready")
	}
	spy, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	var sniffed atomic.Int64
	if _, err := spy.Subscribe(">", func(*nats.Msg) { sniffed.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}

	// A one-node store of its own, routed at the members.
	other := startProcCluster(t, 1, "--id", "n9", "--peers", c.procs[0].routeURL()+","+c.procs[2].routeURL(), "--peer-wait", "1s")
	other.procs[0].id = "n9"

	for i := range 50 {
		if _, err := cl.Put(ctx, fmt.Sprint("strangers.", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second) // heartbeats go out every second: a few cross the routes meanwhile
	if got := sniffed.Load(); got != 0 || ns.NumRoutes() != 0 {
		t.Fatalf("the plain server has %d routes and received %d messages", ns.NumRoutes(), got)
	}
	sts, r, err := status(ctx, c.procs[0])
	if err != nil || r.code != 0 {
		t.Fatalf("status of the store: %v %v", r, err)
	}
	for _, st := range sts {
		if slices.Contains(st.Members, "n9") || slices.Contains(st.Members, "sniffer") || len(st.Records) != 3 {
			t.Fatalf("%s holds members %v and %d records", st.Node, st.Members, len(st.Records))
		}
	}
	osts, _, err := status(ctx, other.procs[0])
	if err != nil || len(osts) != 1 || osts[0].Node != "n9" || !slices.Equal(osts[0].Members, []string{"n9"}) {
		t.Fatalf("the other store: %+v %v", osts, err)
	}
}
