package node_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
)

// BenchmarkCluster measures durable quorum puts and quorum gets through a
// 3-node cluster in this process (N=3, W=2, R=2, 100-byte values), with
// clients spread over the nodes, at several concurrencies. Compare the
// figures with `kvmesh bench`, which also runs JetStream KV side by side.
func BenchmarkCluster(b *testing.B) {
	c := startCluster(b, 3)
	clients := []*client.Client{c.client(0), c.client(1), c.client(2)}
	value := make([]byte, 100)
	const keys = 10000
	ctx := context.Background()
	// Each put passes the key's last context, so keys keep one value
	// instead of piling up siblings (as a real client does).
	var contexts sync.Map
	for i := 0; i < keys; i++ {
		key := fmt.Sprintf("bench.%d", i)
		cctx, err := clients[i%3].Put(ctx, key, value)
		if err != nil {
			b.Fatal(err)
		}
		contexts.Store(key, cctx)
	}
	for _, conc := range []int{1, 16, 64} {
		for _, op := range []string{"put", "get"} {
			b.Run(fmt.Sprintf("%s/C=%d", op, conc), func(b *testing.B) {
				var next atomic.Int64
				b.SetParallelism((conc + 1) / 2) // GOMAXPROCS=2 on the reference machines
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := next.Add(1)
						cl := clients[i%3]
						key := fmt.Sprintf("bench.%d", i%keys)
						var err error
						if op == "put" {
							prev, _ := contexts.Load(key)
							var cctx string
							cctx, err = cl.Put(ctx, key, value, client.W("2"), client.Context(prev.(string)))
							contexts.Store(key, cctx)
						} else {
							_, err = cl.Get(ctx, key, client.R("2"))
						}
						if err != nil {
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

// BenchmarkJoin measures a join: a 3-node cluster in this process holds
// KVMESH_JOIN_KEYS keys (default 100,000) of 1 KiB, and a fourth node
// joins; it reports how long until every node serves the new ring and
// the rate at which the joiner copied what it gains (from a majority of
// each partition's owners, so about twice its share of the data). Run it
// alone: go test -run XXX -bench BenchmarkJoin -benchtime 1x ./node/
func BenchmarkJoin(b *testing.B) {
	keys := 100_000
	if s := os.Getenv("KVMESH_JOIN_KEYS"); s != "" {
		fmt.Sscan(s, &keys)
	}
	for range b.N {
		b.StopTimer()
		c := startCluster(b, 3)
		value := make([]byte, 1024)
		ctx := context.Background()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1); i <= int64(keys); i = next.Add(1) {
					if _, err := c.nodes[i%3].Put(ctx, fmt.Sprint("j.", i), value, nil, 2); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StartTimer()
		start := time.Now()
		n4 := c.add("n4")
		c.waitSettled("n1", "n2", "n3", "n4")
		b.StopTimer()
		t := n4.Status().Transfer
		if t == nil || t.Finished == 0 {
			b.Fatalf("n4 copied nothing: %+v", t)
		}
		copying := time.Duration(t.Finished - t.Started)
		b.ReportMetric(time.Since(start).Seconds(), "s-to-settle")
		b.ReportMetric(copying.Seconds(), "s-copying")
		b.ReportMetric(float64(t.Bytes)/1e6/copying.Seconds(), "MB/s")
		b.ReportMetric(float64(t.Keys), "records-copied")
		c.close()
	}
}
