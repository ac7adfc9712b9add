package node

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"

	"github.com/kvmesh/kvmesh/node/clock"
)

// service is the node's client API as a NATS service ("kvmesh"): its
// endpoints are queue subscriptions, and it answers the service
// discovery requests ($SRV.PING, $SRV.INFO, $SRV.STATS, for all services,
// for "kvmesh" and for this instance) with nats.go micro's types, so
// `nats micro ls|info|stats kvmesh` find every node.
//
// It does not use micro.AddService because micro measures an endpoint's
// requests, errors and processing time around a synchronous handler, and
// kvmesh answers asynchronously, once the replicas have: a handler that
// waited would serialise every request of an endpoint. Here each request
// counts from its arrival to its last reply, and an error reply counts as
// an error, whenever it is sent.
type service struct {
	nc      *nats.Conn
	clock   clock.Clock
	ident   micro.ServiceIdentity
	desc    string
	queue   string
	started time.Time

	mu        sync.Mutex
	endpoints []*endpoint
	subs      []*nats.Subscription // endpoints' and discovery's
}

// endpoint is one of the service's subjects and its statistics.
type endpoint struct {
	name    string
	subject string
	queue   string
	handle  func(*request)

	mu         sync.Mutex
	requests   int
	errors     int
	lastError  string
	processing time.Duration
}

func newService(nc *nats.Conn, clk clock.Clock, name, version, desc, queue string, metadata map[string]string) *service {
	return &service{nc: nc, clock: clk, desc: desc, queue: queue, started: clk.Now().UTC(),
		ident: micro.ServiceIdentity{Name: name, ID: nuid.Next(), Version: version, Metadata: metadata}}
}

// addEndpoint subscribes handle to subject in the service's queue group.
// handle runs on the subscription's delivery goroutine and must not
// block; it answers through the request, now or later. Messages without
// a reply subject are counted and dropped.
func (s *service) addEndpoint(name, subject string, handle func(*request)) error {
	return s.add(name, subject, s.queue, handle)
}

// addBroadcast is addEndpoint outside any queue group: every node gets
// each request.
func (s *service) addBroadcast(name, subject string, handle func(*request)) error {
	return s.add(name, subject, "", handle)
}

func (s *service) add(name, subject, queue string, handle func(*request)) error {
	ep := &endpoint{name: name, subject: subject, queue: queue, handle: handle}
	if err := s.subscribe(ep, subject, queue); err != nil {
		return err
	}
	s.mu.Lock()
	s.endpoints = append(s.endpoints, ep)
	s.mu.Unlock()
	return nil
}

// addSubject has endpoint name also serve subject, outside any queue
// group, counted in its stats: the subject this node's server maps the
// endpoint's own to for its local clients (serveLocalClients).
func (s *service) addSubject(name, subject string) error {
	s.mu.Lock()
	var ep *endpoint
	for _, e := range s.endpoints {
		if e.name == name {
			ep = e
		}
	}
	s.mu.Unlock()
	if ep == nil {
		return fmt.Errorf("endpoint %s: none such", name)
	}
	return s.subscribe(ep, subject, "")
}

func (s *service) subscribe(ep *endpoint, subject, queue string) error {
	handle := ep.handle
	sub, err := s.nc.QueueSubscribe(subject, queue, func(m *nats.Msg) {
		r := &request{ep: ep, msg: m, nc: s.nc, clock: s.clock, start: s.clock.Now()}
		r.left.Store(1)
		if m.Reply == "" {
			r.done("") // a publish, not a request: nobody to answer, nothing done
			return
		}
		handle(r)
	})
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", ep.name, err)
	}
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.mu.Unlock()
	return nil
}

// startDiscovery answers the service discovery requests. Call it after
// the endpoints are added.
func (s *service) startDiscovery() error {
	for _, verb := range []micro.Verb{micro.PingVerb, micro.InfoVerb, micro.StatsVerb} {
		for _, subj := range []struct{ name, id string }{{}, {s.ident.Name, ""}, {s.ident.Name, s.ident.ID}} {
			subject, err := micro.ControlSubject(verb, subj.name, subj.id)
			if err != nil {
				return err
			}
			verb := verb
			sub, err := s.nc.Subscribe(subject, func(m *nats.Msg) {
				if m.Reply == "" {
					return
				}
				b, err := json.Marshal(s.describe(verb))
				if err == nil {
					_ = m.Respond(b)
				}
			})
			if err != nil {
				return fmt.Errorf("service discovery %s: %w", subject, err)
			}
			s.mu.Lock()
			s.subs = append(s.subs, sub)
			s.mu.Unlock()
		}
	}
	return nil
}

// describe is the answer to a discovery request.
func (s *service) describe(verb micro.Verb) any {
	s.mu.Lock()
	eps := append([]*endpoint(nil), s.endpoints...)
	s.mu.Unlock()
	switch verb {
	case micro.InfoVerb:
		info := micro.Info{ServiceIdentity: s.ident, Type: micro.InfoResponseType, Description: s.desc,
			Endpoints: make([]micro.EndpointInfo, 0, len(eps))}
		for _, ep := range eps {
			info.Endpoints = append(info.Endpoints, micro.EndpointInfo{Name: ep.name, Subject: ep.subject, QueueGroup: ep.queue})
		}
		return info
	case micro.StatsVerb:
		return s.stats()
	}
	return micro.Ping{ServiceIdentity: s.ident, Type: micro.PingResponseType}
}

// stats returns every endpoint's statistics so far.
func (s *service) stats() micro.Stats {
	s.mu.Lock()
	eps := append([]*endpoint(nil), s.endpoints...)
	s.mu.Unlock()
	st := micro.Stats{ServiceIdentity: s.ident, Type: micro.StatsResponseType, Started: s.started,
		Endpoints: make([]*micro.EndpointStats, 0, len(eps))}
	for _, ep := range eps {
		ep.mu.Lock()
		es := &micro.EndpointStats{Name: ep.name, Subject: ep.subject, QueueGroup: ep.queue,
			NumRequests: ep.requests, NumErrors: ep.errors, LastError: ep.lastError, ProcessingTime: ep.processing}
		if ep.requests > 0 {
			es.AverageProcessingTime = ep.processing / time.Duration(ep.requests)
		}
		ep.mu.Unlock()
		st.Endpoints = append(st.Endpoints, es)
	}
	return st
}

// stop drains the endpoints' subscriptions (requests delivered already
// are still served) and stops answering discovery.
func (s *service) stop() error {
	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()
	var first error
	for _, sub := range subs {
		if err := sub.Drain(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// request is one request to an endpoint. Its replies may be sent from
// any goroutine, at any later time; it counts in the endpoint's
// statistics once its last reply is sent.
type request struct {
	ep    *endpoint
	msg   *nats.Msg
	nc    *nats.Conn
	clock clock.Clock
	start time.Time
	left  atomic.Int32 // replies still to send (see expect)
	err   atomic.Pointer[string]
}

// Subject, Data and Header are the request's.
func (r *request) Subject() string     { return r.msg.Subject }
func (r *request) Data() []byte        { return r.msg.Data }
func (r *request) Header() nats.Header { return r.msg.Header }

// expect says the request will be answered in n reply messages (1 by
// default); call it before the first reply.
func (r *request) expect(n int) { r.left.Store(int32(n)) }

// fail marks the request as failed with err, for the statistics; the
// error itself goes in a reply.
func (r *request) fail(err error) {
	s := err.Error()
	r.err.Store(&s)
}

// reply publishes m as one of the request's replies (m.Subject is set).
func (r *request) reply(m *nats.Msg) error {
	m.Subject = r.msg.Reply
	err := r.nc.PublishMsg(m)
	if err == nil {
		if msg := r.err.Load(); msg != nil {
			r.done(*msg)
		} else {
			r.done("")
		}
	}
	return err
}

// done counts one reply sent; after the last, the request goes into its
// endpoint's statistics, as an error when errMsg is not empty.
func (r *request) done(errMsg string) {
	if r.left.Add(-1) != 0 {
		return
	}
	d := r.clock.Now().Sub(r.start)
	ep := r.ep
	ep.mu.Lock()
	ep.requests++
	ep.processing += d
	if errMsg != "" {
		ep.errors++
		ep.lastError = errMsg
	}
	ep.mu.Unlock()
}
