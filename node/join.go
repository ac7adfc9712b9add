package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/kvmesh/kvmesh/node/clock"
	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/protocol"
)

// Admission: how a new node gets the store secret (protocol/token.go).
// A node holding the secret can take part in the store, so admitting a
// node means handing it the secret, safely:
//
//  1. An operator asks any member for a join token (AdminInvite; `kvmesh
//     admin invite`). The member signs it with the cluster key, derived
//     from the secret (membership.ClusterKey), so only a member can mint
//     one. A token is valid for any number of joins until it expires
//     (default 1 h), like Elasticsearch's enrollment tokens: treat it as
//     the secret itself while it is valid.
//  2. The new node (FetchSecret; `kvmesh node --join URL --token T`)
//     sends a JoinRequest with the token, its id, its node key and a
//     one-time curve key, signed by its node key, to a member the token
//     lists (AdminJoin).
//  3. The member checks the token (this cluster's key signed it, it has
//     not expired) and the request's signature, logs the admission, and
//     answers with the secret sealed to the curve key.
//  4. The new node opens it and checks that the secret derives the
//     cluster key the token names: a server in the middle answering with
//     a secret of its own is refused.
//
// What protects a store today: the client port has no client
// authentication yet (a later issue), so whoever can reach it can ask
// for an invite, and with it for the secret. Until clients authenticate,
// firewall the client port (Config.Listen) to trusted networks, as the
// route port must be. The token keeps the secret off the command line,
// out of shell history and out of files copied between machines, binds
// the handshake to the cluster key, and expires.

// joinAttemptTimeout bounds FetchSecret's attempt at one member.
const joinAttemptTimeout = 5 * time.Second

// ErrForeignSecret is FetchSecret's error when a server answered with a
// secret that does not derive the token's cluster key: not the store the
// token admits to.
var ErrForeignSecret = errors.New("join: the answer holds another store's secret")

// joinService answers AdminInvite and AdminJoin for one node. It is
// immutable after newJoinService and its handlers do not block: minting
// a token is a signature, answering a join a verification and a seal.
type joinService struct {
	id      string
	prefix  string
	secret  []byte
	cluster nkeys.KeyPair // the cluster key pair (membership.ClusterKey)
	pub     string        // its public key
	clock   clock.Clock
	log     *slog.Logger
	// urls returns the members' client URLs a token lists: this node's
	// and the others its server knows (clientURLs). Point it at the
	// member records once they carry client URLs.
	urls    func() []string
	respond func(*request, error)
}

func (n *Node) newJoinService() (*joinService, error) {
	kp := n.clusterKey
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	return &joinService{id: n.cfg.ID, prefix: n.subjects.Prefix, secret: n.cfg.Secret, cluster: kp, pub: pub,
		clock: n.clock, log: n.log, urls: n.clientURLs, respond: n.respondError}, nil
}

// serveInvite answers with a new join token, in its text form. The body
// is empty, or the token's validity as a Go duration ("30m").
func (j *joinService) serveInvite(req *request) {
	ttl, err := parseTokenTTL(req.Data())
	if err == nil {
		err = checkHeaders(opAdmin, req.Header())
	}
	if err != nil {
		j.respond(req, err)
		return
	}
	urls := j.urls()
	if len(urls) == 0 {
		j.respond(req, protocol.Errorf(protocol.ErrNodeUnavailable, "invite: this node knows no client URL of a member to put in a token"))
		return
	}
	nonce := make([]byte, protocol.TokenNonceLen)
	_, _ = rand.Read(nonce) // crypto/rand does not fail on supported platforms
	expires := j.clock.Now().Add(ttl)
	st, err := membership.MintToken(j.cluster, j.prefix, urls, expires, nonce)
	if err != nil {
		j.respond(req, protocol.Errorf(protocol.ErrInternal, "invite: %v", err))
		return
	}
	j.log.Info("minted a join token: it admits any node that presents it until it expires",
		"expires", expires.UTC().Format(time.RFC3339), "urls", st.Token.URLs)
	_ = req.reply(&nats.Msg{Header: nats.Header{protocol.HdrNode: {j.id}}, Data: []byte(st.String())})
}

// parseTokenTTL reads the validity an invite asks for.
func parseTokenTTL(b []byte) (time.Duration, error) {
	if len(b) > 32 {
		return 0, protocol.Errorf(protocol.ErrInvalidOption, "invite: a body of %d bytes; want a duration such as 30m", len(b))
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return protocol.DefaultTokenTTL, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < protocol.MinTokenTTL || d > protocol.MaxTokenTTL {
		return 0, protocol.Errorf(protocol.ErrInvalidOption, "invite: validity %q: want a duration from %v to %v",
			protocol.Clip(s, 32), protocol.MinTokenTTL, protocol.MaxTokenTTL)
	}
	return d, nil
}

// serveJoin answers a JoinRequest with the store secret sealed to the
// request's curve key, or refuses it: 400 malformed for what does not
// decode, 400 invalid_option for a token or signature that does not
// check (the protocol has no 403 yet).
func (j *joinService) serveJoin(req *request) {
	r, err := protocol.DecodeJoinRequest(req.Data())
	if err == nil {
		err = checkHeaders(opAdmin, req.Header())
	}
	if err == nil {
		err = j.admit(r, j.clock.Now())
	}
	if err != nil {
		j.log.Warn("refused a join request", "err", err)
		j.respond(req, err)
		return
	}
	xk, err := nkeys.CreateCurveKeys()
	if err != nil {
		j.respond(req, protocol.Errorf(protocol.ErrInternal, "join: %v", err))
		return
	}
	defer xk.Wipe()
	xpub, err := xk.PublicKey()
	if err != nil {
		j.respond(req, protocol.Errorf(protocol.ErrInternal, "join: %v", err))
		return
	}
	sealed, err := xk.Seal(j.secret, r.XKey)
	if err != nil {
		j.respond(req, protocol.Errorf(protocol.ErrInvalidOption, "join: cannot seal to curve key %s: %v", r.XKey, err))
		return
	}
	if len(sealed) > protocol.MaxSealedLen {
		j.respond(req, protocol.Errorf(protocol.ErrInternal, "join: the store secret is too long to hand out (%d bytes sealed, limit %d)", len(sealed), protocol.MaxSealedLen))
		return
	}
	b, _ := protocol.EncodeJoinReply(&protocol.JoinReply{V: protocol.Version, From: j.id, XKey: xpub, Sealed: sealed})
	j.log.Info("admitted a node: sent it the store secret", "id", r.ID, "key", r.Key,
		"token_expires", time.Unix(0, r.Token.Token.Expires).UTC().Format(time.RFC3339))
	_ = req.reply(&nats.Msg{Header: nats.Header{protocol.HdrNode: {j.id}}, Data: b})
}

// admit checks a decoded join request at time now: its token is this
// cluster's, signed by the cluster key and unexpired; its keys are a
// node's and a curve's; the node key it names signed it.
func (j *joinService) admit(r *protocol.JoinRequest, now time.Time) error {
	if err := membership.VerifyToken(r.Token, j.pub, now); err != nil {
		return protocol.Errorf(protocol.ErrInvalidOption, "join: token refused: %v", err)
	}
	if !nkeys.IsValidPublicServerKey(r.Key) {
		return protocol.Errorf(protocol.ErrInvalidOption, "join: %s is not a node key", r.Key)
	}
	if !nkeys.IsValidPublicCurveKey(r.XKey) {
		return protocol.Errorf(protocol.ErrInvalidOption, "join: %s is not a curve key", r.XKey)
	}
	kp, err := nkeys.FromPublicKey(r.Key)
	if err != nil || kp.Verify(r.SigningBytes(), r.Sig) != nil {
		return protocol.Errorf(protocol.ErrInvalidOption, "join: request of %s not signed by the node key it names", r.ID)
	}
	return nil
}

// clientURLs returns the client URLs a token lists: this node's first,
// then those in the member records of the members that have not left,
// at most MaxTokenURLs. A listener
// on an unspecified address (0.0.0.0) is listed by its interfaces'
// addresses, as the server advertises it.
func (n *Node) clientURLs() []string {
	var urls []string
	add := func(u string) {
		pu, err := url.Parse(u)
		if err != nil || pu.Hostname() == "" || len(u) > 256 || strings.ContainsAny(u, " \t\r\n") || slices.Contains(urls, u) {
			return
		}
		if ip := net.ParseIP(pu.Hostname()); ip != nil && ip.IsUnspecified() {
			return
		}
		urls = append(urls, u)
	}
	add(n.ClientURL())
	for _, r := range n.mem.records().Records() {
		if r.Status != protocol.MemberLeft && r.Client != "" {
			add(r.Client)
		}
	}
	if len(urls) > protocol.MaxTokenURLs {
		urls = urls[:protocol.MaxTokenURLs]
	}
	return urls
}

// LoadKey returns the key pair of the node cfg describes, as Start loads
// it: from Config.KeyFile, or from DataDir/node.nk, made there if
// missing. A joining node signs its join request with it (FetchSecret)
// and then runs with it.
func LoadKey(cfg Config) (nkeys.KeyPair, error) {
	fsys := cfg.FS
	if fsys == nil {
		fsys = disk.OS{}
	}
	if cfg.DataDir == "" {
		return nil, errors.New("node key: no data dir")
	}
	if err := fsys.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := cfg.KeyFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, keyFileName)
	}
	kp, _, err := loadKey(fsys, path, cfg.KeyFile == "")
	return kp, err
}

// FetchSecret asks the store that minted token for its secret, for node
// id whose node key pair is key (it signs the request). It tries the
// members the token lists in order, each for at most a few seconds
// within ctx, until one answers with a secret, and returns it once it has
// checked that the secret derives the cluster key the token names (else
// ErrForeignSecret). It blocks; it is safe for concurrent use.
func FetchSecret(ctx context.Context, token, id string, key nkeys.KeyPair) ([]byte, error) {
	st, err := protocol.ParseToken(strings.TrimSpace(token))
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	if err := membership.VerifyToken(st, st.Token.Cluster, time.Time{}); err != nil {
		return nil, fmt.Errorf("join: the token is damaged: %w", err)
	}
	if err := protocol.ValidateNodeID(id); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	pub, err := key.PublicKey()
	if err != nil || !nkeys.IsValidPublicServerKey(pub) {
		return nil, fmt.Errorf("join: the key pair is not a node key (%v)", err)
	}
	xk, err := nkeys.CreateCurveKeys()
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	defer xk.Wipe()
	xpub, err := xk.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	r := &protocol.JoinRequest{V: protocol.Version, Token: st, ID: id, Key: pub, XKey: xpub}
	if r.Sig, err = key.Sign(r.SigningBytes()); err != nil {
		return nil, fmt.Errorf("join: sign the request: %w", err)
	}
	data, _ := protocol.EncodeJoinRequest(r)
	subjects, err := protocol.NewSubjects(st.Token.Prefix)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	var errs []error
	for _, u := range st.Token.URLs {
		secret, err := fetchFrom(ctx, u, subjects.AdminJoin(), id, data, xk, st.Token.Cluster)
		if err == nil {
			return secret, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("join: no member handed out the secret: %w", errors.Join(errs...))
}

// fetchFrom sends the join request data to the member at url and opens
// the secret in its answer.
func fetchFrom(ctx context.Context, url, subject, id string, data []byte, xk nkeys.KeyPair, cluster string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, joinAttemptTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	nc, err := nats.Connect(url, nats.Name("kvmesh-join-"+id), nats.Timeout(time.Until(dl)), nats.NoReconnect(), nats.IgnoreDiscoveredServers())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	m, err := nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: data})
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, protocol.Errorf(protocol.ErrNodeUnavailable, "no kvmesh node serves %s there", subject)
	case err != nil:
		return nil, err
	}
	if code := m.Header.Get(protocol.HdrServiceErrorCode); code != "" {
		c, _ := strconv.Atoi(code)
		return nil, protocol.FromWire(c, m.Header.Get(protocol.HdrError), m.Header.Get(protocol.HdrServiceError))
	}
	rep, err := protocol.DecodeJoinReply(m.Data)
	if err != nil {
		return nil, err
	}
	secret, err := xk.Open(rep.Sealed, rep.XKey)
	if err != nil {
		return nil, fmt.Errorf("open the sealed secret from %s: %w", rep.From, err)
	}
	ck, err := membership.ClusterKey(secret)
	if err != nil {
		return nil, fmt.Errorf("%w (%s sent %v)", ErrForeignSecret, rep.From, err)
	}
	if pub, err := ck.PublicKey(); err != nil || pub != cluster {
		return nil, fmt.Errorf("%w: %s sent the secret of cluster %s, the token is for %s", ErrForeignSecret, rep.From, pub, cluster)
	}
	return secret, nil
}
