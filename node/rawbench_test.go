package node_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// BenchmarkRawRequests measures what a service in another language, or
// the nats CLI, gets: plain NATS requests on kvmesh.kv.put.<key> and
// kvmesh.kv.get.<key> with the Kvmesh-W / Kvmesh-R headers, no kvmesh
// client library, from 16 connections spread over a 3-node cluster in
// this process (N=3, W=2, R=2, 100-byte values). Puts pass their key's
// last context, as a careful client does.
func BenchmarkRawRequests(b *testing.B) {
	c := startCluster(b, 3)
	const conns, keys = 16, 10000
	ncs := make([]*nats.Conn, conns)
	for i := range ncs {
		nc, err := nats.Connect(c.nodes[i%3].ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		ncs[i] = nc
	}
	value := make([]byte, 100)
	contexts := make([]atomic.Value, keys)
	req := func(nc *nats.Conn, op string, i int, q string) error {
		m := nats.NewMsg(fmt.Sprintf("kvmesh.kv.%s.bench.%d", op, i))
		if op == protocol.OpPut {
			m.Data = value
			m.Header.Set(protocol.HdrW, q)
			if cc, ok := contexts[i].Load().(string); ok && cc != "" {
				m.Header.Set(protocol.HdrContext, cc)
			}
		} else {
			m.Header.Set(protocol.HdrR, q)
		}
		r, err := nc.RequestMsg(m, 5*time.Second)
		if err != nil {
			return err
		}
		if e := r.Header.Get(protocol.HdrError); e != "" {
			return fmt.Errorf("%s %d: %s %s", op, i, e, r.Data)
		}
		if op == protocol.OpPut {
			contexts[i].Store(r.Header.Get(protocol.HdrContext))
		}
		return nil
	}
	for i := range keys {
		if err := req(ncs[i%conns], protocol.OpPut, i, "2"); err != nil {
			b.Fatal(err)
		}
	}
	for _, conc := range []int{16, 64} {
		for _, op := range []string{protocol.OpPut, protocol.OpGet} {
			b.Run(fmt.Sprintf("%s/C=%d", op, conc), func(b *testing.B) {
				var next atomic.Int64
				b.SetParallelism((conc + 1) / 2) // GOMAXPROCS=2 on the reference machines
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := int(next.Add(1))
						if err := req(ncs[i%conns], op, i%keys, "2"); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
			})
		}
	}
}

// TestRawRequestsServedLocally: a plain NATS request on the queue-group
// subjects, by key in the subject or in the Kvmesh-Key header, is served
// by the node the client is connected to, every time; a request that
// crosses a route (the client connected to another server) is served
// by that server's node.
func TestRawRequestsServedLocally(t *testing.T) {
	c := startCluster(t, 3)
	for i, n := range c.nodes {
		nc, err := nats.Connect(n.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		for j := range 30 {
			m := nats.NewMsg(fmt.Sprintf("kvmesh.kv.put.local.%d.%d", i, j))
			if j%2 == 1 {
				m = nats.NewMsg("kvmesh.kv.put")
				m.Header.Set(protocol.HdrKey, fmt.Sprintf("local %d %d", i, j))
			}
			m.Data = []byte("v")
			r, err := nc.RequestMsg(m, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if e := r.Header.Get(protocol.HdrError); e != "" {
				t.Fatalf("%s: %s %s", m.Subject, e, r.Data)
			}
			if got := r.Header.Get(protocol.HdrNode); got != n.ID() {
				t.Fatalf("request %d to %s's server served by %s", j, n.ID(), got)
			}
		}
	}
}
