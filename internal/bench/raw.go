package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/client"
)

// The raw protocol as a client without the kvmesh library speaks it (see
// README, "Subjects and the raw protocol"). Spelled out here rather than
// taken from package protocol: this driver stands for a service in
// another language, which has only the documentation; a test checks the
// names against protocol's.
const (
	rawPrefix       = "kvmesh.kv."
	rawHdrW         = "Kvmesh-W"
	rawHdrR         = "Kvmesh-R"
	rawHdrContext   = "Kvmesh-Context"
	rawHdrSiblings  = "Kvmesh-Siblings"
	rawHdrError     = "Kvmesh-Error"
	rawHdrSvcError  = "Nats-Service-Error"
	rawHdrSvcCode   = "Nats-Service-Error-Code"
	rawNotFoundName = "not_found"
	rawOverloaded   = "overloaded"
)

// rawMaxConns is how many connections a rawDriver opens: one per worker
// up to this many, then workers share them.
const rawMaxConns = 16

// rawDriver drives a kvmesh store with plain nats.go requests on the
// documented subjects, as the `nats` CLI or a service in another language
// would: no kvmesh client library, so no routing to owners and no
// batching. Its connections are spread over the nodes (connection i to
// node i mod nodes); worker w uses connection w mod rawMaxConns. Every put
// passes the context of the key's previous put, from that reply's
// Kvmesh-Context header, as kvmeshDriver does.
type rawDriver struct {
	conns []*nats.Conn
	w     string // write quorum
	sibs  atomic.Int64
}

// rawError is an error reply of the store: its Nats-Service-Error-Code
// and Kvmesh-Error name.
type rawError struct {
	Code int
	Name string
	Msg  string
}

func (e *rawError) Error() string {
	return fmt.Sprintf("kvmesh %d %s: %s", e.Code, e.Name, e.Msg)
}

// Is lets runLoad count an overloaded reply as the Go client's
// ErrOverloaded, apart from the other failures.
func (e *rawError) Is(target error) bool {
	return target == client.ErrOverloaded && e.Name == rawOverloaded
}

// rawPutMsg builds the request of a put of val to key with write quorum
// w, superseding cctx (empty: none).
func rawPutMsg(key string, val []byte, w, cctx string) *nats.Msg {
	m := nats.NewMsg(rawPrefix + "put." + key)
	m.Header.Set(rawHdrW, w)
	if cctx != "" {
		m.Header.Set(rawHdrContext, cctx)
	}
	m.Data = val
	return m
}

// rawGetMsg builds the request of a get of key with read quorum r.
func rawGetMsg(key, r string) *nats.Msg {
	m := nats.NewMsg(rawPrefix + "get." + key)
	m.Header.Set(rawHdrR, r)
	return m
}

// rawReplyError returns the store's error in reply, or nil for an answer.
func rawReplyError(reply *nats.Msg) error {
	code := reply.Header.Get(rawHdrSvcCode)
	name := reply.Header.Get(rawHdrError)
	if code == "" && name == "" {
		return nil
	}
	n, _ := strconv.Atoi(code)
	return &rawError{Code: n, Name: name, Msg: reply.Header.Get(rawHdrSvcError)}
}

// isNotFound reports whether err is the store's 404: for a get, an answer.
func isNotFound(err error) bool {
	var re *rawError
	return errors.As(err, &re) && (re.Code == 404 || re.Name == rawNotFoundName)
}

func (d *rawDriver) conn(w int) *nats.Conn { return d.conns[w%len(d.conns)] }

func (d *rawDriver) put(ctx context.Context, w int, ks *keyspace, k int, val []byte) error {
	nc := d.conn(w)
	reply, err := nc.RequestMsgWithContext(ctx, rawPutMsg(ks.keys[k], val, d.w, ks.cctx[k]))
	if err == nil {
		err = rawReplyError(reply)
	}
	if err != nil {
		// The write may have landed on some replicas: learn what the
		// store holds now, so the next put supersedes it.
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if r, gerr := nc.RequestMsgWithContext(gctx, rawGetMsg(ks.keys[k], "all")); gerr == nil && rawReplyError(r) == nil {
			ks.cctx[k] = r.Header.Get(rawHdrContext)
		}
		cancel()
		return err
	}
	cctx := reply.Header.Get(rawHdrContext)
	if cctx == "" {
		return fmt.Errorf("put %s: reply without %s", ks.keys[k], rawHdrContext)
	}
	ks.cctx[k] = cctx
	return nil
}

func (d *rawDriver) get(ctx context.Context, w int, ks *keyspace, k int, r int) error {
	reply, err := d.conn(w).RequestMsgWithContext(ctx, rawGetMsg(ks.keys[k], strconv.Itoa(r)))
	if err != nil {
		return err
	}
	if err := rawReplyError(reply); err != nil {
		if isNotFound(err) {
			return nil // a key not written yet: an answer
		}
		return err
	}
	if n, _ := strconv.Atoi(reply.Header.Get(rawHdrSiblings)); n > 1 {
		d.sibs.Add(1)
	}
	return nil
}

func (d *rawDriver) siblings() int64 { return d.sibs.Load() }

// withW returns a driver on the same connections with write quorum w.
func (d *rawDriver) withW(w string) *rawDriver { return &rawDriver{conns: d.conns, w: w} }

func (d *rawDriver) close() {
	for _, nc := range d.conns {
		nc.Close()
	}
}

// probe waits until a raw put with W=all succeeds through every node.
func (d *rawDriver) probe(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nodes := min(len(d.conns), 3)
	for i := range nodes {
		ks := newKeyspace(fmt.Sprintf("bench-raw-probe.%d", i), 1)
		p := d.withW("all")
		for {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			err := p.put(pctx, i, ks, 0, []byte("probe"))
			pcancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("kvmesh not serving raw requests through connection %d: %w", i+1, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// connectRaw opens rawMaxConns plain NATS connections, spread over urls.
func connectRaw(urls []string, w string) (*rawDriver, error) {
	d := &rawDriver{w: w}
	for i := range rawMaxConns {
		u := urls[i%len(urls)]
		nc, err := nats.Connect(u, nats.Name("kvmesh-bench-raw"), nats.MaxReconnects(-1))
		if err != nil {
			d.close()
			return nil, fmt.Errorf("connect %s: %w", u, err)
		}
		d.conns = append(d.conns, nc)
	}
	return d, nil
}
