package node

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// keysEnvelope is the room a listing's reply needs beyond its keys: the
// headers (a cursor of up to a key's base64) and the JSON around them.
const keysEnvelope = 8 << 10

// serveKeys serves a listing ("<prefix>.kv.keys[.<key prefix>]",
// protocol/keys.go): it checks the request, then a lister goroutine
// builds the page (listKeys) and answers. It never blocks.
func (n *Node) serveKeys(req *request) {
	hdr := req.Header()
	fail := func(err error) { n.respondError(req, err) }
	if err := checkHeaders(protocol.OpKeys, hdr); err != nil {
		fail(err)
		return
	}
	prefix, inSubject, err := n.subjects.KeysPrefixFromSubject(n.subjects.FromLocal(n.cfg.ID, req.Subject()))
	if err != nil {
		fail(err)
		return
	}
	if h := hdr.Get(protocol.HdrPrefix); h != "" {
		if inSubject {
			fail(protocol.Errorf(protocol.ErrInvalidKey, "prefix given both in the subject and the %s header", protocol.HdrPrefix))
			return
		}
		if err := protocol.ValidatePrefix(h); err != nil {
			fail(err)
			return
		}
		prefix = h
	}
	q := keysQuery{prefix: prefix}
	if q.limit, err = protocol.ParseKeysLimit(hdr.Get(protocol.HdrLimit)); err != nil {
		fail(err)
		return
	}
	if q.after, err = protocol.DecodeCursor(hdr.Get(protocol.HdrCursor)); err != nil {
		fail(err)
		return
	}
	if q.r, err = protocol.ParseQuorum(hdr.Get(protocol.HdrR), n.cfg.Replicas); err != nil {
		fail(err)
		return
	}
	var detail bool
	switch d := hdr.Get(protocol.HdrDetail); d {
	case "", "false":
	case "true":
		detail = true
	default:
		fail(protocol.Errorf(protocol.ErrInvalidOption, "%s %q: want true or false", protocol.HdrDetail, clip(d)))
		return
	}
	if err := n.admit(); err != nil {
		fail(err)
		return
	}
	err = n.queueList(func() {
		defer n.inflight.Add(-1)
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
		defer cancel()
		listed, next, err := n.listKeys(ctx, q)
		if err != nil {
			fail(err)
			return
		}
		n.respondKeys(req, listed, next, detail)
	})
	if err != nil {
		n.inflight.Add(-1)
		fail(err)
	}
}

// respondKeys answers a listing with its page (protocol.KeysPage), cut
// short, with a cursor after its last key, if it does not fit a message.
func (n *Node) respondKeys(req *request, listed []listedKey, next string, detail bool) {
	room := max(int(n.cfg.MaxPayload)-keysEnvelope, 1024)
	var page protocol.KeysPage
	size := 0
	now := n.clock.Now().UnixNano()
	for i, lk := range listed {
		b, _ := json.Marshal(lk.key)
		add := len(b) + 1
		var e protocol.KeyEntry
		if detail {
			live := lk.obj.LiveAt(now)
			e = protocol.KeyEntry{Key: lk.key, Siblings: len(live), Context: n.ctxKey.Seal(lk.key, lk.obj.Clock)}
			if exp := expiresAt(live); exp != 0 {
				e.Expires = time.Unix(0, exp).UTC().Format(time.RFC3339Nano)
			}
			b, _ := json.Marshal(e)
			add += len(b) + 1
		}
		if i > 0 && size+add > room {
			next = listed[i-1].key
			break
		}
		size += add
		page.Keys = append(page.Keys, lk.key)
		if detail {
			page.Entries = append(page.Entries, e)
		}
	}
	if page.Keys == nil {
		page.Keys = []string{} // "keys":[], not null
	}
	h := nats.Header{protocol.HdrNode: {n.cfg.ID}}
	if next != "" {
		page.Next = protocol.EncodeCursor(next)
		h.Set(protocol.HdrCursor, page.Next)
	}
	b, err := json.Marshal(page)
	if err != nil {
		n.respondError(req, protocol.Errorf(protocol.ErrInternal, "encode keys: %v", err))
		return
	}
	if err := req.reply(&nats.Msg{Header: h, Data: b}); err != nil {
		n.respondError(req, protocol.Errorf(protocol.ErrInternal, "keys reply of %d bytes: %v", len(b), err))
	}
}
