package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/cli"
)

// cmdMemberChange runs `kvmesh admin leave ID` or `kvmesh admin remove
// ID`: it starts the change, then (unless --no-wait) follows it until
// the member's record is left, printing the transfers' progress to
// stderr, and prints the member's id on stdout when it is done.
func cmdMemberChange(verb string, args []string, stdout, stderr io.Writer) error {
	var f clientFlags
	fs := flag.NewFlagSet("admin "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.registerConn(fs)
	noWait := fs.Bool("no-wait", false, "return once the change is under way")
	wait := fs.Duration("wait", 30*time.Minute, "how long to follow the change at most")
	what := "Hands member ID's partitions to the others, then stops it (it must be running)."
	if verb == "remove" {
		what = "Declares member ID gone for good (a dead node): the others copy its partitions from the remaining replicas."
	}
	cli.SetUsage(fs, "admin "+verb+" ID [--server URL] [--no-wait]",
		what+"\nIt shows the transfers' progress on stderr (a bar on a terminal) and prints ID on stdout once the member has left.",
		"kvmesh admin "+verb+" n4 --server nats://10.0.0.1:4222")
	pos, err := cli.ParseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("admin %s needs one member id", verb)
	}
	id := pos[0]
	c, err := client.Connect(f.server, client.WithTimeout(f.timeout))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	if verb == "leave" {
		err = c.Leave(ctx, id)
	} else {
		err = c.Remove(ctx, id)
	}
	cancel()
	if err != nil {
		return err
	}
	if *noWait {
		fmt.Fprintf(stderr, "%s of %s under way; kvmesh status shows its progress\n", verb, id)
		return nil
	}
	deadline := time.Now().Add(*wait)
	pr := cli.NewProgress(stderr)
	defer pr.Done()
	for {
		left, done, total, progress := memberProgress(c, id, f.timeout)
		if left {
			pr.Done()
			_, err := fmt.Fprintln(stdout, id)
			return err
		}
		if progress != "" {
			pr.Update(done, total, progress)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s of %s still under way after %v: kvmesh status shows its progress", verb, id, *wait)
		}
		time.Sleep(time.Second)
	}
}

// memberProgress asks the nodes for their status: whether every answer
// holds member id left, and a line on the transfers under way.
// done and total count partitions.
func memberProgress(c *client.Client, id string, timeout time.Duration) (left bool, done, total int64, progress string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sts, _ := c.Status(ctx)
	left = len(sts) > 0
	var parts, bytes, started int64
	for _, st := range sts {
		if st.Node == id {
			left = false
			continue
		}
		gone := false
		for _, r := range st.Records {
			if r.ID == id && r.Status == "left" {
				gone = true
			}
		}
		left = left && gone
		if t := st.Transfer; t != nil && t.Finished == 0 {
			parts, done, bytes = parts+t.Partitions, done+t.Done, bytes+t.Bytes
			if started == 0 || t.Started < started {
				started = t.Started
			}
		}
	}
	if parts == 0 {
		return left, 0, 0, ""
	}
	rate := float64(bytes) / 1e6 / max(time.Since(time.Unix(0, started)).Seconds(), 1e-3)
	progress = fmt.Sprintf("transfers: %d of %d partitions copied, %.1f MB, %.1f MB/s", done, parts, float64(bytes)/1e6, rate)
	return left, done, parts, progress
}
