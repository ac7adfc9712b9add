package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/cli"
)

// cmdWatch prints the change events of the keys a pattern matches, one
// a line, until interrupted (or --count events).
func cmdWatch(args []string, stdout, stderr io.Writer) error {
	var f clientFlags
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.registerConn(fs)
	asJSON := fs.Bool("json", false, "one JSON object per event: op, key, value (value_base64 when not UTF-8), context, node, time, version, expires")
	count := fs.Int("count", 0, "exit after this many events (default: run until interrupted)")
	initial := fs.Bool("initial", false, "first print the values the keys hold now (put lines, after the watch has started), then the changes")
	cli.SetUsage(fs, "watch PATTERN [--initial] [--json] [--count N]", `Prints the change events of the keys PATTERN matches, one a line, until interrupted (or N
events): a key (orders.42) or a NATS wildcard pattern of keys (orders.> for every key under
orders., orders.*.state, > for all). A line is "OP KEY VALUE", OP put, delete or expire (VALUE
only for a put, Go-quoted unless one line of printable UTF-8). Events are at most once and not
replayed: a write while nobody watches is not shown later (see README, Change events);
--initial starts with the current values, listed and read once the watch is subscribed.

`+connHelp,
		"kvmesh watch 'orders.>'",
		"kvmesh watch --json '>' | jq .",
		"kvmesh watch --count 1 locks.report   # wait for the next change of one key",
		"kvmesh watch --initial 'config.>'      # the current values, then every change")
	pos, err := cli.ParseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("want 1 argument (PATTERN), got %d", len(pos))
	}
	if *count < 0 {
		return cli.Usagef("--count %d: want >= 0", *count)
	}
	c, err := client.Connect(f.server, client.WithTimeout(f.timeout))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	events, err := c.Watch(ctx, pos[0])
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	print := func(e client.Event) error {
		if *asJSON {
			return enc.Encode(eventJSON(e))
		}
		line := e.Op + " " + e.Key
		if e.Op == "put" {
			line += " " + printable(e.Value)
		}
		_, err := fmt.Fprintln(stdout, line)
		return err
	}
	n := 0
	if *initial {
		for e, err := range c.Current(ctx, pos[0]) {
			if err != nil {
				return fmt.Errorf("current values: %w", err)
			}
			if *count > 0 && n == *count {
				return nil
			}
			if err := print(e); err != nil {
				return err
			}
			n++
		}
	}
	for ; *count == 0 || n < *count; n++ {
		e, ok := <-events
		if !ok {
			return nil // interrupted
		}
		if err := print(e); err != nil {
			return err
		}
	}
	return nil
}

// eventJSON is an event as `kvmesh watch --json` prints it.
func eventJSON(e client.Event) map[string]any {
	m := map[string]any{"op": e.Op, "key": e.Key, "context": e.Context, "node": e.Node,
		"time": e.Time.UTC().Format(time.RFC3339Nano), "version": e.Version}
	if e.Initial {
		m["initial"] = true
		delete(m, "time")
		delete(m, "version")
	}
	if e.Op == "put" {
		if utf8.Valid(e.Value) {
			m["value"] = string(e.Value)
		} else {
			m["value_base64"] = e.Value
		}
	}
	if !e.Expires.IsZero() {
		m["expires"] = e.Expires.UTC().Format(time.RFC3339Nano)
	}
	return m
}

// printable is v as is when it is one line of printable UTF-8, else Go
// quoted, so that an event stays on its line.
func printable(v []byte) string {
	s := string(v)
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}
