package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Tests of the pulling side of partition transfer (transfer.go), with the
// nodes and data of scan_test.go.

// assertCopied: every key of p reads the same on both nodes, and dst
// holds no key of another partition.
func assertCopied(t testing.TB, src, dst *Node, p int, keys []string) {
	t.Helper()
	for _, k := range keys {
		a, b := mustGet(t, src, k), mustGet(t, dst, k)
		if a == nil || !version.Equal(a, b) {
			t.Fatalf("%s: source %+v, copy %+v", k, a, b)
		}
	}
	if got := partitionKeys(t, dst.st, p); len(got) != len(keys) {
		t.Fatalf("the copy holds %d keys of partition %d, want %d", len(got), p, len(keys))
	}
	for q := range transferQ {
		if q != p {
			if got := partitionKeys(t, dst.st, q); len(got) > 0 {
				t.Fatalf("the copy holds %d keys of partition %d, e.g. %q", len(got), q, got[0])
			}
		}
	}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestPullPartition copies a partition of a few thousand keys (written
// once, overwritten, deleted, with siblings; some in bbolt, some in the
// memtables) from one node into an empty one: every key then reads the
// same on both, tombstones included, and no other partition is copied.
// Each page is durable before the next is asked for.
func TestPullPartition(t *testing.T) {
	net := transport.NewMemNetwork(1)
	ids := []string{"src", "dst"}
	src := startMemNode(t, net, "src", ids, nil)
	dst := startMemNode(t, net, "dst", ids, nil)
	const p = 1
	keys := fillPartition(t, src.Node, p, 3000, 100)
	src.restart(t, net) // the records move into bbolt
	// Newer versions of some keys, in the memtables only.
	var newKeys []string
	var newer []*protocol.Object
	for i := 0; i < len(keys); i += 10 {
		o := mustGet(t, src.Node, keys[i])
		n, err := version.Update(o, o.Clock, protocol.NewActorID("n1", 2, 1), protocol.Sibling{Value: []byte("newest"), Time: 1})
		if err != nil {
			t.Fatal(err)
		}
		newKeys, newer = append(newKeys, keys[i]), append(newer, n)
	}
	storeAll(t, src.Node, newKeys, newer)

	pages, total := 0, 0
	cursor, err := dst.pullPartition(testContext(t), p, "src", "", func(k, bytes int, cursor string) {
		pages++
		total += k
		// The page is durable before the next one is asked for.
		if cursor != "" && mustGet(t, dst.Node, cursor) == nil {
			t.Errorf("page %d: its last key %q is not in the store", pages, cursor)
		}
	})
	if err != nil || cursor != "" {
		t.Fatalf("pull: cursor %q, %v", cursor, err)
	}
	if total != len(keys) || pages < 3 || int(src.tap.scans.Load()) != pages {
		t.Fatalf("%d keys in %d pages (%d requests served), want %d keys in 3 pages or more", total, pages, src.tap.scans.Load(), len(keys))
	}
	assertCopied(t, src.Node, dst.Node, p, keys)
	tombstones := 0
	for _, k := range keys {
		if o := mustGet(t, dst.Node, k); len(o.Live()) < len(o.Siblings) {
			tombstones++
		}
	}
	if tombstones < len(keys)/5 {
		t.Fatalf("%d tombstones copied, want at least %d", tombstones, len(keys)/5)
	}

	// Pulling again changes nothing, and an empty partition is one page.
	if _, err := dst.pullPartition(testContext(t), p, "src", "", nil); err != nil {
		t.Fatal(err)
	}
	assertCopied(t, src.Node, dst.Node, p, keys)
	pages = 0
	startMemNode(t, net, "empty", nil, nil)
	if cursor, err := dst.pullPartition(testContext(t), p, "empty", "", func(int, int, string) { pages++ }); err != nil || cursor != "" || pages != 1 {
		t.Fatalf("pull of an empty partition: %d pages, %q, %v", pages, cursor, err)
	}
}

// TestPullMerges: a pull into a node that already holds versions of some
// keys merges them like a replica write: a newer local version stays, an
// older one is superseded, concurrent ones become siblings, and keys only
// the puller holds stay.
func TestPullMerges(t *testing.T) {
	net := transport.NewMemNetwork(2)
	ids := []string{"src", "dst"}
	src := startMemNode(t, net, "src", ids, nil)
	dst := startMemNode(t, net, "dst", ids, nil)
	const p = 2
	keys, _ := keysOf(p, 400)
	a, b, c := protocol.NewActorID("n1", 1, 1), protocol.NewActorID("n2", 1, 1), protocol.NewActorID("n3", 1, 1)
	update := func(o *protocol.Object, ctx protocol.Clock, actor, value string) *protocol.Object {
		t.Helper()
		n, err := version.Update(o, ctx, actor, protocol.Sibling{Value: []byte(value), Time: 1})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	var srcObjs, dstObjs []*protocol.Object
	var srcKeys, dstKeys []string
	want := map[string]*protocol.Object{}
	for i, k := range keys {
		base := update(nil, nil, a, "base")
		switch i % 4 {
		case 0: // the puller is newer: it keeps its version
			newer := update(base, base.Clock, c, "local newer")
			srcKeys, srcObjs = append(srcKeys, k), append(srcObjs, base)
			dstKeys, dstObjs = append(dstKeys, k), append(dstObjs, newer)
			want[k] = newer
		case 1: // the source is newer: it wins
			newer := update(base, base.Clock, b, "remote newer")
			srcKeys, srcObjs = append(srcKeys, k), append(srcObjs, newer)
			dstKeys, dstObjs = append(dstKeys, k), append(dstObjs, base)
			want[k] = newer
		case 2: // concurrent: siblings
			x, y := update(base, base.Clock, b, "remote"), update(base, base.Clock, c, "local")
			srcKeys, srcObjs = append(srcKeys, k), append(srcObjs, x)
			dstKeys, dstObjs = append(dstKeys, k), append(dstObjs, y)
			want[k] = version.Sync(x, y)
			if len(want[k].Live()) != 2 {
				t.Fatalf("setup: %+v is not two siblings", want[k])
			}
		case 3: // only the puller has it
			dstKeys, dstObjs = append(dstKeys, k), append(dstObjs, base)
			want[k] = base
		}
	}
	storeAll(t, src.Node, srcKeys, srcObjs)
	storeAll(t, dst.Node, dstKeys, dstObjs)
	if cursor, err := dst.pullPartition(testContext(t), p, "src", "", nil); err != nil || cursor != "" {
		t.Fatalf("pull: %q, %v", cursor, err)
	}
	for _, k := range keys {
		if got := mustGet(t, dst.Node, k); !version.Equal(got, want[k]) {
			t.Fatalf("%s: %+v, want %+v", k, got, want[k])
		}
	}
}

// TestPullResumes: a pull stopped midway (its context cancelled, or the
// peer unreachable so that a page times out) returns the cursor it
// reached; a pull from that cursor completes the copy without asking for
// the first part again.
func TestPullResumes(t *testing.T) {
	net := transport.NewMemNetwork(3)
	ids := []string{"src", "dst"}
	src := startMemNode(t, net, "src", ids, nil)
	dst := startMemNode(t, net, "dst", ids, func(c *Config) { c.RequestTimeout = time.Second })
	const p = 3
	keys := fillPartition(t, src.Node, p, 2500, 1000)
	dst.pageBudget = 100 << 10 // about 100 records a page

	// Cancelled after the second page.
	ctx, cancel := context.WithCancel(testContext(t))
	pages, first := 0, 0
	cursor, err := dst.pullPartition(ctx, p, "src", "", func(k, _ int, _ string) {
		pages++
		first += k
		if pages == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || cursor == "" || pages != 2 || src.tap.scans.Load() != 2 {
		t.Fatalf("cancelled pull: %d pages, %d asked, cursor %q, %v", pages, src.tap.scans.Load(), cursor, err)
	}
	if got := partitionKeys(t, dst.st, p); len(got) != first || got[len(got)-1] != cursor {
		t.Fatalf("after the cancelled pull the copy holds %d keys up to %q, want %d up to %q", len(got), got[len(got)-1], first, cursor)
	}

	// The peer unreachable after the fourth page: the fifth times out.
	pages, second := 0, 0
	cursor2, err := dst.pullPartition(testContext(t), p, "src", cursor, func(k, _ int, _ string) {
		pages++
		second += k
		if pages == 2 {
			net.Isolate("src")
		}
	})
	if !errors.Is(err, protocol.ErrNodeUnavailable) || cursor2 <= cursor || pages != 2 {
		t.Fatalf("pull cut off: %d pages, cursor %q (from %q), %v", pages, cursor2, cursor, err)
	}
	net.Heal()

	pages, third := 0, 0
	asked := src.tap.scans.Load()
	cursor3, err := dst.pullPartition(testContext(t), p, "src", cursor2, func(k, _ int, _ string) { pages++; third += k })
	if err != nil || cursor3 != "" {
		t.Fatalf("resumed pull: %q, %v", cursor3, err)
	}
	if first+second+third != len(keys) || src.tap.scans.Load()-asked != int64(pages) {
		t.Fatalf("%d + %d + %d keys pulled, want %d once each", first, second, third, len(keys))
	}
	assertCopied(t, src.Node, dst.Node, p, keys)
}

// TestPullPageBudget: with a small max payload, every page's records fit
// the puller's budget and every reply the payload, except a record
// larger than the budget, which goes alone; one larger than any reply
// can carry stops the pull with an error naming it, at the cursor before
// it.
func TestPullPageBudget(t *testing.T) {
	net := transport.NewMemNetwork(4)
	ids := []string{"src", "dst"}
	small := func(c *Config) { c.MaxPayload = 64 << 10 }
	src := startMemNode(t, net, "src", ids, small)
	dst := startMemNode(t, net, "dst", ids, small)
	const p = 0
	keys := fillPartition(t, src.Node, p, 300, 1000)
	dst.pageBudget = 16 << 10
	// An oversized record in the middle of the partition: bigger than the
	// budget, small enough for a reply.
	big := keys[150]
	bigObj, err := version.Update(mustGet(t, src.Node, big), nil, protocol.NewActorID("n1", 3, 1), protocol.Sibling{Value: make([]byte, 24<<10)})
	if err != nil {
		t.Fatal(err)
	}
	storeAll(t, src.Node, []string{big}, []*protocol.Object{bigObj})

	var sizes []int
	cursor, err := dst.pullPartition(testContext(t), p, "src", "", func(k, bytes int, cursor string) {
		if bytes > dst.pageBudget && (k != 1 || cursor != big) {
			t.Errorf("page of %d records, %d bytes, ending at %q: over the budget of %d", k, bytes, cursor, dst.pageBudget)
		}
		sizes = append(sizes, bytes)
	})
	if err != nil || cursor != "" {
		t.Fatalf("pull: %q, %v", cursor, err)
	}
	total := 0
	for _, s := range sizes {
		total += s
	}
	if slices.Max(sizes) <= dst.pageBudget || len(sizes) > total/dst.pageBudget+3 {
		t.Fatalf("page sizes %v: want the oversized record alone and full pages of the budget", sizes)
	}
	if m := dst.tap.maxReply.Load(); m > int64(dst.cfg.MaxPayload) {
		t.Fatalf("a reply of %d bytes, max payload %d", m, dst.cfg.MaxPayload)
	}
	assertCopied(t, src.Node, dst.Node, p, keys)

	// A record no reply can carry: three siblings of 30 KiB.
	huge := keys[200]
	o := mustGet(t, src.Node, huge)
	for i := range 3 {
		if o, err = version.Update(o, nil, protocol.NewActorID("n1", 4, uint64(i+1)), protocol.Sibling{Value: make([]byte, 30<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	storeAll(t, src.Node, []string{huge}, []*protocol.Object{o})
	cursor, err = dst.pullPartition(testContext(t), p, "src", big, nil)
	if !errors.Is(err, protocol.ErrValueTooLarge) || !strings.Contains(err.Error(), huge) || cursor == "" || cursor >= huge {
		t.Fatalf("pull over a record too large for a reply: cursor %q, %v", cursor, err)
	}
}

// TestPullFromAnOldPeer: a peer that does not know RPCScan refuses the
// message with one error result of tag 0, as every node before it did;
// the pull fails at once with that error, not at the timeout.
func TestPullFromAnOldPeer(t *testing.T) {
	net := transport.NewMemNetwork(5)
	dst := startMemNode(t, net, "dst", []string{"dst", "old"}, func(c *Config) { c.RequestTimeout = time.Hour })
	old := net.Endpoint("old")
	if err := old.Start(oldPeer{}); err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	cursor, err := dst.pullPartition(testContext(t), 1, "old", "k", nil)
	if !errors.Is(err, protocol.ErrMalformed) || !strings.Contains(err.Error(), "unknown op 4") || cursor != "k" {
		t.Fatalf("pull from an old peer: %q, %v", cursor, err)
	}
}

// oldPeer answers requests as a node that knows ops 1..3 only: a request
// with another op does not decode, and the reply is one tag-0 error.
type oldPeer struct{}

func (oldPeer) HandleRequest(data []byte, respond func([]byte)) {
	req, err := protocol.DecodeRequest(data)
	if err == nil {
		for _, it := range req.Items {
			if it.Op > protocol.RPCCoordinate {
				err = protocol.Errorf(protocol.ErrMalformed, "request: byte 20: unknown op %d", it.Op)
			}
		}
	}
	if err == nil {
		err = protocol.Errorf(protocol.ErrInternal, "old peer: not implemented")
	}
	b, _ := protocol.EncodeReply(&protocol.Reply{V: protocol.Version, From: "old", Results: []protocol.Result{protocol.ResultError(0, err)}})
	respond(b)
}

func (oldPeer) HandleReply(uint64, []byte)       {}
func (oldPeer) HandleUnreachable(uint64, string) {}
func (oldPeer) HandleGossip(string, []byte)      {}

// BenchmarkPullPartition pulls a partition of 1 KiB values (4 MiB of
// them) from one node into a new, empty one: real bbolt in temp dirs,
// the in-memory transport, 1 MiB max payload. It reports the records'
// bytes copied per second.
func BenchmarkPullPartition(b *testing.B) {
	net := transport.NewMemNetwork(6)
	src := startMemNode(b, net, "src", nil, nil)
	const p = 1
	keys := fillPartition(b, src.Node, p, 4096, 1024)
	src.restart(b, net) // in bbolt, as a partition long written is
	var bytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst := startMemNode(b, net, fmt.Sprintf("dst%d", i), nil, nil)
		b.StartTimer()
		n := 0
		_, err := dst.pullPartition(context.Background(), p, "src", "", func(k, by int, _ string) { n += k; bytes += int64(by) })
		if err != nil || n != len(keys) {
			b.Fatalf("pulled %d of %d keys: %v", n, len(keys), err)
		}
		b.StopTimer()
		_ = dst.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
}
