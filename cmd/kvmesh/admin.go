package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/kvmesh/kvmesh/internal/cli"
	"github.com/kvmesh/kvmesh/node"
)

// cmdAdmin runs an operator's verb: on a stopped node's files
// (quarantine) or on a running store (invite).
func cmdAdmin(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return cli.Usagef("admin needs a verb: invite, leave, remove, quarantine or compact")
	}
	switch args[0] {
	case "quarantine":
		return cmdQuarantine(args[1:], stdout, stderr)
	case "compact":
		return cmdCompact(args[1:], stdout, stderr)
	case "invite":
		return cmdInvite(args[1:], stdout, stderr)
	case "leave", "remove":
		return cmdMemberChange(args[0], args[1:], stdout, stderr)
	default:
		return cli.Usagef("unknown admin verb %q (want invite, leave, remove, quarantine or compact)", args[0])
	}
}

// cmdQuarantine moves a stopped node's damaged store aside and prints
// where it went.
func cmdQuarantine(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin quarantine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "the stopped node's data dir (required)")
	cli.SetUsage(fs, "admin quarantine --data DIR",
		`Moves the store of a stopped node aside, into DIR/quarantine-<time>/, and prints that directory.
Nothing is deleted. The node then starts empty, under a new actor, and its peers refill it.`,
		"kvmesh admin quarantine --data /var/lib/kvmesh")
	if err := cli.ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *data == "" {
		return cli.Usagef("--data is required")
	}
	dir, err := node.QuarantineStore(*data)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, dir)
	return err
}

// cmdCompact shrinks a stopped node's store file to its live pages,
// with progress on stderr (a redrawn line on a terminal), and prints the
// sizes before and after.
func cmdCompact(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin compact", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "the stopped node's data dir (required)")
	cli.SetUsage(fs, "admin compact --data DIR",
		`Rewrites the store of a stopped node into a file of its live pages: bbolt reuses the space
purged tombstones and dropped partitions free, but its file only shrinks this way. Progress goes
to stderr (a bar on a terminal); the sizes before and after to stdout.`,
		"kvmesh admin compact --data /var/lib/kvmesh")
	if err := cli.ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *data == "" {
		return cli.Usagef("--data is required")
	}
	pr := cli.NewProgress(stderr)
	before, after, err := node.CompactStore(*data, func(written, total int64) {
		pr.Update(written, total, fmt.Sprintf("compacting: %.1f MB written of at most %.1f MB", float64(written)/1e6, float64(total)/1e6))
	})
	pr.Done()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%d bytes -> %d bytes\n", before, after)
	return err
}
