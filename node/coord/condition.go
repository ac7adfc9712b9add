package coord

import (
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// CheckCondition decides a conditional write of key (Kvmesh-If) against
// obj, the key's object as the serialising owner's quorum read merged it
// (nil: no replica has the key), at now (unix ns), with the client's
// context ctx. It returns the context to write with, or an error
// wrapping protocol.ErrConflict when the condition does not hold.
//
//   - CondAbsent holds when no value of obj is live (none, or all deleted
//     or expired); the write supersedes what obj holds, so the new value
//     does not sit beside tombstones and expired values.
//   - CondVersion holds when ctx has seen everything obj has (its clock
//     descends obj's): nothing was written since the read or write that
//     gave ctx. An empty ctx holds only for a key never written (or
//     purged).
func CheckCondition(c protocol.Condition, key string, obj *protocol.Object, ctx protocol.Clock, now int64) (protocol.Clock, error) {
	var stored protocol.Clock
	if obj != nil {
		stored = obj.Clock
	}
	switch c {
	case protocol.CondAbsent:
		if obj != nil && len(obj.LiveAt(now)) > 0 {
			return nil, protocol.Errorf(protocol.ErrConflict, "put if absent %q: the key has a value", protocol.Clip(key, 64))
		}
		return version.Join(stored, ctx), nil
	case protocol.CondVersion:
		if !version.Descends(ctx, stored) {
			return nil, protocol.Errorf(protocol.ErrConflict, "write if version %q: the key was written since the context", protocol.Clip(key, 64))
		}
		return ctx, nil
	}
	return ctx, nil
}
