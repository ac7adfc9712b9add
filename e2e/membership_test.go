package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/history"
	"github.com/kvmesh/kvmesh/protocol"
)

// TestMembershipThroughTheCLI changes the members of a running 3-node
// store the way an operator does, through the kvmesh binary, while the
// fault suite's workload runs (8 clients, unique puts with W=2, sets,
// registers, overwrites and deletes, reads with R=2) and records a
// history:
//
//  1. kvmesh admin invite on n1; n4 and n5 started with --join (n1's
//     route URL) --token, fresh data dirs, their own ports; kvmesh status
//     --json polled until every node holds n4 and n5 up and copies
//     nothing;
//  2. kvmesh admin leave n2: it prints n2 and exits 0, and the n2
//     process exits by itself;
//  3. kill -9 n5; kvmesh admin remove n5: it prints n5 and exits 0;
//  4. the load stops; every key is read with R=all through a client of
//     n3, and the history checker must find no acknowledged write lost
//     (P1) and no R=2 read that missed a write acknowledged before it
//     began (P6, read-your-writes, claimed across the changes: reads
//     use the old owners until every node has copied what it gains);
//     each key's owners must converge; kvmesh status --json must exit 0
//     and show n1, n3, n4 up and n2, n5 left.
func TestMembershipThroughTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("membership changes under load take about a minute: make test, not make unit (-short)")
	}
	c := startProcCluster(t, 3)
	n1, n2, n3 := c.procs[0], c.procs[1], c.procs[2]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admin := c.client(n1)
	waitServing(ctx, t, admin, "all")

	clients := make([]*client.Client, numWorkers)
	for i := range clients {
		clients[i] = c.client(c.procs[i%len(c.procs)])
	}
	seed := time.Now().UnixNano() & (1<<53 - 1)
	w := newWorkload(clients, seed, 100)
	if err := w.initHot(ctx, admin); err != nil {
		t.Fatal(err)
	}
	step := func(format string, args ...any) {
		t.Logf("%7.2fs  %s", time.Since(w.t0).Seconds(), fmt.Sprintf(format, args...))
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		w.run(loadCtx)
	}()
	stop := sync.OnceFunc(func() {
		stopLoad()
		<-loadDone
	})
	defer stop() // also when a step fails
	step("load started (seed %d)", seed)
	// A few acknowledged writes before the first change.
	if err := awaitAcked(ctx, w, 50); err != nil {
		t.Fatal(err)
	}

	// 1. Two nodes join with one token.
	token, err := c.invite(ctx, n1)
	if err != nil {
		t.Fatal(err)
	}
	step("kvmesh admin invite: a token")
	var joined []*proc
	for range 2 {
		p, err := c.join(n1, token)
		if err != nil {
			t.Fatal(err)
		}
		joined = append(joined, p)
		step("%s started with --join %s --token, serving", p.id, n1.routeURL())
	}
	n4, n5 := joined[0], joined[1]
	if err := c.awaitSettled(ctx, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	step("every node holds %s and %s up, no transfer", n4.id, n5.id)

	// 2. n2 leaves; its process stops by itself.
	if err := c.leave(ctx, n2, n1, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	step("kvmesh admin leave %s printed %s; its process exited", n2.id, n2.id)
	if err := c.awaitSettled(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	step("settled")

	// 3. n5 dies and is removed.
	c.kill(n5)
	step("kill -9 %s", n5.id)
	if err := c.remove(ctx, n5, n1, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	step("kvmesh admin remove %s printed %s", n5.id, n5.id)
	if err := c.awaitSettled(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	step("settled")

	// 4. Stop the load and check through a client of a remaining node.
	stop()
	step("load stopped")
	for _, p := range c.procs {
		if !p.gone && p.crashed() {
			t.Errorf("%s exited on its own", p.id)
		}
	}
	keys := w.keys()
	reader := c.client(n3)
	finals := finalReads(ctx, reader, keys, time.Now().Add(convergeWithin))
	report := history.Check(w.history(), finals, history.Config{Writers: w.writers, Strict: true})
	step("%d keys read with R=all through %s: %s", len(keys), n3.id, report.Summary())
	for i, f := range report.Failures() {
		if i == 30 {
			t.Errorf("... %d more findings", len(report.Failures())-i)
			break
		}
		t.Errorf("%v", f)
	}
	if report.AckedWrites < 300 || report.OK-report.AckedWrites < 100 {
		t.Errorf("too little load to judge: %d acknowledged writes (want 300), %d other ok operations", report.AckedWrites, report.OK-report.AckedWrites)
	}
	conv, divs, repairs := c.converge(ctx, reader, keys, time.Now(), convergeWithin)
	step("owners converged in %v (%d repair rounds), %d divergent keys", conv.Round(time.Millisecond), repairs, len(divs))
	for i, d := range divs {
		if i == 10 {
			t.Errorf("... %d more divergent keys", len(divs)-i)
			break
		}
		t.Errorf("P4 not converged: %v", d)
	}

	sts, r, err := status(ctx, n1)
	if err != nil || r.code != 0 {
		t.Fatalf("kvmesh status --json after the changes: %v, %v", err, r)
	}
	want := map[string]string{n1.id: "up", n2.id: "left", n3.id: "up", n4.id: "up", n5.id: "left"}
	if why := unsettled(sts, []*proc{n1, n3, n4}, want); why != "" {
		t.Errorf("kvmesh status --json: %s", why)
	}
	if got := statusNodes(sts); !slices.Equal(got, []string{n1.id, n3.id, n4.id}) {
		t.Errorf("kvmesh status --json answered by %v, want %s, %s, %s", got, n1.id, n3.id, n4.id)
	}
	for _, pr := range scanLogs(c) {
		t.Errorf("hygiene: %s", pr)
	}
}

// awaitAcked waits until the workload has n acknowledged unique puts.
func awaitAcked(ctx context.Context, w *workload, n int) error {
	for {
		w.mu.Lock()
		got := len(w.acked)
		w.mu.Unlock()
		if got >= n {
			return nil
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return fmt.Errorf("%d acknowledged puts of %d: %w", got, n, ctx.Err())
		}
	}
}

func statusNodes(sts []protocol.NodeStatus) []string {
	var ids []string
	for _, st := range sts {
		ids = append(ids, st.Node)
	}
	slices.Sort(ids)
	return ids
}
