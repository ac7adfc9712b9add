package node

import (
	"github.com/kvmesh/kvmesh/protocol"
)

// Replica reads that miss the store's memtables read bbolt, which may
// wait for the disk (a page not in the page cache). Delivery goroutines
// must not wait: one stalled read would hold up every message behind it
// on the node's RPC subscription. So such reads go to a few reader
// goroutines through a bounded queue, and a read that finds the queue
// full is refused as overloaded (the coordinator asks another owner).
// The pages of partition scans (scan.go) and the steps of anti-entropy
// exchanges (antientropy.go) take the same queue, as tasks.

const (
	readers     = 4    // reader goroutines per node
	readBacklog = 4096 // reads queued for them, at most
)

type readJob struct {
	p    int
	key  string
	done func(*protocol.Object, error)
	task *task // set: the job runs this task instead
}

// task is work for a reader goroutine that answers one RPC item: run
// computes the result, done gets it (or the failure of a task never run).
type task struct {
	run  func() protocol.Result
	done func(protocol.Result)
}

// startReaders starts the reader goroutines; they stop with the node.
func (n *Node) startReaders() {
	n.reads = make(chan readJob, readBacklog)
	for range readers {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for {
				select {
				case <-n.stop:
					n.failReads()
					return
				case j := <-n.reads:
					if t := j.task; t != nil {
						t.done(t.run())
						continue
					}
					j.done(n.st.Get(j.p, j.key))
				}
			}
		}()
	}
}

// failReads answers the reads still queued at shutdown.
func (n *Node) failReads() {
	for {
		select {
		case j := <-n.reads:
			j.fail(protocol.Errorf(protocol.ErrNodeUnavailable, "node %s is shutting down", n.cfg.ID))
		default:
			return
		}
	}
}

func (j *readJob) fail(err error) {
	if j.task != nil {
		j.task.done(protocol.ResultError(0, err))
		return
	}
	j.done(nil, err)
}

// readStore reads key from bbolt on a reader goroutine, without looking
// at the memtables first (the caller did), and hands the result to done;
// a full queue is ErrOverloaded at once. It never blocks.
func (n *Node) readStore(p int, key string, done func(*protocol.Object, error)) {
	n.queueRead(readJob{p: p, key: key, done: done})
}

// queueRead hands j to the readers, or fails it with ErrOverloaded at
// once when their queue is full. It never blocks.
func (n *Node) queueRead(j readJob) {
	select {
	case n.reads <- j:
	default:
		n.metrics.refusedReads.Inc()
		j.fail(protocol.Errorf(protocol.ErrOverloaded, "node %s: %d replica reads queued", n.cfg.ID, readBacklog))
	}
}

// readReplica reads this node's replica of key in partition p and hands
// it to done: at once when the memtables hold it, else from a reader
// goroutine. It never blocks.
func (n *Node) readReplica(p int, key string, done func(*protocol.Object, error)) {
	obj, ok, err := n.st.Cached(p, key)
	if ok || err != nil {
		done(obj, err)
		return
	}
	n.readStore(p, key, done)
}
