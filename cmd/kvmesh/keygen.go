package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/kvmesh/kvmesh/internal/cli"
	"github.com/kvmesh/kvmesh/node"
)

// cmdKeygen writes a new node key pair's seed to FILE (owner-only; it
// never overwrites one) and prints the public key, for --key-file.
func cmdKeygen(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return cli.Usagef("keygen takes one argument: the file to write the key to")
	}
	path := args[0]
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s exists: kvmesh keygen never overwrites a key", path)
	}
	seed, public, err := node.NewKeySeed()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(seed, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = fmt.Fprintln(stdout, public)
	return err
}
