package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/kvmesh/kvmesh/embedded"
	"github.com/kvmesh/kvmesh/node"
	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/protocol"
)

// Tests of admission (join.go): invite, join, FetchSecret, over real
// embedded NATS servers.

func newNodeKey(t *testing.T) nkeys.KeyPair {
	t.Helper()
	kp, err := nkeys.CreateServer()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// mintToken mints a token of the store with secret secret, as a member
// would, listing urls and expiring at expires.
func mintToken(t *testing.T, secret []byte, urls []string, expires time.Time) *protocol.SignedToken {
	t.Helper()
	kp, err := membership.ClusterKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, protocol.TokenNonceLen)
	rand.Read(nonce)
	st, err := membership.MintToken(kp, protocol.DefaultPrefix, urls, expires, nonce)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestInviteThenFetchSecret: a token from any member lets a new node
// fetch the store's secret from the members it lists, several times
// until it expires; the invite's validity is bounded.
func TestInviteThenFetchSecret(t *testing.T) {
	c := startCluster(t, 2)
	ctx := testCtx(t)
	cl := c.client(0)
	before := time.Now()
	st, err := cl.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	tok := st.Token
	if exp := time.Unix(0, tok.Expires); exp.Before(before.Add(protocol.DefaultTokenTTL)) || exp.After(time.Now().Add(protocol.DefaultTokenTTL)) {
		t.Errorf("the token expires at %v, want an hour from now", exp)
	}
	urls := []string{c.nodes[0].ClientURL(), c.nodes[1].ClientURL()}
	if !slices.Contains(urls, tok.URLs[0]) || tok.Prefix != protocol.DefaultPrefix {
		t.Errorf("token %+v does not list the answering node first", tok)
	}
	t.Logf("token of %d bytes lists %v", len(st.String()), tok.URLs)

	for _, id := range []string{"n3", "n4"} { // multi-use
		secret, err := node.FetchSecret(ctx, st.String()+"\n", id, newNodeKey(t))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if !bytes.Equal(secret, testSecret) {
			t.Fatalf("%s fetched %q", id, secret)
		}
	}

	st2, err := cl.Invite(ctx, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if exp := time.Unix(0, st2.Token.Expires); exp.After(time.Now().Add(2*time.Minute)) || bytes.Equal(st2.Token.Nonce, tok.Nonce) {
		t.Errorf("a 2-minute token expires at %v, nonce %x", exp, st2.Token.Nonce)
	}
	for _, ttl := range []time.Duration{30 * time.Second, 8 * 24 * time.Hour, -time.Hour} {
		if _, err := cl.Invite(ctx, ttl); !errors.Is(err, protocol.ErrInvalidOption) {
			t.Errorf("invite for %v: %v", ttl, err)
		}
	}
}

// TestJoinRefusals: a join with an expired token, another cluster's
// token, a token changed after signing, a token naming this cluster but
// signed by another key, a request signed by another key than the one
// it names, or bytes that are not a request, is refused with a 400 and
// no secret, and changes nothing: a good request still gets the secret.
func TestJoinRefusals(t *testing.T) {
	c := startCluster(t, 1)
	ctx := testCtx(t)
	url := c.nodes[0].ClientURL()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subjects, _ := protocol.NewSubjects("")
	members := c.nodes[0].Members()

	good := mintToken(t, testSecret, []string{url}, time.Now().Add(time.Hour))
	expired := mintToken(t, testSecret, []string{url}, time.Now().Add(-time.Second))
	foreign := mintToken(t, []byte("another store's secret, 32 bytes"), []string{url}, time.Now().Add(time.Hour))
	// This cluster's token with a later expiry put in after signing.
	later := *good.Token
	later.Expires = time.Now().Add(1000 * time.Hour).UnixNano()
	tampered := &protocol.SignedToken{Sig: good.Sig, Token: &later}
	tampered.Body, _ = protocol.EncodeJoinToken(&later)
	// A token naming this cluster's key, signed by another cluster key.
	otherKey, _ := nkeys.CreateCluster()
	forged := &protocol.SignedToken{Token: good.Token}
	forged.Body = good.Body
	forged.Sig, _ = otherKey.Sign(forged.Body)

	// request builds a join request for token signed by signer.
	request := func(token *protocol.SignedToken, signer nkeys.KeyPair) ([]byte, nkeys.KeyPair) {
		key := newNodeKey(t)
		pub, _ := key.PublicKey()
		xk, _ := nkeys.CreateCurveKeys()
		xpub, _ := xk.PublicKey()
		r := &protocol.JoinRequest{V: protocol.Version, Token: token, ID: "joiner", Key: pub, XKey: xpub}
		if signer == nil {
			signer = key
		}
		r.Sig, _ = signer.Sign(r.SigningBytes())
		b, _ := protocol.EncodeJoinRequest(r)
		return b, xk
	}
	send := func(b []byte) *nats.Msg {
		t.Helper()
		m, err := nc.RequestWithContext(ctx, subjects.AdminJoin(), b)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tc := range []struct {
		name, want string
		body       []byte
	}{
		{"expired token", "invalid_option", joinBytes(request(expired, nil))},
		{"another cluster's token", "invalid_option", joinBytes(request(foreign, nil))},
		{"token changed after signing", "invalid_option", joinBytes(request(tampered, nil))},
		{"token signed by another key", "invalid_option", joinBytes(request(forged, nil))},
		{"request signed by another node key", "invalid_option", joinBytes(request(good, newNodeKey(t)))},
		{"not msgpack", "malformed", []byte("hello")},
		{"empty", "malformed", nil},
		{"truncated", "malformed", func() []byte { b := joinBytes(request(good, nil)); return b[:len(b)/2] }()},
	} {
		m := send(tc.body)
		if m.Header.Get(protocol.HdrServiceErrorCode) != "400" || m.Header.Get(protocol.HdrError) != tc.want || len(m.Data) != 0 {
			t.Errorf("%s: answered %v %q, want a 400 %s and no data", tc.name, m.Header, m.Data, tc.want)
		} else {
			t.Logf("%s: %s", tc.name, m.Header.Get(protocol.HdrServiceError))
		}
	}
	// FetchSecret reports a member's refusal as the protocol error.
	if _, err := node.FetchSecret(ctx, expired.String(), "joiner", newNodeKey(t)); !errors.Is(err, protocol.ErrInvalidOption) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("FetchSecret with an expired token: %v", err)
	}
	if _, err := node.FetchSecret(ctx, foreign.String(), "joiner", newNodeKey(t)); !errors.Is(err, protocol.ErrInvalidOption) {
		t.Errorf("FetchSecret with another cluster's token: %v", err)
	}
	// It refuses a damaged token before it asks anyone.
	if _, err := node.FetchSecret(ctx, tampered.String(), "joiner", newNodeKey(t)); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("FetchSecret with a tampered token: %v", err)
	}

	if got := c.nodes[0].Members(); !slices.Equal(got, members) {
		t.Errorf("members %v after refused joins, were %v", got, members)
	}
	b, xk := request(good, nil)
	m := send(b)
	rep, err := protocol.DecodeJoinReply(m.Data)
	if err != nil {
		t.Fatalf("good request: %v %v", m.Header, err)
	}
	if secret, err := xk.Open(rep.Sealed, rep.XKey); err != nil || !bytes.Equal(secret, testSecret) || rep.From != "n1" {
		t.Fatalf("good request: %q from %s, %v", secret, rep.From, err)
	}
}

// joinBytes keeps the encoded request of a request call.
func joinBytes(b []byte, _ nkeys.KeyPair) []byte { return b }

// TestJoinRefusesAForeignSecret: a server that answers the join
// subject with a secret of its own (a man in the middle: the curve key
// is public) is refused, as is one that answers garbage; FetchSecret then
// tries the next member the token lists, past one that is unreachable.
func TestJoinRefusesAForeignSecret(t *testing.T) {
	ctx := testCtx(t)
	srv, err := embedded.Start(embedded.Config{Name: "fake", Port: embedded.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subjects, _ := protocol.NewSubjects("")
	answer := func(secret []byte) func(*nats.Msg) {
		return func(m *nats.Msg) {
			r, err := protocol.DecodeJoinRequest(m.Data)
			if err != nil {
				t.Errorf("fake responder: %v", err)
				return
			}
			xk, _ := nkeys.CreateCurveKeys()
			xpub, _ := xk.PublicKey()
			sealed, _ := xk.Seal(secret, r.XKey)
			b, _ := protocol.EncodeJoinReply(&protocol.JoinReply{V: protocol.Version, From: "fake", XKey: xpub, Sealed: sealed})
			_ = m.Respond(b)
		}
	}
	sub, err := nc.Subscribe(subjects.AdminJoin(), answer([]byte("a secret the attacker knows, 32B")))
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	token := mintToken(t, testSecret, []string{srv.ClientURL()}, time.Now().Add(time.Hour))
	secret, err := node.FetchSecret(ctx, token.String(), "joiner", newNodeKey(t))
	if !errors.Is(err, node.ErrForeignSecret) || secret != nil {
		t.Fatalf("a foreign secret: %q, %v", secret, err)
	}
	t.Log(err)

	sub.Unsubscribe()
	if _, err := nc.Subscribe(subjects.AdminJoin(), func(m *nats.Msg) { _ = m.Respond([]byte{0x80}) }); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	if _, err := node.FetchSecret(ctx, token.String(), "joiner", newNodeKey(t)); !errors.Is(err, protocol.ErrMalformed) {
		t.Fatalf("a malformed answer: %v", err)
	}

	// The real store, listed after an unreachable member and the fake.
	c := startCluster(t, 1)
	token = mintToken(t, testSecret, []string{"nats://127.0.0.1:1", srv.ClientURL(), c.nodes[0].ClientURL()}, time.Now().Add(time.Hour))
	secret, err = node.FetchSecret(ctx, token.String(), "joiner", newNodeKey(t))
	if err != nil || !bytes.Equal(secret, testSecret) {
		t.Fatalf("past an unreachable member and a fake: %q, %v", secret, err)
	}
}

// TestJoinTokenHandling: FetchSecret refuses what is not a token, a bad
// node id and a key pair that is not a node's, without a round trip.
func TestJoinTokenHandling(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	token := mintToken(t, testSecret, []string{"nats://127.0.0.1:1"}, time.Now().Add(time.Hour)).String()
	user, _ := nkeys.CreateUser()
	for name, call := range map[string]func() error{
		"not a token": func() error { _, err := node.FetchSecret(ctx, "hello", "j", newNodeKey(t)); return err },
		"bad id":      func() error { _, err := node.FetchSecret(ctx, token, "j.1", newNodeKey(t)); return err },
		"user key":    func() error { _, err := node.FetchSecret(ctx, token, "j", user); return err },
	} {
		start := time.Now()
		if err := call(); err == nil || time.Since(start) > time.Second {
			t.Errorf("%s: %v after %v", name, err, time.Since(start))
		}
	}
}
