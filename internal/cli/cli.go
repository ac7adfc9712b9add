// Package cli holds what the verbs of the kvmesh binary share on the
// command line: usage errors (the binary exits 2 on them), flags that may
// stand between the arguments, comma-separated lists, and the store
// secret file that --secret-file names. cmd/kvmesh and internal/bench use
// it; nothing here starts goroutines or keeps state.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// UsageError is a mistake in a command line: an unknown or bad flag, a
// missing or extra argument. The binary prints it and exits 2.
type UsageError struct{ msg string }

func (e UsageError) Error() string { return e.msg }

// Usagef returns a UsageError with the formatted message.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Sprintf(format, args...)}
}

// ParseInterspersed parses flags that may come before, between or after
// the positional arguments, and returns the positional ones. A bad flag
// is a UsageError; -h returns flag.ErrHelp after fs has printed its
// usage.
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, UsageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// ParseFlagsOnly parses a command line of flags alone, in any order: a
// positional argument is a UsageError, and so is a bad flag.
func ParseFlagsOnly(fs *flag.FlagSet, args []string) error {
	pos, err := ParseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return Usagef("unexpected argument %q", pos[0])
	}
	return nil
}

// SplitList splits a comma-separated flag value, dropping white space
// around the items and empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// SetUsage makes fs print, on -h and --help, "usage: kvmesh SYNOPSIS",
// the text, the examples (one command line each) and then its flags, to
// the flag set's output.
func SetUsage(fs *flag.FlagSet, synopsis, text string, examples ...string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: kvmesh %s\n\n%s\n", synopsis, strings.TrimSpace(text))
		if len(examples) > 0 {
			fmt.Fprintf(w, "\nExamples:\n")
			for _, e := range examples {
				fmt.Fprintf(w, "  %s\n", e)
			}
		}
		fmt.Fprintf(w, "\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nExit status: %s\n", ExitCodes)
	}
}

// ExitCodes is what the exit status of every kvmesh command means.
const ExitCodes = "0 success, 1 failure (the error on stderr), 2 usage error, 3 key not found (get), 4 a conditional write lost (put/del --if-absent/--if-version; the key's context on stderr)"
