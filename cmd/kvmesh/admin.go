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
		return cli.Usagef("admin needs a verb: invite, leave, remove or quarantine")
	}
	switch args[0] {
	case "quarantine":
		return cmdQuarantine(args[1:], stdout, stderr)
	case "invite":
		return cmdInvite(args[1:], stdout, stderr)
	case "leave", "remove":
		return cmdMemberChange(args[0], args[1:], stdout, stderr)
	default:
		return cli.Usagef("unknown admin verb %q (want invite, leave, remove or quarantine)", args[0])
	}
}

// cmdQuarantine moves a stopped node's damaged store aside and prints
// where it went.
func cmdQuarantine(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin quarantine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "the stopped node's data dir (required)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: kvmesh admin quarantine --data DIR\n\n"+
			"Moves the store of a stopped node aside, into DIR/quarantine-<time>/, and prints that directory.\n"+
			"Nothing is deleted. The node then starts empty, under a new actor, and its peers refill it.\n\n")
		fs.PrintDefaults()
	}
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
