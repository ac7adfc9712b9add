package embedded

import (
	"fmt"
	"testing"
	"time"
)

// TestHasInterest: a server knows of a subscription of its own clients
// at once and of another server's once its interest crossed the route;
// an unsubscribe takes it away.
func TestHasInterest(t *testing.T) {
	ctx := testCtx(t)
	a := startT(t, clusterCfg("a"))
	b := startT(t, clusterCfg("b", a.ClusterURL()))
	waitPeers(ctx, t, 1, a, b)
	if a.HasInterest("kvmesh.events.x") {
		t.Fatal("interest before any subscription")
	}
	nc := connT(t, b)
	sub, err := nc.SubscribeSync("kvmesh.events.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if !b.HasInterest("kvmesh.events.x") || b.HasInterest("kvmesh.kv.x") {
		t.Fatal("local interest not as subscribed")
	}
	for !a.HasInterest("kvmesh.events.x.y") {
		if ctx.Err() != nil {
			t.Fatal("remote interest never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	for a.HasInterest("kvmesh.events.x.y") || b.HasInterest("kvmesh.events.x.y") {
		if ctx.Err() != nil {
			t.Fatal("interest outlives the unsubscribe")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkHasInterest is what a write costs its node when nobody
// watches its key: one lookup of the event subject (100k distinct keys,
// more than the server's match cache holds).
func BenchmarkHasInterest(b *testing.B) {
	s, err := Start(Config{Name: "a", Port: RandomPort})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown()
	subjects := make([]string, 100_000)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("kvmesh.events.orders.%d", i)
	}
	for i := 0; b.Loop(); i++ {
		s.HasInterest(subjects[i%len(subjects)])
	}
}
