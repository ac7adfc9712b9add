package client

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/embedded"
)

// testServer starts an embedded NATS server named name on a random port,
// shut down at cleanup, and returns it with a connection for the fake
// that serves it.
func testServer(t *testing.T, name string) (*embedded.Server, *nats.Conn) {
	t.Helper()
	srv, err := embedded.Start(embedded.Config{Name: name, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Conn()
	if err != nil {
		t.Fatal(err)
	}
	return srv, nc
}

// TestServer is testServer for the package's external tests.
var TestServer = testServer
