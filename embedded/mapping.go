package embedded

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
)

// MapLocal makes this server deliver what its own clients publish on
// subject src to subject dst instead: a subject mapping of its global
// account (src and dst may end in the same wildcards, e.g. "a.>" to
// "b.x.>"). NATS applies mappings where a message enters from a client
// or leaf connection only, never to a message that arrived over a route,
// so each server of a cluster may map the same subject its own way: a
// node maps the store's client subjects to its own, so that the node a
// client is connected to serves its requests rather than a random one
// (a queue group prefers no local member, notes/nats.md section 5). The
// mapping holds for connected clients at once, and is applied again
// after a Restart.
func (s *Server) MapLocal(src, dst string) error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.isClosed() {
		return fmt.Errorf("embedded: map %s: %w", src, ErrClosed)
	}
	if err := s.prov.cur.Load().GlobalAccount().AddMapping(src, dst); err != nil {
		return fmt.Errorf("embedded: map %s to %s: %w", src, dst, err)
	}
	s.mappings = append(s.mappings, [2]string{src, dst})
	return nil
}

// UnmapLocal removes the mapping of src (MapLocal), if any.
func (s *Server) UnmapLocal(src string) {
	s.life.Lock()
	defer s.life.Unlock()
	for i, m := range s.mappings {
		if m[0] == src {
			s.mappings = append(s.mappings[:i], s.mappings[i+1:]...)
			break
		}
	}
	if !s.isClosed() {
		s.prov.cur.Load().GlobalAccount().RemoveMapping(src)
	}
}

// remap applies the mappings again to a new server instance (Restart);
// s.life is held.
func (s *Server) remap(ns *server.Server) error {
	for _, m := range s.mappings {
		if err := ns.GlobalAccount().AddMapping(m[0], m[1]); err != nil {
			return fmt.Errorf("embedded: map %s to %s: %w", m[0], m[1], err)
		}
	}
	return nil
}
