package client

import (
	"context"
	"errors"
	"iter"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// Event is one change of a key, as the node that coordinated it
// published it (see Watch).
type Event struct {
	// Op is what happened: "put", "delete" or "expire" (the value of a
	// put with a TTL expired and the key reads as not found).
	Op  string
	Key string
	// Value is a put's value; nil for a delete or an expiry.
	Value []byte
	// Context is the causal context after the change: a put's or
	// delete's is what its reply gave the writer, an expiry's that of
	// the key's expired values. Pass it to Put (Context, IfVersion) to
	// supersede the change.
	Context string
	// Node is the node that coordinated the write (or saw the expiry).
	Node string
	// Time is the coordinator's time of the write, or the expiry.
	Time time.Time
	// Version orders one key's events along causality: a write that
	// saw (superseded) another has a greater version, and an expiry's
	// is above the put it expires. Concurrent writes (siblings) are in
	// no order.
	Version uint64
	// Expires is when a put with a TTL expires; zero without a TTL.
	Expires time.Time
	// Initial marks a value that was there when the watch started, as
	// Current gives it (no Version, no Time), rather than a change.
	Initial bool
}

// WatchOption configures Watch.
type WatchOption func(*watchConfig) error

type watchConfig struct{ buffer int }

// WatchBuffer sets how many events the channel Watch returns holds
// before delivery waits for its reader (default 256). While it waits,
// NATS buffers the subscription's messages, and drops them when its
// pending limits are reached (a slow consumer): events are at most once.
func WatchBuffer(n int) WatchOption {
	return func(w *watchConfig) error {
		if n < 0 {
			return protocol.Errorf(protocol.ErrInvalidOption, "watch buffer %d: want >= 0", n)
		}
		w.buffer = n
		return nil
	}
}

// Watch subscribes to the change events of the keys pattern matches: a
// key ("orders.42"), or a NATS wildcard pattern of keys ("orders.>" for
// every key under "orders.", "orders.*.state", ">" for all), and returns
// the events on a channel, which is closed once ctx is done. It returns
// once the subscription is registered with the server the client is
// connected to; it reaches the other servers of the mesh a few
// milliseconds later, so a write just after Watch returns may come
// unseen.
//
// Events are plain NATS messages: at most once (a subscriber that was
// not connected, or too slow, misses them; none are replayed), in no
// order across the nodes that publish them (order one key's by
// Event.Version), and a write that a client retried after an error may
// show twice. To resynchronise, (re)start the watch, then read what is
// there now (Current), and order one key's events by Version.
func (c *Client) Watch(ctx context.Context, pattern string, opts ...WatchOption) (<-chan Event, error) {
	if err := protocol.ValidPattern(pattern); err != nil {
		return nil, err
	}
	cfg := watchConfig{buffer: 256}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	w := &watcher{ch: make(chan Event, cfg.buffer), ctx: ctx}
	subjects := []string{c.subjects.EventsPattern(pattern)}
	if !protocol.SubjectSafeKey(pattern) { // a wildcard token
		// Keys that are not subject-safe have their events on the base
		// subject, with the key in a header.
		subjects = append(subjects, c.subjects.EventsBase())
	}
	for _, s := range subjects {
		base := s == c.subjects.EventsBase()
		sub, err := c.nc.Subscribe(s, func(m *nats.Msg) {
			ev, ok := parseEvent(m)
			if !ok || base && !protocol.MatchPattern(pattern, ev.Key) {
				return
			}
			w.deliver(ev)
		})
		if err != nil {
			w.stop()
			return nil, err
		}
		w.subs = append(w.subs, sub)
	}
	fctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.nc.FlushWithContext(fctx); err != nil {
		w.stop()
		return nil, err
	}
	go func() { // ends with ctx
		<-ctx.Done()
		w.stop()
	}()
	return w.ch, nil
}

// watcher is one Watch: its subscriptions and its channel, closed once
// no delivery can send on it.
type watcher struct {
	ctx    context.Context
	subs   []*nats.Subscription
	mu     sync.RWMutex // held shared while delivering; exclusively to close
	ch     chan Event
	closed bool
}

func (w *watcher) deliver(ev Event) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return
	}
	select {
	case w.ch <- ev:
	case <-w.ctx.Done():
	}
}

func (w *watcher) stop() {
	for _, s := range w.subs {
		_ = s.Unsubscribe()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
}

// parseEvent reads a change event; false for a message that is not one.
func parseEvent(m *nats.Msg) (Event, bool) {
	h := m.Header
	ev := Event{Op: h.Get(protocol.HdrOp), Key: h.Get(protocol.HdrKey), Context: h.Get(protocol.HdrContext), Node: h.Get(protocol.HdrNode)}
	switch ev.Op {
	case protocol.EventPut:
		ev.Value = m.Data
	case protocol.EventDelete, protocol.EventExpire:
	default:
		return Event{}, false
	}
	if protocol.ValidateKey(ev.Key) != nil {
		return Event{}, false
	}
	var err error
	if ev.Time, err = time.Parse(time.RFC3339Nano, h.Get(protocol.HdrTime)); err != nil {
		return Event{}, false
	}
	if ev.Version, err = strconv.ParseUint(h.Get(protocol.HdrVersion), 10, 64); err != nil {
		return Event{}, false
	}
	if s := h.Get(protocol.HdrExpires); s != "" {
		if ev.Expires, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return Event{}, false
		}
	}
	return ev, true
}

// Current returns the values the keys pattern matches hold now, as put
// Events with Initial set, in key order: what a watcher reads after
// starting (or restarting) Watch, to start from the current state as
// `nats kv watch` does. It lists the keys under the pattern's literal
// prefix (Keys; opts, R and PageSize, go to the listing) and reads each
// with a quorum; a key deleted meanwhile is skipped, and a key with
// siblings gives one event per value, with the same Context. A change
// made while it runs may come both from it and from the watch; one
// key's later changes carry a Version. An error ends the sequence.
func (c *Client) Current(ctx context.Context, pattern string, opts ...CallOption) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		if err := protocol.ValidPattern(pattern); err != nil {
			yield(Event{}, err)
			return
		}
		for key, err := range c.Keys(ctx, patternPrefix(pattern), opts...) {
			if err != nil {
				yield(Event{}, err)
				return
			}
			if !protocol.MatchPattern(pattern, key) {
				continue
			}
			e, err := c.Get(ctx, key)
			switch {
			case errors.Is(err, ErrKeyNotFound):
				continue
			case err != nil:
				yield(Event{}, err)
				return
			}
			for _, v := range e.Values {
				if !yield(Event{Op: protocol.EventPut, Key: key, Value: v, Context: e.Context, Node: e.Node, Expires: e.Expires, Initial: true}, nil) {
					return
				}
			}
		}
	}
}

// patternPrefix is the literal start of a pattern: its tokens before the
// first wildcard, with the dot after them ("orders.*.state" -> "orders."),
// or the whole pattern when it has none (a key, whose listing is then
// filtered to the key itself).
func patternPrefix(pattern string) string {
	prefix := ""
	for tok, rest, more := strings.Cut(pattern, "."); ; tok, rest, more = strings.Cut(rest, ".") {
		if tok == "*" || tok == ">" {
			return prefix
		}
		prefix += tok
		if !more {
			return prefix
		}
		prefix += "."
	}
}
