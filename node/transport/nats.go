package transport

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// NATS is the Transport over a NATS connection: requests go to
// "<prefix>.node.<id>.rpc"; every reply comes back on one wildcard inbox
// subscription "<inbox>.*" whose last token is the tag, so no per-request
// subscription is ever made (notes/nats.md section 2).
type NATS struct {
	nc       *nats.Conn
	subjects protocol.Subjects
	self     string
	inbox    string // "<inbox>." prefix

	mu   sync.Mutex
	subs []*nats.Subscription
	done bool

	// active is read-locked around every Handler call and write-locked by
	// Close, so Close returns only when no Handler call is running.
	active sync.RWMutex
	closed bool // under active
}

// enter reports whether a Handler call may run; exit must follow a true.
func (t *NATS) enter() bool {
	t.active.RLock()
	if t.closed {
		t.active.RUnlock()
		return false
	}
	return true
}

func (t *NATS) exit() { t.active.RUnlock() }

// NewNATS returns a transport for node self over nc. It subscribes
// nothing until Start.
func NewNATS(nc *nats.Conn, subjects protocol.Subjects, self string) *NATS {
	return &NATS{nc: nc, subjects: subjects, self: self, inbox: nc.NewInbox() + "."}
}

// Start subscribes to this node's RPC subject and to the reply inbox.
func (t *NATS) Start(h Handler) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return errors.New("transport closed")
	}
	rpc, err := t.nc.Subscribe(t.subjects.NodeRPC(t.self), func(m *nats.Msg) {
		if m.Reply == "" || !t.enter() {
			return
		}
		defer t.exit()
		reply := m.Reply
		h.HandleRequest(m.Data, func(b []byte) {
			_ = t.nc.Publish(reply, b) // a lost reply is a replica timeout at the coordinator
		})
	})
	if err != nil {
		return fmt.Errorf("subscribe rpc: %w", err)
	}
	gossipPrefix := t.subjects.Gossip("")
	gossip, err := t.nc.Subscribe(t.subjects.Gossip("*"), func(m *nats.Msg) {
		if !t.enter() {
			return
		}
		defer t.exit()
		h.HandleGossip(m.Subject[len(gossipPrefix):], m.Data)
	})
	if err != nil {
		_ = rpc.Unsubscribe()
		return fmt.Errorf("subscribe gossip: %w", err)
	}
	replies, err := t.nc.Subscribe(t.inbox+"*", func(m *nats.Msg) {
		tag, err := strconv.ParseUint(m.Subject[len(t.inbox):], 36, 64)
		if err != nil || !t.enter() {
			return
		}
		defer t.exit()
		if len(m.Data) == 0 && m.Header.Get(protocol.HdrStatus) == "503" {
			h.HandleUnreachable(tag, t.nodeOf(m.Header.Get("Nats-Subject")))
			return
		}
		h.HandleReply(tag, m.Data)
	})
	if err != nil {
		_ = rpc.Unsubscribe()
		_ = gossip.Unsubscribe()
		return fmt.Errorf("subscribe inbox: %w", err)
	}
	// Replica writes and replies are the hot path: never drop them at the
	// client side; the node bounds its own queues.
	for _, s := range []*nats.Subscription{rpc, replies} {
		_ = s.SetPendingLimits(-1, -1)
	}
	t.subs = []*nats.Subscription{rpc, gossip, replies}
	return t.nc.Flush()
}

// nodeOf extracts the node id from an RPC subject.
func (t *NATS) nodeOf(subject string) string {
	p := t.subjects.Prefix + ".node."
	if !strings.HasPrefix(subject, p) || !strings.HasSuffix(subject, ".rpc") {
		return ""
	}
	return subject[len(p) : len(subject)-len(".rpc")]
}

// Send publishes req to node to with the reply subject carrying tag.
func (t *NATS) Send(to string, tag uint64, req []byte) error {
	return t.nc.PublishMsg(&nats.Msg{
		Subject: t.subjects.NodeRPC(to),
		Reply:   t.inbox + strconv.FormatUint(tag, 36),
		Data:    req,
	})
}

// Publish publishes data on the gossip subject of topic. The node's own
// publications come back to it too (NATS echoes them); its Handler
// ignores them.
func (t *NATS) Publish(topic string, data []byte) error {
	return t.nc.Publish(t.subjects.Gossip(topic), data)
}

// Close unsubscribes and returns once no Handler call is running. It is
// idempotent.
func (t *NATS) Close() error {
	t.active.Lock()
	t.closed = true
	t.active.Unlock()
	t.mu.Lock()
	subs := t.subs
	t.subs = nil
	t.done = true
	t.mu.Unlock()
	var errs []error
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
