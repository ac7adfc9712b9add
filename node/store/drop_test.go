package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvmesh/kvmesh/protocol"
)

// dropP is the partition the drop tests drop; its neighbours share all
// but the last byte of their prefix with it, so a chunk that runs past
// its end meets them first.
const dropP = 0x0105

// writeAll writes key -> value for each entry of kv in partition p, all
// queued at once.
func writeAll(t testing.TB, s *Store, p int, kv map[string]string) {
	t.Helper()
	done, results := collect(len(kv))
	for k, v := range kv {
		if err := s.Apply(p, k, put(v), done); err != nil {
			t.Fatal(err)
		}
	}
	for range kv {
		if r := <-results; r.err != nil {
			t.Fatal(r.err)
		}
	}
}

func keyValues(prefix string, n int, value func(key string) string) map[string]string {
	kv := make(map[string]string, n)
	for i := range n {
		k := fmt.Sprintf("%s%05d", prefix, i)
		kv[k] = value(k)
	}
	return kv
}

// contents returns partition p as Scan sees it, and checks that Get
// agrees on every key.
func contents(t testing.TB, s *Store, p int) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := s.Scan(p, func(key string, o *protocol.Object) bool {
		got[key] = value(o)
		return true
	})
	if err != nil {
		t.Fatalf("Scan(%d): %v", p, err)
	}
	for k, v := range got {
		if g := value(mustGet(t, s, p, k)); g != v {
			t.Fatalf("partition %d: Get(%s) = %q, Scan saw %q", p, k, g, v)
		}
	}
	return got
}

// checkPartition fails unless partition p holds exactly want, by Scan
// and by Get.
func checkPartition(t testing.TB, s *Store, p int, want map[string]string, when string) {
	t.Helper()
	got := contents(t, s, p)
	if !maps.Equal(got, want) {
		t.Fatalf("%s: partition %d has %d keys, want %d (first difference: %s)", when, p, len(got), len(want), firstDiff(got, want))
	}
	for k, v := range want {
		if g := value(mustGet(t, s, p, k)); g != v {
			t.Fatalf("%s: Get(%d, %s) = %q, want %q", when, p, k, g, v)
		}
	}
}

func firstDiff(got, want map[string]string) string {
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return fmt.Sprintf("%s = %q (present %v), want %q", k, g, ok, v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			return fmt.Sprintf("%s = %q, want absent", k, v)
		}
	}
	return "none"
}

// dropFixture fills dropP and its neighbours: dropP's first n keys
// reach bbolt (the store is closed and reopened), then n/5 more keys and
// rewrites of the first quarter of the old ones stay in the memtable and
// the log. It returns the store, what the neighbours hold and what dropP
// holds.
//
// With the default memtable size the fixture checks that its last writes
// are still only in the memtable and its first ones in bbolt; a store with
// small memtables (checkpointing in the background at any time) skips
// that check, which would depend on timing.
func dropFixture(t testing.TB, s *Store, reopen func() *Store, n int) (*Store, map[int]map[string]string, map[string]string) {
	t.Helper()
	others := map[int]map[string]string{}
	for _, p := range []int{0, dropP - 1, dropP + 1, 0xffff} {
		others[p] = keyValues("o", n/8, func(k string) string { return fmt.Sprintf("%d-%s", p, k) })
		writeAll(t, s, p, others[p])
	}
	mine := keyValues("k", n, func(k string) string { return "old-" + k })
	writeAll(t, s, dropP, mine)
	s = reopen() // a clean close checkpoints everything into bbolt
	more := keyValues("k", n+n/5, func(k string) string { return "new-" + k })
	for k := range more {
		if k < fmt.Sprintf("k%05d", n/4) || k >= fmt.Sprintf("k%05d", n) {
			mine[k] = more[k]
		} else {
			delete(more, k)
		}
	}
	writeAll(t, s, dropP, more)
	if s.opts.MemtableBytes < DefaultOptions().MemtableBytes {
		return s, others, mine
	}
	if _, ok, _ := s.Cached(dropP, fmt.Sprintf("k%05d", n+n/5-1)); !ok {
		t.Fatal("the fixture's last writes are not in the memtable")
	}
	if _, ok, _ := s.Cached(dropP, fmt.Sprintf("k%05d", n/2)); ok {
		t.Fatal("the fixture's first writes are still in the memtable")
	}
	return s, others, mine
}

// TestDropPartition drops a partition whose records are partly in bbolt,
// partly only in the memtable and the log: it is empty afterwards, by
// Scan, Get and Cached, also after a clean restart and after a crash; the
// other partitions are untouched; a second drop finds nothing.
func TestDropPartition(t *testing.T) {
	for _, chunk := range []int{dropChunk, 97} {
		for _, restart := range []string{"close", "process crash", "power loss"} {
			t.Run(fmt.Sprintf("chunk %d, %s", chunk, restart), func(t *testing.T) {
				d := openSim(t, uint64(chunk), Options{MemtableBytes: 64 << 20})
				reopen := func() *Store {
					if err := d.s.Close(); err != nil {
						t.Fatal(err)
					}
					if err := d.open(d.sim.FS()); err != nil {
						t.Fatal(err)
					}
					d.s.dropChunk = chunk
					return d.s
				}
				d.s.dropChunk = chunk
				s, others, mine := dropFixture(t, d.s, reopen, 2500)
				n, err := s.DropPartition(context.Background(), dropP)
				if err != nil {
					t.Fatal(err)
				}
				if n != len(mine) { // not fatal: what the store holds tells more
					t.Errorf("DropPartition dropped %d records, want %d", n, len(mine))
				}
				check := func(when string) {
					t.Helper()
					checkPartition(t, d.s, dropP, nil, when)
					for _, k := range []string{"k00000", "k01000", "k02999"} { // in the memtable, bbolt, the memtable
						if o, ok, err := d.s.Cached(dropP, k); ok || o != nil || err != nil {
							t.Fatalf("%s: Cached(%s) = %v, %v, %v", when, k, o, ok, err)
						}
					}
					for p, want := range others {
						checkPartition(t, d.s, p, want, when)
					}
				}
				check("after the drop")
				switch restart {
				case "close":
					reopen()
				default:
					if err := d.crash(restart == "power loss"); err != nil {
						t.Fatalf("Open after a %s: %v", restart, err)
					}
				}
				check("after a " + restart)
				if n, err := d.s.DropPartition(context.Background(), dropP); n != 0 || err != nil {
					t.Fatalf("second DropPartition = %d, %v", n, err)
				}
			})
		}
	}
}

// TestDropPartitionConcurrent drops a partition while writers keep
// writing to its neighbours and to it (late writes), readers scan, and
// small memtables checkpoint all along: every acknowledged write to
// another partition survives; the dropped partition keeps only writes
// made during the drop, and every write made after its cut (so every
// write made after it returned); all of it also after a restart.
func TestDropPartitionConcurrent(t *testing.T) {
	d := openSim(t, 7, Options{MemtableBytes: 16 << 10})
	d.s.dropChunk = 50
	reopen := func() *Store {
		if err := d.s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := d.open(d.sim.FS()); err != nil {
			t.Fatal(err)
		}
		return d.s
	}
	s, others, mine := dropFixture(t, d.s, reopen, 2500)
	s.dropChunk = 50

	var returned, cut atomic.Bool
	s.hooks.dropChunk = func(chunks int) {
		if chunks == 0 {
			cut.Store(true)
		}
	}
	var writers, reader sync.WaitGroup
	var mu sync.Mutex
	acked := map[int]map[string]string{} // partition -> key -> last acknowledged value
	kept := map[string]string{}          // dropP's keys written after the cut -> last value
	for p := range others {
		acked[p] = map[string]string{}
	}
	// writer writes to p until it has written 20 times after the drop
	// returned; to dropP it also rewrites keys of the fixture.
	writer := func(p int, prefix string) {
		defer writers.Done()
		for i, after := 0, 0; after < 20; i++ {
			ret, postCut := returned.Load(), cut.Load()
			key := fmt.Sprintf("%s%03d", prefix, i%200)
			if p == dropP && i%2 == 0 {
				key = fmt.Sprintf("k%05d", i*7%len(mine))
			}
			v := fmt.Sprintf("late-%d-%d", p, i)
			if _, err := s.Update(context.Background(), p, key, put(v)); err != nil {
				t.Errorf("write %d/%s: %v", p, key, err)
				return
			}
			mu.Lock()
			if p != dropP {
				acked[p][key] = v
			} else if postCut {
				kept[key] = v
			}
			mu.Unlock()
			if ret {
				after++
			}
		}
	}
	for p := range others {
		writers.Add(1)
		go writer(p, "w")
	}
	writers.Add(1)
	go writer(dropP, "l")
	stop := make(chan struct{})
	reader.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, p := range []int{dropP - 1, dropP, dropP + 1} {
				if err := s.Scan(p, func(string, *protocol.Object) bool { return true }); err != nil {
					t.Errorf("Scan(%d) during the drop: %v", p, err)
					return
				}
			}
			if _, err := s.Get(dropP, "k01234"); err != nil {
				t.Errorf("Get during the drop: %v", err)
				return
			}
		}
	})
	checkpoints := s.Stats().Checkpoints
	n, err := s.DropPartition(context.Background(), dropP)
	returned.Store(true)
	// The writer's own keys written before the cut count too (200 at most).
	if err != nil || n > len(mine)+200 || n < len(mine)/2 {
		t.Fatalf("DropPartition = %d, %v; want about %d", n, err, len(mine))
	}
	if c := s.Stats().Checkpoints - checkpoints; c < 3 {
		t.Fatalf("only %d checkpoints during the drop: it raced with none", c)
	}
	writers.Wait()
	close(stop)
	reader.Wait()

	check := func(when string) {
		t.Helper()
		for p, want := range others {
			want = maps.Clone(want)
			maps.Copy(want, acked[p])
			checkPartition(t, d.s, p, want, when)
		}
		got := contents(t, d.s, dropP)
		for k, v := range got {
			if !strings.HasPrefix(v, "late-") {
				t.Fatalf("%s: %s = %q survived the drop", when, k, v)
			}
		}
		for k, v := range kept {
			if got[k] != v {
				t.Fatalf("%s: %s = %q, acknowledged %q after the drop's cut", when, k, got[k], v)
			}
		}
	}
	check("after the drop")
	reopen()
	check("after a restart")
}

// TestDropPartitionCrash crashes the process, or the machine, at a random
// point of a drop: during its checkpoint, after any of its chunks. The
// store opens (every record passes its checksum), the other partitions
// are intact, the dropped partition holds a subset of its records with
// their values, as many fewer as the drop reported; a second drop empties
// it, and a power loss after that does not bring anything back.
func TestDropPartitionCrash(t *testing.T) {
	seeds := 16
	if testing.Short() {
		seeds = 6
	}
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 3))
		power := seed%2 == 1
		const chunk = 64
		d := openSim(t, seed, Options{MemtableBytes: 64 << 20})
		reopen := func() *Store {
			if err := d.s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := d.open(d.sim.FS()); err != nil {
				t.Fatal(err)
			}
			return d.s
		}
		s, others, mine := dropFixture(t, d.s, reopen, 1000)
		s.dropChunk = chunk
		// -1: right after the cut's checkpoint commits, before the
		// checkpointer is done with it; chunks: after the last one.
		total := (len(mine) + chunk - 1) / chunk
		at := rng.IntN(total+2) - 1
		crashed := make(chan struct{})
		if at < 0 {
			var once sync.Once
			s.hooks.inCheckpoint = func() error {
				// Crash waits for this transaction to end.
				once.Do(func() { go func() { d.sim.Crash(power); close(crashed) }() })
				return nil
			}
		}
		s.hooks.dropChunk = func(chunks int) {
			switch {
			case at < 0 && chunks == 0:
				<-crashed
			case chunks == at:
				d.sim.Crash(power)
			}
		}
		n, err := s.DropPartition(context.Background(), dropP)
		if (err == nil) != (at == total) {
			t.Fatalf("seed %d: DropPartition crashed at chunk %d = %d, %v", seed, at, n, err)
		}
		if err := d.crash(power); err != nil {
			t.Fatalf("seed %d: Open after a crash (power %v) at chunk %d: %v", seed, power, at, err)
		}
		for p, want := range others {
			checkPartition(t, d.s, p, want, fmt.Sprintf("seed %d: after a crash at chunk %d", seed, at))
		}
		left := contents(t, d.s, dropP)
		for k, v := range left {
			if mine[k] != v {
				t.Fatalf("seed %d: after a crash at chunk %d: %s = %q, want %q", seed, at, k, v, mine[k])
			}
		}
		if len(left)+n != len(mine) {
			t.Fatalf("seed %d: after a crash at chunk %d: %d records left, %d dropped, of %d", seed, at, len(left), n, len(mine))
		}
		n2, err := d.s.DropPartition(context.Background(), dropP)
		if err != nil || n2 != len(left) {
			t.Fatalf("seed %d: second DropPartition = %d, %v; want %d", seed, n2, err, len(left))
		}
		if err := d.crash(true); err != nil {
			t.Fatal(err)
		}
		checkPartition(t, d.s, dropP, nil, fmt.Sprintf("seed %d: after the second drop and a power loss", seed))
		for p, want := range others {
			checkPartition(t, d.s, p, want, fmt.Sprintf("seed %d: after the second drop and a power loss", seed))
		}
	}
}

// TestDropPartitionContext: a drop whose context ends between chunks
// stops there, and reports what it dropped; the rest is intact.
func TestDropPartitionContext(t *testing.T) {
	s, _ := openTest(t, Options{})
	s.dropChunk = 10
	kv := keyValues("k", 100, func(k string) string { return k })
	writeAll(t, s, 3, kv)
	ctx, cancel := context.WithCancel(context.Background())
	s.hooks.dropChunk = func(chunks int) {
		if chunks == 3 {
			cancel()
		}
	}
	n, err := s.DropPartition(ctx, 3)
	if !errors.Is(err, context.Canceled) || n != 30 {
		t.Fatalf("DropPartition = %d, %v; want 30, context.Canceled", n, err)
	}
	if got := contents(t, s, 3); len(got) != 70 {
		t.Fatalf("%d records left, want 70", len(got))
	}
	s.hooks.dropChunk = nil
	if n, err := s.DropPartition(context.Background(), 3); n != 70 || err != nil {
		t.Fatalf("second DropPartition = %d, %v", n, err)
	}
	if _, err := s.DropPartition(context.Background(), -1); !errors.Is(err, protocol.ErrInvalidKey) {
		t.Fatalf("DropPartition(-1) = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DropPartition(context.Background(), 3); !errors.Is(err, ErrClosed) {
		t.Fatalf("DropPartition after Close = %v", err)
	}
}
