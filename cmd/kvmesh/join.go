package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/kvmesh/kvmesh/client"
	"github.com/kvmesh/kvmesh/internal/cli"
	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/protocol"
)

// Admission on the command line (node/join.go): `kvmesh admin invite`
// mints a token on a member, `kvmesh node --join URL --token T` fetches
// the store secret with it before the node's first start.

// joinTimeout bounds a joining node's search for a member that hands it
// the secret.
const joinTimeout = 30 * time.Second

// cmdInvite asks one node for a join token and prints it as the last
// line of stdout; what a person should know goes to stderr.
func cmdInvite(args []string, stdout, stderr io.Writer) error {
	var f clientFlags
	fs := flag.NewFlagSet("admin invite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.registerConn(fs)
	ttl := fs.Duration("ttl", protocol.DefaultTokenTTL, fmt.Sprintf("how long the token admits nodes (%v..%v)", protocol.MinTokenTTL, protocol.MaxTokenTTL))
	prefix := fs.String("prefix", protocol.DefaultPrefix, "subject prefix of the store")
	cli.SetUsage(fs, "admin invite [--server URL] [--ttl 1h]",
		`Asks a node of the store for a join token and prints it (the last line of stdout). A new node
started with --join nats-route://MEMBER:PORT --token TOKEN fetches the store's secret with it. The
token admits any number of nodes until it expires: hand it over as you would the secret.`,
		"kvmesh admin invite --ttl 15m --server nats://10.0.0.1:4222")
	if err := cli.ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *ttl < protocol.MinTokenTTL || *ttl > protocol.MaxTokenTTL {
		return cli.Usagef("--ttl %v: want %v..%v", *ttl, protocol.MinTokenTTL, protocol.MaxTokenTTL)
	}
	if _, err := protocol.NewSubjects(*prefix); err != nil {
		return cli.Usagef("--prefix: %v", err)
	}
	c, err := client.Connect(f.server, client.WithTimeout(f.timeout), client.WithPrefix(*prefix))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	st, err := c.Invite(ctx, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "Join token, valid until %s for any number of nodes; anyone holding it can fetch the store's secret.\n"+
		"Start a new node with: kvmesh node --id ID --data DIR --join nats-route://MEMBER:PORT --token TOKEN\n",
		time.Unix(0, st.Token.Expires).Format(time.RFC3339))
	_, err = fmt.Fprintln(stdout, st.String())
	return err
}

// joinFlags are kvmesh node's flags of admission.
type joinFlags struct {
	url, token string
}

func (j *joinFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&j.url, "join", "", "route URL of a member of the store to join (nats-route://host:port), added to --peers: the node joins, and the partitions it gains stream to it before it serves them; a new data dir also needs --token")
	fs.StringVar(&j.token, "token", "", "join token from `kvmesh admin invite`: a node without a secret fetches the store's with it")
}

// prepare adds the join URL to cfg's peers and, when the node has no
// secret yet (secretFile is the default one, in the data dir, and
// missing), fetches the store's with the token and writes it there. A
// node that has a secret ignores the token (a restart) and says so.
func (j *joinFlags) prepare(cfg *node.Config, secretFile string, defaultFile bool) error {
	j.token = strings.TrimSpace(j.token)
	if j.url != "" {
		cfg.Peers = append(cfg.Peers, j.url)
		cfg.Join = true
	}
	if j.url == "" && j.token == "" {
		return nil
	}
	_, err := os.Stat(secretFile)
	switch {
	case !defaultFile || err == nil:
		if j.token != "" {
			cfg.Logger.Info("the node has its store secret: --token ignored", "file", secretFile)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("secret: %w", err)
	case j.token == "":
		return cli.Usagef("--join on a new data dir needs --token (kvmesh admin invite makes one on a member), or the store's --secret-file")
	}
	if _, err := protocol.ParseToken(j.token); err != nil {
		return cli.Usagef("--token: %v", err)
	}
	if err := protocol.ValidateNodeID(cfg.ID); err != nil {
		return cli.Usagef("--id: %v", err)
	}
	key, err := node.LoadKey(*cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	secret, err := node.FetchSecret(ctx, j.token, cfg.ID, key)
	if err != nil {
		return err
	}
	if err := cli.WriteSecret(secretFile, secret); err != nil {
		return err
	}
	cfg.Logger.Info("fetched the store secret with the join token", "file", secretFile)
	return nil
}
