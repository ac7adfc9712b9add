//go:build !kvmesh_planted

package store

// planted holds no options in a product build: the planted durability
// bug exists only in a build with the kvmesh_planted tag.
type planted struct{}

func (s *Store) plantedEarlyAck([]*op) {}
