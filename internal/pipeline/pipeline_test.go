package pipeline

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a fake destination side: it records each batch with its
// done, which the test calls to answer the batch, and what Fail got.
type recorder struct {
	mu      sync.Mutex
	batches [][]string
	dones   []func()
	failed  []string
	gate    chan struct{} // non-nil: Send waits until it is closed
}

func (r *recorder) send(_ string, batch []string, done func()) {
	r.mu.Lock()
	r.batches = append(r.batches, batch)
	r.dones = append(r.dones, done)
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

func (r *recorder) fail(_ string, items []string) {
	r.mu.Lock()
	r.failed = append(r.failed, items...)
	r.mu.Unlock()
}

// block makes the next Sends wait until release.
func (r *recorder) block() {
	r.mu.Lock()
	r.gate = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) release() {
	r.mu.Lock()
	close(r.gate)
	r.gate = nil
	r.mu.Unlock()
}

// sent returns the batches sent so far.
func (r *recorder) sent() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

func (r *recorder) answer(i int) {
	r.mu.Lock()
	done := r.dones[i]
	r.mu.Unlock()
	done()
}

// recorded returns a pipeline that sends to a new recorder, with the
// config set changes; it is closed when the test ends.
func recorded(t *testing.T, set func(*Config[string, string])) (*recorder, *Pipeline[string, string]) {
	r := &recorder{}
	cfg := Config[string, string]{Send: r.send, Fail: r.fail}
	set(&cfg)
	p := New(cfg)
	t.Cleanup(p.Close)
	return r, p
}

func putAll(t *testing.T, p *Pipeline[string, string], dest string, items ...string) {
	t.Helper()
	for _, it := range items {
		if !p.Put(dest, it) {
			t.Fatalf("Put(%q, %q) refused", dest, it)
		}
	}
}

func wantBatches(t *testing.T, r *recorder, want ...[]string) {
	t.Helper()
	if got := r.sent(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches %q, want %q", got, want)
	}
}

// Below a full window a batch goes at once; a full window holds what is
// queued until a batch is answered, and then it goes as one batch.
func TestWindowHoldsTheNextBatchUntilAnswered(t *testing.T) {
	for _, window := range []int{1, 2} {
		t.Run(fmt.Sprint("window=", window), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, p := recorded(t, func(cfg *Config[string, string]) {
					cfg.Window, cfg.Hold = window, time.Hour
				})
				var want [][]string
				for i := range window { // each alone, unanswered
					it := fmt.Sprint(i)
					putAll(t, p, "n1", it)
					synctest.Wait()
					want = append(want, []string{it})
				}
				putAll(t, p, "n1", "b", "c", "d")
				synctest.Wait()
				wantBatches(t, r, want...)
				if q := p.Queued("n1"); q != 3 {
					t.Fatalf("Queued = %d, want 3", q)
				}
				r.answer(window - 1)
				synctest.Wait()
				wantBatches(t, r, append(want, []string{"b", "c", "d"})...)
				if q := p.Queued("n1"); q != 0 {
					t.Fatalf("Queued = %d, want 0", q)
				}
			})
		})
	}
}

// A destination that never answers delays the next batch by Hold, no
// more and no less.
func TestHoldBoundsAnUnansweredBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const hold = 50 * time.Millisecond
		r, p := recorded(t, func(cfg *Config[string, string]) {
			cfg.Window, cfg.Hold = 1, hold
		})

		putAll(t, p, "n1", "a") // never answered
		synctest.Wait()
		putAll(t, p, "n1", "b")
		time.Sleep(hold - time.Nanosecond)
		synctest.Wait()
		wantBatches(t, r, []string{"a"})
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		wantBatches(t, r, []string{"a"}, []string{"b"})
		// b is out and unanswered too: the hold counts from b.
		putAll(t, p, "n1", "c")
		time.Sleep(hold - time.Nanosecond)
		synctest.Wait()
		wantBatches(t, r, []string{"a"}, []string{"b"})
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		wantBatches(t, r, []string{"a"}, []string{"b"}, []string{"c"})
	})
}

// Destinations have their own queues and windows: one that never answers
// holds back nothing of another.
func TestDestinationsDoNotWaitForEachOther(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		sent := map[string][][]string{}
		p := New(Config[string, string]{
			Send: func(dest string, batch []string, _ func()) {
				mu.Lock()
				sent[dest] = append(sent[dest], batch)
				mu.Unlock()
			},
			Window: 1, Hold: time.Hour,
		})
		defer p.Close()
		putAll(t, p, "writes", "w1")
		synctest.Wait()
		putAll(t, p, "writes", "w2")
		putAll(t, p, "gets", "g1")
		synctest.Wait()
		putAll(t, p, "gets", "g2")
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if want := [][]string{{"w1"}}; !slices.EqualFunc(sent["writes"], want, slices.Equal) {
			t.Errorf("writes sent %q, want %q", sent["writes"], want)
		}
		if want := [][]string{{"g1"}}; !slices.EqualFunc(sent["gets"], want, slices.Equal) {
			t.Errorf("gets sent %q, want %q", sent["gets"], want)
		}
	})
}

// Without a window a batch goes as soon as the last Send returns, with
// what queued meanwhile, in batches of at most MaxItems.
func TestNoWindowSendsWhatQueuedInMaxItems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, p := recorded(t, func(cfg *Config[string, string]) {
			cfg.MaxItems = 2
		})

		putAll(t, p, "n1", "a")
		synctest.Wait()
		putAll(t, p, "n1", "b") // never answered: no window, so no matter
		synctest.Wait()
		wantBatches(t, r, []string{"a"}, []string{"b"})
		r.block()
		putAll(t, p, "n1", "c")
		synctest.Wait() // Send of c blocks
		putAll(t, p, "n1", "d", "e", "f", "g", "h")
		synctest.Wait()
		wantBatches(t, r, []string{"a"}, []string{"b"}, []string{"c"})
		r.release()
		synctest.Wait()
		wantBatches(t, r, []string{"a"}, []string{"b"}, []string{"c"},
			[]string{"d", "e"}, []string{"f", "g"}, []string{"h"})
	})
}

// A batch takes items while their sizes fit MaxSize; an item bigger than
// MaxSize goes alone. Items Claim refuses are dropped and do not count.
func TestMaxSizeAndClaim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, p := recorded(t, func(cfg *Config[string, string]) {
			cfg.MaxItems = 3
			cfg.Size = func(s string) int { return len(s) }
			cfg.MaxSize = func() int { return 10 }
			cfg.Claim = func(s string) bool { return s[0] != '-' }
		})

		r.block()
		putAll(t, p, "n1", "gate")
		synctest.Wait()
		putAll(t, p, "n1",
			"aaaa", "-x", "bbbb", "cc", // 10: full
			"dddddddddddddd",          // 14: alone
			"e", "-x", "-y", "f", "g", // three, the refused not counted
			"h")
		r.release()
		synctest.Wait()
		wantBatches(t, r, []string{"gate"},
			[]string{"aaaa", "bbbb", "cc"},
			[]string{"dddddddddddddd"},
			[]string{"e", "f", "g"},
			[]string{"h"})
	})
}

// Close waits for a Send under way, hands what is queued to Fail (what
// Claim keeps of it), also a batch taken but not yet sent, sends nothing
// more, stops every goroutine (the bubble would not end otherwise), and
// Put refuses from when it begins.
func TestCloseFailsQueuedAndWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, p := recorded(t, func(cfg *Config[string, string]) {
			cfg.Claim = func(s string) bool { return s[0] != '-' }
			cfg.Window, cfg.Hold = 1, time.Hour
		})

		putAll(t, p, "idle", "i")
		synctest.Wait()
		putAll(t, p, "held", "h0") // never answered
		synctest.Wait()
		putAll(t, p, "held", "h1", "-gone", "h2") // held back by the window
		r.block()
		putAll(t, p, "n1", "a")
		synctest.Wait() // a's Send blocks
		putAll(t, p, "n1", "b", "-gone", "c")
		closed := make(chan struct{})
		go func() {
			p.Close()
			close(closed)
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned while a Send was under way")
		default:
		}
		if p.Put("n1", "late") {
			t.Fatal("Put accepted an item after Close began")
		}
		r.answer(2) // a: the window is free, so b and c are taken for a batch
		r.release()
		<-closed
		p.Close() // idempotent
		wantBatches(t, r, []string{"i"}, []string{"h0"}, []string{"a"})
		r.mu.Lock()
		failed := slices.Clone(r.failed)
		r.mu.Unlock()
		slices.Sort(failed)
		if want := []string{"b", "c", "h1", "h2"}; !slices.Equal(failed, want) {
			t.Errorf("failed %q, want %q", failed, want)
		}
	})
}

// Close of a pipeline never used, and Queued of an unknown destination.
func TestCloseUnused(t *testing.T) {
	p := New(Config[int, int]{Send: func(int, []int, func()) { t.Error("send") }})
	if q := p.Queued(1); q != 0 {
		t.Errorf("Queued = %d", q)
	}
	p.Close()
	if p.Put(1, 1) {
		t.Error("Put after Close accepted")
	}
}

// Many producers, destinations that answer late from other goroutines,
// and a Close in the middle: every item accepted by Put is sent or failed
// exactly once, each producer's items reach a destination in order,
// batches keep MaxItems, Send never runs twice at once for a destination,
// and nothing is sent after Close returns. Run with -race.
func TestConcurrentUse(t *testing.T) {
	const (
		producers = 8
		dests     = 4
		perProd   = 2000
		maxItems  = 7
	)
	type item struct{ prod, seq int }
	var (
		mu       sync.Mutex
		seen     = map[item]int{} // item -> times sent or failed
		last     = map[[2]int]int{}
		closed   atomic.Bool
		sending  [dests]atomic.Int32
		answers  sync.WaitGroup
		accepted atomic.Int64
	)
	p := New(Config[int, item]{
		Send: func(dest int, batch []item, done func()) {
			if sending[dest].Add(1) != 1 {
				t.Error("two Sends at once for one destination")
			}
			defer sending[dest].Add(-1)
			if closed.Load() {
				t.Error("Send after Close returned")
			}
			if len(batch) == 0 || len(batch) > maxItems {
				t.Errorf("batch of %d items", len(batch))
			}
			mu.Lock()
			for _, it := range batch {
				seen[it]++
				k := [2]int{it.prod, dest}
				if it.seq <= last[k] {
					t.Errorf("producer %d to %d: %d after %d", it.prod, dest, it.seq, last[k])
				}
				last[k] = it.seq
			}
			mu.Unlock()
			answers.Add(1)
			go func() { // answered later, elsewhere
				defer answers.Done()
				time.Sleep(time.Duration(len(batch)) * 10 * time.Microsecond)
				done()
			}()
		},
		Fail: func(_ int, items []item) {
			mu.Lock()
			for _, it := range items {
				seen[it]++
			}
			mu.Unlock()
		},
		MaxItems: maxItems,
		Window:   2,
		Hold:     time.Millisecond,
	})
	var wg sync.WaitGroup
	for prod := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 1; seq <= perProd; seq++ {
				if p.Put((prod+seq)%dests, item{prod, seq}) {
					accepted.Add(1)
				}
			}
		}()
	}
	for accepted.Load() < producers*perProd/2 {
		time.Sleep(100 * time.Microsecond)
	}
	p.Close()
	closed.Store(true)
	wg.Wait()
	answers.Wait()
	mu.Lock()
	defer mu.Unlock()
	if int64(len(seen)) != accepted.Load() {
		t.Errorf("%d items sent or failed, %d accepted", len(seen), accepted.Load())
	}
	for it, n := range seen {
		if n != 1 {
			t.Errorf("item %v sent or failed %d times", it, n)
		}
	}
}
