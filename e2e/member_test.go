package e2e

// Membership changes made as an operator makes them, through the kvmesh
// binary: `kvmesh admin invite` for a token, `kvmesh node --join URL
// --token T` for a new node, `kvmesh admin leave ID` and `kvmesh admin
// remove ID`, and `kvmesh status --json` to see a change settle. Both the
// membership test and the membership nemesis use these; they return
// errors and never call t.Fatal, so that a nemesis goroutine can too.
// Nodes on loopback only (not in a netLab: the CLI runs in the host's
// network namespace).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kvmesh/kvmesh/internal/freeport"
	"github.com/kvmesh/kvmesh/internal/history"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// cliRun is one run of the kvmesh binary as a command-line tool.
type cliRun struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r cliRun) String() string {
	return fmt.Sprintf("kvmesh %s: exit %d, stdout %q, stderr %q", strings.Join(r.args, " "), r.code,
		tail(r.stdout, 500), tail(r.stderr, 1000))
}

// kvmeshCLI runs the kvmesh binary with args until it exits or ctx ends
// (then it is killed). err is set only when it could not run to its end;
// a non-zero exit is in code.
func kvmeshCLI(ctx context.Context, args ...string) (cliRun, error) {
	r := cliRun{args: args}
	cmd := exec.CommandContext(ctx, kvmeshBin, args...)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	r.stdout, r.stderr = out.String(), errs.String()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		r.code, err = ee.ExitCode(), nil
	}
	if err != nil {
		return r, fmt.Errorf("%v: %w", r, err)
	}
	return r, nil
}

// live returns the nodes that are members and running.
func (c *procCluster) live() []*proc {
	var out []*proc
	for _, p := range c.procs {
		if !p.gone && p.run != nil {
			out = append(out, p)
		}
	}
	return out
}

// changed reports whether the members differ from those the cluster
// started with.
func (c *procCluster) changed() bool {
	return slices.ContainsFunc(c.procs, func(p *proc) bool { return p.gone || p.join != "" })
}

// invite runs kvmesh admin invite on via and returns the token, the last
// line of its standard output.
func (c *procCluster) invite(ctx context.Context, via *proc) (string, error) {
	r, err := kvmeshCLI(ctx, "admin", "invite", "--server", via.url())
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	token := strings.TrimSpace(lines[len(lines)-1])
	if r.code != 0 || !strings.HasPrefix(token, "KVMJ1.") {
		return "", fmt.Errorf("no join token from %v", r)
	}
	return token, nil
}

// join starts a new node that joins the store through member via with
// token, on free ports, with a fresh data dir and log under the
// cluster's base dir, and waits until it serves. It is one of c.procs
// from then on (so the cleanup kills it), named n<k> after the last.
func (c *procCluster) join(via *proc, token string) (*proc, error) {
	if c.lab != nil {
		return nil, errors.New("join: nodes in network namespaces are not supported")
	}
	ports, err := freeport.Take(2)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("n%d", len(c.procs)+1)
	p := &proc{id: id, dir: filepath.Join(c.base, id), host: "127.0.0.1", clientPort: ports[0], clusterPort: ports[1],
		logPath: filepath.Join(c.base, id+".log"), join: via.routeURL(), token: token}
	c.procs = append(c.procs, p)
	if err := c.launch(p); err != nil {
		return p, err
	}
	return p, c.waitReady(p, 60*time.Second)
}

// leave runs kvmesh admin leave p on via: it must print p's id and exit
// 0, and p's process must then exit by itself, having logged that it
// left, all within the bound.
func (c *procCluster) leave(ctx context.Context, p, via *proc, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	r, err := kvmeshCLI(ctx, "admin", "leave", p.id, "--server", via.url(), "--wait", within.String())
	if err != nil {
		return err
	}
	if r.code != 0 || strings.TrimSpace(r.stdout) != p.id {
		return fmt.Errorf("leave of %s: want its id on stdout and exit 0: %v", p.id, r)
	}
	select {
	case <-p.run.Exited():
	case <-ctx.Done():
		return fmt.Errorf("%s has not exited %v after kvmesh admin leave began (the command said it left)", p.id, within)
	}
	p.run, p.gone = nil, true
	if b, _ := os.ReadFile(p.logPath); !strings.Contains(string(b), "has left the store; stopping") {
		return fmt.Errorf("%s exited without logging that it left; its log ends:\n%s", p.id, tail(string(b), 2000))
	}
	return nil
}

// remove runs kvmesh admin remove p on via, for a node killed before: it
// must print p's id and exit 0 within the bound.
func (c *procCluster) remove(ctx context.Context, p, via *proc, within time.Duration) error {
	if p.run != nil {
		return fmt.Errorf("remove %s: it is running; kill it first", p.id)
	}
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	r, err := kvmeshCLI(ctx, "admin", "remove", p.id, "--server", via.url(), "--wait", within.String())
	if err != nil {
		return err
	}
	if r.code != 0 || strings.TrimSpace(r.stdout) != p.id {
		return fmt.Errorf("remove of %s: want its id on stdout and exit 0: %v", p.id, r)
	}
	p.gone = true
	return nil
}

// status runs kvmesh status --json on via and decodes the answers. It
// exits 1 while a member does not answer; the answers that came count.
func status(ctx context.Context, via *proc) ([]protocol.NodeStatus, cliRun, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	r, err := kvmeshCLI(ctx, "status", "--json", "--server", via.url(), "--timeout", "3s")
	if err != nil {
		return nil, r, err
	}
	if r.code != 0 && r.code != 1 {
		return nil, r, fmt.Errorf("%v", r)
	}
	var sts []protocol.NodeStatus
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil {
		return nil, r, fmt.Errorf("decode %v: %w", r, err)
	}
	return sts, r, nil
}

// wantRecords is the member record status every node should hold once
// the changes made so far have settled: left for the nodes gone, up for
// the others.
func (c *procCluster) wantRecords() map[string]string {
	want := map[string]string{}
	for _, p := range c.procs {
		want[p.id] = "up"
		if p.gone {
			want[p.id] = "left"
		}
	}
	return want
}

// unsettled says why the answers sts do not show the store settled on
// want (member id -> record status), or returns "": every running member
// answered, holds exactly those records, copies nothing, and the members
// up own every replica of every partition between them.
func unsettled(sts []protocol.NodeStatus, live []*proc, want map[string]string) string {
	by := map[string]protocol.NodeStatus{}
	for _, st := range sts {
		by[st.Node] = st
	}
	for _, p := range live {
		st, ok := by[p.id]
		if !ok {
			return fmt.Sprintf("%s did not answer", p.id)
		}
		if t := st.Transfer; t != nil && t.Finished == 0 {
			return fmt.Sprintf("%s is copying: %d of %d partitions", p.id, t.Done, t.Partitions)
		}
		got := map[string]string{}
		owned, up := 0, 0
		for _, r := range st.Records {
			got[r.ID] = r.Status
			owned += r.Partitions
			if r.Status == "up" {
				up++
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Sprintf("%s holds records %v, want %v", p.id, got, want)
		}
		if need := st.Partitions * min(st.Replicas, up); owned != need {
			return fmt.Sprintf("%s: its records own %d partition replicas, want %d", p.id, owned, need)
		}
	}
	return ""
}

// awaitSettled polls kvmesh status --json, through a running member, until
// every running member shows the records of wantRecords and no transfer:
// the changes made so far are done everywhere. within bounds it.
func (c *procCluster) awaitSettled(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	want := c.wantRecords()
	why := "no status yet"
	for {
		live := c.live()
		if len(live) == 0 {
			return errors.New("await settled: no member is running")
		}
		sts, _, err := status(ctx, live[0])
		if err != nil {
			why = err.Error()
		} else if why = unsettled(sts, live, want); why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("members not settled on %v within %v: %s", want, within, why)
		}
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return fmt.Errorf("members not settled on %v: %w (%s)", want, ctx.Err(), why)
		}
	}
}

// placement asks via for the store's placement table.
func (c *procCluster) placement(via *proc) (*protocol.Placement, error) {
	nc, err := c.connect(via.url())
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	subjects, _ := protocol.NewSubjects("")
	m, err := nc.Request(subjects.Ring(), nil, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("placement from %s: %w", via.id, err)
	}
	return protocol.DecodePlacement(m.Data)
}

// diverged is P4 and the clock guard of P5 over the dumps of the members.
// With the members the cluster started with, history.Diverged. Once they
// have changed, a node keeps its copies of the partitions it no longer
// owns (nothing deletes them yet) and nobody writes or repairs them, and
// a clock names the actors of owners that have gone: then only each
// key's current owners (the placement table) must hold it, all or none
// of them, identical, and a clock may name the actors of any node that
// was ever a member, at most one per incarnation.
func (c *procCluster) diverged(keys []string, dumps history.Dumps) ([]history.Divergence, error) {
	if !c.changed() {
		return history.Diverged(keys, dumps, replicas, c.incarnations()), nil
	}
	live := c.live()
	if len(live) == 0 {
		return nil, errors.New("no member is running")
	}
	pl, err := c.placement(live[0])
	if err != nil {
		return nil, err
	}
	return ownersDiverged(keys, dumps, pl, c.incarnations()), nil
}

func ownersDiverged(keys []string, dumps history.Dumps, pl *protocol.Placement, incarnations map[string]int) []history.Divergence {
	var out []history.Divergence
	for _, k := range keys {
		owners := pl.OwnerIDs(pl.Partition(k))
		if len(owners) != replicas {
			out = append(out, history.Divergence{Key: k, Detail: fmt.Sprintf("owners %v, want %d", owners, replicas)})
			continue
		}
		var holders []string
		var first *protocol.Object
		same := true
		for _, id := range owners {
			d, ok := dumps[id]
			if !ok {
				out = append(out, history.Divergence{Key: k, Detail: "owner " + id + " was not dumped"})
				continue
			}
			o := d[k]
			if o == nil {
				continue
			}
			holders = append(holders, id)
			if first == nil {
				first = o
			} else if !version.Equal(first, o) {
				same = false
			}
			if bad := clockBound(o.Clock, incarnations); bad != "" {
				out = append(out, history.Divergence{Key: k, Detail: fmt.Sprintf("P5: clock on %s: %s: %s", id, bad, history.ObjectString(o))})
			}
		}
		switch {
		case len(holders) != 0 && len(holders) != len(owners):
			out = append(out, history.Divergence{Key: k, Detail: fmt.Sprintf("held by %v of its owners %v, want all or none", holders, owners)})
		case !same:
			var b strings.Builder
			for _, id := range holders {
				fmt.Fprintf(&b, " %s=%s", id, history.ObjectString(dumps[id][k]))
			}
			out = append(out, history.Divergence{Key: k, Detail: "replicas differ:" + b.String()})
		}
	}
	return out
}

// clockBound says what is wrong with a clock, or returns "": every entry
// is an actor of a node that was a member (incarnations has every node
// ever started), at most incarnations[node] per node.
func clockBound(clock protocol.Clock, incarnations map[string]int) string {
	per := map[string]int{}
	for _, d := range clock {
		node := history.ActorNode(d.Node)
		if _, ok := incarnations[node]; !ok {
			return fmt.Sprintf("entry %s is not an actor of any member", d.Node)
		}
		per[node]++
	}
	for node, n := range per {
		if n > incarnations[node] {
			return fmt.Sprintf("%d entries of %s, which had at most %d incarnations", n, node, incarnations[node])
		}
	}
	return ""
}
