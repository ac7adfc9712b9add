package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// KeysPage is one page of a listing (Client.KeysPage).
type KeysPage struct {
	// Keys are the page's keys, in order.
	Keys []string
	// Entries are the keys with their details, when asked for (Detail);
	// Entries[i] is Keys[i]'s.
	Entries []KeyEntry
	// Next is the cursor of the next page, "" after the last one. A page
	// may be empty and still have a next one (its owners' records were
	// all deleted or expired).
	Next string
}

// KeyEntry is a listed key with its details.
type KeyEntry struct {
	Key string
	// Siblings is the number of live values (more than 1: concurrent
	// writes left siblings).
	Siblings int
	// Context is the causal context: Put with it supersedes the values.
	Context string
	// Expires is when the key will read as not found unless written
	// again; zero when some value never expires.
	Expires time.Time
}

// PageSize sets how many keys a page of a listing holds at most:
// 1..protocol.MaxKeysLimit (default protocol.DefaultKeysLimit). Keys
// pages through them all whatever it is.
func PageSize(n int) CallOption {
	return func(c *call) error {
		if n < 1 || n > protocol.MaxKeysLimit {
			return protocol.Errorf(protocol.ErrInvalidOption, "page size %d: want 1..%d", n, protocol.MaxKeysLimit)
		}
		c.hdr.Set(protocol.HdrLimit, strconv.Itoa(n))
		return nil
	}
}

// Detail has a listing return each key's details (KeysPage.Entries).
func Detail() CallOption { return header(protocol.HdrDetail, "true") }

// Keys lists the keys that start with prefix ("" for every key), in
// order, each once, paging through them all (KeysPage) as the loop asks
// for more: memory holds one page. A key is listed when a value of it
// is live (not deleted, not expired) in the merge of what the owners of
// its partition that answered hold, and R of them (a majority by
// default, R) must answer. An error ends the sequence with the error:
//
//	for key, err := range c.Keys(ctx, "user.") {
//		if err != nil { return err }
//		fmt.Println(key)
//	}
//
// It takes R, PageSize; each page waits at most the client's timeout
// when ctx has no deadline.
func (c *Client) Keys(ctx context.Context, prefix string, opts ...CallOption) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for cursor := ""; ; {
			page, err := c.KeysPage(ctx, prefix, cursor, opts...)
			if err != nil {
				yield("", err)
				return
			}
			for _, k := range page.Keys {
				if !yield(k, nil) {
					return
				}
			}
			if page.Next == "" {
				return
			}
			cursor = page.Next
		}
	}
}

// KeysPage lists one page of the keys that start with prefix, after the
// cursor (the Next of the page before; "" for the first page). It takes
// R, PageSize and Detail.
func (c *Client) KeysPage(ctx context.Context, prefix, cursor string, opts ...CallOption) (KeysPage, error) {
	if err := protocol.ValidatePrefix(prefix); err != nil {
		return KeysPage{}, fmt.Errorf("keys %q: %w", prefix, err)
	}
	cl := call{hdr: nats.Header{}}
	for _, o := range opts {
		if err := o(&cl); err != nil {
			return KeysPage{}, err
		}
	}
	msg := &nats.Msg{Subject: c.subjects.KVBase(protocol.OpKeys), Header: cl.hdr}
	if prefix != "" {
		msg.Header.Set(protocol.HdrPrefix, prefix)
	}
	if cursor != "" {
		msg.Header.Set(protocol.HdrCursor, cursor)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	m, err := c.nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return KeysPage{}, protocol.Errorf(protocol.ErrNodeUnavailable, "keys %q: no kvmesh node serves the store's subjects", prefix)
	case err != nil:
		return KeysPage{}, fmt.Errorf("keys %q: %w", prefix, err)
	}
	if code := m.Header.Get(protocol.HdrServiceErrorCode); code != "" {
		n, _ := strconv.Atoi(code)
		return KeysPage{}, protocol.FromWire(n, m.Header.Get(protocol.HdrError), m.Header.Get(protocol.HdrServiceError))
	}
	var body protocol.KeysPage
	if err := json.Unmarshal(m.Data, &body); err != nil {
		return KeysPage{}, protocol.Errorf(protocol.ErrMalformed, "keys %q: reply: %v", prefix, err)
	}
	if body.Entries != nil && len(body.Entries) != len(body.Keys) {
		return KeysPage{}, protocol.Errorf(protocol.ErrMalformed, "keys %q: reply with %d keys and %d entries", prefix, len(body.Keys), len(body.Entries))
	}
	page := KeysPage{Keys: body.Keys, Next: body.Next}
	for _, e := range body.Entries {
		ke := KeyEntry{Key: e.Key, Siblings: e.Siblings, Context: e.Context}
		if e.Expires != "" {
			if ke.Expires, err = time.Parse(time.RFC3339Nano, e.Expires); err != nil {
				return KeysPage{}, protocol.Errorf(protocol.ErrMalformed, "keys %q: bad expiry %q", prefix, protocol.Clip(e.Expires, 64))
			}
		}
		page.Entries = append(page.Entries, ke)
	}
	return page, nil
}
