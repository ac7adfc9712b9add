//go:build kvmesh_planted

package store

import "time"

// planted holds the test-only options of a kvmesh_planted build.
type planted struct {
	// UnsafeEarlyAck, when > 0, calls each write's done callback before
	// its log append and then holds the append back this long: the
	// durability bug the fault suite must catch (an acknowledgement sent
	// before the write is durable). Only kvmesh_planted builds have it.
	UnsafeEarlyAck time.Duration
}

// plantedEarlyAck acknowledges the batch before it is logged, and lets
// its new versions leave the node before that too.
func (s *Store) plantedEarlyAck(batch []*op) {
	if s.opts.UnsafeEarlyAck <= 0 {
		return
	}
	for _, o := range batch {
		if o.logged != nil && o.err == nil {
			o.logged()
			o.logged = nil
		}
		if o.done != nil {
			o.done(o.res, o.err)
			o.done = nil
		}
	}
	time.Sleep(s.opts.UnsafeEarlyAck)
}
