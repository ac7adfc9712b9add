package node

import (
	"encoding/json"
	"slices"

	"github.com/nats-io/nats.go"

	"github.com/kvmesh/kvmesh/node/membership"
	"github.com/kvmesh/kvmesh/protocol"
)

// addAdminEndpoints adds the operators' endpoints to the service: the
// node's status (one reply per node on the broadcast subject, this node's
// on its own), a dump of its own replicas of given keys, and admission
// (join.go): invite and join, each answered by one node of the queue
// group. The client port has no client authentication yet: anyone who
// reaches it may ask for an invite (see join.go).
func (n *Node) addAdminEndpoints(svc *service) error {
	j, err := n.newJoinService()
	if err != nil {
		return err
	}
	if err := svc.addEndpoint("invite", n.subjects.AdminInvite(), j.serveInvite); err != nil {
		return err
	}
	if err := svc.addEndpoint("join", n.subjects.AdminJoin(), j.serveJoin); err != nil {
		return err
	}
	if err := svc.addEndpoint("remove", n.subjects.AdminRemove(), n.serveRemove); err != nil {
		return err
	}
	if err := svc.addEndpoint("leave", n.subjects.AdminNodeLeave(n.cfg.ID), n.serveLeave); err != nil {
		return err
	}
	if err := svc.addBroadcast("status", n.subjects.AdminStatus(), n.serveStatus); err != nil {
		return err
	}
	if err := svc.addEndpoint("status-direct", n.subjects.AdminNodeStatus(n.cfg.ID), n.serveStatus); err != nil {
		return err
	}
	return svc.addEndpoint("replicas", n.subjects.AdminNodeReplicas(n.cfg.ID), n.serveReplicas)
}

// Status returns the node's status (protocol.NodeStatus). Valid after
// Start.
func (n *Node) Status() protocol.NodeStatus {
	st := protocol.NodeStatus{
		Node: n.cfg.ID, Version: Version, Key: n.publicKey, Actor: n.actor, Started: n.startTime.UnixNano(),
		Replicas: n.cfg.Replicas, Partitions: n.cfg.Partitions, Prefix: n.subjects.Prefix,
		Conflicts: n.conflicts.String(), OtherConflicts: n.otherConflictsList(),
		Members: n.Members(), Alive: n.Heard(), Inflight: n.inflight.Load(),
		Suspect: n.live.in(membership.Suspect), Down: n.live.in(membership.Down),
		RefusedHeartbeats: n.gossip.refused.Load(), RefusedRecords: n.mem.refused.Load(), ReadRepairs: n.readRepairs.Load(), DigestMatches: n.digestMatches.Load(), DigestMisses: n.digestMisses.Load(), DC: n.cfg.DataCenter, Chores: n.choresOwner(),
	}
	st.Hints.Pending, st.Hints.Partitions, st.Hints.PendingWrites = n.hints.pending()
	st.Hints.Delivered, st.Hints.Records = n.hints.delivered.Load(), n.hints.records.Load()
	st.Hints.FallbackWrites, st.Hints.SloppyWrites = n.hints.stored.Load(), n.sloppy.Load()
	st.Hints.Stale = n.hints.stale.Load()
	if rb := &n.rebal; rb.started.Load() != 0 && rb.partitions.Load() > 0 {
		st.Transfer = &protocol.TransferStatus{Partitions: rb.partitions.Load(), Done: rb.partitionsDone.Load(),
			Keys: rb.keys.Load(), Bytes: rb.bytes.Load(), Started: rb.started.Load(), Finished: rb.finished.Load()}
	}
	rg := n.mem.ring()
	for _, r := range n.mem.records().Records() {
		st.Records = append(st.Records, protocol.MemberInfo{ID: r.ID, Key: r.Key, Status: r.Status.String(), DC: r.DC, Client: r.Client,
			Route: r.Route, Incarnation: r.Incarnation, Version: r.Version, Partitions: len(rg.PartitionsOf(r.ID))})
	}
	if err := n.StoreError(); err != nil {
		st.StoreError = err.Error()
	}
	st.AntiEntropy = n.antiEntropyStatus()
	return st
}

func (n *Node) serveStatus(req *request) {
	if err := checkHeaders(opAdmin, req.Header()); err != nil {
		n.respondError(req, err)
		return
	}
	b, err := json.Marshal(n.Status())
	if err != nil {
		n.respondError(req, protocol.Errorf(protocol.ErrInternal, "status: %v", err))
		return
	}
	_ = req.reply(&nats.Msg{Header: nats.Header{protocol.HdrNode: {n.cfg.ID}}, Data: b})
}

// serveReplicas answers a Request of RPCRead items with this node's own
// replicas of their keys, as a Reply: what the node's store holds,
// without a quorum or a repair.
func (n *Node) serveReplicas(req *request) {
	rq, err := protocol.DecodeRequest(req.Data())
	if err == nil {
		err = checkHeaders(opAdmin, req.Header())
	}
	if err == nil && slices.ContainsFunc(rq.Items, func(it protocol.Item) bool { return it.Op != protocol.RPCRead }) {
		err = protocol.Errorf(protocol.ErrInvalidOption, "replicas: only read items")
	}
	if err != nil {
		req.fail(err)
		_ = req.reply(&nats.Msg{Data: n.encodeReply([]protocol.Result{protocol.ResultError(0, err)})})
		return
	}
	r := n.mem.ring()
	col := newCollector(len(rq.Items), func(results []protocol.Result) {
		if err := req.reply(&nats.Msg{Data: n.encodeReply(results)}); err != nil {
			n.respondError(req, protocol.Errorf(protocol.ErrValueTooLarge, "replicas: %v", err))
		}
	})
	for _, it := range rq.Items {
		n.readReplica(r.Partition(it.Key), it.Key, func(obj *protocol.Object, err error) {
			if err != nil {
				col.add(protocol.ResultError(it.Tag, err))
				return
			}
			col.add(protocol.Result{Tag: it.Tag, Obj: obj})
		})
	}
}

// serveRemove starts the removal of the member the body names.
func (n *Node) serveRemove(req *request) {
	err := checkHeaders(opAdmin, req.Header())
	if err == nil {
		id := string(req.Data())
		if err = protocol.ValidateNodeID(id); err != nil {
			err = protocol.Errorf(protocol.ErrInvalidOption, "remove: %v", err)
		} else {
			err = n.Remove(id)
		}
	}
	n.respondAdmin(req, err)
}

// serveLeave starts this node's leave.
func (n *Node) serveLeave(req *request) {
	err := checkHeaders(opAdmin, req.Header())
	if err == nil {
		err = n.Leave()
	}
	n.respondAdmin(req, err)
}

// respondAdmin answers an operator's command: empty, or the error.
func (n *Node) respondAdmin(req *request, err error) {
	if err != nil {
		n.respondError(req, err)
		return
	}
	_ = req.reply(&nats.Msg{Header: nats.Header{protocol.HdrNode: {n.cfg.ID}}})
}
