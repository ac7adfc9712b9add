package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
	"unicode/utf8"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/cli"
	"github.com/kvmesh/kvmesh/protocol"
)

type clientFlags struct {
	server  string
	timeout time.Duration
	r, w    string
	pr, pw  string
	cctx    string
	blind   bool
	ttl     time.Duration
	verbose bool
	json    bool
	// Conditional writes: --if-absent (put), --if-version CTX.
	ifAbsent  bool
	ifVersion string
}

func (f *clientFlags) register(fs *flag.FlagSet, name string, read bool) {
	f.registerConn(fs)
	fs.BoolVar(&f.verbose, "v", false, "print the causal context and coordinating node to stderr")
	fs.BoolVar(&f.json, "json", false, "print the result as one JSON object on stdout (see README, Command line)")
	if read {
		fs.StringVar(&f.r, "r", "", "read quorum: one, quorum, all or a number (default quorum)")
		fs.StringVar(&f.pr, "pr", "", "replies of the read quorum that must come from the key's owners, not fallbacks (default none)")
	} else {
		fs.StringVar(&f.w, "w", "", "write quorum: one, quorum, all or a number (default quorum)")
		fs.StringVar(&f.pw, "pw", "", "acknowledgements of the write quorum that must come from the key's owners, not fallbacks (default none)")
		fs.StringVar(&f.cctx, "context", "", "causal context from a get, to supersede exactly what it saw")
		fs.BoolVar(&f.blind, "blind", false, "put: write without reading first, as a sibling of the values stored")
		fs.StringVar(&f.ifVersion, "if-version", "", "write only if nothing was written since the read or write that gave this context; else exit 4")
	}
	if name == "put" {
		fs.BoolVar(&f.ifAbsent, "if-absent", false, "write only if the key has no value (never written, deleted or expired); else exit 4")
	}
	if name == "put" {
		fs.Func("ttl", "time to live: a duration (30s, 1h) or whole seconds; the key reads as not found after it (default: never)", func(s string) error {
			d, err := protocol.ParseTTL(s)
			if err == nil && d == 0 {
				err = protocol.Errorf(protocol.ErrInvalidOption, "ttl: empty")
			}
			f.ttl = d
			return err
		})
	}
}

// registerConn registers the flags of the connection: --server and
// --timeout.
func (f *clientFlags) registerConn(fs *flag.FlagSet) {
	def := os.Getenv("KVMESH_URL")
	if def == "" {
		def = "nats://127.0.0.1:4222"
	}
	fs.StringVar(&f.server, "server", def, "NATS URL of any node ($KVMESH_URL)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "request timeout")
}

// call connects to the store and runs fn with a context bounded by the
// timeout.
func (f *clientFlags) call(fn func(c *client.Client, ctx context.Context) error) error {
	c, err := client.Connect(f.server, client.WithTimeout(f.timeout))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	return fn(c, ctx)
}

// connHelp is what every client command says about its connection.
const connHelp = `It connects to any node: --server (default $KVMESH_URL, then nats://127.0.0.1:4222).
R and W are one, quorum, all or a number of replicas.`

// clientHelp is the help of the client commands.
var clientHelp = map[string]struct {
	synopsis, text string
	examples       []string
}{
	"put": {"put KEY VALUE [-w W] [--pw PW] [--context CTX | --blind | --if-absent | --if-version CTX] [--ttl D] [-v]",
		`Replaces KEY's value with VALUE ("-": read it from stdin). Without --context it reads the key
first and supersedes what is stored; --context supersedes exactly what that get saw (a value
written meanwhile stays, as a sibling); --blind writes a sibling of whatever is stored.
--if-absent writes only if the key has no value, --if-version CTX only if nothing was written
since the get or put that gave CTX; when the condition does not hold it exits 4 and prints the
key's current context on stderr (one of racing conditional puts wins: see README, Guarantees).`,
		[]string{`kvmesh put user.42 '{"name":"Ada"}'`, "kvmesh put session.7 token --ttl 30m", "date | kvmesh put now - -w all",
			`kvmesh put cart.1 '["apple","pear"]' --context "$CTX"   # CTX from: kvmesh get cart.1 -v`,
			"kvmesh put locks.report me --if-absent --ttl 30s -v   # a lock; -v prints its context",
			`kvmesh put counter 8 --if-version "$CTX"               # compare-and-set`}},
	"get": {"get KEY [-r R] [--pr PR] [-v]",
		`Prints KEY's value. Concurrent writes that no write superseded are siblings: each prints on a
line of its own, and their count and causal context go to stderr. -v prints the context, the
coordinating node and the expiry to stderr. A key not found exits 3.`,
		[]string{"kvmesh get user.42", "kvmesh get user.42 -r all -v"}},
	"del": {"del KEY [-w W] [--pw PW] [--context CTX | --if-version CTX]",
		`Deletes KEY: without --context, every value a majority of its owners holds; with it,
exactly what that get saw. Deleting a key that is not there succeeds. --if-version CTX deletes
only if nothing was written since CTX, else it exits 4 (releasing a lock one still holds).`,
		[]string{"kvmesh del user.42", "kvmesh del user.42 -w all", `kvmesh del locks.report --if-version "$CTX"`}},
}

func parseClient(name string, args []string, stderr io.Writer, read bool, want int) (*clientFlags, []string, error) {
	var f clientFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs, name, read)
	h := clientHelp[name]
	cli.SetUsage(fs, h.synopsis, h.text+"\n\n"+connHelp, h.examples...)
	pos, err := cli.ParseInterspersed(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) != want {
		return nil, nil, cli.Usagef("want %d argument(s), got %d", want, len(pos))
	}
	return &f, pos, nil
}

func cmdPut(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f, pos, err := parseClient("put", args, stderr, false, 2)
	if err != nil {
		return err
	}
	value := []byte(pos[1])
	if pos[1] == "-" {
		if value, err = io.ReadAll(stdin); err != nil {
			return err
		}
	}
	if err := f.checkConditional(); err != nil {
		return err
	}
	return f.call(func(c *client.Client, ctx context.Context) error {
		if cond := f.conditional(); cond != nil {
			opts := []client.CallOption{client.W(f.w), client.PW(f.pw), cond}
			if f.ttl > 0 {
				opts = append(opts, client.WithTTL(f.ttl))
			}
			cctx, err := c.Put(ctx, pos[0], value, opts...)
			return f.putDone(stdout, stderr, pos[0], cctx, err)
		}
		if f.cctx == "" && !f.blind {
			// A person typing put means "replace": read the current
			// context first so this write supersedes the values stored now.
			e, err := c.Get(ctx, pos[0])
			switch {
			case err == nil:
				f.cctx = e.Context
			case !errors.Is(err, client.ErrKeyNotFound):
				return err
			}
		}
		opts := []client.CallOption{client.W(f.w), client.PW(f.pw), client.Context(f.cctx)}
		if f.ttl > 0 {
			opts = append(opts, client.WithTTL(f.ttl))
		}
		cctx, err := c.Put(ctx, pos[0], value, opts...)
		return f.putDone(stdout, stderr, pos[0], cctx, err)
	})
}

// putDone reports a put's outcome.
func (f *clientFlags) putDone(stdout, stderr io.Writer, key, cctx string, err error) error {
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(stdout, map[string]any{"key": key, "context": cctx})
	}
	if f.verbose {
		fmt.Fprintf(stderr, "context: %s\n", cctx)
	}
	return nil
}

func cmdGet(args []string, stdout, stderr io.Writer) error {
	f, pos, err := parseClient("get", args, stderr, true, 1)
	if err != nil {
		return err
	}
	return f.call(func(c *client.Client, ctx context.Context) error {
		e, err := c.Get(ctx, pos[0], client.R(f.r), client.PR(f.pr))
		if err != nil {
			return err
		}
		if f.json {
			return printJSON(stdout, entryJSON(e))
		}
		if f.verbose || e.Siblings > 1 {
			fmt.Fprintf(stderr, "siblings: %d\ncontext: %s\nnode: %s\n", e.Siblings, e.Context, e.Node)
		}
		if f.verbose && !e.Expires.IsZero() {
			fmt.Fprintf(stderr, "expires: %s\n", e.Expires.UTC().Format(time.RFC3339Nano))
		}
		for _, v := range e.Values {
			stdout.Write(v)
			fmt.Fprintln(stdout)
		}
		return nil
	})
}

func cmdDel(args []string, stdout, stderr io.Writer) error {
	f, pos, err := parseClient("del", args, stderr, false, 1)
	if err != nil {
		return err
	}
	if err := f.checkConditional(); err != nil {
		return err
	}
	return f.call(func(c *client.Client, ctx context.Context) error {
		cond := f.conditional()
		if cond == nil {
			cond = client.Context(f.cctx)
		}
		err := c.Delete(ctx, pos[0], client.W(f.w), client.PW(f.pw), cond)
		if err == nil && f.json {
			err = printJSON(stdout, map[string]any{"key": pos[0], "deleted": true})
		}
		return err
	})
}

// entryJSON is what get --json prints: the values as strings when they
// are all UTF-8, else base64 under values_base64, so a script never gets
// mangled bytes.
func entryJSON(e client.Entry) map[string]any {
	out := map[string]any{"key": e.Key, "siblings": e.Siblings, "context": e.Context, "node": e.Node}
	text := true
	for _, v := range e.Values {
		text = text && utf8.Valid(v)
	}
	if text {
		vals := make([]string, len(e.Values))
		for i, v := range e.Values {
			vals[i] = string(v)
		}
		out["values"] = vals
	} else {
		out["values_base64"] = e.Values // encoding/json writes []byte as base64
	}
	if !e.Expires.IsZero() {
		out["expires"] = e.Expires.UTC().Format(time.RFC3339Nano)
	}
	return out
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// checkConditional refuses flags that a conditional write contradicts.
func (f *clientFlags) checkConditional() error {
	switch {
	case f.ifAbsent && f.ifVersion != "":
		return cli.Usagef("--if-absent and --if-version exclude each other")
	case (f.ifAbsent || f.ifVersion != "") && (f.cctx != "" || f.blind):
		return cli.Usagef("a conditional write takes no --context or --blind")
	}
	return nil
}

// conditional is the call option of --if-absent or --if-version, or nil.
func (f *clientFlags) conditional() client.CallOption {
	switch {
	case f.ifAbsent:
		return client.IfAbsent()
	case f.ifVersion != "":
		return client.IfVersion(f.ifVersion)
	}
	return nil
}
