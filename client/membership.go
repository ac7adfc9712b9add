package client

import (
	"context"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/protocol"
)

// Leave asks member id to leave the store: its partitions move to the
// other members, then it stops serving. It returns once the leave is
// under way; Status shows its progress (the member's record is leaving,
// then left).
func (c *Client) Leave(ctx context.Context, id string) error {
	if err := protocol.ValidateNodeID(id); err != nil {
		return protocol.Errorf(protocol.ErrInvalidOption, "leave: %v", err)
	}
	_, err := c.admin(ctx, "leave", c.subjects.AdminNodeLeave(id), nil)
	return err
}

// Remove declares member id gone for good (a dead node): the other
// members copy its partitions from the remaining replicas. It returns
// once the removal is under way.
func (c *Client) Remove(ctx context.Context, id string) error {
	if err := protocol.ValidateNodeID(id); err != nil {
		return protocol.Errorf(protocol.ErrInvalidOption, "remove: %v", err)
	}
	_, err := c.admin(ctx, "remove", c.subjects.AdminRemove(), []byte(id))
	return err
}

// admin sends an operator's request (invite, leave, remove) and returns
// the reply, or the error it carries.
func (c *Client) admin(ctx context.Context, what, subject string, body []byte) (*nats.Msg, error) {
	m, err := c.nc.RequestWithContext(ctx, subject, body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, protocol.Errorf(protocol.ErrNodeUnavailable, "%s: no kvmesh node answers %s", what, subject)
	case err != nil:
		return nil, err
	}
	if code := m.Header.Get(protocol.HdrServiceErrorCode); code != "" {
		n, _ := strconv.Atoi(code)
		return nil, protocol.FromWire(n, m.Header.Get(protocol.HdrError), m.Header.Get(protocol.HdrServiceError))
	}
	return m, nil
}
