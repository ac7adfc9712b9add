package node

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/protocol"
)

// serveClients registers the client API as a NATS service (service.go)
// in the store's queue group, so NATS hands each request to one node and
// `nats micro ls` discovers the store. Every operation has three
// endpoints: "<prefix>.kv.<op>.<key>" for subject-safe keys,
// "<prefix>.kv.<op>" with the key in the Kvmesh-Key header for any other
// key, and "<prefix>.kv.node.<id>.<op>.<key>" for clients that address
// this node directly (the one they are connected to, or an owner of the
// key); "<prefix>.kv.node.<id>.batch" takes a batch of operations on
// any keys addressed to this node (see batch.go), "<prefix>.kv.batch"
// a raw batch in JSON or msgpack (rawbatch.go), and
// "<prefix>.kv.keys[.<key prefix>]" lists keys (keys.go).
// "<prefix>.kv.ring" answers with the placement table such clients
// route by.
func (n *Node) serveClients() error {
	svc := newService(n.nc, n.clock, "kvmesh", Version, "kvmesh distributed key-value store, node "+n.cfg.ID,
		protocol.QueueGroup, map[string]string{"node": n.cfg.ID})
	n.svc = svc
	add := func(name, subject string, h func(*request)) error {
		if err := svc.addEndpoint(name, subject, h); err != nil {
			return fmt.Errorf("client api: %w", err)
		}
		return nil
	}
	for _, op := range []string{protocol.OpGet, protocol.OpPut, protocol.OpDel} {
		h := n.handler(op)
		if err := add(op, n.subjects.KVWildcard(op), h); err != nil {
			return err
		}
		if err := add(op+"-by-header", n.subjects.KVBase(op), h); err != nil {
			return err
		}
		if err := add(op+"-direct", n.subjects.KVNodeWildcard(n.cfg.ID, op), h); err != nil {
			return err
		}
	}
	if err := add(opBatch, n.subjects.KVNodeBatch(n.cfg.ID), n.serveBatch); err != nil {
		return err
	}
	if err := add(opRawBatch, n.subjects.KVBatch(), n.serveRawBatch); err != nil {
		return err
	}
	if err := add(protocol.OpKeys, n.subjects.KVWildcard(protocol.OpKeys), n.serveKeys); err != nil {
		return err
	}
	if err := add(protocol.OpKeys+"-by-header", n.subjects.KVBase(protocol.OpKeys), n.serveKeys); err != nil {
		return err
	}
	if err := add(opRing, n.subjects.Ring(), n.serveRing); err != nil {
		return err
	}
	if err := n.addAdminEndpoints(svc); err != nil {
		return fmt.Errorf("admin api: %w", err)
	}
	if err := svc.startDiscovery(); err != nil {
		return err
	}
	if err := n.nc.Flush(); err != nil {
		return err
	}
	return n.serveLocalClients()
}

// serveLocalClients maps, on this node's server, the client subjects of
// the queue group to this node's own (embedded.Server.MapLocal): a raw
// request from a client connected here (the nats CLI, a service in any
// language) is served by this node, as the Go client's are, instead of
// crossing a route to a random member of the queue group and from there
// to the replicas. NATS maps only what its own clients publish, so each
// node maps to itself; requests that arrive over routes still go to the
// queue group. Close unmaps first, so that clients of a node that is
// stopping reach the others.
func (n *Node) serveLocalClients() error {
	for _, op := range localOps {
		local := n.subjects.KVLocal(n.cfg.ID, op)
		for _, m := range []struct{ endpoint, src, dst string }{
			{op, n.subjects.KVWildcard(op), local + ".>"},
			{op + "-by-header", n.subjects.KVBase(op), local},
		} {
			// The endpoint serves the mapped subject too, and counts it:
			// nats micro stats shows the requests of the subject the
			// clients use.
			if err := n.svc.addSubject(m.endpoint, m.dst); err != nil {
				return err
			}
			if err := n.nc.Flush(); err != nil {
				return err
			}
			if err := n.srv.MapLocal(m.src, m.dst); err != nil {
				return err
			}
		}
	}
	// A raw batch's keys are in its body: one subject.
	local := n.subjects.KVLocal(n.cfg.ID, opRawBatch)
	if err := n.svc.addSubject(opRawBatch, local); err != nil {
		return err
	}
	if err := n.nc.Flush(); err != nil {
		return err
	}
	return n.srv.MapLocal(n.subjects.KVBatch(), local)
}

// localOps are the operations whose queue-group subjects a node maps to
// its own for its local clients: "<op>.>" and "<op>" each.
var localOps = []string{protocol.OpGet, protocol.OpPut, protocol.OpDel, protocol.OpKeys}

// stopServingLocalClients undoes serveLocalClients.
func (n *Node) stopServingLocalClients() {
	for _, op := range localOps {
		n.srv.UnmapLocal(n.subjects.KVWildcard(op))
		n.srv.UnmapLocal(n.subjects.KVBase(op))
	}
	n.srv.UnmapLocal(n.subjects.KVBatch())
}

// opRing names the placement endpoint among the operations, opAdmin the
// admin endpoints.
const (
	opRing  = "ring"
	opAdmin = "admin"
)

// allowedHeaders lists the Kvmesh-* request headers each operation
// understands; any other Kvmesh-* header is an unknown option (400).
var allowedHeaders = map[string][]string{
	protocol.OpGet:  {protocol.HdrKey, protocol.HdrR, protocol.HdrPR},
	protocol.OpPut:  {protocol.HdrKey, protocol.HdrW, protocol.HdrPW, protocol.HdrContext, protocol.HdrTTL, protocol.HdrIf},
	protocol.OpDel:  {protocol.HdrKey, protocol.HdrW, protocol.HdrPW, protocol.HdrContext, protocol.HdrIf},
	protocol.OpKeys: {protocol.HdrPrefix, protocol.HdrLimit, protocol.HdrCursor, protocol.HdrR, protocol.HdrDetail},
	opRing:          nil,
	opAdmin:         nil,
	opBatch:         nil,
}

// checkHeaders refuses the Kvmesh-* headers op does not understand.
func checkHeaders(op string, hdr nats.Header) error {
	for name := range hdr {
		if strings.HasPrefix(strings.ToLower(name), "kvmesh-") && !slices.Contains(allowedHeaders[op], name) {
			return protocol.Errorf(protocol.ErrInvalidOption, "unknown header %q for %s", clip(name), op)
		}
	}
	return nil
}

// serveRing answers the placement endpoint with this node's placement
// table (protocol.Placement), so that a client can send each request to
// an owner of its key. The payload is ignored. Building the table takes
// tens of microseconds for 256 partitions and clients ask rarely (every
// 30 s), so it is built per request rather than cached.
func (n *Node) serveRing(req *request) {
	if err := checkHeaders(opRing, req.Header()); err != nil {
		n.respondError(req, err)
		return
	}
	b, err := n.placement()
	if err != nil {
		n.respondError(req, protocol.Errorf(protocol.ErrInternal, "placement table: %v", err))
		return
	}
	h := nats.Header{protocol.HdrNode: {n.cfg.ID}}
	if err := req.reply(&nats.Msg{Header: h, Data: b}); err != nil {
		// With many partitions and members the table may not fit a
		// message; clients then address nodes without it.
		n.respondError(req, protocol.Errorf(protocol.ErrInternal, "placement table of %d bytes: %v", len(b), err))
	}
}

// placement encodes the node's current ring as the placement table.
func (n *Node) placement() ([]byte, error) {
	rg := n.mem.ring()
	owners := make([][]string, rg.Partitions())
	for p := range owners {
		owners[p] = rg.Owners(p)
	}
	pl, err := protocol.NewPlacement(n.cfg.ID, rg.Partitions(), rg.N(), rg.Members(), owners, n.live.in(membership.Down)...)
	if err != nil {
		return nil, err
	}
	return protocol.EncodePlacement(pl)
}

// handler serves one client operation. It validates the request, starts
// the operation and returns at once; the reply is published when the
// replicas have answered, from whichever goroutine completes it.
func (n *Node) handler(op string) func(*request) {
	return func(req *request) {
		defer func() {
			if r := recover(); r != nil {
				n.log.Error("panic serving client request", "op", op, "panic", r)
				n.respondError(req, protocol.Errorf(protocol.ErrInternal, "panic: %v", r))
			}
		}()
		if err := n.serve(op, req); err != nil {
			n.respondError(req, err)
		}
	}
}

// clientOp is one client operation as a request or a batch item carries
// it, before validation: the quorum (R or W), its part from owners (PR or
// PW), the causal context and the TTL are the text of the Kvmesh-R/W,
// Kvmesh-PR/PW, Kvmesh-Context and Kvmesh-TTL headers.
type clientOp struct {
	op      string // protocol.OpGet, OpPut or OpDel
	key     string
	value   []byte // a put's value; the caller's buffer, copied if kept
	quorum  string
	primary string
	ctx     string
	ttl     string // a put's
	cond    string // a write's Kvmesh-If
}

// clientDone receives the outcome of a started clientOp: a get's object
// (nil: absent) or a write's new clock, or the error.
type clientDone struct {
	get   func(*protocol.Object, error)
	write func(protocol.Clock, error)
}

// serve starts op; an error means it did not start and nothing changed.
func (n *Node) serve(op string, req *request) error {
	hdr := req.Header()
	if err := n.admit(); err != nil {
		return err
	}
	err := checkHeaders(op, hdr)
	var key string
	if err == nil {
		key, err = n.requestKey(op, req.Subject(), hdr)
	}
	if err == nil {
		q, pq := protocol.HdrW, protocol.HdrPW
		if op == protocol.OpGet {
			q, pq = protocol.HdrR, protocol.HdrPR
		}
		err = n.startClientOp(clientOp{op: op, key: key, value: req.Data(), quorum: hdr.Get(q), primary: hdr.Get(pq), ctx: hdr.Get(protocol.HdrContext), ttl: hdr.Get(protocol.HdrTTL), cond: hdr.Get(protocol.HdrIf)}, clientDone{
			get: func(obj *protocol.Object, err error) {
				if err != nil {
					n.respondError(req, err)
				} else {
					err = n.respondGet(req, key, obj)
				}
				n.metrics.done(opIndex(op), outcomeOfErr(err), req.start, n.clock.Now())
			},
			write: func(ctx protocol.Clock, err error) {
				if err != nil {
					h := nats.Header{protocol.HdrNode: {n.cfg.ID}}
					if errors.Is(err, protocol.ErrConflict) {
						// A conditional write lost: the key's context now.
						if c := n.ctxKey.Seal(key, ctx); c != "" {
							h.Set(protocol.HdrContext, c)
						}
					}
					n.respondErrorHeader(req, h, err)
				} else {
					h := nats.Header{protocol.HdrNode: {n.cfg.ID}}
					if c := n.ctxKey.Seal(key, ctx); c != "" {
						h.Set(protocol.HdrContext, c)
					}
					_ = req.reply(&nats.Msg{Header: h})
				}
				n.metrics.done(opIndex(op), outcomeOfErr(err), req.start, n.clock.Now())
			},
		})
	}
	if err != nil {
		n.inflight.Add(-1)
		n.metrics.done(opIndex(op), outcomeOfErr(err), req.start, n.clock.Now())
	}
	return err
}

// admit counts one more client operation in flight, or refuses it with
// ErrOverloaded when MaxInflight are already. An admitted operation is
// released by startClientOp's completion, or by the caller when it did
// not start.
func (n *Node) admit() error {
	if int(n.inflight.Add(1)) > n.cfg.MaxInflight {
		n.inflight.Add(-1)
		n.metrics.refusedAdmit.Inc()
		return protocol.Errorf(protocol.ErrOverloaded, "node %s coordinates %d requests already", n.cfg.ID, n.cfg.MaxInflight)
	}
	return nil
}

// startClientOp validates o and starts it: the single-request and the
// batched paths share it, so an operation means the same either way. On
// success exactly one of done's functions is called once, after the
// admission is released; an error means nothing started and nothing
// changed, and the caller releases the admission.
func (n *Node) startClientOp(o clientOp, done clientDone) error {
	if err := protocol.ValidateKey(o.key); err != nil {
		return err
	}
	if o.ttl != "" && o.op != protocol.OpPut {
		return protocol.Errorf(protocol.ErrInvalidOption, "unknown header %q for %s", protocol.HdrTTL, o.op)
	}
	if o.op == protocol.OpGet {
		if o.cond != "" {
			return protocol.Errorf(protocol.ErrInvalidOption, "unknown header %q for %s", protocol.HdrIf, o.op)
		}
		if o.ctx != "" {
			return protocol.Errorf(protocol.ErrInvalidOption, "unknown header %q for %s", protocol.HdrContext, o.op)
		}
		need, err := protocol.ParseQuorum(o.quorum, n.cfg.Replicas)
		if err != nil {
			return fmt.Errorf("r: %w", err)
		}
		pr, err := protocol.ParsePrimary(o.primary, n.cfg.Replicas)
		if err != nil {
			return fmt.Errorf("pr: %w", err)
		}
		return n.startGet(o.key, quorumReq{n: need, p: pr}, func(obj *protocol.Object, err error) {
			n.inflight.Add(-1)
			done.get(obj, err)
		})
	}
	need, err := protocol.ParseQuorum(o.quorum, n.cfg.Replicas)
	if err != nil {
		return fmt.Errorf("w: %w", err)
	}
	pw, err := protocol.ParsePrimary(o.primary, n.cfg.Replicas)
	if err != nil {
		return fmt.Errorf("pw: %w", err)
	}
	ttl, err := protocol.ParseTTL(o.ttl)
	if err != nil {
		return err
	}
	cond, err := protocol.ParseIf(o.cond, o.op == protocol.OpDel)
	if err != nil {
		return err
	}
	ctx, err := n.ctxKey.Open(o.key, o.ctx)
	if err != nil {
		return err
	}
	return n.startWrite(o.key, o.value, o.op == protocol.OpDel, ttl, ctx, cond, quorumReq{n: need, p: pw}, func(ctx protocol.Clock, err error) {
		n.inflight.Add(-1)
		done.write(ctx, err)
	})
}

// requestKey takes the key from the subject, or from the Kvmesh-Key header
// on the base subject.
func (n *Node) requestKey(op, subject string, hdr nats.Header) (string, error) {
	subject = n.subjects.FromLocal(n.cfg.ID, subject)
	if subject == n.subjects.KVBase(op) {
		key := hdr.Get(protocol.HdrKey)
		if err := protocol.ValidateKey(key); err != nil {
			return "", err
		}
		return key, nil
	}
	if hdr.Get(protocol.HdrKey) != "" {
		return "", protocol.Errorf(protocol.ErrInvalidKey, "key given both in the subject and the %s header", protocol.HdrKey)
	}
	return n.subjects.KeyFromSubject(op, subject, n.cfg.ID)
}

// respondGet answers a get: one live value raw in the payload, several as
// a msgpack array, none as 404: deleted and expired values are not live
// (liveAt). The causal context is always included, so a write after a
// delete or an expiry can supersede the tombstone; Kvmesh-Expires says
// when the values expire, if they all do. It returns the error it
// answered with, if any (ErrKeyNotFound for none live), for the metrics.
func (n *Node) respondGet(req *request, key string, obj *protocol.Object) error {
	h := nats.Header{protocol.HdrNode: {n.cfg.ID}}
	var live []protocol.Sibling
	if obj != nil {
		live = n.liveAt(obj)
		if c := n.ctxKey.Seal(key, obj.Clock); c != "" {
			h.Set(protocol.HdrContext, c)
		}
	}
	if len(live) == 0 {
		n.respondErrorHeader(req, h, protocol.ErrKeyNotFound)
		return protocol.ErrKeyNotFound
	}
	h.Set(protocol.HdrSiblings, strconv.Itoa(len(live)))
	if exp := expiresAt(live); exp != 0 {
		h.Set(protocol.HdrExpires, time.Unix(0, exp).UTC().Format(time.RFC3339Nano))
	}
	data := live[0].Value
	if len(live) > 1 {
		vals := make([][]byte, len(live))
		for i, s := range live {
			vals[i] = s.Value
		}
		var err error
		if data, err = protocol.EncodeSiblings(vals); err != nil {
			err = protocol.Errorf(protocol.ErrInternal, "encode siblings: %v", err)
			n.respondError(req, err)
			return err
		}
	}
	if err := req.reply(&nats.Msg{Header: h, Data: data}); err != nil {
		err = protocol.Errorf(protocol.ErrValueTooLarge, "reply does not fit: %v", err)
		n.respondError(req, err)
		return err
	}
	return nil
}

func (n *Node) respondError(req *request, err error) {
	n.respondErrorHeader(req, nats.Header{protocol.HdrNode: {n.cfg.ID}}, err)
}

// respondErrorHeader sends err in the NATS micro error headers plus its
// stable name in Kvmesh-Error. It counts as an error in the service's
// statistics, but for a key not found, which is an answer.
func (n *Node) respondErrorHeader(req *request, h nats.Header, err error) {
	code, name := protocol.Classify(err)
	msg := strings.NewReplacer("\r", " ", "\n", "; ").Replace(err.Error())
	h.Set(protocol.HdrServiceError, msg)
	h.Set(protocol.HdrServiceErrorCode, strconv.Itoa(code))
	h.Set(protocol.HdrError, name)
	if code != protocol.ErrKeyNotFound.Code {
		req.fail(err)
	}
	_ = req.reply(&nats.Msg{Header: h})
}

// liveAt returns the siblings of obj a read answers with: those neither
// deleted nor expired by this node's clock now. The coordinator of a
// write fixed the expiry (Sibling.Expires); each node decides whether it
// has passed by its own clock, so two nodes disagree for at most their
// clocks' skew around the expiry.
func (n *Node) liveAt(obj *protocol.Object) []protocol.Sibling {
	return obj.LiveAt(n.clock.Now().UnixNano())
}

// expiresAt is when the key whose live siblings are live reads as not
// found unless written again: the latest expiry among them, or 0 when
// one never expires.
func expiresAt(live []protocol.Sibling) int64 {
	var at int64
	for i := range live {
		if live[i].Expires == 0 {
			return 0
		}
		at = max(at, live[i].Expires)
	}
	return at
}

// clip shortens untrusted text for an error message (protocol.Clip).
func clip(s string) string { return protocol.Clip(s, 64) }
