package client

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// Invite asks one node of the store for a join token valid for ttl (0:
// protocol.DefaultTokenTTL; the node refuses a ttl outside
// protocol.MinTokenTTL..MaxTokenTTL) and returns it; its String is the
// text a new node takes (`kvmesh node --join URL --token TOKEN`). Anyone
// holding the token can fetch the store's secret, any number of times,
// until it expires: hand it over as you would the secret.
func (c *Client) Invite(ctx context.Context, ttl time.Duration) (*protocol.SignedToken, error) {
	var body []byte
	if ttl != 0 {
		body = []byte(ttl.String())
	}
	m, err := c.nc.RequestWithContext(ctx, c.subjects.AdminInvite(), body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, protocol.Errorf(protocol.ErrNodeUnavailable, "invite: no kvmesh node serves the store's subjects")
	case err != nil:
		return nil, err
	}
	if code := m.Header.Get(protocol.HdrServiceErrorCode); code != "" {
		n, _ := strconv.Atoi(code)
		return nil, protocol.FromWire(n, m.Header.Get(protocol.HdrError), m.Header.Get(protocol.HdrServiceError))
	}
	return protocol.ParseToken(string(m.Data))
}
