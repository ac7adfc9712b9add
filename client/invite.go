package client

import (
	"context"
	"time"

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
	m, err := c.admin(ctx, "invite", c.subjects.AdminInvite(), body)
	if err != nil {
		return nil, err
	}
	return protocol.ParseToken(string(m.Data))
}
