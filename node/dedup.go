package node

import (
	"strconv"
	"sync"
	"time"

	"github.com/kvmesh/kvmesh/protocol"
)

// forwarded remembers the forwarded writes (RPCCoordinate) this node
// coordinated recently, by sender and tag, so a request that arrives twice
// (a retry, a duplicated message) is coordinated once: a second copy
// would issue a second dot for the same value, and the client, holding the
// context of only one, could never supersede the other. Entries live for
// twice the request timeout; at most maxForwarded are kept.
type forwarded struct {
	mu    sync.Mutex
	m     map[string]*forwardEntry
	order []forwardKey // insertion order, for expiry
}

type forwardKey struct {
	key string
	at  time.Time
}

type forwardEntry struct {
	done    bool
	res     protocol.Result // Tag unset
	waiters []func(protocol.Result)
}

const maxForwarded = 1 << 16

// once runs start for the first copy of (from, tag) and hands its result
// to every copy's add. It reports whether this copy started the write.
func (f *forwarded) once(now time.Time, from string, tag uint64, ttl time.Duration, add func(protocol.Result), start func(finish func(protocol.Result))) bool {
	k := from + "/" + strconv.FormatUint(tag, 36)
	f.mu.Lock()
	if f.m == nil {
		f.m = make(map[string]*forwardEntry)
	}
	for len(f.order) > 0 && (now.Sub(f.order[0].at) > ttl || len(f.order) >= maxForwarded) {
		delete(f.m, f.order[0].key)
		f.order = f.order[1:]
	}
	if e, ok := f.m[k]; ok {
		if e.done {
			res := e.res
			f.mu.Unlock()
			add(res)
			return false
		}
		e.waiters = append(e.waiters, add)
		f.mu.Unlock()
		return false
	}
	e := &forwardEntry{waiters: []func(protocol.Result){add}}
	f.m[k] = e
	f.order = append(f.order, forwardKey{k, now})
	f.mu.Unlock()
	start(func(res protocol.Result) {
		f.mu.Lock()
		e.done, e.res = true, res
		waiters := e.waiters
		e.waiters = nil
		f.mu.Unlock()
		for _, w := range waiters {
			w(res)
		}
	})
	return true
}
