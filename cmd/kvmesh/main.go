// Command kvmesh is the one kvmesh binary: it runs a node (`node`), a
// local 3-node cluster (`dev`), and is a command-line client (`put`,
// `get`, `del`, `ls`). Its benchmark (`bench`, and the hidden `jsref` verb the
// benchmark starts) lives in internal/bench; this package only calls it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/bench"
	"github.com/kvmesh/kvmesh/internal/cli"
)

const usage = `kvmesh: a Dynamo-style key-value store on an embedded NATS mesh

Usage:
  kvmesh dev   [--data ./data] [--port 4222]          run a local 3-node cluster
  kvmesh node  --id ID --data DIR [--listen H:P] [--cluster H:P] [--peers URL,...] [--secret-file F]
               [--join URL --token TOKEN]             a new node: fetch the store's secret with a join token
  kvmesh keygen FILE                                   write a new node key pair (for --key-file); prints its public key
  kvmesh secret                                        print a new store secret (for --secret-file)
  kvmesh status [--json]                               every node: actor, peers alive, store health
  kvmesh admin quarantine --data DIR                   move a stopped node's damaged store aside
  kvmesh admin compact --data DIR                      shrink a stopped node's store file to its live pages
  kvmesh admin invite [--ttl 1h]                       print a join token for a new node
  kvmesh put   KEY VALUE [-w W] [--context CTX|--blind|--if-absent|--if-version CTX] [--ttl 30s]
                                                       replace (VALUE "-" reads stdin); --ttl: expire after;
                                                       --if-*: only if absent / unchanged since CTX, else exit 4
  kvmesh get   KEY [-r R]                              read
  kvmesh del   KEY [-w W] [--context CTX|--if-version CTX]
                                                       delete
  kvmesh watch PATTERN [--json] [--count N]            print the change events of matching keys (orders.>)
  kvmesh ls    [PREFIX] [-r R] [--json] [--page N]     list keys in order, one a line (--json: with details)
  kvmesh bench [--quick] [--systems ...] [--json FILE] compare with JetStream KV (see -h)

Client commands take --server URL (default $KVMESH_URL, then nats://127.0.0.1:4222)
and --timeout. R and W are one, quorum, all or a number of replicas.
Run 'kvmesh help COMMAND' (or 'kvmesh COMMAND -h') for a command's flags and examples.

Exit status: ` + cli.ExitCodes + `
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code: 0 on
// success, 1 on a failed operation, 2 on a usage error, 3 when the key
// was not found, 4 when a conditional write's condition did not hold
// (the key's current context on stderr) (cli.ExitCodes).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "node":
		err = cmdNode(args[1:], stderr)
	case "dev":
		err = cmdDev(args[1:], stdout, stderr)
	case "secret":
		err = cmdSecret(args[1:], stdout)
	case "keygen":
		err = cmdKeygen(args[1:], stdout)
	case "status":
		err = cmdStatus(args[1:], stdout, stderr)
	case "admin":
		err = cmdAdmin(args[1:], stdout, stderr)
	case "put":
		err = cmdPut(args[1:], stdin, stdout, stderr)
	case "get":
		err = cmdGet(args[1:], stdout, stderr)
	case "del":
		err = cmdDel(args[1:], stdout, stderr)
	case "watch":
		err = cmdWatch(args[1:], stdout, stderr)
	case "ls":
		err = cmdLs(args[1:], stdout, stderr)
	case "bench":
		err = bench.Main(args[1:], stdout, stderr)
	case "jsref": // hidden: a reference nats-server for bench
		err = bench.JSRef(args[1:], stderr)
	case "-h", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			return run(append(args[1:], "-h"), stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "kvmesh: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue cli.UsageError
	var ce *client.ConflictError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "kvmesh %s: %v\n", args[0], err)
		return 2
	case errors.Is(err, client.ErrKeyNotFound):
		fmt.Fprintf(stderr, "kvmesh %s: %v\n", args[0], err)
		return 3
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "kvmesh %s: %s\ncontext: %s\n", args[0], strings.ReplaceAll(err.Error(), "\n", "; "), ce.Context)
		return 4
	default:
		fmt.Fprintf(stderr, "kvmesh %s: %s\n", args[0], strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
}
