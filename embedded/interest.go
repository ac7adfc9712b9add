package embedded

// HasInterest reports whether any subscriber, this server's own clients
// or another server's behind a route, has a subscription that matches
// subject in the global account (where kvmesh's clients live), as far as
// this server knows now: remote interest arrives asynchronously, a few
// milliseconds after a subscriber on another server subscribes. A
// publisher asks it to skip building a message nobody would receive; a
// false negative drops what NATS would have delivered just as a publish
// before the interest arrived would. True while the server restarts, so
// a publisher does not lose messages to the check.
func (s *Server) HasInterest(subject string) bool {
	ns := s.prov.cur.Load()
	if ns == nil || !ns.Running() {
		return true
	}
	acc := ns.GlobalAccount()
	if acc == nil {
		return true
	}
	return acc.SubscriptionInterest(subject)
}
