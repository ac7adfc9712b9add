package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The reference systems `kvmesh bench` compares kvmesh with: a JetStream
// KV bucket with 3 replicas, and the raw core NATS costs a replicated
// write and a read cannot go below.

const benchBucket = "bench"

// jsDriver drives a JetStream KV bucket: worker w uses the connection to
// server w mod len(kvs).
type jsDriver struct {
	conns []*nats.Conn
	kvs   []jetstream.KeyValue
}

func (d *jsDriver) put(ctx context.Context, w int, ks *keyspace, k int, val []byte) error {
	_, err := d.kvs[w%len(d.kvs)].Put(ctx, ks.keys[k], val)
	return err
}

func (d *jsDriver) get(ctx context.Context, w int, ks *keyspace, k int, _ int) error {
	_, err := d.kvs[w%len(d.kvs)].Get(ctx, ks.keys[k])
	return err
}

func (d *jsDriver) close() {
	for _, nc := range d.conns {
		nc.Close()
	}
}

// connectJS connects to every server of a JetStream cluster, creates the
// bench bucket with 3 replicas (retrying while the cluster elects its
// meta leader) and waits until a put succeeds through every server.
func connectJS(ctx context.Context, urls []string, timeout time.Duration) (*jsDriver, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := &jsDriver{}
	for _, u := range urls {
		nc, err := nats.Connect(u, nats.Name("kvmesh-bench"), nats.MaxReconnects(-1))
		if err != nil {
			d.close()
			return nil, fmt.Errorf("connect %s: %w", u, err)
		}
		d.conns = append(d.conns, nc)
	}
	cfg := jetstream.KeyValueConfig{Bucket: benchBucket, Replicas: 3, History: 1, Storage: jetstream.FileStorage}
	for i, nc := range d.conns {
		js, err := jetstream.New(nc)
		if err != nil {
			d.close()
			return nil, err
		}
		var kv jetstream.KeyValue
		err = retry(ctx, func(ctx context.Context) (err error) {
			if i == 0 {
				kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
			} else {
				kv, err = js.KeyValue(ctx, benchBucket)
			}
			if err == nil {
				_, err = kv.Put(ctx, "bench-probe", []byte("probe"))
			}
			return err
		})
		if err != nil {
			d.close()
			return nil, fmt.Errorf("jetstream kv through %s: %w", urls[i], err)
		}
		d.kvs = append(d.kvs, kv)
	}
	return d, nil
}

// retry calls f with a short deadline until it succeeds or ctx is done.
func retry(ctx context.Context, f func(context.Context) error) error {
	for {
		fctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := f(fctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fanoutDriver measures core NATS alone, with responders that do nothing
// but reply. Its put is the fan-out ceiling of a replicated write: one
// message published to a responder on each of the 3 servers (one local
// to the requester, two across routes), done after the first 2 replies,
// with all replies on one long-lived wildcard inbox per connection. Its
// get is a plain request/reply across one route whose reply carries a
// value: the floor of a remote read.
type fanoutDriver struct {
	req  []*muxConn   // requester connection per server
	resp []*nats.Conn // responder connection per server

	mu      sync.Mutex
	replies map[int][]byte // echo reply payload by size
}

// muxConn is a connection whose requests share one wildcard inbox
// subscription; the last token of the reply subject names the request.
type muxConn struct {
	nc     *nats.Conn
	prefix string
	seq    atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]chan struct{}
}

func newMuxConn(nc *nats.Conn) (*muxConn, error) {
	m := &muxConn{nc: nc, prefix: nc.NewInbox() + ".", pending: make(map[uint64]chan struct{})}
	sub, err := nc.Subscribe(m.prefix+"*", func(msg *nats.Msg) {
		id, err := strconv.ParseUint(msg.Subject[len(m.prefix):], 36, 64)
		if err != nil || len(msg.Data) == 0 { // a 503 has no data: not an ack
			return
		}
		m.mu.Lock()
		ch := m.pending[id]
		m.mu.Unlock()
		if ch != nil {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	return m, nc.Flush()
}

// fanout publishes data to every subject and waits for need replies.
func (m *muxConn) fanout(ctx context.Context, subjects []string, data []byte, need int) error {
	id := m.seq.Add(1)
	ch := make(chan struct{}, len(subjects))
	m.mu.Lock()
	m.pending[id] = ch
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.pending, id)
		m.mu.Unlock()
	}()
	reply := m.prefix + strconv.FormatUint(id, 36)
	for _, s := range subjects {
		if err := m.nc.PublishRequest(s, reply, data); err != nil {
			return err
		}
	}
	for range need {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

var fanSubjects = []string{"bench.fan.0", "bench.fan.1", "bench.fan.2"}

func echoSubject(server int) string { return "bench.echo." + strconv.Itoa(server) }

func (d *fanoutDriver) put(ctx context.Context, w int, _ *keyspace, _ int, val []byte) error {
	return d.req[w%len(d.req)].fanout(ctx, fanSubjects, val, 2)
}

// get asks the responder on the next server (across a route) for a reply
// of len(value) bytes; r carries that length.
func (d *fanoutDriver) get(ctx context.Context, w int, ks *keyspace, k int, size int) error {
	i := w % len(d.req)
	to := (i + 1) % len(d.resp)
	_, err := d.req[i].nc.RequestWithContext(ctx, echoSubject(to), []byte(strconv.Itoa(size)))
	return err
}

func (d *fanoutDriver) reply(size int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.replies[size]
	if !ok {
		b = make([]byte, size)
		d.replies[size] = b
	}
	return b
}

func (d *fanoutDriver) close() {
	for _, m := range d.req {
		m.nc.Close()
	}
	for _, nc := range d.resp {
		nc.Close()
	}
}

// connectFanout connects a requester and a responder to each server and
// waits until every requester reaches every responder.
func connectFanout(ctx context.Context, urls []string, timeout time.Duration) (*fanoutDriver, error) {
	if len(urls) != len(fanSubjects) {
		return nil, fmt.Errorf("fan-out needs %d servers, have %d", len(fanSubjects), len(urls))
	}
	d := &fanoutDriver{replies: make(map[int][]byte)}
	fail := func(err error) (*fanoutDriver, error) { d.close(); return nil, err }
	ack := []byte("ok")
	for i, u := range urls {
		nc, err := nats.Connect(u, nats.Name("kvmesh-bench-responder"))
		if err != nil {
			return fail(fmt.Errorf("connect %s: %w", u, err))
		}
		d.resp = append(d.resp, nc)
		fan, err := nc.Subscribe(fanSubjects[i], func(m *nats.Msg) { _ = m.Respond(ack) })
		if err != nil {
			return fail(err)
		}
		echo, err := nc.Subscribe(echoSubject(i), func(m *nats.Msg) {
			n, _ := strconv.Atoi(string(m.Data))
			_ = m.Respond(d.reply(n))
		})
		if err != nil {
			return fail(err)
		}
		for _, s := range []*nats.Subscription{fan, echo} {
			_ = s.SetPendingLimits(-1, -1)
		}
		if err := nc.Flush(); err != nil {
			return fail(err)
		}
	}
	for _, u := range urls {
		nc, err := nats.Connect(u, nats.Name("kvmesh-bench-requester"))
		if err != nil {
			return fail(fmt.Errorf("connect %s: %w", u, err))
		}
		m, err := newMuxConn(nc)
		if err != nil {
			nc.Close()
			return fail(err)
		}
		d.req = append(d.req, m)
	}
	// Interest crosses the routes asynchronously: probe until every
	// requester reaches all three responders and its echo peer.
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for w := range d.req {
		err := retry(pctx, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			if err := d.put(ctx, w, nil, 0, []byte("probe")); err != nil {
				return err
			}
			if err := d.req[w].fanout(ctx, fanSubjects, []byte("probe"), 3); err != nil {
				return err
			}
			return d.get(ctx, w, nil, 0, 1)
		})
		if err != nil {
			return fail(fmt.Errorf("fan-out probe from server %d: %w", w+1, err))
		}
	}
	return d, nil
}
