// Package client is the Go client of kvmesh. It talks to any node of a
// store over NATS. Any node coordinates a request with the key's
// replicas, but an owner of the key does it in fewer hops, so by default
// the client fetches the store's placement table and sends each request
// straight to an owner (the node it is connected to when that one owns
// the key); without a table it sends to the node it is connected to,
// and failing that to the store's queue group, where NATS hands the
// request to any node. A Client is safe for concurrent use.
//
//	c, err := client.Connect("nats://127.0.0.1:4222")
//	ctx1, err := c.Put(ctx, "user.42", []byte(`{"name":"ada"}`))
//	e, err := c.Get(ctx, "user.42")
//	_, err = c.Put(ctx, "user.42", newValue, client.Context(e.Context))
package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// Errors the client returns; errors.Is matches them whether they were
// detected locally or sent by a node.
var (
	ErrKeyNotFound      = protocol.ErrKeyNotFound
	ErrInvalidKey       = protocol.ErrInvalidKey
	ErrInvalidOption    = protocol.ErrInvalidOption
	ErrInvalidContext   = protocol.ErrInvalidContext
	ErrValueTooLarge    = protocol.ErrValueTooLarge
	ErrConflict         = protocol.ErrConflict
	ErrTooManySiblings  = protocol.ErrTooManySiblings
	ErrQuorumNotReached = protocol.ErrQuorumNotReached
	ErrNodeUnavailable  = protocol.ErrNodeUnavailable
	ErrOverloaded       = protocol.ErrOverloaded
	ErrInternal         = protocol.ErrInternal
	ErrMalformed        = protocol.ErrMalformed
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 5 * time.Second

// Client is a kvmesh client over one NATS connection.
type Client struct {
	nc       *nats.Conn
	owned    bool
	subjects protocol.Subjects
	timeout  time.Duration
	resolver Resolver
	direct   bool
	routing  bool
	noDirect sync.Map // server name -> true: it does not serve direct subjects
	router   *router  // nil unless direct and routing are on
	batching bool
	batch    *batches // nil unless direct and batching are on
}

// Resolver merges the sibling values of a key into one. Get applies it
// when a key has several siblings; the Entry keeps the causal context, so
// writing the resolved value back with it supersedes the siblings.
type Resolver func(key string, values [][]byte) []byte

// Option configures a Client.
type Option func(*Client) error

// WithPrefix sets the store's subject prefix (default "kvmesh").
func WithPrefix(prefix string) Option {
	return func(c *Client) error {
		s, err := protocol.NewSubjects(prefix)
		c.subjects = s
		return err
	}
}

// WithTimeout sets the timeout of calls whose context has no deadline.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return protocol.Errorf(protocol.ErrInvalidOption, "timeout must be > 0")
		}
		c.timeout = d
		return nil
	}
}

// WithDirect turns direct addressing on or off (default on). On, a
// request goes to a node the client names (the node it is connected to,
// its server name, or with routing an owner of the key), which
// coordinates it, instead of the queue group, which picks a node at
// random across the cluster, mostly one route away. A server that does
// not serve direct subjects (not a kvmesh node) is remembered and the
// queue group used instead. Off, every request goes to the queue group
// and routing is off too.
func WithDirect(on bool) Option {
	return func(c *Client) error { c.direct = on; return nil }
}

// WithRouting turns partition-aware routing on or off (default on; it
// needs direct addressing). On, the client fetches the store's placement
// table on first use (that first call waits for it, within its context)
// and refreshes it in the background every 30 s, or sooner once an owner
// did not answer. A request for a subject-safe key goes to the node the
// client is connected to if that node owns the key, else to the key's
// first owner; when an owner has no responders (it is down) the next
// owner is tried, then the queue group. Without a valid table the client
// addresses the node it is connected to, as with routing off. Keys that
// are not subject-safe go to the queue group, unless batched (see
// WithBatching): a batch carries keys in its body.
func WithRouting(on bool) Option {
	return func(c *Client) error { c.routing = on; return nil }
}

// WithBatching turns pipelining on or off (default on; it needs direct
// addressing). On, the calls the client sends to a named node (an owner
// of the key with routing, else the node it is connected to) queue per
// node, and one goroutine per node sends whatever is queued in one
// message and the node answers them together: under load many calls
// share a NATS message each way, and a lone call still goes out at once.
// Keys of any form are batched (the key travels in the body); a value
// over 64 KiB goes as a request of its own. Results and errors are the
// same as without batching.
func WithBatching(on bool) Option {
	return func(c *Client) error { c.batching = on; return nil }
}

// WithResolver sets the sibling resolver Get applies.
func WithResolver(r Resolver) Option {
	return func(c *Client) error { c.resolver = r; return nil }
}

// New returns a client over an existing connection, which the caller
// keeps owning. It starts nothing; Close stops what the client started.
func New(nc *nats.Conn, opts ...Option) (*Client, error) {
	c := &Client{nc: nc, timeout: DefaultTimeout, direct: true, routing: true, batching: true}
	c.subjects, _ = protocol.NewSubjects("")
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.direct && c.routing {
		c.router = newRouter(nc, c.subjects.Ring())
	}
	if c.direct && c.batching {
		c.batch = newBatches(c)
	}
	return c, nil
}

// Connect dials url (comma-separated URLs allowed) and returns a client
// that owns the connection; Close closes it.
func Connect(url string, opts ...Option) (*Client, error) {
	nc, err := nats.Connect(url, nats.Name("kvmesh-client"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", url, err)
	}
	c, err := New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.owned = true
	return c, nil
}

// Close stops the client's background work (a placement table fetch, the
// batch senders) and closes the connection if the client owns it. Calls
// still queued or waiting for a batch's reply fail. It is idempotent and
// returns when the background work has stopped.
func (c *Client) Close() {
	if c.batch != nil {
		c.batch.close()
	}
	if c.router != nil {
		c.router.close()
	}
	if c.owned {
		c.nc.Close()
	}
}

// Conn returns the client's NATS connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// Entry is what Get returns.
type Entry struct {
	Key string
	// Values are the key's sibling values: one, unless concurrent writes
	// left several (or a Resolver merged them into one).
	Values [][]byte
	// Siblings is how many sibling values the store holds for the key.
	Siblings int
	// Context is the opaque causal context; pass it to Put (Context) to
	// supersede exactly what this read saw.
	Context string
	// Node is the node that coordinated the read.
	Node string
	// Expires is when the key will read as not found unless written
	// again: every value it holds was put with a TTL (WithTTL), and this
	// is the latest of their expiries. Zero when some value never
	// expires.
	Expires time.Time
}

// Value returns the first value (the only one unless there are siblings).
func (e Entry) Value() []byte {
	if len(e.Values) == 0 {
		return nil
	}
	return e.Values[0]
}

// CallOption is a per-call option.
type CallOption func(*call) error

type call struct{ hdr nats.Header }

// R sets the read quorum: "one", "quorum", "all" or a number of replicas.
func R(v string) CallOption { return header(protocol.HdrR, v) }

// W sets the write quorum: "one", "quorum", "all" or a number of replicas.
func W(v string) CallOption { return header(protocol.HdrW, v) }

// PR sets how many of the read quorum's replies must come from the key's
// owners (primaries), not from fallbacks standing in for owners that are
// down: "one", "quorum", "all" or a number; "" or "0" for no
// requirement (the default). With fewer owners reachable the read fails
// with ErrQuorumNotReached instead of answering from fallbacks. A call
// with PR goes as a single request, never in a batch.
func PR(v string) CallOption { return header(protocol.HdrPR, v) }

// PW sets how many of the write quorum's acknowledgements must come from
// the key's owners (primaries), not from fallbacks, as PR: for callers
// who prefer an error (ErrQuorumNotReached) to a write held by fallbacks
// until the owners are back. The write may still be stored where it was
// acknowledged.
func PW(v string) CallOption { return header(protocol.HdrPW, v) }

// Context makes a put or delete supersede what the read (or earlier put)
// that returned ctx saw. Without it a write is concurrent with every
// value already stored and becomes a sibling.
func Context(ctx string) CallOption { return header(protocol.HdrContext, ctx) }

// WithTTL gives a put a time to live: from the coordinating node's time
// of the write plus d on, the value reads as not found on every replica
// (each decides by its own clock, so reads at different nodes may
// disagree for as long as their clocks are apart). A later put that
// supersedes it (Context) without a TTL keeps its value for good. d must
// be > 0 and at most 10 years (protocol.MaxTTL); only Put takes it.
func WithTTL(d time.Duration) CallOption {
	return func(c *call) error {
		if d <= 0 || d > protocol.MaxTTL {
			return protocol.Errorf(protocol.ErrInvalidOption, "ttl %v: want > 0 and at most %v", d, protocol.MaxTTL)
		}
		c.hdr.Set(protocol.HdrTTL, d.String())
		return nil
	}
}

// IfAbsent makes a put conditional: it writes only if the key has no
// live value (none was ever written, or it was deleted or expired), else
// it fails with a *ConflictError (errors.Is ErrConflict) carrying the
// key's current context. Of puts that race with IfAbsent, one wins (see
// the README for what that means across failures). With WithTTL it
// makes a lock or a lease that frees itself. A conditional call goes as
// a single request, never in a batch.
func IfAbsent() CallOption { return header(protocol.HdrIf, protocol.IfAbsent) }

// IfVersion makes a put or delete conditional on ctx, the context of a
// read or of an earlier write of the key: it writes only if nothing was
// written to the key since (compare-and-set), else it fails with a
// *ConflictError carrying the key's current context, with which the
// caller reads again or retries. An empty ctx holds only for a key never
// written.
func IfVersion(ctx string) CallOption {
	return func(c *call) error {
		c.hdr.Set(protocol.HdrIf, protocol.IfVersion)
		if ctx != "" {
			c.hdr.Set(protocol.HdrContext, ctx)
		}
		return nil
	}
}

// ConflictError is the error of a conditional write (IfAbsent,
// IfVersion) whose condition did not hold: another write got there
// first. errors.Is(err, ErrConflict) matches it.
type ConflictError struct {
	Key string
	// Context is the key's causal context when the condition was
	// checked: a write with IfVersion(Context) succeeds if nothing is
	// written in between.
	Context string
	Err     error // the node's error, a protocol.ErrConflict
}

func (e *ConflictError) Error() string { return e.Err.Error() }
func (e *ConflictError) Unwrap() error { return e.Err }

func header(name, v string) CallOption {
	return func(c *call) error {
		if v != "" {
			c.hdr.Set(name, v)
		}
		return nil
	}
}

// Get reads key. A missing or deleted key gives ErrKeyNotFound.
func (c *Client) Get(ctx context.Context, key string, opts ...CallOption) (Entry, error) {
	a, err := c.request(ctx, protocol.OpGet, key, nil, opts)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Key: key, Values: a.values, Siblings: a.siblings, Context: a.ctx, Node: a.node}
	if a.expires != 0 {
		e.Expires = time.Unix(0, a.expires)
	}
	if e.Siblings > 1 && c.resolver != nil {
		e.Values = [][]byte{c.resolver(key, e.Values)}
	}
	return e, nil
}

// Put writes value under key and returns the new causal context, which
// a following write of the same key can pass (Context) to supersede this
// one.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...CallOption) (string, error) {
	if max := protocol.MaxValueLen(c.nc.MaxPayload()); len(value) > max {
		return "", protocol.Errorf(protocol.ErrValueTooLarge, "put %q: value is %d bytes, limit %d", key, len(value), max)
	}
	if value == nil {
		value = []byte{}
	}
	a, err := c.request(ctx, protocol.OpPut, key, value, opts)
	if err != nil {
		return "", err
	}
	return a.ctx, nil
}

// Delete deletes key (it writes a tombstone). With Context it supersedes
// exactly what that read saw; without, every value stored so far.
func (c *Client) Delete(ctx context.Context, key string, opts ...CallOption) error {
	_, err := c.request(ctx, protocol.OpDel, key, nil, opts)
	return err
}

// answer is a node's successful answer, whichever way it came.
type answer struct {
	ctx      string   // causal context
	node     string   // the coordinating node
	siblings int      // get: live siblings
	values   [][]byte // get: live values
	expires  int64    // get: when every live value has expired (unix ns), or 0
}

func (c *Client) request(ctx context.Context, op, key string, data []byte, opts []CallOption) (*answer, error) {
	if err := protocol.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, key, err)
	}
	cl := call{hdr: nats.Header{}}
	for _, o := range opts {
		if err := o(&cl); err != nil {
			return nil, err
		}
	}
	if op != protocol.OpPut && cl.hdr.Get(protocol.HdrTTL) != "" {
		return nil, protocol.Errorf(protocol.ErrInvalidOption, "%s %q: a TTL is for puts", op, key)
	}
	msg := &nats.Msg{Header: cl.hdr, Data: data}
	safe := protocol.SubjectSafeKey(key)
	if safe {
		msg.Subject = c.subjects.KV(op, key)
	} else {
		msg.Subject = c.subjects.KVBase(op)
		msg.Header.Set(protocol.HdrKey, key)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if !c.direct {
		return c.send(ctx, op, key, msg)
	}
	server := c.nc.ConnectedServerName()
	var owners []string // with a table: where to send, in order
	if c.router != nil && (safe || c.batch != nil) {
		if pl := c.router.placement(ctx); pl != nil {
			owners = route(pl, key, server, c.router.isDown)
		}
	}
	if c.batch != nil && len(data) <= maxBatchedValue && batchable(op, cl.hdr) {
		to := server
		if owners != nil {
			to = owners[0]
		} else if _, no := c.noDirect.Load(server); no || protocol.ValidateNodeID(server) != nil {
			to = ""
		}
		if to != "" {
			a, err, fallback := c.batch.do(ctx, to, op, key, data, cl.hdr)
			if !fallback {
				return a, err
			}
			// No responders: the batch reached no node. Fall back to
			// single requests, past the node that did not answer.
			if owners != nil {
				c.router.markDown(to)
				owners = owners[1:]
			} else {
				c.noDirect.Store(server, true)
				server = ""
			}
		}
	}
	if !safe {
		return c.send(ctx, op, key, msg)
	}
	if owners != nil {
		return c.routed(ctx, owners, op, key, msg)
	}
	if _, no := c.noDirect.Load(server); no || protocol.ValidateNodeID(server) != nil {
		server = ""
	}
	if server != "" {
		direct := *msg
		direct.Subject = c.subjects.KVNode(server, op, key)
		m, err := c.nc.RequestMsgWithContext(ctx, &direct)
		if !errors.Is(err, nats.ErrNoResponders) {
			return c.answer(op, key, m, err)
		}
		c.noDirect.Store(server, true)
	}
	return c.send(ctx, op, key, msg)
}

// send sends msg to the queue group.
func (c *Client) send(ctx context.Context, op, key string, msg *nats.Msg) (*answer, error) {
	m, err := c.nc.RequestMsgWithContext(ctx, msg)
	return c.answer(op, key, m, err)
}

// routed sends msg to owners in order, to the next one only when the
// previous had no responders (it is down, so it cannot have taken the
// request), and to the queue group when none answers. A request that may
// have reached a node is never sent again.
func (c *Client) routed(ctx context.Context, owners []string, op, key string, msg *nats.Msg) (*answer, error) {
	for _, id := range owners {
		to := *msg
		to.Subject = c.subjects.KVNode(id, op, key)
		m, err := c.nc.RequestMsgWithContext(ctx, &to)
		if !errors.Is(err, nats.ErrNoResponders) {
			return c.answer(op, key, m, err)
		}
		c.router.markDown(id)
	}
	return c.send(ctx, op, key, msg)
}

// answer turns a NATS reply (or request error) into the client's result.
func (c *Client) answer(op, key string, m *nats.Msg, err error) (*answer, error) {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, protocol.Errorf(protocol.ErrNodeUnavailable, "%s %q: no kvmesh node serves the store's subjects", op, key)
	case errors.Is(err, nats.ErrMaxPayload):
		return nil, protocol.Errorf(protocol.ErrValueTooLarge, "%s %q: %v", op, key, err)
	case err != nil:
		return nil, fmt.Errorf("%s %q: %w", op, key, err)
	}
	if code := m.Header.Get(protocol.HdrServiceErrorCode); code != "" {
		n, _ := strconv.Atoi(code)
		err := protocol.FromWire(n, m.Header.Get(protocol.HdrError), m.Header.Get(protocol.HdrServiceError))
		if op != protocol.OpGet && errors.Is(err, protocol.ErrConflict) {
			err = &ConflictError{Key: key, Context: m.Header.Get(protocol.HdrContext), Err: err}
		}
		return nil, err
	}
	a := &answer{ctx: m.Header.Get(protocol.HdrContext), node: m.Header.Get(protocol.HdrNode)}
	if op != protocol.OpGet {
		return a, nil
	}
	if s := m.Header.Get(protocol.HdrExpires); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, protocol.Errorf(protocol.ErrMalformed, "get %q: bad %s header %q", key, protocol.HdrExpires, protocol.Clip(s, 64))
		}
		a.expires = t.UnixNano()
	}
	a.siblings = 1
	if s := m.Header.Get(protocol.HdrSiblings); s != "" {
		if a.siblings, err = strconv.Atoi(s); err != nil || a.siblings < 1 {
			return nil, protocol.Errorf(protocol.ErrMalformed, "get %q: bad %s header %q", key, protocol.HdrSiblings, s)
		}
	}
	if a.siblings == 1 {
		a.values = [][]byte{m.Data}
		return a, nil
	}
	if a.values, err = protocol.DecodeSiblings(m.Data); err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	return a, nil
}
