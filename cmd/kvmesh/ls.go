package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"io"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/cli"
	"github.com/kvmesh/kvmesh/protocol"
)

// cmdLs lists the keys that start with a prefix (every key without one),
// one per line and nothing else on stdout, paging through them all; each
// page waits at most --timeout. With --json each line is a JSON object
// with the key's details.
func cmdLs(args []string, stdout, stderr io.Writer) error {
	var f clientFlags
	var asJSON bool
	var limit int
	fs := flag.NewFlagSet("ls", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.registerConn(fs)
	fs.StringVar(&f.r, "r", "", "owners of each partition that must answer: one, quorum, all or a number (default quorum)")
	fs.BoolVar(&asJSON, "json", false, `one JSON object a line: {"key":..., "siblings":N, "context":..., "expires":...}`)
	fs.IntVar(&limit, "page", 1000, "keys per request (1..10000); ls pages through them all")
	cli.SetUsage(fs, "ls [PREFIX] [-r R] [--json] [--page N]",
		`Lists the keys that start with PREFIX (every key without one), in byte order, one a line and
nothing else on stdout, paging through them all; each request waits at most --timeout. A key is
listed when a value of it is live (not deleted, not expired) in the merge of what -r owners of its
partition hold. --json prints one JSON object a line with the key's live sibling count, causal
context (put --context supersedes them) and, when every value has a TTL, its expiry.

`+connHelp,
		"kvmesh ls user.", "kvmesh ls | wc -l", "kvmesh ls cart. --json", `kvmesh ls tmp. | while IFS= read -r k; do kvmesh del "$k"; done`)
	pos, err := cli.ParseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if limit < 1 || limit > protocol.MaxKeysLimit {
		return cli.Usagef("--page %d: want 1..%d", limit, protocol.MaxKeysLimit)
	}
	if len(pos) > 1 {
		return cli.Usagef("want at most one prefix, got %d arguments", len(pos))
	}
	prefix := ""
	if len(pos) == 1 {
		prefix = pos[0]
	}
	c, err := client.Connect(f.server, client.WithTimeout(f.timeout))
	if err != nil {
		return err
	}
	defer c.Close()
	opts := []client.CallOption{client.R(f.r), client.PageSize(limit)}
	if asJSON {
		opts = append(opts, client.Detail())
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for cursor := ""; ; {
		ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
		page, err := c.KeysPage(ctx, prefix, cursor, opts...)
		cancel()
		if err != nil {
			return err
		}
		if asJSON {
			for _, e := range page.Entries {
				line := lsEntry{Key: e.Key, Siblings: e.Siblings, Context: e.Context}
				if !e.Expires.IsZero() {
					line.Expires = e.Expires.UTC().Format(time.RFC3339Nano)
				}
				if err := enc.Encode(line); err != nil {
					return err
				}
			}
		} else {
			for _, k := range page.Keys {
				out.WriteString(k)
				out.WriteByte('\n')
			}
		}
		if page.Next == "" {
			return nil
		}
		cursor = page.Next
	}
}

// lsEntry is a line of `kvmesh ls --json`.
type lsEntry struct {
	Key      string `json:"key"`
	Siblings int    `json:"siblings"`
	Context  string `json:"context"`
	Expires  string `json:"expires,omitempty"`
}
