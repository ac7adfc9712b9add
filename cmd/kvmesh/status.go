package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/cli"
	"github.com/kvmesh/kvmesh/protocol"
)

// cmdStatus prints every node's status: one line each, or JSON. It
// fails (exit 1) when a member did not answer or a node's store has
// failed, so that scripts can check the store's health.
func cmdStatus(args []string, stdout, stderr io.Writer) error {
	var f clientFlags
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.registerConn(fs)
	asJSON := fs.Bool("json", false, "print the nodes' status as JSON")
	parts := fs.Bool("partitions", false, "also print each partition's anti-entropy: its owners' last exchange and whether their trees agree")
	cli.SetUsage(fs, "status [--json] [--partitions] [--server URL]",
		`Asks every node for its status and prints one line per node (its actor, the peers it hears, its
store's health, the operations it coordinates, its hints), then the members and the ring's
balance, then anti-entropy. It exits 1 when a member does not answer, a store has failed or the
nodes resolve conflicts in different modes, so scripts can check the store's health.`,
		"kvmesh status", "kvmesh status --json | jq '.[].members'", "kvmesh status --partitions --server nats://10.0.0.1:4222")
	if err := cli.ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	var sts []client.NodeStatus
	var missing error
	err := f.call(func(c *client.Client, ctx context.Context) error {
		var err error
		sts, err = c.Status(ctx)
		if len(sts) > 0 {
			missing, err = err, nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sts); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tACTOR\tALIVE\tSUSPECT\tDOWN\tSTORE\tINFLIGHT\tHINTS\tUP")
		list := func(ids []string) string {
			if len(ids) == 0 {
				return "-"
			}
			return strings.Join(ids, ",")
		}
		for _, st := range sts {
			store := "ok"
			if st.StoreError != "" {
				store = "FAILED: " + st.StoreError
			}
			up := time.Since(time.Unix(0, st.Started)).Round(time.Second)
			fmt.Fprintf(tw, "%s\t%s\t%d/%d %s\t%s\t%s\t%s\t%d\t%s\t%s\n", st.Node, st.Actor, len(st.Alive), len(st.Members),
				list(st.Alive), list(st.Suspect), list(st.Down), store, st.Inflight, hintsColumn(st.Hints), up)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if err := printMembers(stdout, sts); err != nil {
			return err
		}
		if err := printAntiEntropy(stdout, sts, *parts, time.Now()); err != nil {
			return err
		}
	}
	var failed []string
	for _, st := range sts {
		if st.StoreError != "" {
			failed = append(failed, st.Node)
		}
	}
	if len(failed) > 0 {
		missing = errors.Join(missing, fmt.Errorf("the store of %s has failed: it takes no writes until it is restarted", strings.Join(failed, ", ")))
	}
	if err := checkConflicts(stdout, sts, !*asJSON); err != nil {
		missing = errors.Join(missing, err)
	}
	return missing
}

// hintsColumn shows a node's hints: those pending (and in how many
// partitions), those delivered (and their records), the hinted writes it
// took as a fallback and the writes it coordinated that fallbacks
// acknowledged; "-" when it had none of these.
func hintsColumn(h protocol.HintStatus) string {
	var parts []string
	if h.Pending > 0 {
		parts = append(parts, fmt.Sprintf("%d pending in %d parts", h.Pending, h.Partitions))
	}
	if h.Delivered > 0 {
		parts = append(parts, fmt.Sprintf("%d delivered (%d records)", h.Delivered, h.Records))
	}
	if h.FallbackWrites > 0 {
		parts = append(parts, fmt.Sprintf("%d fallback writes", h.FallbackWrites))
	}
	if h.SloppyWrites > 0 {
		parts = append(parts, fmt.Sprintf("%d sloppy", h.SloppyWrites))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// checkConflicts checks that every node answering, and every peer they
// hear, resolves conflicts in the same mode; with print it says the
// mode when it is not the default. A store whose nodes differ is broken:
// their replicas never converge.
func checkConflicts(w io.Writer, sts []client.NodeStatus, print bool) error {
	modes := map[string]string{} // node -> mode
	for _, st := range sts {
		modes[st.Node] = cmp.Or(st.Conflicts, "siblings")
		for _, o := range st.OtherConflicts {
			if id, mode, ok := strings.Cut(o, "="); ok && modes[id] == "" {
				modes[id] = mode
			}
		}
	}
	byMode := map[string][]string{}
	for id, mode := range modes {
		byMode[mode] = append(byMode[mode], id)
	}
	if len(byMode) > 1 {
		var parts []string
		for mode, ids := range byMode {
			slices.Sort(ids)
			parts = append(parts, mode+": "+strings.Join(ids, ","))
		}
		slices.Sort(parts)
		return fmt.Errorf("the nodes resolve conflicts in different modes (%s): their replicas will not converge; give every node the same --conflicts", strings.Join(parts, "; "))
	}
	if print && len(byMode["lww"]) > 0 {
		fmt.Fprintln(w, "\nconflicts: lww (last writer wins: one value per key, concurrent writes lost)")
	}
	return nil
}

// printMembers prints the member records as the first node that has any
// holds them: each member's status, its liveness as the answering nodes
// see it (the worst any reports), its data center, the partitions it
// owns, the partitions it is copying (copied/gained) in a membership
// change, and the ring's balance.
func printMembers(w io.Writer, sts []client.NodeStatus) error {
	var view *client.NodeStatus
	for i := range sts {
		if len(sts[i].Records) > 0 {
			view = &sts[i]
			break
		}
	}
	if view == nil {
		return nil
	}
	liveness := map[string]string{}
	for _, st := range sts {
		for _, id := range st.Suspect {
			if liveness[id] != "down" {
				liveness[id] = "suspect"
			}
		}
		for _, id := range st.Down {
			liveness[id] = "down"
		}
	}
	fmt.Fprintf(w, "\nmembers (as %s holds them):\n", view.Node)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	transfers := map[string]string{}
	for _, st := range sts {
		if t := st.Transfer; t != nil && t.Finished == 0 {
			transfers[st.Node] = fmt.Sprintf("%d/%d, %.1f MB", t.Done, t.Partitions, float64(t.Bytes)/1e6)
		}
	}
	fmt.Fprintln(tw, "MEMBER\tSTATUS\tLIVENESS\tDC\tPARTITIONS\tCOPYING\tCLIENT\tKEY")
	total, most, owners := 0, 0, 0
	for _, r := range view.Records {
		live := cmp.Or(liveness[r.ID], "alive")
		if r.Status == "left" {
			live = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.Status, live, cmp.Or(r.DC, "-"), r.Partitions,
			cmp.Or(transfers[r.ID], "-"), cmp.Or(r.Client, "-"), protocol.Clip(r.Key, 12))
		if r.Partitions > 0 {
			total, most, owners = total+r.Partitions, max(most, r.Partitions), owners+1
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if owners > 0 {
		mean := float64(total) / float64(owners)
		_, err := fmt.Fprintf(w, "ring: %d partitions x %d replicas over %d members; most partitions on one member %d, mean %.1f (balance %.2f)\n",
			view.Partitions, view.Replicas, owners, most, mean, float64(most)/mean)
		return err
	}
	return nil
}

// printAntiEntropy prints each node's anti-entropy (rounds, how many of
// its partitions an exchange compared with every other owner and how
// long ago the oldest was, records pulled and pushed), then how many
// partitions have owners whose trees differ; with partitions, a line per
// partition too.
func printAntiEntropy(w io.Writer, sts []client.NodeStatus, partitions bool, now time.Time) error {
	ago := func(ns int64) string {
		if ns == 0 {
			return "never"
		}
		return now.Sub(time.Unix(0, ns)).Round(time.Second).String() + " ago"
	}
	byPart := map[int][]aeOwner{}
	fmt.Fprintf(w, "\nanti-entropy:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tEVERY\tROUNDS\tEXCHANGED\tOLDEST\tPULLED\tPUSHED")
	any := false
	for _, st := range sts {
		ae := st.AntiEntropy
		if ae == nil {
			continue
		}
		any = true
		done, oldest := 0, int64(0)
		for _, p := range ae.Partitions {
			byPart[p.P] = append(byPart[p.P], aeOwner{st.Node, p.Root, p.Last})
			if p.Last != 0 {
				done++
			}
			if oldest == 0 || p.Last < oldest {
				oldest = p.Last
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d/%d\t%s\t%d\t%d\n", st.Node, ae.Interval, ae.Rounds, done, len(ae.Partitions), ago(oldest), ae.Pulled, ae.Pushed)
	}
	if !any {
		return nil
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ps := make([]int, 0, len(byPart))
	differ, unknown := 0, 0
	for p, os := range byPart {
		ps = append(ps, p)
		switch agreement(os) {
		case "NO":
			differ++
		case "?":
			unknown++
		}
	}
	fmt.Fprintf(w, "partitions whose answering owners hold different records: %d of %d", differ, len(ps))
	if unknown > 0 {
		fmt.Fprintf(w, " (%d not compared yet: no exchange has built an owner's tree)", unknown)
	}
	fmt.Fprintln(w)
	if !partitions {
		return nil
	}
	slices.Sort(ps)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tAGREE\tOWNERS (LAST EXCHANGE)")
	for _, p := range ps {
		slices.SortFunc(byPart[p], func(a, b aeOwner) int { return cmp.Compare(a.node, b.node) })
		var cells []string
		for _, o := range byPart[p] {
			cells = append(cells, fmt.Sprintf("%s (%s)", o.node, ago(o.last)))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", p, agreement(byPart[p]), strings.Join(cells, ", "))
	}
	return tw.Flush()
}

// aeOwner is what one owner of a partition reports of it.
type aeOwner struct {
	node string
	root string // "": no tree yet
	last int64
}

// agreement says whether a partition's owners report the same Merkle
// root: "yes", "NO", or "?" when one has no tree yet (a status never
// builds one).
func agreement(os []aeOwner) string {
	for _, o := range os {
		if o.root == "" {
			return "?"
		}
	}
	for _, o := range os {
		if o.root != os[0].root {
			return "NO"
		}
	}
	return "yes"
}
