package main

import (
	"fmt"
	"io"

	"github.com/kvmesh/kvmesh/internal/cli"
)

// cmdSecret prints a new store secret, for --secret-file.
func cmdSecret(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return cli.Usagef("secret takes no arguments")
	}
	_, err := fmt.Fprintf(stdout, "%s\n", cli.NewSecret())
	return err
}
