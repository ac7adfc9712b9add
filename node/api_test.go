package node_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/node"
)

func TestPutGetDeleteEveryQuorum(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	settings := []string{"", "one", "quorum", "all", "1", "2", "3"}
	for i, w := range settings {
		for j, r := range settings {
			cl := c.client((i + j) % 3)
			key := fmt.Sprintf("user.%d.%d", i, j)
			val := []byte(fmt.Sprintf(`{"w":%q,"r":%q}`, w, r))
			if _, err := cl.Put(ctx, key, val, client.W(w)); err != nil {
				t.Fatalf("put %s w=%q: %v", key, w, err)
			}
			// With w=1 the other replicas may lag; r=all or a read
			// quorum overlapping the write is what guarantees the value.
			if rr, ww := quorumOf(r), quorumOf(w); rr+ww > 3 {
				e, err := cl.Get(ctx, key, client.R(r))
				if err != nil {
					t.Fatalf("get %s r=%q after w=%q: %v", key, r, w, err)
				}
				if !bytes.Equal(e.Value(), val) || e.Siblings != 1 {
					t.Fatalf("get %s r=%q: %q (%d siblings), want %q", key, r, e.Values, e.Siblings, val)
				}
			}
			// A delete without context reads a majority first; after a
			// w=1 put that read may miss the value, so pass the context
			// of a full read instead.
			var del []client.CallOption
			if quorumOf(w) == 1 {
				e, err := cl.Get(ctx, key, client.R("all"))
				if err != nil {
					t.Fatal(err)
				}
				del = append(del, client.Context(e.Context))
			}
			if err := cl.Delete(ctx, key, append(del, client.W(w))...); err != nil {
				t.Fatalf("del %s w=%q: %v", key, w, err)
			}
			if _, err := cl.Get(ctx, key, client.R("all")); !errors.Is(err, client.ErrKeyNotFound) {
				t.Fatalf("get %s after delete: %v, want not found", key, err)
			}
		}
	}
}

func quorumOf(s string) int {
	switch s {
	case "one", "1":
		return 1
	case "all", "3":
		return 3
	}
	return 2
}

func TestConcurrentWritersMakeSiblingsAndContextCollapsesThem(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	const writers = 4
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// No context: every write is concurrent with the others.
			if _, err := c.client(i%3).Put(ctx, "cart.ada", []byte(fmt.Sprintf("item-%d", i)), client.W("all")); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	cl := c.client(0)
	e, err := cl.Get(ctx, "cart.ada", client.R("all"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Siblings != writers || len(e.Values) != writers {
		t.Fatalf("siblings = %d (%q), want %d", e.Siblings, e.Values, writers)
	}
	// The reader merges and writes back with the context it read.
	if _, err := cl.Put(ctx, "cart.ada", []byte("merged"), client.Context(e.Context), client.W("all")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		e, err = c.client(i).Get(ctx, "cart.ada", client.R("all"))
		if err != nil {
			t.Fatal(err)
		}
		if e.Siblings != 1 || string(e.Value()) != "merged" {
			t.Fatalf("after merge: %q (%d siblings), want one value \"merged\"", e.Values, e.Siblings)
		}
	}
}

func TestPutContextSupersedesOwnWrite(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	cl := c.client(1)
	var cctx string
	for i := 0; i < 10; i++ {
		var err error
		cctx, err = cl.Put(ctx, "counter", []byte(fmt.Sprint(i)), client.Context(cctx))
		if err != nil {
			t.Fatal(err)
		}
	}
	e, err := cl.Get(ctx, "counter", client.R("all"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Siblings != 1 || string(e.Value()) != "9" {
		t.Fatalf("got %q (%d siblings), want \"9\" alone", e.Values, e.Siblings)
	}
}

// TestPutAfterDeleteGivesAContext: a blind put after a delete leaves the
// value beside the tombstone; its reply context must still cover it, so
// that the writer's next put supersedes it instead of piling up siblings
// (it used to come back empty).
func TestPutAfterDeleteGivesAContext(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	cl := c.client(0)
	if _, err := cl.Put(ctx, "k", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := cl.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	var cctx string
	for i := range 5 {
		var err error
		cctx, err = cl.Put(ctx, "k", []byte(fmt.Sprint(i)), client.Context(cctx))
		if err != nil {
			t.Fatal(err)
		}
		if cctx == "" {
			t.Fatalf("put %d after the delete returned no context", i)
		}
	}
	e, err := cl.Get(ctx, "k", client.R("all"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Siblings != 1 || string(e.Value()) != "4" {
		t.Fatalf("got %q (%d siblings), want \"4\" alone", e.Values, e.Siblings)
	}
}

func TestResolverMergesSiblings(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	for _, v := range []string{"a", "b"} {
		if _, err := c.client(0).Put(ctx, "set", []byte(v), client.W("all")); err != nil {
			t.Fatal(err)
		}
	}
	cl := c.client(2, client.WithResolver(func(_ string, vs [][]byte) []byte { return bytes.Join(vs, []byte("+")) }))
	e, err := cl.Get(ctx, "set", client.R("all"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(e.Value()); e.Siblings != 2 || (got != "a+b" && got != "b+a") {
		t.Fatalf("resolved %q from %d siblings", got, e.Siblings)
	}
}

func TestKeysThatAreNotSubjectSafeTravelInAHeader(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	cl := c.client(0)
	for _, key := range []string{"with space", "a..b", ".lead", "trail.", "star.*", "gt.>", "ünï.cödé", strings.Repeat("k", 1024)} {
		if _, err := cl.Put(ctx, key, []byte(key)); err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
		e, err := cl.Get(ctx, key)
		if err != nil || string(e.Value()) != key {
			t.Fatalf("get %q: %q, %v", key, e.Value(), err)
		}
	}
}

func TestForwardingWhenCoordinatorIsNotAnOwner(t *testing.T) {
	// With 5 nodes and N=3 most keys have non-owners that coordinate.
	c := startCluster(t, 5)
	ctx := testCtx(t)
	for i := 0; i < 60; i++ {
		key := fmt.Sprintf("fwd.%d", i)
		cl := c.client(i%5, client.WithRouting(false)) // routed, no write would be forwarded
		if _, err := cl.Put(ctx, key, []byte(key), client.W("all")); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		e, err := c.client((i+2)%5).Get(ctx, key, client.R("all"))
		if err != nil || string(e.Value()) != key {
			t.Fatalf("get %s: %q %v", key, e.Value(), err)
		}
	}
}

func TestQuorumErrorsWhenReplicasAreDown(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	cl := c.client(0)
	if _, err := cl.Put(ctx, "k", []byte("v1"), client.W("all")); err != nil {
		t.Fatal(err)
	}
	c.stopAndWait(2)
	// W=2 and R=2 still work with one of three replicas down.
	if _, err := cl.Put(ctx, "k", []byte("v2"), client.W("quorum")); err != nil {
		t.Fatalf("put w=quorum with one node down: %v", err)
	}
	if _, err := cl.Get(ctx, "k", client.R("quorum")); err != nil {
		t.Fatalf("get r=quorum with one node down: %v", err)
	}
	// W=all cannot: the error says how many replicas answered.
	_, err := cl.Put(ctx, "k", []byte("v3"), client.W("all"))
	if !errors.Is(err, client.ErrQuorumNotReached) || !strings.Contains(err.Error(), "2 of 3") {
		t.Fatalf("put w=all with one node down: %v, want quorum error naming 2 of 3", err)
	}
	_, err = cl.Get(ctx, "k", client.R("all"))
	if !errors.Is(err, client.ErrQuorumNotReached) {
		t.Fatalf("get r=all with one node down: %v, want quorum error", err)
	}
	c.stopAndWait(1)
	_, err = cl.Put(ctx, "k", []byte("v4"))
	if !errors.Is(err, client.ErrQuorumNotReached) || !strings.Contains(err.Error(), "1 of 3") {
		t.Fatalf("put with two nodes down: %v, want quorum error naming 1 of 3", err)
	}
}

func TestRestartKeepsAcknowledgedWrites(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	cl := c.client(0)
	for i := 0; i < 50; i++ {
		if _, err := cl.Put(ctx, fmt.Sprintf("d.%d", i), []byte(fmt.Sprint(i)), client.W("all")); err != nil {
			t.Fatal(err)
		}
	}
	c.stop(1)
	if err := c.start(1); err != nil {
		t.Fatal(err)
	}
	c.waitMembers(3)
	// Only node 2 is left: a read with r=one can be answered by its own
	// replica alone, so this reads exactly what node 2 kept on disk.
	cl2 := c.client(1)
	c.stopAndWait(0)
	c.stopAndWait(2)
	for i := 0; i < 50; i++ {
		e, err := cl2.Get(ctx, fmt.Sprintf("d.%d", i), client.R("one"))
		if err != nil || string(e.Value()) != fmt.Sprint(i) {
			t.Fatalf("d.%d after restart: %q %v", i, e.Value(), err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := node.DefaultConfig()
	if err := cfg.Validate(); err == nil {
		t.Fatal("config without id and data dir validated")
	}
	cfg.ID, cfg.DataDir = "n1", t.TempDir()
	if err := cfg.Validate(); err == nil {
		t.Fatal("config without a secret validated")
	}
	cfg.Secret = testSecret
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*node.Config){
		"bad id":         func(c *node.Config) { c.ID = "n.1" },
		"replicas 0":     func(c *node.Config) { c.Replicas = 0 },
		"partitions 0":   func(c *node.Config) { c.Partitions = 0 },
		"prefix":         func(c *node.Config) { c.Prefix = "a.*" },
		"timeout":        func(c *node.Config) { c.RequestTimeout = 0 },
		"payload":        func(c *node.Config) { c.MaxPayload = 10 },
		"inflight":       func(c *node.Config) { c.MaxInflight = 0 },
		"heartbeat zero": func(c *node.Config) { c.Heartbeat = 0 },
	} {
		c := cfg
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: validated", name)
		}
	}
}

// TestNodeStartsAloneAndServesWhatItCan: a node restarted while its peers
// are down comes up within its peer wait (never hangs), remembers the
// members, and serves what the quorum it can reach allows.
func TestNodeStartsAloneAndServesWhatItCan(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	if _, err := c.client(0).Put(ctx, "before", []byte("v"), client.W("all")); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		c.stop(i)
	}
	c.cfgs[0].PeerWait = 300 * time.Millisecond
	start := time.Now()
	if err := c.start(0); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > 20*time.Second {
		t.Fatalf("start took %v with the peers down", waited)
	}
	if got := c.nodes[0].Members(); len(got) != 3 {
		t.Fatalf("members after a lone restart: %v, want the 3 it knew", got)
	}
	cl := c.client(0)
	if e, err := cl.Get(ctx, "before", client.R("one")); err != nil || string(e.Value()) != "v" {
		t.Fatalf("r=one alone: %q %v", e.Value(), err)
	}
	if _, err := cl.Put(ctx, "alone", []byte("w"), client.W("one")); err != nil {
		t.Fatalf("w=one alone: %v", err)
	}
	if _, err := cl.Put(ctx, "alone", []byte("w")); !errors.Is(err, client.ErrQuorumNotReached) {
		t.Fatalf("w=quorum alone: %v, want quorum not reached", err)
	}
}

// TestForwardSkipsAnUnreachableOwner: a non-owner forwards a write to the
// key's first owner; when that owner is down (no responders), the next
// owner coordinates it.
func TestForwardSkipsAnUnreachableOwner(t *testing.T) {
	c := startCluster(t, 5)
	ctx := testCtx(t)
	byID := map[string]int{}
	for i, cfg := range c.cfgs {
		byID[cfg.ID] = i
	}
	// A key whose non-owners include node 0, which stays up.
	var key string
	var owners []string
	for i := 0; ; i++ {
		key = fmt.Sprintf("fwd-skip.%d", i)
		owners = c.nodes[0].Owners(key)
		if !slices.Contains(owners, c.cfgs[0].ID) {
			break
		}
	}
	c.stopAndWait(byID[owners[0]])
	cl := c.client(0, client.WithDirect(true), client.WithRouting(false))
	if _, err := cl.Put(ctx, key, []byte("v"), client.W("2")); err != nil {
		t.Fatalf("put with the first owner %s down: %v", owners[0], err)
	}
	e, err := cl.Get(ctx, key, client.R("2"))
	if err != nil || string(e.Value()) != "v" {
		t.Fatalf("get: %q %v", e.Value(), err)
	}
}

// TestContextOnlyForItsKey is finding 3 of issue 15: the context of key
// A used on key B superseded B's acknowledged siblings that A's clock
// happened to cover, and a made-up context with a counter near the limit
// made the key unwritable. Contexts are sealed to their key and store
// now: any other is refused with 400, and nothing changes.
func TestContextOnlyForItsKey(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t)
	cl := c.client(0)
	ctxA, err := cl.Put(ctx, "a", []byte("a1"), client.W("all"))
	if err != nil {
		t.Fatal(err)
	}
	// B gets two concurrent siblings, blind writes through two nodes.
	for i, v := range []string{"b1", "b2"} {
		if _, err := c.client(i).Put(ctx, "b", []byte(v), client.W("all")); err != nil {
			t.Fatal(err)
		}
	}
	before, err := cl.Get(ctx, "b", client.R("all"))
	if err != nil || before.Siblings != 2 {
		t.Fatalf("b before: %v, %v", before, err)
	}
	forged := "AQAAAAAAAAAAAAAAAAAAAAAAkZKibjHPQAAAAAAAAAA" // version 1, zero tag, {n1: 2^62}
	for name, bad := range map[string]string{
		"a's context on b": ctxA,
		"made up":          forged,
		"truncated":        before.Context[:len(before.Context)-3],
	} {
		_, err := cl.Put(ctx, "b", []byte("over"), client.Context(bad), client.W("all"))
		if !errors.Is(err, client.ErrInvalidContext) {
			t.Fatalf("%s: put = %v, want ErrInvalidContext", name, err)
		}
		if err := cl.Delete(ctx, "b", client.Context(bad)); !errors.Is(err, client.ErrInvalidContext) {
			t.Fatalf("%s: delete = %v, want ErrInvalidContext", name, err)
		}
	}
	after, err := cl.Get(ctx, "b", client.R("all"))
	if err != nil || after.Siblings != 2 || after.Context != before.Context {
		t.Fatalf("b changed after refused contexts: %v (%d siblings), %v", after.Values, after.Siblings, err)
	}
	// b's own context still works, through any node.
	if _, err := c.client(2).Put(ctx, "b", []byte("merged"), client.Context(after.Context), client.W("all")); err != nil {
		t.Fatal(err)
	}
	if e, err := cl.Get(ctx, "b", client.R("all")); err != nil || string(e.Value()) != "merged" || e.Siblings != 1 {
		t.Fatalf("b after a put with its context: %v, %v", e, err)
	}
}
